//! Replay a dataset's recorded states through the simulator: set each row's qpos/qvel, apply
//! the recorded action, and measure how far the simulated next observation, reward and
//! termination are from the recorded ones. It tells a user whether their simulator reproduces
//! the data they train on.
//!
//! Row i holds the state at which `observations[i]` was taken (before the step).
//!
//! The kitchen's rows hold only its noisy observation. Its state is read from that (so the
//! replay starts from a state off by the noise), its simulator draws no noise (the simulated
//! observation is the state itself), and each row starts afresh: the position targets come
//! from the observed robot positions, which are the row's, and the tasks are all counted again
//! (rewards as recorded without removing completed tasks, as Minari's datasets are). Errors
//! then are not 0 but at the level of `noise_floor`: the same comparison for a recording this
//! simulator makes from each row's state with the kitchen's noise.

use crate::action::ActionScalar;
use crate::env::{Env, EnvConfig, Step};
use crate::error::EnvError;
use crate::id::{EnvId, Task};
use crate::kitchen::{observation_noise_bound, state_from_observation};

/// A dataset's arrays, row-major, floats widened to f64 (exactly, from f32 files).
pub struct Recorded<'a, A> {
    pub qpos: &'a [f64],
    pub qvel: &'a [f64],
    pub actions: &'a [A],
    pub observations: &'a [f64],
    /// When absent, the next observation of row i is `observations[i + 1]` inside an episode.
    pub next_observations: Option<&'a [f64]>,
    /// The controls after each step (`Env::ctrl`), when recorded (Minari's kitchen files).
    pub ctrl: Option<&'a [f64]>,
    pub rewards: &'a [f64],
    pub terminals: &'a [bool],
    pub timeouts: Option<&'a [bool]>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyOptions {
    /// Check only the first rows (`None`: all).
    pub max_rows: Option<usize>,
    /// How many of the worst rows to list.
    pub worst: usize,
    pub threads: usize,
    /// Compare at float32 precision: round what the simulator gives to f32 first, as the file
    /// stored its observations and rewards. A file whose states are stored exactly (f64)
    /// then replays with an error of exactly 0.
    pub stored_as_f32: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        VerifyOptions { max_rows: None, worst: 10, threads, stored_as_f32: false }
    }
}

/// Absolute errors of one key over the rows where it was compared.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KeyError {
    pub rows: usize,
    pub max_abs: f64,
    /// Mean over all compared elements.
    pub mean_abs: f64,
    /// The row of `max_abs`.
    pub worst_row: Option<usize>,
    #[serde(skip)]
    sum: f64,
    #[serde(skip)]
    elements: usize,
}

impl KeyError {
    fn add(&mut self, row: usize, recorded: &[f64], simulated: &[f64]) -> f64 {
        let row_max =
            recorded.iter().zip(simulated).map(|(&r, &s)| abs_err(r, s)).fold(0.0, f64::max);
        self.sum += recorded.iter().zip(simulated).map(|(&r, &s)| abs_err(r, s)).sum::<f64>();
        self.elements += recorded.len();
        self.rows += 1;
        if row_max > self.max_abs || self.worst_row.is_none() {
            self.max_abs = self.max_abs.max(row_max);
            self.worst_row = Some(row);
        }
        row_max
    }

    fn merge(&mut self, other: KeyError) {
        if other.rows > 0 && (self.worst_row.is_none() || other.max_abs > self.max_abs) {
            self.max_abs = other.max_abs;
            self.worst_row = other.worst_row;
        }
        self.rows += other.rows;
        self.sum += other.sum;
        self.elements += other.elements;
    }

    fn finish(&mut self) {
        self.mean_abs = if self.elements == 0 { 0.0 } else { self.sum / self.elements as f64 };
    }
}

/// |a - b|; a NaN on one side only counts as infinitely far.
fn abs_err(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0.0,
        (false, false) => (a - b).abs(),
        _ => f64::INFINITY,
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RowError {
    pub row: usize,
    /// Max abs error of the next observation (`None`: no recorded next observation).
    pub next_obs_err: Option<f64>,
    pub reward_err: f64,
    /// Max abs error between `observations[row]` and the observation of the set state.
    pub obs_err: f64,
    pub terminal_recorded: bool,
    pub terminal_simulated: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub env: String,
    pub rows_checked: usize,
    /// Where the recorded next observations came from.
    pub next_obs_source: &'static str,
    pub max_abs_obs_err: f64,
    pub max_abs_reward_err: f64,
    pub termination_mismatches: usize,
    /// The largest noise the recording added to a number of its observations (the kitchen's
    /// observation noise); 0 for the environments that record exact observations.
    pub recorded_noise_bound: f64,
    /// The kitchen: what `next_observations` and `rewards` would show for a recording made by
    /// this simulator from the same states and actions with the kitchen's noise (from the
    /// noisy observation of each row's state, against the noisy observation after its step).
    /// A dataset that matches the simulator has errors at this level.
    pub noise_floor: Option<NoiseFloor>,
    /// `observations[i]` against the observation of the state set from row i.
    pub observations: KeyError,
    /// The simulated next observation against the recorded one.
    pub next_observations: KeyError,
    pub rewards: KeyError,
    /// The simulated controls after the step against the recorded ones (`None`: not
    /// recorded). The kitchen computes them from the observed robot positions and the
    /// action, so they match exactly when the file's actions mean what they mean here.
    pub ctrl: Option<KeyError>,
    /// Rows whose simulated termination differs from `terminals` (the first few).
    pub termination_mismatch_rows: Vec<usize>,
    /// The rows with the largest next-observation error, worst first.
    pub worst_rows: Vec<RowError>,
    /// The rows with the largest reward error, worst first.
    pub worst_reward_rows: Vec<RowError>,
}

/// The errors a recording of this simulator shows through its observation noise alone.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NoiseFloor {
    pub next_observations: KeyError,
    pub rewards: KeyError,
}

#[derive(Default)]
struct Partial {
    noise_floor: NoiseFloor,
    observations: KeyError,
    next_observations: KeyError,
    rewards: KeyError,
    ctrl: KeyError,
    mismatches: Vec<usize>,
    rows: Vec<RowError>,
}

impl Partial {
    /// Keep only the `k` worst rows by next-observation error and by reward error.
    fn prune(&mut self, k: usize) {
        let by_obs = top(&self.rows, k, |r| r.next_obs_err.unwrap_or(0.0));
        let by_reward = top(&self.rows, k, |r| r.reward_err);
        let mut keep: Vec<RowError> = by_obs.into_iter().chain(by_reward).collect();
        keep.sort_by_key(|r| r.row);
        keep.dedup_by_key(|r| r.row);
        self.rows = keep;
    }
}

fn top(rows: &[RowError], k: usize, key: impl Fn(&RowError) -> f64) -> Vec<RowError> {
    let mut sorted: Vec<RowError> = rows.to_vec();
    sorted.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.row.cmp(&b.row)));
    sorted.truncate(k);
    sorted
}

/// Replay `data` in environment `env` (an id, or an `EnvConfig`: a maze whose rows hold the
/// goal, `goal_in_observation`, gets each row's goal from its observation).
pub fn verify<A: ActionScalar>(
    env: impl Into<EnvConfig>,
    data: &Recorded<'_, A>,
    options: &VerifyOptions,
) -> Result<VerifyReport, EnvError> {
    let mut config: EnvConfig = env.into();
    let id = config.id;
    let kitchen = id.task == Task::FrankaKitchen;
    let recorded_noise_bound = if kitchen { observation_noise_bound(&config.kitchen) } else { 0.0 };
    // The kitchen as it recorded, noise on: the reference for the noise floor.
    let noisy_config = kitchen.then(|| config.clone());
    if kitchen {
        config.kitchen.robot_noise_ratio = 0.0;
        config.kitchen.object_noise_ratio = 0.0;
    }
    let model = config.load_model()?;
    let probe = config.make(model.clone())?;
    let goal_at = probe
        .goal()
        .is_some()
        .then(|| probe.nq() + probe.nv())
        .filter(|&g| g + 2 <= probe.obs_dim());
    let (nq, nv, obs_dim, act_dim) = (probe.nq(), probe.nv(), probe.obs_dim(), probe.act_dim());
    let n = data.rewards.len();
    check_shapes(id, data, n, (nq, nv, obs_dim, act_dim))?;
    let rows = options.max_rows.map_or(n, |m| m.min(n));
    let threads = options.threads.clamp(1, rows.max(1));
    let chunk = rows.div_ceil(threads).max(1);

    let episode_ended = |i: usize| data.terminals[i] || data.timeouts.is_some_and(|t| t[i]);
    let next_obs = |i: usize| -> Option<&[f64]> {
        match data.next_observations {
            Some(next) => Some(&next[i * obs_dim..(i + 1) * obs_dim]),
            None => (i + 1 < n && !episode_ended(i))
                .then(|| &data.observations[(i + 1) * obs_dim..(i + 2) * obs_dim]),
        }
    };

    // The simulator's values as the file would have stored them.
    let stored = |mut v: Vec<f64>| -> Vec<f64> {
        if options.stored_as_f32 {
            v.iter_mut().for_each(|x| *x = *x as f32 as f64);
        }
        v
    };
    let check_rows = |range: std::ops::Range<usize>| -> Result<Partial, EnvError> {
        let mut env = config.make(model.clone())?;
        let mut noisy = noisy_config.as_ref().map(|c| c.make(model.clone())).transpose()?;
        let mut part = Partial::default();
        let mut next = vec![0.0; obs_dim];
        let qpos = |i: usize| &data.qpos[i * nq..(i + 1) * nq];
        let qvel = |i: usize| &data.qvel[i * nv..(i + 1) * nv];
        let action = |i: usize| &data.actions[i * act_dim..(i + 1) * act_dim];
        // Inside an episode the recording simulator carried its solver warm start from the
        // previous step: replay row i - 1 first so that the first row of this chunk starts
        // as it would in one sequential pass (the report does not depend on the threads).
        if !kitchen && range.start > 0 && !episode_ended(range.start - 1) {
            env.reset_to_state(qpos(range.start - 1), qvel(range.start - 1))?;
            env.step_into(action(range.start - 1), &mut next)?;
        }
        for i in range {
            if let Some(g) = goal_at {
                let row = &data.observations[i * obs_dim..(i + 1) * obs_dim];
                env.set_goal([row[g], row[g + 1]])?;
            }
            let obs = if kitchen || i == 0 || episode_ended(i - 1) {
                env.reset_to_state(qpos(i), qvel(i))?
            } else {
                env.set_state(qpos(i), qvel(i))?;
                env.observation()
            };
            let obs = stored(obs);
            let obs_err =
                part.observations.add(i, &data.observations[i * obs_dim..(i + 1) * obs_dim], &obs);
            let info = env.step_into(action(i), &mut next)?;
            let next = stored(next.clone());
            let next_obs_err = next_obs(i).map(|rec| part.next_observations.add(i, rec, &next));
            let reward = stored(vec![info.reward]);
            let reward_err = part.rewards.add(i, &data.rewards[i..=i], &reward);
            if let Some(ctrl) = data.ctrl {
                part.ctrl.add(i, &ctrl[i * act_dim..(i + 1) * act_dim], env.ctrl());
            }
            if let Some(noisy) = noisy.as_mut() {
                let (recorded, replayed) =
                    noisy_replay(noisy, &mut env, i, qpos(i), qvel(i), action(i))?;
                let floor = &mut part.noise_floor;
                floor.next_observations.add(i, &recorded.obs, &replayed.obs);
                floor.rewards.add(i, &[recorded.reward], &[replayed.reward]);
            }
            if info.terminated != data.terminals[i] {
                part.mismatches.push(i);
            }
            part.rows.push(RowError {
                row: i,
                next_obs_err,
                reward_err,
                obs_err,
                terminal_recorded: data.terminals[i],
                terminal_simulated: info.terminated,
            });
            if part.rows.len() > 4 * options.worst.max(1) + 64 {
                part.prune(options.worst);
            }
        }
        part.prune(options.worst);
        Ok(part)
    };

    let parts: Vec<Result<Partial, EnvError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..rows)
            .step_by(chunk)
            .map(|start| {
                let range = start..(start + chunk).min(rows);
                scope.spawn(move || check_rows(range))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("verify worker panicked")).collect()
    });

    let mut total = Partial::default();
    for part in parts {
        let part = part?;
        total.noise_floor.next_observations.merge(part.noise_floor.next_observations);
        total.noise_floor.rewards.merge(part.noise_floor.rewards);
        total.observations.merge(part.observations);
        total.next_observations.merge(part.next_observations);
        total.rewards.merge(part.rewards);
        total.ctrl.merge(part.ctrl);
        total.mismatches.extend(part.mismatches);
        total.rows.extend(part.rows);
    }
    for key in [
        &mut total.noise_floor.next_observations,
        &mut total.noise_floor.rewards,
        &mut total.observations,
        &mut total.next_observations,
        &mut total.rewards,
        &mut total.ctrl,
    ] {
        key.finish();
    }
    let termination_mismatches = total.mismatches.len();
    total.mismatches.truncate(options.worst.max(1) * 10);
    Ok(VerifyReport {
        env: id.to_string(),
        rows_checked: rows,
        next_obs_source: if data.next_observations.is_some() {
            "next_observations"
        } else {
            "observations[i+1] within an episode"
        },
        max_abs_obs_err: total.next_observations.max_abs,
        max_abs_reward_err: total.rewards.max_abs,
        termination_mismatches,
        recorded_noise_bound,
        noise_floor: kitchen.then_some(total.noise_floor),
        worst_rows: top(&total.rows, options.worst, |r| r.next_obs_err.unwrap_or(0.0)),
        worst_reward_rows: top(&total.rows, options.worst, |r| r.reward_err),
        observations: total.observations,
        next_observations: total.next_observations,
        rewards: total.rewards,
        ctrl: data.ctrl.map(|_| total.ctrl),
        termination_mismatch_rows: total.mismatches,
    })
}

/// One row of a recording this simulator would make (`noisy`, the kitchen with its noise) and
/// its replay in `clean` as `verify` replays a file: the noisy step from the state (qpos,
/// qvel), and the step of `clean` from the state its noisy observation before the step shows.
/// The noise is drawn from the row's own seed, so threads do not change it.
fn noisy_replay<A: ActionScalar>(
    noisy: &mut Env,
    clean: &mut Env,
    row: usize,
    qpos: &[f64],
    qvel: &[f64],
    action: &[A],
) -> Result<(Step, Step), EnvError> {
    noisy.reset_with_seed(Some(row as u64))?;
    let observed = noisy.reset_to_state(qpos, qvel)?;
    let recorded = noisy.step(action)?;
    let (q, v) = state_from_observation(&observed).expect("the kitchen's observation");
    clean.reset_to_state(&q, &v)?;
    let replayed = clean.step(action)?;
    Ok((recorded, replayed))
}

fn check_shapes<A>(
    id: EnvId,
    data: &Recorded<'_, A>,
    n: usize,
    (nq, nv, obs_dim, act_dim): (usize, usize, usize, usize),
) -> Result<(), EnvError> {
    let env = id.to_string();
    let width = |len: usize| len.checked_div(n).unwrap_or(0);
    let state_err =
        |what, expected, got| EnvError::StateDim { env: env.clone(), what, expected, got, nq, nv };
    if data.qpos.len() != n * nq {
        return Err(state_err("qpos", nq, width(data.qpos.len())));
    }
    if data.qvel.len() != n * nv {
        return Err(state_err("qvel", nv, width(data.qvel.len())));
    }
    if data.actions.len() != n * act_dim {
        return Err(EnvError::ActionDim { env, expected: act_dim, got: width(data.actions.len()) });
    }
    let mismatch = |key: &str, len: usize, per_row: usize| {
        EnvError::Invalid(format!(
            "{key} has {len} values, expected {n} rows x {per_row} for {env} (a dataset of \
             another environment? check `--env`)"
        ))
    };
    if data.observations.len() != n * obs_dim {
        return Err(mismatch("observations", data.observations.len(), obs_dim));
    }
    if let Some(next) = data.next_observations
        && next.len() != n * obs_dim
    {
        return Err(mismatch("next_observations", next.len(), obs_dim));
    }
    if let Some(ctrl) = data.ctrl
        && ctrl.len() != n * act_dim
    {
        return Err(mismatch("infos/ctrl", ctrl.len(), act_dim));
    }
    if data.terminals.len() != n || data.timeouts.is_some_and(|t| t.len() != n) {
        return Err(mismatch("terminals/timeouts", data.terminals.len(), 1));
    }
    Ok(())
}
