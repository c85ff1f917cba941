//! `ofql dataset verify FILE`: replay a dataset's recorded states (D4RL's `infos/qpos`,
//! `infos/qvel`; a Minari dataset's `infos/qpos`, `infos/qvel`, or for AntMaze the states its
//! observation rows hold; for FrankaKitchen-v1 the states its noisy observations show) through
//! our simulator and report how far its next observations, rewards and terminations are from
//! the recorded ones.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use ofql_data::registry::DatasetInfo;
use ofql_data::{Actions, Dtype, FullPrecision};
use ofql_envs::kitchen::{OBS_DIM, state_from_observation};
use ofql_envs::verify::{Recorded, VerifyOptions, VerifyReport, verify};
use ofql_envs::{ActionScalar, EnvConfig, EnvId, KitchenOptions, MazeOptions, Task};
use serde::Serialize;

use super::{CacheArgs, resolve_source};
use crate::output::Output;

#[derive(Args)]
pub struct VerifyArgs {
    /// A D4RL .hdf5 file holding infos/qpos and infos/qvel, a Minari dataset (folder or
    /// main_data.hdf5), or a downloaded dataset's name.
    pub source: String,
    /// Environment to replay in, e.g. Hopper-v4 (or hopper: v4, the definitions of D4RL's
    /// v2 data), AntMaze_Medium-v4 [default: from the name or the registry].
    #[arg(long)]
    pub env: Option<String>,
    /// Check only the first N rows.
    #[arg(long, value_name = "N")]
    pub max_rows: Option<usize>,
    /// How many of the worst rows to list.
    #[arg(long, default_value_t = 10)]
    pub worst: usize,
    /// Threads [default: the available cores].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub cache: CacheArgs,
}

#[derive(Serialize)]
struct Report {
    path: String,
    file_dtype: String,
    #[serde(flatten)]
    verify: VerifyReport,
}

/// `--env` as an environment id (`Hopper-v5`) or a bare task / D4RL name (`hopper`,
/// `hopper-medium-v2`: v4); without it, the file name decides.
fn environment(arg: Option<&str>, path: &Path) -> Result<EnvId> {
    match arg {
        Some(name) => match name.parse::<EnvId>() {
            Ok(id) => Ok(id),
            Err(err) => EnvId::for_d4rl_dataset(name).ok_or_else(|| err.into()),
        },
        None => {
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            EnvId::for_d4rl_dataset(file).with_context(|| {
                format!(
                    "cannot tell the environment of {} from its name: pass --env NAME (one of {})",
                    path.display(),
                    EnvId::known_names()
                )
            })
        }
    }
}

pub fn run(args: VerifyArgs, out: &Output) -> Result<()> {
    let (path, _) = resolve_source(&args.source, &args.cache)?;
    let mut data = if ofql_data::detect(&path)? == ofql_data::Format::Minari {
        ofql_data::read_minari_full_precision(&path)?
    } else {
        ofql_data::read_d4rl_full_precision(&path)?
    };
    // By name, or by the dataset_id in a Minari folder's metadata.json.
    let info = ofql_data::registry::lookup(&args.source)
        .ok()
        .or_else(|| ofql_data::registry::infer_from_file(&path));
    let id = match (&args.env, info.as_ref().and_then(|i| i.eval_env)) {
        (None, Some(eval_env)) => eval_env.parse::<EnvId>()?,
        _ => environment(args.env.as_deref(), &path)?,
    };
    let env = recording_env(id, &mut data, info.as_ref())?;
    let mut options =
        VerifyOptions { max_rows: args.max_rows, worst: args.worst, ..Default::default() };
    options.threads = args.threads.unwrap_or(options.threads);
    // Compare at the precision the file stored its observations in.
    options.stored_as_f32 = data.dtype == Dtype::F32;
    eprintln!(
        "replaying {} rows of {} in {}",
        args.max_rows.map_or(data.rows, |m| m.min(data.rows)),
        path.display(),
        env.id
    );
    // The control cost is computed in the actions' stored precision, as Gymnasium would.
    let verify = match &data.actions {
        Actions::F32(actions) => replay(&env, &data, actions, &options)?,
        Actions::F64(actions) => replay(&env, &data, actions, &options)?,
    };
    let report =
        Report { path: path.display().to_string(), file_dtype: data.dtype.to_string(), verify };
    out.report(&report, || text(&report));
    Ok(())
}

/// The environment as it recorded the data. A maze's rows are its state (qpos, qvel), then
/// the goal when they have 2 more numbers: the states come from the rows when the file has no
/// `infos/qpos`, and each row's goal is set before its step.
fn recording_env(
    id: EnvId,
    data: &mut FullPrecision,
    info: Option<&DatasetInfo>,
) -> Result<EnvConfig> {
    if id.task == Task::FrankaKitchen {
        return kitchen_recording_env(id, data, info);
    }
    if !matches!(id.task, Task::AntMaze(_)) {
        if data.qpos.is_empty() {
            anyhow::bail!(
                "the data has no infos/qpos and infos/qvel: a replay in {id} needs the recorded \
                 simulator states"
            );
        }
        return Ok(id.into());
    }
    let probe = ofql_envs::EnvConfig::from(id).make_one()?;
    let (nq, nv) = (probe.nq(), probe.nv());
    let width = data.observations.len() / data.rows.max(1);
    let goal_in_observation = match width {
        w if w == nq + nv => false,
        w if w == nq + nv + 2 => true,
        w => anyhow::bail!(
            "the data's rows have {w} numbers, but {id}'s are {} (qpos, qvel) or {} (with the \
             goal): it was not recorded in this environment",
            nq + nv,
            nq + nv + 2
        ),
    };
    if data.qpos.is_empty() {
        for row in data.observations.chunks(width) {
            data.qpos.extend_from_slice(&row[..nq]);
            data.qvel.extend_from_slice(&row[nq..nq + nv]);
        }
    }
    let maze = MazeOptions { goal_in_observation, ..MazeOptions::default() };
    Ok(EnvConfig { maze, ..EnvConfig::from(id) })
}

/// The kitchen as Minari recorded its datasets: the dataset's tasks, rewarded at every step
/// they are at their goal (not removed when completed), no termination, its time limit. The
/// states come from the rows' noisy observations.
fn kitchen_recording_env(
    id: EnvId,
    data: &mut FullPrecision,
    info: Option<&DatasetInfo>,
) -> Result<EnvConfig> {
    let width = data.observations.len() / data.rows.max(1);
    if width != OBS_DIM {
        anyhow::bail!(
            "the data's rows have {width} numbers, but {id}'s observation has {OBS_DIM}: it was \
             not recorded in this environment (D4RL's kitchen-v0 files hold 60, from the \
             older kitchen, and cannot be replayed in {id})"
        );
    }
    let info = info.filter(|i| i.kitchen_tasks.is_some()).with_context(|| {
        format!(
            "replaying in {id} needs the dataset's tasks (they decide the rewards): name a \
             registered D4RL/kitchen dataset, or a Minari folder whose metadata.json holds its \
             dataset_id"
        )
    })?;
    if data.qpos.is_empty() {
        for row in data.observations.chunks(width) {
            let (qpos, qvel) = state_from_observation(row).expect("rows of the kitchen's width");
            data.qpos.extend(qpos);
            data.qvel.extend(qvel);
        }
    }
    let kitchen = KitchenOptions {
        tasks_to_complete: KitchenOptions::parse_tasks(info.kitchen_tasks.unwrap_or_default())?,
        remove_task_when_completed: false,
        terminate_on_tasks_completed: false,
        max_episode_steps: info.episode_length,
        ..KitchenOptions::default()
    };
    Ok(EnvConfig { kitchen, ..EnvConfig::from(id) })
}

fn replay<A: ActionScalar>(
    env: &EnvConfig,
    data: &FullPrecision,
    actions: &[A],
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    let recorded = Recorded {
        qpos: &data.qpos,
        qvel: &data.qvel,
        actions,
        observations: &data.observations,
        next_observations: data.next_observations.as_deref(),
        ctrl: (!data.ctrl.is_empty()).then_some(&data.ctrl[..]),
        rewards: &data.rewards,
        terminals: &data.terminals,
        timeouts: data.timeouts.as_deref(),
    };
    Ok(verify(env.clone(), &recorded, options)?)
}

fn text(r: &Report) -> String {
    let v = &r.verify;
    let mut s = format!(
        "{} ({}) replayed in {}: {} rows, next observation from {}\n",
        r.path, r.file_dtype, v.env, v.rows_checked, v.next_obs_source
    );
    s.push_str("key                 rows      max abs err   mean abs err  worst row\n");
    for (name, k) in [
        ("observations", &v.observations),
        ("next_observations", &v.next_observations),
        ("rewards", &v.rewards),
    ]
    .into_iter()
    .chain(v.ctrl.as_ref().map(|k| ("ctrl", k)))
    {
        let worst = k.worst_row.map_or("-".to_string(), |w| w.to_string());
        s.push_str(&format!(
            "{name:<18}  {:>8}  {:>12.3e}  {:>12.3e}  {worst}\n",
            k.rows, k.max_abs, k.mean_abs
        ));
    }
    if let Some(floor) = &v.noise_floor {
        s.push_str(&format!(
            "noise floor: what a recording of this simulator shows through its observation \
             noise alone (up to {:.1e} per number)\n",
            v.recorded_noise_bound
        ));
        for (name, k) in
            [("next_observations", &floor.next_observations), ("rewards", &floor.rewards)]
        {
            s.push_str(&format!(
                "{name:<18}  {:>8}  {:>12.3e}  {:>12.3e}\n",
                k.rows, k.max_abs, k.mean_abs
            ));
        }
    }
    s.push_str(&format!("termination mismatches: {}", v.termination_mismatches));
    if !v.termination_mismatch_rows.is_empty() {
        s.push_str(&format!(" (rows {:?})", v.termination_mismatch_rows));
    }
    s.push_str("\nworst rows by next-observation error:");
    for row in &v.worst_rows {
        s.push_str(&format!(
            "\n  row {:>8}: next obs {:.3e}, reward {:.3e}, obs {:.3e}",
            row.row,
            row.next_obs_err.unwrap_or(f64::NAN),
            row.reward_err,
            row.obs_err
        ));
    }
    s
}
