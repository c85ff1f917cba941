//! `ofql dataset generate`: D4RL-layout datasets from the project's own behaviour policies.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use ofql_behaviour::generate::{Kind, generate};
use ofql_data::{Dtype, Stats, write_d4rl, write_states_f64};
use ofql_envs::EnvId;
use serde::Serialize;

use crate::output::Output;

#[derive(Args)]
pub struct GenerateArgs {
    /// Environment, e.g. hopper-v4.
    #[arg(long)]
    pub env: String,
    /// random, medium, expert, medium-replay or medium-expert.
    #[arg(long)]
    pub kind: String,
    /// A behaviour run directory (`ofql behaviour train --out`) or a shipped policy folder
    /// [default for medium, expert and medium-expert: the shipped data/behaviour/<env>].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Transitions to record [default: 1000000; medium-replay takes the run's own count].
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file (D4RL layout, gzip HDF5).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// The project's shipped behaviour policies for `env` (`data/behaviour/<env>`), looked up in
/// $OFQL_BEHAVIOUR_DIR, the working directory and the checkout this binary was built in.
fn shipped_policy(env: &str) -> Option<PathBuf> {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/behaviour");
    let roots = std::env::var_os("OFQL_BEHAVIOUR_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("data/behaviour"), checkout]);
    roots.map(|r| r.join(env)).find(|p| p.join("snapshots.jsonl").is_file())
}

#[derive(Serialize)]
struct Generated {
    file: PathBuf,
    env: String,
    kind: String,
    transitions: usize,
    episodes: usize,
    return_mean: f64,
}

pub fn run(args: GenerateArgs, out: &Output) -> Result<()> {
    let id: EnvId = args.env.parse()?;
    let kind: Kind = args.kind.parse()?;
    let steps = match (kind, args.steps) {
        (Kind::MediumReplay, Some(_)) => bail!(
            "--steps does not apply to medium-replay: its size is the behaviour run's step \
             count at the medium snapshot; drop --steps"
        ),
        (_, Some(0)) => bail!("--steps must be at least 1"),
        (_, steps) => steps.unwrap_or(1_000_000),
    };
    if args.out.exists() && !args.force {
        bail!("{} exists: pass --force to replace it", args.out.display());
    }
    let policy = match (&args.policy, kind) {
        (Some(p), _) => Some(p.clone()),
        (None, Kind::Random | Kind::MediumReplay) => None,
        (None, _) => {
            let shipped = shipped_policy(&id.to_string().to_lowercase());
            if let Some(p) = &shipped {
                eprintln!("policy: the shipped behaviour policies in {}", p.display());
            }
            shipped
        }
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let generated = generate(id, kind, steps, policy.as_deref(), args.seed, &command)?;
    let data = generated.data;
    // Float32 data as D4RL's, exact float64 states so that `verify` replays it exactly.
    crate::replace::write_replacing(&args.out, false, |path| {
        write_d4rl(path, &data, Dtype::F32)?;
        write_states_f64(path, &generated.states.qpos, &generated.states.qvel)
    })?;
    let stats = Stats::of(&data);
    let report = Generated {
        file: args.out.clone(),
        env: id.to_string(),
        kind: args.kind.clone(),
        transitions: data.len(),
        episodes: stats.episodes,
        return_mean: stats.return_mean,
    };
    out.report(&report, || {
        format!(
            "{}: {} transitions of {} in {}, {} episodes, mean return {:.1}",
            report.file.display(),
            report.transitions,
            report.kind,
            report.env,
            report.episodes,
            report.return_mean
        )
    });
    Ok(())
}
