//! `ofql dataset generate`: D4RL-layout datasets from the project's own behaviour policies,
//! AntMaze datasets in Minari's layout from its goal-reaching ant, and Kitchen datasets in
//! Minari's layout from the scripted demonstrator.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ofql_behaviour::generate::{Kind, generate};
use ofql_behaviour::kitchen_script::{KitchenData, generate_kitchen_data};
use ofql_behaviour::maze_data::{
    evaluation_path, generate_maze_data, load_goal_reaching_actor, recording_env,
};
use ofql_data::{Dtype, Stats, write_d4rl, write_states_f64};
use ofql_envs::EnvId;
use serde::Serialize;

use crate::output::Output;

#[derive(Args)]
pub struct GenerateArgs {
    /// Environment, e.g. hopper-v4; or an AntMaze dataset to make as Minari made it:
    /// antmaze-umaze, antmaze-umaze-diverse, antmaze-medium-play, antmaze-medium-diverse,
    /// antmaze-large-play, antmaze-large-diverse (a Minari folder, --policy a goal-reaching
    /// behaviour run); or a Kitchen dataset from the scripted demonstrator: kitchen-partial,
    /// kitchen-mixed, kitchen-complete (a Minari folder).
    #[arg(long)]
    pub env: String,
    /// random, medium, expert, medium-replay or medium-expert (not for AntMaze).
    #[arg(long)]
    pub kind: Option<String>,
    /// Standard deviation of the Gaussian noise on the actions of the AntMaze ant (default
    /// 0.2, Minari's) or of the kitchen demonstrator (default 0.05).
    #[arg(long)]
    pub action_noise: Option<f64>,
    /// Episodes to record (Kitchen data only) [default: 300].
    #[arg(long)]
    pub episodes: Option<usize>,
    /// A behaviour run directory (`ofql behaviour train --out`) or a shipped policy folder
    /// [default for medium, expert and medium-expert: the shipped data/behaviour/<env>].
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// The AntMaze ant's snapshot, by its training step [default: the one with the best
    /// return]. The best return is not always the best waypoint follower: check the data's
    /// success rate.
    #[arg(long)]
    pub snapshot: Option<u64>,
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
    if let Some(name) = args.env.strip_prefix("antmaze-") {
        return run_maze(name, &args, out);
    }
    if let Some(name) = args.env.strip_prefix("kitchen-") {
        return run_kitchen(name, &args, out);
    }
    if args.action_noise.is_some() {
        bail!("--action-noise applies to AntMaze and Kitchen data only; drop it");
    }
    if args.episodes.is_some() {
        bail!("--episodes applies to Kitchen data only; --steps sets the size here");
    }
    if args.snapshot.is_some() {
        bail!(
            "--snapshot picks the AntMaze ant's snapshot; --kind picks the snapshot for {}",
            args.env
        );
    }
    let id: EnvId = args.env.parse()?;
    let kind: Kind = args
        .kind
        .as_deref()
        .context("--kind is needed: random, medium, expert, medium-replay or medium-expert")?
        .parse()?;
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
        kind: args.kind.clone().unwrap_or_default(),
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

/// An AntMaze dataset as Minari made `D4RL/antmaze/<name>-v1`, into a Minari folder.
fn run_maze(name: &str, args: &GenerateArgs, out: &Output) -> Result<()> {
    if args.kind.is_some() {
        bail!("--kind does not apply to AntMaze data (the ant follows waypoints); drop --kind");
    }
    let env = recording_env(name)?;
    let policy = args.policy.as_deref().context(
        "--policy is needed: a goal-reaching behaviour run (`ofql behaviour train --env \
         AntMaze_Open-v4 --goal-reaching --out RUN`)",
    )?;
    let steps = match args.steps {
        Some(0) => bail!("--steps must be at least 1"),
        steps => steps.unwrap_or(1_000_000),
    };
    if args.episodes.is_some() {
        bail!("--episodes applies to Kitchen data only; --steps sets the size of AntMaze data");
    }
    let action_noise = action_noise(args, 0.2)?;
    if args.out.exists() && !args.force {
        bail!("{} exists: pass --force to replace it", args.out.display());
    }
    let (actor, snapshot) = load_goal_reaching_actor(policy, args.snapshot)?;
    eprintln!("policy: {} ({snapshot}), recording in {}", policy.display(), env.id);
    let (mut data, mut report) = generate_maze_data(&env, &actor, steps, action_noise, args.seed)?;
    report.policy_snapshot = policy.join(&snapshot).display().to_string();
    write_generated_minari(
        &mut data,
        &args.out,
        &format!("D4RL/antmaze/{name}-v1"),
        &[("achieved_goal", 2), ("observation", 27), ("desired_goal", 2)],
        [("success_rate", report.success_rate.into()), ("action_noise", action_noise.into())],
        &[],
    )?;
    let (eval_cells, eval_steps) = evaluation_path(name)?;
    let report = MazeGenerated { report, evaluation_path_cells: eval_cells };
    out.report(&report, || {
        let r = &report.report;
        let mut text = format!(
            "{}: {} transitions in {}, {} episodes, success rate {:.1} %, mean return {:.1}, \
             mean speed {:.2} m/s\nsuccess by the path's length from start to goal:",
            args.out.display(),
            r.transitions,
            r.env,
            r.episodes,
            100.0 * r.success_rate,
            r.return_mean,
            r.speed_mean
        );
        for row in &r.by_path {
            let steps = row.median_steps_to_goal.map_or("-".into(), |s| format!("{s:.0}"));
            text += &format!(
                "\n  {:>2} cells: {:>5} episodes, {:5.1} % reached, median {steps} steps",
                row.cells,
                row.episodes,
                100.0 * row.success_rate
            );
        }
        let far = r.by_path.iter().filter(|row| row.cells >= eval_cells);
        let (n, reached) = far.fold((0.0, 0.0), |(n, k), row| {
            (n + row.episodes as f64, k + row.episodes as f64 * row.success_rate)
        });
        text += &format!(
            "\nthe evaluation walks {eval_cells} cells in {eval_steps} steps; the data's episodes \
             with a path that long reached their goal in {reached:.0} of {n:.0}"
        );
        if reached == 0.0 {
            text += ": no episode shows the way that far in time, so expect a score near 0 \
                     there (the ant must walk faster)";
        }
        text
    });
    Ok(())
}

/// The AntMaze generation's report, with the evaluation's own path length beside it.
#[derive(serde::Serialize)]
struct MazeGenerated {
    #[serde(flatten)]
    report: ofql_behaviour::maze_data::MazeDataReport,
    evaluation_path_cells: usize,
}

/// Tag generated data as this project's (with the command that made it and `extra`), then
/// write it as the Minari dataset `id` into the folder `out`.
fn write_generated_minari<const N: usize>(
    data: &mut ofql_data::Dataset,
    out: &Path,
    id: &str,
    layout: &[(&str, usize)],
    extra: [(&str, serde_json::Value); N],
    infos: &[(&str, &[ndarray::Array2<f64>])],
) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let tags = [
        ("generated_by", serde_json::json!("ofql dataset generate (this project, not Minari)")),
        ("generation_command", command.into()),
    ];
    for (key, value) in tags.into_iter().chain(extra) {
        data.metadata.insert(key.into(), value);
    }
    crate::replace::write_replacing(out, true, |path| {
        ofql_data::write_minari_with_layout(path, data, id, Some(layout))?;
        infos.iter().try_for_each(|(key, values)| ofql_data::write_minari_infos(path, key, values))
    })
}

/// --action-noise, or `default`; a standard deviation >= 0.
fn action_noise(args: &GenerateArgs, default: f64) -> Result<f64> {
    let noise = args.action_noise.unwrap_or(default);
    if !(noise >= 0.0 && noise.is_finite()) {
        bail!("--action-noise {noise}: give a standard deviation >= 0");
    }
    Ok(noise)
}

/// A Kitchen dataset from the scripted demonstrator, named and laid out as Minari's
/// `D4RL/kitchen/<name>-v2` (its tasks and time limit), into a Minari folder.
fn run_kitchen(name: &str, args: &GenerateArgs, out: &Output) -> Result<()> {
    if args.kind.is_some()
        || args.policy.is_some()
        || args.snapshot.is_some()
        || args.steps.is_some()
    {
        bail!(
            "Kitchen data comes from the scripted demonstrator: drop --kind, --policy, \
             --snapshot and --steps (--episodes sets the size)"
        );
    }
    let id = format!("D4RL/kitchen/{name}-v2");
    let info = ofql_data::registry::lookup(&id)
        .ok()
        .filter(|i| i.kitchen_tasks.is_some())
        .with_context(|| {
            format!(
                "no Kitchen dataset `kitchen-{name}`: make kitchen-partial, kitchen-mixed or \
                 kitchen-complete"
            )
        })?;
    let names = info.kitchen_tasks.expect("kitchen tasks");
    let tasks = ofql_envs::KitchenOptions::parse_tasks(names)?;
    let action_noise = action_noise(args, 0.05)?;
    let episodes = args.episodes.unwrap_or(300);
    if args.out.exists() && !args.force {
        bail!("{} exists: pass --force to replace it", args.out.display());
    }
    eprintln!(
        "kitchen: {} episodes of the scripted demonstrator ({}), at most {} steps each",
        episodes,
        names.join(", "),
        info.episode_length
    );
    let KitchenData { mut data, ctrl, report } =
        generate_kitchen_data(&tasks, info.episode_length, episodes, action_noise, args.seed)?;
    write_generated_minari(
        &mut data,
        &args.out,
        &id,
        &[("observation", 59)],
        [
            ("tasks_completed_mean", report.tasks_completed_mean.into()),
            ("all_tasks_rate", report.all_tasks_rate.into()),
            ("action_noise", action_noise.into()),
        ],
        &[("ctrl", &ctrl)],
    )?;
    out.report(&report, || {
        format!(
            "{}: {} transitions in {}, {} episodes, {:.2} of {} tasks per episode, all {} in {:.1} %",
            args.out.display(),
            report.transitions,
            report.env,
            report.episodes,
            report.tasks_completed_mean,
            tasks.len(),
            tasks.len(),
            100.0 * report.all_tasks_rate
        )
    });
    Ok(())
}
