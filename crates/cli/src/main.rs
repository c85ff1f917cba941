//! `ofql`: read offline RL datasets, train One-Step Flow Q-Learning, evaluate in MuJoCo.
//!
//! Every command that reports numbers takes `--json` and then prints exactly one JSON object
//! on stdout; progress and logs go to stderr. Errors exit non-zero with a message on stderr
//! (and, under `--json`, an `{"error": ...}` object on stdout).

mod cmd;
mod curves;
mod output;
mod paper;
mod progress;
mod replace;

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
    /// A checkpoint's critics on the run's dataset: Q at the data's actions against Q at the
    /// policy's own (over-estimation, drift).
    Critic(cmd::critic::CriticArgs),
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

/// The process's threading and memory policy, set before any thread starts. The OFQL update
/// splits its work over the threads itself (`Ofql::update`), so inside it every matrix
/// product and element-wise op should stay on the thread that issued it:
/// - candle runs large element-wise ops on a pool with one worker per extra thread, and each
///   worker spins (25,000 rounds) after every op, taking cycles from the other shard. Our
///   heavy element-wise loops are our own kernels anyway. A user's CANDLE_NUM_THREADS wins.
/// - gemm splits a product over threads above 590k multiply-adds; the update's are 8-17M
///   and run two at once. Only products above 2^25 (the evaluation's 2500-row batches) are
///   split now.
/// - candle asks for its thread count on every matrix product, and without RAYON_NUM_THREADS
///   it counts the physical cores by parsing /proc/cpuinfo each time (num_cpus): `ofql train`
///   made 120 steps/s instead of 165-175. The count is taken once and put in the variable
///   (rayon's pool then has as many threads as the update has shards). A user's value wins.
fn runtime_policy() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the first thing main does; no other thread exists yet.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = candle_core::utils::get_num_threads().to_string();
        // SAFETY: as above; rayon's pool starts later, on first use.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads) };
    }
    gemm::set_threading_threshold(1 << 25);
    // Keep freed memory instead of returning it to the OS: a training step frees and
    // reallocates the same large buffers, and fresh pages cost a fault and a zeroing each
    // (page zeroing fell from 3-4.6 % of a step to 1.5 % in perf; MIMALLOC_PURGE_DELAY=-1 in
    // the environment, read before main, does a little better). The peak stays what it was.
    // 15 is mi_option_purge_delay in mimalloc 3's enum (the bindings do not name it).
    // SAFETY: sets an integer option; no allocation depends on it being set earlier.
    unsafe { libmimalloc_sys::mi_option_set(15, -1) };
}

fn main() -> ExitCode {
    runtime_policy();
    let cli = Cli::parse();
    let out = output::Output { json: cli.json };
    let result = match cli.command {
        Command::Version => cmd::version::run(&out),
        Command::Dataset(args) => cmd::dataset::run(args, &out),
        Command::Env(args) => cmd::env::run(args, &out),
        Command::Train(args) => cmd::train::run(args, &out),
        Command::Eval(args) => cmd::eval::run(args, &out),
        Command::Critic(args) => cmd::critic::run(args, &out),
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
