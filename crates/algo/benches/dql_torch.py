"""The Diffusion-QL update of crates/algo/src/dql.rs written in PyTorch as DQL's own code does
it (agents/diffusion.py, agents/model.py, agents/ql_diffusion.py), for timing comparisons.

Same sizes (obs 17, act 6, the 3x256 Mish noise-prediction MLP with its 16-32-16 time MLP,
twin 3x256 Mish critics), same order (critic step with the EMA actor's full T-step samples as
the target's actions, then the noise-prediction loss + eta times DQL's normalised Q term
through all T sampling steps, Polyak targets, EMA actor every 5 steps), batch 256.

    python dql_torch.py [--threads 1,2] [--steps 100] [--decisions 2000] [--nfe 5]

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

OBS, ACT, B = 17, 6, 256


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        half = self.dim // 2
        emb = math.log(10000) / (half - 1)
        emb = torch.exp(torch.arange(half) * -emb)
        emb = x[:, None] * emb[None, :]
        return torch.cat((emb.sin(), emb.cos()), dim=-1)


class NoiseNet(nn.Module):
    def __init__(self, t_dim=16):
        super().__init__()
        self.time_mlp = nn.Sequential(
            SinusoidalPosEmb(t_dim), nn.Linear(t_dim, t_dim * 2), nn.Mish(), nn.Linear(t_dim * 2, t_dim)
        )
        self.mid = nn.Sequential(
            nn.Linear(OBS + ACT + t_dim, 256), nn.Mish(),
            nn.Linear(256, 256), nn.Mish(),
            nn.Linear(256, 256), nn.Mish(),
        )
        self.final = nn.Linear(256, ACT)

    def forward(self, x, t, s):
        return self.final(self.mid(torch.cat([x, self.time_mlp(t), s], dim=1)))


def vp_betas(T, b_min=0.1, b_max=10.0):
    t = torch.arange(1, T + 1, dtype=torch.float64)
    alpha = torch.exp(-b_min / T - 0.5 * (b_max - b_min) * (2 * t - 1) / T**2)
    return (1 - alpha).float()


class Diffusion(nn.Module):
    def __init__(self, T):
        super().__init__()
        self.T, self.model = T, NoiseNet()
        betas = vp_betas(T)
        ac = torch.cumprod(1.0 - betas, 0)
        acp = torch.cat([torch.ones(1), ac[:-1]])
        self.sqrt_ac, self.sqrt_1m_ac = ac.sqrt(), (1 - ac).sqrt()
        self.sqrt_recip, self.sqrt_recipm1 = (1 / ac).sqrt(), (1 / ac - 1).sqrt()
        var = betas * (1 - acp) / (1 - ac)
        self.logvar = torch.log(var.clamp(min=1e-20))
        self.c1 = betas * acp.sqrt() / (1 - ac)
        self.c2 = (1 - acp) * (1 - betas).sqrt() / (1 - ac)

    def p_sample(self, x, i, s, scale=1.0):
        t = torch.full((x.shape[0],), i, dtype=torch.long)
        eps = self.model(x, t.float(), s)
        x0 = (self.sqrt_recip[i] * x - self.sqrt_recipm1[i] * eps).clamp(-1.0, 1.0)
        mean = self.c1[i] * x0 + self.c2[i] * x
        if i == 0:
            return mean
        return mean + (0.5 * self.logvar[i]).exp() * scale * torch.randn_like(x)

    def forward(self, s, scale=1.0):
        x = scale * torch.randn(s.shape[0], ACT)
        for i in reversed(range(self.T)):
            x = self.p_sample(x, i, s, scale)
        return x.clamp(-1.0, 1.0)

    def loss(self, a, s):
        t = torch.randint(0, self.T, (a.shape[0],))
        noise = torch.randn_like(a)
        x = self.sqrt_ac[t][:, None] * a + self.sqrt_1m_ac[t][:, None] * noise
        return F.mse_loss(self.model(x, t.float(), s), noise)


def mlp(dims):
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.Mish())
    return nn.Sequential(*layers)


class DoubleQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.q1 = mlp([OBS + ACT, 256, 256, 256, 1])
        self.q2 = mlp([OBS + ACT, 256, 256, 256, 1])

    def forward(self, s, a):
        x = torch.cat([s, a], dim=-1)
        return self.q1(x), self.q2(x)


class Agent:
    def __init__(self, T):
        self.actor = Diffusion(T)
        self.ema = copy.deepcopy(self.actor)
        self.critic = DoubleQ()
        self.target = copy.deepcopy(self.critic)
        self.aopt = torch.optim.Adam(self.actor.parameters(), lr=3e-4)
        self.copt = torch.optim.Adam(self.critic.parameters(), lr=3e-4)
        self.step = 0

    def update(self, s, a, r, s2, d, eta=1.0, gamma=0.99, tau=0.005, grad_norm=9.0):
        q1, q2 = self.critic(s, a)
        with torch.no_grad():
            a2 = self.ema(s2)
            q1t, q2t = self.target(s2, a2)
            y = r + gamma * (1 - d) * torch.min(q1t, q2t)
        closs = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.copt.zero_grad()
        closs.backward()
        nn.utils.clip_grad_norm_(self.critic.parameters(), grad_norm)
        self.copt.step()

        bc = self.actor.loss(a, s)
        a_pi = self.actor(s)
        p1, p2 = self.critic(s, a_pi)
        if torch.rand(()) > 0.5:
            q_loss = -p1.mean() / p2.abs().mean().detach()
        else:
            q_loss = -p2.mean() / p1.abs().mean().detach()
        aloss = bc + eta * q_loss
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
            return self.ema(obs)[0]
        s = obs.repeat(candidates, 1)
        acts = self.ema(s, scale=temperature)
        q = torch.min(*self.target(s, acts)).squeeze(-1)
        idx = torch.multinomial(F.softmax(w * q, dim=0), 1)
        return acts[idx[0]]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--decisions", type=int, default=2000)
    p.add_argument("--nfe", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    data = [torch.rand(100_000, n) * 2 - 1 for n in (OBS, ACT, 1, OBS)]
    runs = []
    for n in [int(x) for x in args.threads.split(",")]:
        torch.set_num_threads(n)
        agent = Agent(args.nfe)

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
    print(json.dumps({"torch": torch.__version__, "nfe": args.nfe, "runs": runs}))


if __name__ == "__main__":
    main()
