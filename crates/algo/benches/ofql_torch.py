"""The OFQL update of crates/algo/src/agent.rs written in PyTorch, for timing comparisons.

Same sizes (obs 17, act 6, 3x256 Mish actor with a 64-128-64 time MLP shared by t and r,
twin 3x256 Mish critics), same order (critic first, MeanFlow loss with a JVP target, DQL's
normalised Q term, Polyak targets, EMA actor every 5 steps), batch 256.

    python ofql_torch.py [--threads 1,2] [--steps 100] [--decisions 2000]

prints one JSON object: per thread count, ms per training step and microseconds per decision
(1 candidate, and 50 candidates with Q-softmax). Needs torch (CPU is enough).
"""

import argparse
import copy
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import jvp

OBS, ACT, B = 17, 6, 256


def mlp(dims):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.Mish())
    return nn.Sequential(*layers)


class TimeEmb(nn.Module):
    def __init__(self, dim=64, hidden=128, k=1.0):
        super().__init__()
        self.k = k
        self.register_buffer("freqs", torch.pow(10000.0, -torch.arange(dim // 2) / (dim // 2)))
        self.mlp = mlp([dim, hidden, dim])

    def forward(self, t):
        x = self.k * t * self.freqs
        return self.mlp(torch.cat([torch.cos(x), torch.sin(x)], dim=-1))


class Velocity(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = TimeEmb()
        self.net = mlp([ACT + OBS + 128, 256, 256, 256, ACT])

    def forward(self, a_t, r, t, s):
        return self.net(torch.cat([a_t, s, self.emb(t), self.emb(r)], dim=-1))


class DoubleQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.q1 = mlp([OBS + ACT, 256, 256, 256, 1])
        self.q2 = mlp([OBS + ACT, 256, 256, 256, 1])

    def forward(self, s, a):
        x = torch.cat([s, a], dim=-1)
        return self.q1(x), self.q2(x)


def one_step(actor, s, noise):
    n = noise.shape[0]
    r, t = torch.zeros(n, 1), torch.ones(n, 1)
    return (noise - actor(noise, r, t, s)).clamp(-1, 1)


class Agent:
    def __init__(self):
        self.actor = Velocity()
        self.ema = copy.deepcopy(self.actor)
        self.critic = DoubleQ()
        self.target = copy.deepcopy(self.critic)
        self.aopt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.copt = torch.optim.Adam(self.critic.parameters(), lr=3e-4)
        self.step = 0

    def update(self, s, a, r, s2, d, eta=0.1, gamma=0.99, tau=0.005, grad_norm=9.0):
        with torch.no_grad():
            a2 = one_step(self.ema, s2, torch.randn(B, ACT))
            q1t, q2t = self.target(s2, a2)
            y = r + gamma * (1 - d) * torch.min(q1t, q2t)
        q1, q2 = self.critic(s, a)
        closs = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.copt.zero_grad()
        closs.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), grad_norm)
        self.copt.step()

        # MeanFlow: logit-normal (t, r), half the rows with r = t, JVP along (v, 0, 1, 0).
        tt = torch.sigmoid(torch.randn(B, 2) - 0.4)
        t, rr = tt.max(dim=1, keepdim=True)[0], tt.min(dim=1, keepdim=True)[0]
        eq = torch.randperm(B)[: B // 2]
        rr[eq] = t[eq]
        e = torch.randn(B, ACT)
        a_t, v = (1 - t) * a + t * e, e - a
        fn = lambda x, rx, tx: self.actor(x, rx, tx, s)
        with torch.no_grad():
            _, dudt = jvp(fn, (a_t, rr, t), (v, torch.zeros_like(rr), torch.ones_like(t)))
            target = v - (t - rr) * dudt
        u = self.actor(a_t, rr, t, s)
        flow = F.mse_loss(u, target)
        a_pi = one_step(self.actor, s, torch.randn(B, ACT))
        p1, p2 = self.critic(s, a_pi)
        if torch.rand(()) > 0.5:
            q_loss = -p1.mean() / p2.abs().mean().detach()
        else:
            q_loss = -p2.mean() / p1.abs().mean().detach()
        aloss = flow + eta * q_loss
        self.aopt.zero_grad()
        aloss.backward()
        nn.utils.clip_grad_norm_(self.actor.parameters(), grad_norm)
        self.aopt.step()

        self.step += 1
        with torch.no_grad():
            for pt, p in zip(self.target.parameters(), self.critic.parameters()):
                pt.mul_(1 - tau).add_(tau * p)
            if self.step % 5 == 0:
                for pe, p in zip(self.ema.parameters(), self.actor.parameters()):
                    pe.mul_(0.995).add_(0.005 * p)

    @torch.no_grad()
    def decide(self, obs, candidates=1, temperature=1.0, w=50.0):
        if candidates == 1:
            return one_step(self.ema, obs, torch.randn(1, ACT))[0]
        s = obs.repeat(candidates, 1)
        acts = one_step(self.ema, s, temperature * torch.randn(candidates, ACT))
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
            for _ in range(50):
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
