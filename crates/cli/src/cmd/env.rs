//! `ofql env ...`: run the MuJoCo environments directly.

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ofql_envs::{Env, EnvId, EvalConfig, EvalReport, Policy, RandomPolicy, ZeroPolicy, evaluate};
use serde::Serialize;

use crate::output::Output;

#[derive(Args)]
pub struct EnvArgs {
    #[command(subcommand)]
    pub command: EnvCommand,
}

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Run episodes of a reference policy and print their returns (a smoke test, and the
    /// random-policy reference return).
    Rollout(RolloutArgs),
}

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyArg {
    /// Uniform actions in the actuators' ranges.
    Random,
    /// All-zero actions.
    Zero,
}

#[derive(Args)]
pub struct RolloutArgs {
    /// Environment: HalfCheetah, Hopper or Walker2d, version v4 (D4RL's) or v5, e.g. Hopper-v4;
    /// or a Gymnasium-Robotics maze, e.g. AntMaze_Medium-v4 (an unknown name lists them all).
    #[arg(long)]
    pub env: String,
    #[arg(long, value_enum, default_value = "random")]
    pub policy: PolicyArg,
    #[arg(long, default_value_t = 10)]
    pub episodes: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Environments stepped in lockstep [default: min(episodes, 10)].
    #[arg(long)]
    pub num_envs: Option<usize>,
    /// Threads stepping the environments [default: the available cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: EnvArgs, out: &Output) -> Result<()> {
    match args.command {
        EnvCommand::Rollout(a) => run_rollout(a, out),
    }
}

#[derive(Serialize)]
struct RolloutReport {
    policy: PolicyArg,
    /// Whether the normalised score uses D4RL's constants (v4, the definitions of D4RL's data).
    normalized_with: Option<&'static str>,
    #[serde(flatten)]
    report: EvalReport,
}

fn run_rollout(args: RolloutArgs, out: &Output) -> Result<()> {
    let id: EnvId = args.env.parse()?;
    let env = Env::new(id).with_context(|| format!("cannot create {id}"))?;
    let mut policy: Box<dyn Policy> = match args.policy {
        PolicyArg::Random => Box::new(RandomPolicy::for_env(&env, args.seed)),
        PolicyArg::Zero => Box::new(ZeroPolicy { obs_dim: env.obs_dim(), act_dim: env.act_dim() }),
    };
    let mut config = EvalConfig::new(args.episodes, args.seed);
    config.num_envs = args.num_envs.unwrap_or(config.num_envs);
    config.threads = args.threads.unwrap_or(config.threads);
    let score = ofql_algo::eval::d4rl_reference(id)?;
    eprintln!(
        "{id}: {} episodes of the {} policy on {} environments",
        args.episodes,
        match args.policy {
            PolicyArg::Random => "random",
            PolicyArg::Zero => "zero",
        },
        config.num_envs.min(args.episodes)
    );
    let report = evaluate(id, policy.as_mut(), &config, score)?;
    let report =
        RolloutReport { policy: args.policy, normalized_with: score.map(|_| "d4rl"), report };
    out.report(&report, || text(&report));
    Ok(())
}

fn text(r: &RolloutReport) -> String {
    let mut s = String::from("episode  return      length  ended by\n");
    for e in &r.report.episodes {
        let end = if e.terminated { "fall" } else { "time limit" };
        s.push_str(&format!("{:>7}  {:>10.3}  {:>6}  {end}\n", e.index, e.ret, e.length));
    }
    let (ret, len) = (&r.report.returns, &r.report.lengths);
    s.push_str(&format!(
        "{}: return {:.3} +- {:.3}, length {:.1} +- {:.1}",
        r.report.env, ret.mean, ret.std, len.mean, len.std
    ));
    match &r.report.normalized {
        Some(n) => s.push_str(&format!("\nD4RL normalised score {:.2} +- {:.2}", n.mean, n.std)),
        None => s.push_str("\nD4RL normalised score: only for the v4 environments"),
    }
    s
}
