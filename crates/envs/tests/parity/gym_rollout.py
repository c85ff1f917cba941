"""Gymnasium's side of the parity test (crates/envs/tests/parity.rs).

Reads a JSON scenario file, runs every case in Gymnasium (gym.make, so with its TimeLimit),
writes Gymnasium's per-step observation, reward, terminated and truncated as JSON.
Floats travel as little-endian hex bytes so that nothing is rounded on the way.

Usage: python gym_rollout.py SCENARIOS.json OUT.json
"""

import json
import sys

import gymnasium as gym
import mujoco
import numpy as np


def from_hex(text, dtype):
    return np.frombuffer(bytes.fromhex(text), dtype=dtype)


def run_case(case):
    env = gym.make(case["env"])
    env.reset(seed=case["seed"])
    base = env.unwrapped
    base.set_state(from_hex(case["qpos"], "<f8"), from_hex(case["qvel"], "<f8"))
    dtype = np.float32 if case["dtype"] == "float32" else np.float64
    actions = from_hex(case["actions"], "<f4" if dtype == np.float32 else "<f8")
    actions = actions.reshape(-1, base.model.nu)
    observations = [base._get_obs()]
    rewards, terminated, truncated = [], [], []
    for action in actions:
        obs, reward, term, trunc, _ = env.step(np.array(action, dtype=dtype))
        observations.append(obs)
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
    env.close()
    return {
        "name": case["name"],
        "obs": np.asarray(observations, dtype="<f8").tobytes().hex(),
        "rewards": np.asarray(rewards, dtype="<f8").tobytes().hex(),
        "terminated": terminated,
        "truncated": truncated,
    }


def main():
    scenarios_path, out_path = sys.argv[1], sys.argv[2]
    with open(scenarios_path) as f:
        scenarios = json.load(f)
    out = {
        "versions": {"gymnasium": gym.__version__, "mujoco": mujoco.__version__, "numpy": np.__version__},
        "cases": [run_case(case) for case in scenarios["cases"]],
    }
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
