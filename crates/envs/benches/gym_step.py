"""Gymnasium's side of the step benchmark (benches/step.rs): env.step per second on one
thread for the same six environments, two AntMazes and FrankaKitchen-v1 (Gymnasium-Robotics 1.4.2), with random
in-range float32 actions from a fixed pool and a reset when an episode ends.

Run: .deps/parity-venv/bin/python crates/envs/benches/gym_step.py [--steps N]
"""

import argparse
import json
import time

import os
import pathlib
import sys
import warnings

import gymnasium as gym
import gymnasium_robotics
import numpy as np

warnings.simplefilter("ignore")
gym.register_envs(gymnasium_robotics)
# FrankaKitchen-v1 needs the parity test's patch on MuJoCo 3.17.0 with NumPy 2.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "parity"))
import robotics_patch  # noqa: E402,F401

ENVS = ["HalfCheetah-v4", "HalfCheetah-v5", "Hopper-v4", "Hopper-v5", "Walker2d-v4", "Walker2d-v5",
        "AntMaze_UMaze-v4", "AntMaze_Large-v4", "FrankaKitchen-v1"]


def steps_per_second(env_id, steps, repeats):
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    nu = env.action_space.shape[0]
    actions = rng.uniform(-1.0, 1.0, size=(1024, nu)).astype(np.float32)
    env.reset(seed=0)
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for t in range(steps):
            _, _, terminated, truncated, _ = env.step(actions[t % 1024])
            if terminated or truncated:
                env.reset()
        best = max(best, steps / (time.perf_counter() - start))
    env.close()
    # Gymnasium-Robotics leaves each maze's XML in the temporary folder.
    maze_xml = getattr(env.unwrapped, "tmp_xml_file_path", None)
    if maze_xml and os.path.exists(maze_xml):
        os.remove(maze_xml)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {env_id: steps_per_second(env_id, args.steps, args.repeats) for env_id in ENVS}
    for env_id, sps in results.items():
        print(f"{env_id:18s} {sps:10.0f} steps/s  ({1e6 / sps:6.1f} us/step)")
    print(json.dumps({"gymnasium_steps_per_second": results}))


if __name__ == "__main__":
    main()
