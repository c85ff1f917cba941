"""The Flow Q-Learning update of crates/algo/src/fql.rs written in PyTorch as FQL's own code
does it (agents/fql.py, utils/networks.py), for timing comparisons.

Same sizes (obs 17, act 6; BC flow field, one-step policy and two critics, each 4x512 GELU,
LayerNorm in the critics), same step (critic loss with the one-step policy's next actions and
the mean of the target critics, flow-matching BC loss, distillation towards 10 Euler steps,
Q loss through the one-step policy with the critics held constant, one Adam over the sum,
Polyak targets), batch 256.

    python fql_torch.py [--threads 1,2] [--steps 100] [--decisions 2000]

prints one JSON object: per thread count, ms per training step and microseconds per decision
(1 candidate, and 50 candidates with Q-softmax). Needs torch (CPU is enough).
"""

import argparse
import copy
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OBS, ACT, B, STEPS = 17, 6, 256, 10


def mlp(dims, layer_norm=False):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.GELU(approximate="tanh"))
            if layer_norm:
                layers.append(nn.LayerNorm(dims[i + 1], eps=1e-6))
    return nn.Sequential(*layers)


class Critics(nn.Module):
    def __init__(self):
        super().__init__()
        self.q1 = mlp([OBS + ACT, 512, 512, 512, 512, 1], layer_norm=True)
        self.q2 = mlp([OBS + ACT, 512, 512, 512, 512, 1], layer_norm=True)

    def forward(self, s, a):
        x = torch.cat([s, a], dim=-1)
        return self.q1(x), self.q2(x)


class Agent:
    def __init__(self):
        self.flow = mlp([OBS + ACT + 1, 512, 512, 512, 512, ACT])
        self.onestep = mlp([OBS + ACT, 512, 512, 512, 512, ACT])
        self.critic = Critics()
        self.target = copy.deepcopy(self.critic)
        params = [*self.flow.parameters(), *self.onestep.parameters(), *self.critic.parameters()]
        self.opt = torch.optim.Adam(params, lr=3e-4)

    def policy(self, s, z):
        return self.onestep(torch.cat([s, z], dim=-1)).clamp(-1, 1)

    @torch.no_grad()
    def flow_actions(self, s, z):
        a = z
        for i in range(STEPS):
            t = torch.full((s.shape[0], 1), i / STEPS)
            a = a + self.flow(torch.cat([s, a, t], dim=-1)) / STEPS
        return a.clamp(-1, 1)

    def update(self, s, a, r, s2, d, alpha=10.0, gamma=0.99, tau=0.005):
        with torch.no_grad():
            q1t, q2t = self.target(s2, self.policy(s2, torch.randn(B, ACT)))
            y = r + gamma * (1 - d) * (q1t + q2t) / 2
        q1, q2 = self.critic(s, a)
        closs = ((q1 - y) ** 2 + (q2 - y) ** 2).mean() / 2

        t = torch.rand(B, 1)
        x0 = torch.randn(B, ACT)
        bc = F.mse_loss(self.flow(torch.cat([s, (1 - t) * x0 + t * a, t], dim=-1)), a - x0)
        z = torch.randn(B, ACT)
        target = self.flow_actions(s, z)
        mu = self.onestep(torch.cat([s, z], dim=-1))
        distill = F.mse_loss(mu, target)
        for p in self.critic.parameters():
            p.requires_grad_(False)
        p1, p2 = self.critic(s, mu.clamp(-1, 1))
        for p in self.critic.parameters():
            p.requires_grad_(True)
        q_loss = -((p1 + p2) / 2).mean()
        loss = closs + bc + alpha * distill + q_loss
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for pt, p in zip(self.target.parameters(), self.critic.parameters()):
                pt.mul_(1 - tau).add_(tau * p)

    @torch.no_grad()
    def decide(self, obs, candidates=1, temperature=1.0, w=50.0):
        if candidates == 1:
            return self.policy(obs, torch.randn(1, ACT))[0]
        s = obs.repeat(candidates, 1)
        acts = self.policy(s, temperature * torch.randn(candidates, ACT))
        q = torch.min(*self.target(s, acts)).squeeze(-1)
        idx = torch.multinomial(F.softmax(w * q, dim=0), 1)
        return acts[idx[0]]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--decisions", type=int, default=2000)
    args = p.parse_args()
    torch.manual_seed(0)
    data = [torch.rand(100_000, n) * 2 - 1 for n in (OBS, ACT, 1, OBS)]
    runs = []
    for n in [int(x) for x in args.threads.split(",")]:
        torch.set_num_threads(n)
        agent = Agent()

        def batch():
            idx = torch.randint(0, 100_000, (B,))
            s, a, r, s2 = (x[idx] for x in data)
            return s, a, r, s2, torch.zeros(B, 1)

        for _ in range(10):
            agent.update(*batch())
        t0 = time.perf_counter()
        for _ in range(args.steps):
            agent.update(*batch())
        step = (time.perf_counter() - t0) / args.steps
        obs = data[0][:1]

        def per_decision(**kw):
            for _ in range(20):
                agent.decide(obs, **kw)
            t0 = time.perf_counter()
            for _ in range(args.decisions):
                agent.decide(obs, **kw).tolist()
            return (time.perf_counter() - t0) / args.decisions

        runs.append({
            "threads": n,
            "train_step_ms": step * 1e3,
            "decision_us": per_decision() * 1e6,
            "decision50_us": per_decision(candidates=50, temperature=0.5) * 1e6,
        })
    print(json.dumps({"torch": torch.__version__, "runs": runs}))


if __name__ == "__main__":
    main()
