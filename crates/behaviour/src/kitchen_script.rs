//! Kitchen datasets from a scripted demonstrator, for learning runs where Minari's
//! `D4RL/kitchen` files (human teleoperation) cannot be fetched.
//!
//! The arm's end effector follows waypoints set from the kitchen's fixed layout (the handles'
//! sites of FrankaKitchen-v1's model): it opens the microwave by its handle, lifts the kettle
//! onto the back burner, slides the light switch and the cabinet door, turns the bottom
//! burner's knob. Each step solves one
//! damped least-squares step of inverse kinematics at the observed joint angles and turns it
//! into the environment's action (a joint velocity: the commanded position minus the observed
//! one, over the control step). The commanded position integrates the steps, so the arm's sag
//! under gravity is corrected over time. Gaussian noise on the actions varies the episodes.

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use ofql_data::Dataset;
use ofql_envs::{EnvConfig, EnvId, KitchenOptions, KitchenTask, SiteKinematics, load_env_model};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::rows::Rows;

/// The tasks the demonstrator can do.
pub const SCRIPTED: [KitchenTask; 5] = [
    KitchenTask::BottomBurner,
    KitchenTask::Microwave,
    KitchenTask::Kettle,
    KitchenTask::LightSwitch,
    KitchenTask::SlideCabinet,
];

/// Largest end-effector move asked of one step (m) and largest rotation (rad).
const MAX_MOVE: f64 = 0.06;
const MAX_TURN: f64 = 0.1;
/// Damping of the least-squares step.
const DAMPING: f64 = 1e-2;
/// Largest gap between the commanded and the observed joint angles (rad).
const MAX_LEAD: f64 = 0.15;
/// FrankaKitchen-v1's action scale: an action of 1 is 2 rad/s.
const ACTION_SCALE: f64 = 2.0;
/// Gripper commands.
const OPEN: f64 = 1.0;
const CLOSE: f64 = -1.0;

/// Which way the hand points.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Hand {
    /// As it starts: towards the back wall, fingers apart along x.
    Forward,
    /// Down, fingers apart along y (to grip the kettle's handle, which runs along x).
    Down,
}

/// One target of the end effector: reached when within `tol` metres, given up after `steps`.
#[derive(Debug, Clone, Copy)]
struct Waypoint {
    pos: [f64; 3],
    grip: f64,
    tol: f64,
    steps: usize,
    hand: Hand,
}

fn wp(pos: [f64; 3], grip: f64, tol: f64, steps: usize) -> Waypoint {
    Waypoint { pos, grip, tol, steps, hand: Hand::Forward }
}

fn down(pos: [f64; 3], grip: f64, tol: f64, steps: usize) -> Waypoint {
    Waypoint { pos, grip, tol, steps, hand: Hand::Down }
}

/// The microwave handle's position with the door turned by `angle` (rad, opening) about its
/// hinge, shifted by `dy` along y.
fn microwave_handle(angle: f64, dy: f64) -> [f64; 3] {
    const HINGE: [f64; 2] = [-1.128, 0.455];
    const HANDLE: [f64; 2] = [0.486, 0.038];
    let (s, c) = angle.sin_cos();
    let x = HINGE[0] + HANDLE[0] * c + HANDLE[1] * s;
    let y = HINGE[1] - HANDLE[0] * s + HANDLE[1] * c;
    [x, y + dy, 1.792]
}

/// The waypoints of one task, from FrankaKitchen-v1's layout (sites `microhandle_site`,
/// `kettle_site`, `light_site`, `slide_site`, `knob2_site`).
fn script(task: KitchenTask) -> Vec<Waypoint> {
    match task {
        KitchenTask::Microwave => {
            // In front of the handle, grip it, pull it round the hinge, let go, back off.
            let mut w = vec![
                wp([-0.642, 0.38, 1.792], OPEN, 0.01, 60),
                wp([-0.642, 0.49, 1.792], OPEN, 0.01, 40),
                wp([-0.642, 0.49, 1.792], CLOSE, 0.0, 8),
            ];
            w.extend((1..=7).map(|i| wp(microwave_handle(0.1 * i as f64, 0.0), CLOSE, 0.015, 6)));
            w.push(wp(microwave_handle(0.7, -0.03), OPEN, 0.0, 6));
            w.push(wp(microwave_handle(0.7, -0.12), OPEN, 0.02, 30));
            w
        }
        KitchenTask::Kettle => vec![
            // Over the handle pointing down, grip, lift, carry to the back burner, set down.
            down([-0.27, 0.25, 2.05], OPEN, 0.01, 60),
            down([-0.273, 0.348, 2.05], OPEN, 0.01, 40),
            down([-0.273, 0.348, 1.88], OPEN, 0.008, 40),
            down([-0.273, 0.348, 1.88], CLOSE, 0.0, 10),
            down([-0.273, 0.348, 2.0], CLOSE, 0.01, 30),
            down([-0.23, 0.75, 2.0], CLOSE, 0.015, 40),
            down([-0.23, 0.75, 1.89], CLOSE, 0.01, 30),
            down([-0.23, 0.75, 1.89], OPEN, 0.0, 8),
            down([-0.23, 0.70, 2.05], OPEN, 0.01, 30),
        ],
        KitchenTask::LightSwitch => vec![
            // Right of the lever, in, push it left, back off.
            wp([-0.33, 0.50, 2.28], CLOSE, 0.01, 60),
            wp([-0.33, 0.575, 2.28], CLOSE, 0.01, 40),
            wp([-0.47, 0.575, 2.28], CLOSE, 0.015, 30),
            wp([-0.47, 0.45, 2.28], CLOSE, 0.02, 40),
        ],
        KitchenTask::SlideCabinet => vec![
            // Left of the door's handle, in, push it right, back off.
            wp([-0.18, 0.45, 2.6], CLOSE, 0.02, 60),
            wp([-0.18, 0.60, 2.6], CLOSE, 0.02, 40),
            wp([0.20, 0.60, 2.6], CLOSE, 0.02, 30),
            wp([0.20, 0.45, 2.6], CLOSE, 0.03, 40),
        ],
        KitchenTask::BottomBurner => vec![
            // Left of the bottom-left knob's upper half, in, push it right (turning it), back off.
            wp([-0.30, 0.50, 2.266], CLOSE, 0.01, 60),
            wp([-0.30, 0.60, 2.266], CLOSE, 0.01, 40),
            wp([-0.23, 0.60, 2.266], CLOSE, 0.01, 40),
            wp([-0.23, 0.50, 2.266], CLOSE, 0.02, 30),
        ],
        other => unreachable!("{other} is not scripted"),
    }
}

/// x = J^T (J J^T + damping I)^-1 e for a 6 x 7 J (row-major): the damped least-squares step.
fn damped_step(j: &[[f64; 7]; 6], e: &[f64; 6]) -> [f64; 7] {
    let mut a = [[0.0; 7]; 6]; // [J J^T + damping I | e], solved in place
    for r in 0..6 {
        for c in 0..6 {
            a[r][c] = (0..7).map(|k| j[r][k] * j[c][k]).sum::<f64>();
        }
        a[r][r] += DAMPING;
        a[r][6] = e[r];
    }
    // Gaussian elimination; the matrix is symmetric positive definite, so no pivoting.
    for p in 0..6 {
        let pivot = a[p];
        for row in a.iter_mut().skip(p + 1) {
            let f = row[p] / pivot[p];
            for (x, v) in row[p..].iter_mut().zip(&pivot[p..]) {
                *x -= f * v;
            }
        }
    }
    let mut y = [0.0; 6];
    for r in (0..6).rev() {
        let s: f64 = (r + 1..6).map(|c| a[r][c] * y[c]).sum();
        y[r] = (a[r][6] - s) / a[r][r];
    }
    let mut x = [0.0; 7];
    for (k, xk) in x.iter_mut().enumerate() {
        *xk = (0..6).map(|r| j[r][k] * y[r]).sum();
    }
    x
}

fn scale_to(v: &mut [f64], max: f64) {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if n > max {
        v.iter_mut().for_each(|x| *x *= max / n);
    }
}

/// The demonstrator's state within one episode.
struct Demonstrator {
    kin: SiteKinematics,
    plan: Vec<Waypoint>,
    at: usize,
    steps_here: usize,
    command: [f64; 7],
    forward: [f64; 9],
    dt: f64,
}

impl Demonstrator {
    fn new(dt: f64) -> Result<Self> {
        let kin = SiteKinematics::new(load_env_model(EnvId::franka_kitchen())?, "end_effector")?;
        Ok(Self {
            kin,
            plan: vec![],
            at: 0,
            steps_here: 0,
            command: [0.0; 7],
            forward: [0.0; 9],
            dt,
        })
    }

    /// A new episode: the tasks in `order`, from the observation `obs` (robot joints first).
    fn begin(&mut self, order: &[KitchenTask], obs: &[f64]) {
        self.plan = order.iter().flat_map(|t| script(*t)).collect();
        self.at = 0;
        self.steps_here = 0;
        self.command.copy_from_slice(&obs[..7]);
        self.forward = self.kin.at(&obs[..9]).rot;
    }

    /// The next action, or None once the plan is done.
    fn act(&mut self, obs: &[f64]) -> Option<[f64; 9]> {
        let q = &obs[..9];
        loop {
            let w = *self.plan.get(self.at)?;
            let pose = self.kin.at(q);
            let mut ep: Vec<f64> = (0..3).map(|i| w.pos[i] - pose.pos[i]).collect();
            let err = ep.iter().map(|x| x * x).sum::<f64>().sqrt();
            if err < w.tol || self.steps_here >= w.steps {
                self.at += 1;
                self.steps_here = 0;
                continue;
            }
            self.steps_here += 1;
            scale_to(&mut ep, MAX_MOVE);
            let goal = match w.hand {
                Hand::Forward => self.forward,
                Hand::Down => [-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
            };
            // Rotation error: the axis-angle vector of goal * rot^T, small-angle form.
            let r = &pose.rot;
            let re =
                |i: usize, k: usize| (0..3).map(|m| goal[3 * i + m] * r[3 * k + m]).sum::<f64>();
            let mut er = [
                0.5 * (re(2, 1) - re(1, 2)),
                0.5 * (re(0, 2) - re(2, 0)),
                0.5 * (re(1, 0) - re(0, 1)),
            ];
            scale_to(&mut er, MAX_TURN);
            let nv = self.kin.nv();
            let mut j = [[0.0; 7]; 6];
            for i in 0..3 {
                j[i].copy_from_slice(&pose.jacp[i * nv..i * nv + 7]);
                j[3 + i].copy_from_slice(&pose.jacr[i * nv..i * nv + 7]);
            }
            let e = [ep[0], ep[1], ep[2], er[0], er[1], er[2]];
            let dq = damped_step(&j, &e);
            let mut action = [0.0; 9];
            for k in 0..7 {
                let lead = (self.command[k] + dq[k] - q[k]).clamp(-MAX_LEAD, MAX_LEAD);
                self.command[k] = q[k] + lead;
                action[k] = lead / self.dt / ACTION_SCALE;
            }
            action[7] = w.grip;
            action[8] = w.grip;
            return Some(action);
        }
    }
}

/// What a scripted kitchen dataset holds.
#[derive(Debug, Clone, Serialize)]
pub struct KitchenDataReport {
    pub env: String,
    pub transitions: usize,
    pub episodes: usize,
    /// Mean number of the dataset's tasks completed per episode.
    pub tasks_completed_mean: f64,
    /// Share of episodes that completed every task.
    pub all_tasks_rate: f64,
    pub return_mean: f64,
}

/// A scripted kitchen dataset: its rows, and each episode's controls (MuJoCo's `data.ctrl`, the
/// position targets) after the reset and after each step, as Minari's kitchen datasets record
/// them in `infos/ctrl`.
#[derive(Debug)]
pub struct KitchenData {
    pub data: Dataset,
    pub ctrl: Vec<Array2<f64>>,
    pub report: KitchenDataReport,
}

/// `episodes` episodes of the demonstrator in FrankaKitchen-v1 with `tasks` (each episode does
/// them in a random order) and noise of standard deviation `action_noise` on its actions;
/// an episode ends when the script does or at `max_episode_steps`.
pub fn generate_kitchen_data(
    tasks: &[KitchenTask],
    max_episode_steps: usize,
    episodes: usize,
    action_noise: f64,
    seed: u64,
) -> Result<KitchenData> {
    if let Some(t) = tasks.iter().find(|t| !SCRIPTED.contains(t)) {
        bail!(
            "the scripted demonstrator cannot do `{t}`; it does {}",
            SCRIPTED.map(|t| t.name()).join(", ")
        );
    }
    if episodes == 0 {
        bail!("give at least one episode");
    }
    let config = EnvConfig {
        kitchen: KitchenOptions {
            tasks_to_complete: tasks.to_vec(),
            remove_task_when_completed: false,
            terminate_on_tasks_completed: false,
            max_episode_steps,
            ..KitchenOptions::default()
        },
        ..EnvConfig::from(EnvId::franka_kitchen())
    };
    let mut env = config.make_one()?;
    let mut demo = Demonstrator::new(env.dt())?;
    let noise = Normal::new(0.0, action_noise).context("action noise")?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (d, a) = (env.obs_dim(), env.act_dim());
    let mut rows = Rows::new(d, a);
    let mut completed = 0usize;
    let mut all_done = 0usize;
    let mut ctrl = Vec::new();
    for episode in 0..episodes {
        let mut order = tasks.to_vec();
        order.shuffle(&mut rng);
        let mut o =
            env.reset_with_seed(Some(seed.wrapping_mul(1_000_003).wrapping_add(episode as u64)))?;
        demo.begin(&order, &o);
        let mut steps = 0;
        let mut episode_ctrl = env.ctrl().to_vec();
        while let Some(clean) = demo.act(&o) {
            let u: Vec<f32> = clean
                .iter()
                .map(|x| (x + noise.sample(&mut rng)).clamp(-1.0, 1.0) as f32)
                .collect();
            let step = env.step(&u)?;
            steps += 1;
            episode_ctrl.extend_from_slice(env.ctrl());
            let end = step.truncated || step.terminated;
            rows.push(&o, &step.obs, &u, step.reward, end);
            o = step.obs;
            if end {
                break;
            }
        }
        if steps > 0 {
            // The script ended before the time limit: cut the episode there.
            rows.cut_last();
            ctrl.push(Array2::from_shape_vec((steps + 1, a), episode_ctrl)?);
        }
        let kitchen = env.kitchen().expect("the kitchen");
        let done = kitchen.episode_completions().len();
        completed += done;
        all_done += usize::from(done == tasks.len());
    }
    let return_mean = rows.reward_sum() / episodes as f64;
    let data = rows.into_dataset()?;
    let n = data.len();
    let report = KitchenDataReport {
        env: config.id.to_string(),
        transitions: n,
        episodes,
        tasks_completed_mean: completed as f64 / episodes as f64,
        all_tasks_rate: all_done as f64 / episodes as f64,
        return_mean,
    };
    Ok(KitchenData { data, ctrl, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damped_step_solves_a_well_posed_system() {
        // J = [I_6 | 0]: the step is e / (1 + damping) on the first six joints.
        let mut j = [[0.0; 7]; 6];
        for (i, row) in j.iter_mut().enumerate() {
            row[i] = 1.0;
        }
        let e = [0.1, -0.2, 0.3, 0.0, 0.05, -0.01];
        let x = damped_step(&j, &e);
        for i in 0..6 {
            assert!((x[i] - e[i] / (1.0 + DAMPING)).abs() < 1e-12);
        }
        assert_eq!(x[6], 0.0);
    }

    #[test]
    fn the_microwave_handle_turns_about_its_hinge() {
        let closed = microwave_handle(0.0, 0.0);
        assert!((closed[0] + 0.642).abs() < 1e-9 && (closed[1] - 0.493).abs() < 1e-9);
        let open = microwave_handle(0.7, 0.0);
        let r = |p: [f64; 3]| ((p[0] + 1.128).powi(2) + (p[1] - 0.455).powi(2)).sqrt();
        assert!((r(open) - r(closed)).abs() < 1e-9);
        assert!(open[1] < closed[1], "opening pulls the handle towards the robot");
    }

    #[test]
    fn the_demonstrator_completes_kitchen_tasks() {
        let KitchenData { data, ctrl, report } =
            generate_kitchen_data(&SCRIPTED, 450, 2, 0.0, 0).unwrap();
        let steps: usize = ctrl.iter().map(|c| c.nrows() - 1).sum();
        assert_eq!((ctrl.len(), steps), (data.episodes().len(), data.len()));
        assert_eq!(data.obs_dim(), 59);
        assert_eq!(data.len(), report.transitions);
        assert_eq!(data.timeouts.iter().filter(|t| **t).count(), 2, "two episodes, each cut once");
        assert!(data.actions.iter().all(|a| (-1.0..=1.0).contains(a)));
        // Deterministic for a seed; the script is meant to do all four, so at least two each.
        assert!(report.tasks_completed_mean >= 2.0, "{report:?}");
        let err = generate_kitchen_data(&[KitchenTask::HingeCabinet], 450, 1, 0.0, 0).unwrap_err();
        assert!(err.to_string().contains("hinge cabinet"), "{err}");
    }
}
