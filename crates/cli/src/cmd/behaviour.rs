//! `ofql behaviour train`: online SAC behaviour policies, saved as evaluated snapshots.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ofql_behaviour::online::{
    BehaviourConfig, BehaviourObserver, Snapshot, export_policies, read_snapshots, train_behaviour,
};
use ofql_behaviour::sac::SacLosses;

use crate::output::{Output, Reported};
use crate::progress::Progress;

#[derive(Args)]
pub struct BehaviourArgs {
    #[command(subcommand)]
    pub command: BehaviourCommand,
}

#[derive(Subcommand)]
pub enum BehaviourCommand {
    /// Train a behaviour policy with SAC; snapshots and their returns go to --out.
    Train(TrainArgs),
    /// Copy a run's medium and expert snapshots into a small directory to ship or share;
    /// `ofql dataset generate --policy DIR` accepts it.
    Export(ExportArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// A behaviour run directory (`ofql behaviour train --out`).
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Environment, e.g. halfcheetah-v4 (or a maze, e.g. AntMaze_Open-v4, with --goal-reaching).
    #[arg(long)]
    pub env: String,
    /// Train the goal-reaching ant that collects AntMaze data (`ofql dataset generate --env
    /// antmaze-...`): the maze's ant walks to goal after goal (docs/envs.md, AntMaze).
    #[arg(long)]
    pub goal_reaching: bool,
    /// With --goal-reaching: the maze's map instead of the id's, rows of 1 (wall), 0, r, g, c
    /// separated by `/`, e.g. an open field walled round: 11111111/10000001/.../11111111.
    #[arg(long, value_name = "ROWS", requires = "goal_reaching")]
    pub maze_map: Option<String>,
    /// Environment steps.
    #[arg(long, default_value_t = 1_000_000)]
    pub steps: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in --out from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Evaluate and save a snapshot every this many steps.
    #[arg(long, default_value_t = 10_000)]
    pub eval_every: u64,
}

pub fn run(args: BehaviourArgs, out: &Output) -> Result<()> {
    match args.command {
        BehaviourCommand::Train(a) => train(a, out),
        BehaviourCommand::Export(a) => export(a, out),
    }
}

fn export(a: ExportArgs, out: &Output) -> Result<()> {
    let e = export_policies(&a.run, &a.out)?;
    out.report(&e, || {
        format!(
            "{}: medium (step {}, return {:.1}) and expert (step {}, return {:.1}) in {}",
            e.env,
            e.medium.step,
            e.medium.return_mean,
            e.expert.step,
            e.expert.return_mean,
            e.out.display()
        )
    });
    Ok(())
}

fn train(a: TrainArgs, out: &Output) -> Result<()> {
    let mut cfg = BehaviourConfig {
        env: a.env.clone(),
        goal_reaching: a.goal_reaching,
        maze_map: a.maze_map.as_ref().map(|rows| rows.split('/').map(String::from).collect()),
        steps: a.steps,
        eval_every: a.eval_every,
        ..Default::default()
    };
    cfg.sac.seed = a.seed;
    cfg.checkpoint_every = cfg.eval_every;
    if a.resume {
        // The saved config wins, except for the budget.
        let saved = std::fs::read_to_string(a.out.join("behaviour.toml"))
            .with_context(|| format!("{} is not a behaviour run", a.out.display()))?;
        cfg = BehaviourConfig { steps: a.steps, ..toml::from_str(&saved)? };
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed)).context("Ctrl-C handler")?;
    // A resumed run's bar starts from its last snapshot, not from "no snapshot yet".
    let last_return =
        if a.resume { read_snapshots(&a.out)?.last().map(|s| s.return_mean) } else { None };
    let mut bar = Bar { progress: Progress::new(cfg.steps), last_return };
    let summary = train_behaviour(&cfg, &a.out, a.resume, &stop, &mut bar)?;
    bar.progress.bar.finish_and_clear();
    out.report(&summary, || {
        format!(
            "{}: {} steps ({:.0} env steps/s), best return {}",
            summary.env,
            summary.steps,
            summary.env_steps_per_second,
            summary.best_return.map_or("-".into(), |b| format!("{b:.1}"))
        )
    });
    if summary.interrupted {
        return Err(Reported(format!(
            "interrupted at step {}; continue with `ofql behaviour train --env {} --out {} --resume`",
            summary.steps,
            cfg.env,
            a.out.display()
        ))
        .into());
    }
    Ok(())
}

/// The bar, or plain lines in a log (the last snapshot's return in each).
struct Bar {
    progress: Progress,
    last_return: Option<f64>,
}

impl BehaviourObserver for Bar {
    fn on_step(&mut self, step: u64, total: u64) {
        let last = self.last_return;
        self.progress.step(step, total, || {
            last.map_or("no snapshot yet".into(), |r| format!("last return {r:.1}"))
        });
    }
    fn on_snapshot(&mut self, s: &Snapshot, l: &SacLosses) {
        self.last_return = Some(s.return_mean);
        self.progress.println(&format!(
            "step {}: return {:.1} +- {:.1} (alpha {:.3}, Q {:.1})",
            s.step, s.return_mean, s.return_std, l.alpha, l.q_mean
        ));
    }
}
