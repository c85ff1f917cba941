"""Gymnasium-Robotics' side of the maze parity test (crates/envs/tests/maze_parity.rs).

Reads a JSON scenario file; for every case: gym.make(env, **options), reset(seed=seed), and
optionally set_state (an ant placed on the goal, to test success, termination and new goals),
then the actions. Writes, per step, the flat observation [achieved_goal, observation,
desired_goal], reward, terminated, truncated and info["success"]. Floats travel as
little-endian hex bytes so that nothing is rounded on the way.

Usage: python maze_rollout.py SCENARIOS.json OUT.json
"""

import json
import os
import sys
import warnings

warnings.simplefilter("ignore")

import gymnasium as gym  # noqa: E402
import gymnasium_robotics  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

gym.register_envs(gymnasium_robotics)


def from_hex(text, dtype):
    return np.frombuffer(bytes.fromhex(text), dtype=dtype)


def flat(obs):
    return np.concatenate([obs["achieved_goal"], obs["observation"], obs["desired_goal"]])


def run_case(case):
    kwargs = dict(case["options"])
    if kwargs.get("maze_map") is not None:
        kwargs["maze_map"] = [[c if c in "rgc" else int(c) for c in row] for row in kwargs["maze_map"]]
    else:
        kwargs.pop("maze_map", None)
    env = gym.make(case["env"], **kwargs)
    observations, rewards, terminated, truncated, success = [], [], [], [], []
    starts = []
    for seed in case["reset_seeds"]:
        obs, info = env.reset(seed=seed)
        starts.append(flat(obs))
    obs, info = env.reset(seed=case["seed"])
    base = env.unwrapped
    if case["qpos"]:
        base.ant_env.set_state(from_hex(case["qpos"], "<f8"), from_hex(case["qvel"], "<f8"))
        obs = base._get_obs(base.ant_env._get_obs())
    observations.append(flat(obs))
    actions = from_hex(case["actions"], "<f8").reshape(-1, base.model.nu)
    for action in actions:
        obs, reward, term, trunc, info = env.step(np.array(action))
        observations.append(flat(obs))
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        success.append(bool(info["success"]))
        if term or trunc:
            break
    env.close()
    # Gymnasium-Robotics writes each maze's XML into the system's temporary folder and leaves it.
    try:
        os.remove(base.tmp_xml_file_path)
    except OSError:
        pass
    return {
        "name": case["name"],
        "starts": np.asarray(starts, dtype="<f8").tobytes().hex(),
        "obs": np.asarray(observations, dtype="<f8").tobytes().hex(),
        "rewards": np.asarray(rewards, dtype="<f8").tobytes().hex(),
        "terminated": terminated,
        "truncated": truncated,
        "success": success,
    }


def main():
    scenarios_path, out_path = sys.argv[1], sys.argv[2]
    with open(scenarios_path) as f:
        scenarios = json.load(f)
    out = {
        "versions": {
            "gymnasium_robotics": gymnasium_robotics.__version__,
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
        },
        "cases": [run_case(case) for case in scenarios["cases"]],
    }
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
