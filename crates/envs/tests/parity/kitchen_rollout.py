"""Gymnasium-Robotics' side of the kitchen parity test (crates/envs/tests/kitchen_parity.rs).

Reads a JSON scenario file; for every case: gym.make("FrankaKitchen-v1", **options), resets
with the listed seeds (null = reset() without a seed, which continues the generator), then
reset(seed=seed), optionally a reset() from another state (robot_env.init_qpos/init_qvel
replaced: what Env::reset_to_state does), optionally robot_env.set_state(qpos, qvel) (a task
put at its goal, to test rewards, task removal and termination), then the actions. Writes the reset observations and,
per step, the 59-number observation, reward, terminated, truncated, whether every task of the
episode was completed so far, the tasks left (sorted), the achieved goals (in the goal's
order) and each task's np.linalg.norm(achieved - goal). Floats travel as little-endian hex
bytes so that nothing is rounded on the way.

Gymnasium-Robotics 1.4.2 cannot create FrankaKitchen-v1 with MuJoCo 3.17.0 and NumPy 2.4.6:
`mujoco_utils.get_joint_qpos` asserts `model.jnt_type[j] in (mjJNT_HINGE, mjJNT_SLIDE)`, and a
tuple of MuJoCo's pybind11 enums does not contain a NumPy int32 (the enum's __eq__ refuses
it, while `np.int32(3) == mjJNT_HINGE` is True). The two functions are replaced below by
copies that compare `int(model.jnt_type[j])`; they return the same slices of qpos and qvel.

Usage: python kitchen_rollout.py SCENARIOS.json OUT.json
"""

import json
import sys
import warnings

warnings.simplefilter("ignore")

import gymnasium as gym  # noqa: E402
import gymnasium_robotics  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

gym.register_envs(gymnasium_robotics)


from robotics_patch import NEEDS_PATCH  # noqa: E402,F401  (patches mujoco_utils)


def from_hex(text, dtype):
    return np.frombuffer(bytes.fromhex(text), dtype=dtype)


def hexed(values):
    return np.asarray(values, dtype="<f8").tobytes().hex()


def run_case(case):
    env = gym.make("FrankaKitchen-v1", **case["options"])
    base = env.unwrapped
    tasks = list(base.goal.keys())
    starts = []
    for seed in case["reset_seeds"]:
        obs, info = env.reset(seed=seed)
        starts.append(obs["observation"])
    obs, info = env.reset(seed=case["seed"])
    if case["reset_qpos"]:
        # Env::reset_to_state: reset() (no seed) from this state instead of the initial one.
        base.robot_env.init_qpos = from_hex(case["reset_qpos"], "<f8").copy()
        base.robot_env.init_qvel = from_hex(case["reset_qvel"], "<f8").copy()
        obs, info = env.reset()
    if case["qpos"]:
        base.robot_env.set_state(from_hex(case["qpos"], "<f8"), from_hex(case["qvel"], "<f8"))
    observations = [obs["observation"]]
    rewards, terminated, truncated, success, remaining, achieved, distances = ([] for _ in range(7))
    dtype = np.float32 if case["float32"] else np.float64
    actions = from_hex(case["actions"], "<f8").reshape(-1, base.model.nu).astype(dtype)
    for action in actions:
        obs, reward, term, trunc, info = env.step(action)
        observations.append(obs["observation"])
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        success.append(len(info["episode_task_completions"]) == len(tasks))
        remaining.append(sorted(info["tasks_to_complete"]))
        for task in tasks:
            achieved.extend(obs["achieved_goal"][task])
            distances.append(np.linalg.norm(obs["achieved_goal"][task] - base.goal[task]))
        if term or trunc:
            break
    env.close()
    return {
        "name": case["name"],
        "tasks": tasks,
        "starts": hexed(starts),
        "obs": hexed(observations),
        "rewards": hexed(rewards),
        "terminated": terminated,
        "truncated": truncated,
        "success": success,
        "remaining": remaining,
        "achieved": hexed(achieved),
        "distances": hexed(distances),
    }


def main():
    scenarios_path, out_path = sys.argv[1], sys.argv[2]
    with open(scenarios_path) as f:
        scenarios = json.load(f)
    out = {
        "versions": {
            "gymnasium": gym.__version__,
            "gymnasium_robotics": gymnasium_robotics.__version__,
            "mujoco": mujoco.__version__,
            "numpy": np.__version__,
            "jnt_type_patch_needed": NEEDS_PATCH,
        },
        "cases": [run_case(case) for case in scenarios["cases"]],
    }
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
