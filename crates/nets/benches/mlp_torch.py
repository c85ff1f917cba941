"""PyTorch baseline for `cargo bench -p ofql-nets --bench mlp`: the 3x256 Mish MLP
(23 -> 256 -> 256 -> 256 -> 6) at batch 256, f32, one thread: a training step (forward,
backward, Adam), the forward alone, and the JVP with torch.func.jvp. Prints one JSON object.

    python mlp_torch.py [--threads 1]
"""

import argparse
import json
import time

import torch
import torch.nn as nn
from torch.func import jvp


def timed(fn, reps=200):
    for _ in range(20):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(p.parse_args().threads)
    net = nn.Sequential(nn.Linear(23, 256), nn.Mish(), nn.Linear(256, 256), nn.Mish(),
                        nn.Linear(256, 256), nn.Mish(), nn.Linear(256, 6))
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    x, x_dot, y = torch.randn(256, 23), torch.randn(256, 23), torch.randn(256, 6)

    def step():
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()

    def forward():
        with torch.no_grad():
            net(x)

    def tangent():
        with torch.no_grad():
            jvp(net, (x,), (x_dot,))

    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "train_step_ms": timed(step), "forward_ms": timed(forward),
                      "tangent_ms": timed(tangent)}))


if __name__ == "__main__":
    main()
