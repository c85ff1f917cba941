//! `ofql`: read offline RL datasets, train One-Step Flow Q-Learning, evaluate in MuJoCo.
//!
//! Every command that reports numbers takes `--json` and then prints exactly one JSON object
//! on stdout; progress and logs go to stderr. Errors exit non-zero with a message on stderr
//! (and, under `--json`, an `{"error": ...}` object on stdout).

mod cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Many short-lived tensor buffers: the default allocator costs ~2x in page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ofql", version, about = "One-Step Flow Q-Learning for offline RL")]
struct Cli {
    /// Print exactly one JSON object on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Versions of ofql and of the native libraries it loaded.
    Version,
    /// Inspect, convert and download offline RL datasets.
    Dataset(cmd::dataset::DatasetArgs),
    /// Run the MuJoCo environments (HalfCheetah, Hopper, Walker2d; v4 and v5).
    Env(cmd::env::EnvArgs),
    /// Train OFQL on an offline dataset (checkpoints, evaluation, resume).
    Train(cmd::train::TrainArgs),
    /// Evaluate a trained agent in MuJoCo.
    Eval(cmd::eval::EvalArgs),
    /// Training steps/s and decisions/s at HalfCheetah sizes, per thread count.
    Bench(cmd::bench::BenchArgs),
    /// Behaviour policies trained online with SAC (to generate D4RL-style datasets).
    Behaviour(cmd::behaviour::BehaviourArgs),
    /// The 2-D toy experiment (paper Figure 4): one-step average velocity vs Euler-sampled
    /// instantaneous velocity; writes scatter plots and prints a table.
    Toy(cmd::toy::ToyArgs),
    /// Aggregate a suite of runs (from `cargo xtask reproduce-d4rl`) into a markdown table, a
    /// CSV and learning-curve PNGs.
    Report(cmd::report::ReportArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = output::Output { json: cli.json };
    let result = match cli.command {
        Command::Version => cmd::version::run(&out),
        Command::Dataset(args) => cmd::dataset::run(args, &out),
        Command::Env(args) => cmd::env::run(args, &out),
        Command::Train(args) => cmd::train::run(args, &out),
        Command::Eval(args) => cmd::eval::run(args, &out),
        Command::Bench(args) => cmd::bench::run(args, &out),
        Command::Behaviour(args) => cmd::behaviour::run(args, &out),
        Command::Toy(args) => cmd::toy::run(args, &out),
        Command::Report(args) => cmd::report::run(args, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::FAILURE
        }
    }
}
