//! Gymnasium-Robotics 1.4.2's `FrankaKitchen-v1` (`envs/franka_kitchen/{kitchen_env,
//! franka_env}.py`): the Franka robot in the kitchen, its velocity actions turned into position
//! targets, the noisy observation, and the per-task rewards. `env.rs` runs the physics and
//! dispatches here.
//!
//! Everything random comes from the robot environment's one NumPy generator (`NpRandom`), in
//! Python's order: at every reset and step 9 robot qpos draws, 9 robot qvel draws, 21 object
//! qpos draws and 20 object qvel draws, each `ratio * amp * uniform(-1, 1)`.

use std::fmt;
use std::str::FromStr;

use mujoco_rs::prelude::{MjModel, MjtJoint, MjtObjBase};

use crate::action::ActionScalar;
use crate::env::StepInfo;
use crate::error::EnvError;
use crate::np_random::NpRandom;

/// The kitchen's model, under `OFQL_ROBOTICS_ASSETS_DIR` (the wheel's layout).
pub const KITCHEN_MODEL: &str = "kitchen_franka/kitchen_assets/kitchen_env_model.xml";
/// The Franka robot's joint limits and noise amplitudes (`_read_specs_from_config`).
pub const FRANKA_CONFIG: &str = "kitchen_franka/franka_assets/franka_config.xml";
/// `FrankaRobot`'s `frame_skip`: one step is 40 physics steps of 2 ms.
pub const FRAME_SKIP: usize = 40;
/// The registered time limit of `FrankaKitchen-v1`.
pub const MAX_EPISODE_STEPS: usize = 280;
/// A task is complete when its joints are closer than this to its goal (`BONUS_THRESH`).
pub const BONUS_THRESH: f64 = 0.3;
/// The robot's joints (7 arm hinges, 2 finger slides) = the action's length.
pub const ROBOT_DOFS: usize = 9;
/// (nq, nv, nu) of the kitchen model.
pub const MODEL_SIZES: (usize, usize, usize) = (30, 29, 9);
/// The `observation`: robot qpos (9), robot qvel (9), object qpos (qpos[9:], 21), object qvel
/// (qvel[9:], 20).
pub const OBS_DIM: usize = 59;
const NQ: usize = MODEL_SIZES.0;
const NV: usize = MODEL_SIZES.1;

/// `KitchenEnv.__init__`'s `robot_env.init_qpos` (the reset state; qvel resets to zeros).
pub const INIT_QPOS: [f64; NQ] = [
    1.48388023e-01,
    -1.76848573e00,
    1.84390296e00,
    -2.47685760e00,
    2.60252026e-01,
    7.12533105e-01,
    1.59515394e00,
    4.79267505e-02,
    3.71350919e-02,
    -2.66279850e-04,
    -5.18043486e-05,
    3.12877220e-05,
    -4.51199853e-05,
    -3.90842156e-06,
    -4.22629655e-05,
    6.28065475e-05,
    4.04984708e-05,
    4.62730939e-04,
    -2.26906415e-04,
    -4.65501369e-04,
    -6.44129196e-03,
    -1.77048263e-03,
    1.08009684e-03,
    -2.69397440e-01,
    3.50383255e-01,
    1.61944683e00,
    1.00618764e00,
    4.06395120e-03,
    -6.62095997e-03,
    -2.68278933e-04,
];

// `FrankaRobot`'s action scaling: `act_mid + action * act_rng`.
const ACT_MID: f64 = 0.0;
const ACT_RNG: f64 = 2.0;

/// franka_config.xml's `pos_bound` and `vel_bound` of the robot's 9 joints (`qpos0`..`qpos8`):
/// the velocity clip and the position-target clip.
const POS_BOUND: [[f64; 2]; ROBOT_DOFS] = [
    [-2.9, 2.9],
    [-1.8, 1.8],
    [-2.9, 2.9],
    [-3.1, 0.0],
    [-2.9, 2.9],
    [0.0, 3.8],
    [-2.9, 2.9],
    [0.0, 0.04],
    [0.0, 0.04],
];
const VEL_BOUND: [[f64; 2]; ROBOT_DOFS] = [[-10.0, 10.0]; ROBOT_DOFS];
/// franka_config.xml's `pos_noise_amp` and `vel_noise_amp` of `qpos0`..`qpos28` (nv entries).
/// The object positions use `pos_noise_amp[8:]` (one entry early, as in Python), the object
/// velocities `vel_noise_amp[9:]`.
const POS_NOISE_AMP: [f64; NV] = [
    0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, // robot
    0.005, 0.005, // desk slides
    0.0005, 0.0005, 0.0005, 0.0005, 0.0005, 0.0005, // buttons, lights
    0.005, 0.005, 0.005, 0.1, 0.1, 0.1, 0.005, 0.005, 0.005, 0.1, 0.1, 0.1, // blocks
];
const VEL_NOISE_AMP: [f64; NV] = [
    0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, // robot
    0.005, 0.005, // desk slides
    0.005, 0.005, 0.005, 0.005, 0.005, 0.005, // buttons, lights
    0.005, 0.005, 0.005, 0.1, 0.1, 0.1, 0.005, 0.005, 0.005, 0.1, 0.1, 0.1, // blocks
];

/// The simulator state an `observation` shows, its noise included: qpos = robot qpos then the
/// objects' qpos, qvel likewise (the kitchen's robot joints come first in the model).
pub fn state_from_observation(obs: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    if obs.len() != OBS_DIM {
        return None;
    }
    let (robot, objects) = obs.split_at(2 * ROBOT_DOFS);
    let (obj_qpos, obj_qvel) = objects.split_at(NQ - ROBOT_DOFS);
    let qpos = [&robot[..ROBOT_DOFS], obj_qpos].concat();
    let qvel = [&robot[ROBOT_DOFS..], obj_qvel].concat();
    Some((qpos, qvel))
}

/// The largest noise `options` add to any number of the observation (the draws are uniform in
/// +- ratio x amplitude).
pub fn observation_noise_bound(options: &KitchenOptions) -> f64 {
    let max = |amps: &[&[f64]]| amps.concat().into_iter().fold(0.0, f64::max);
    // The object positions' amplitudes start one entry early, as in `observe`.
    let robot = max(&[&POS_NOISE_AMP[..ROBOT_DOFS], &VEL_NOISE_AMP[..ROBOT_DOFS]]);
    let objects = max(&[&POS_NOISE_AMP[ROBOT_DOFS - 1..NV], &VEL_NOISE_AMP[ROBOT_DOFS..]]);
    (options.robot_noise_ratio.abs() * robot).max(options.object_noise_ratio.abs() * objects)
}

/// One of the kitchen's seven tasks (`OBS_ELEMENT_GOALS`), in Python's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum KitchenTask {
    BottomBurner,
    TopBurner,
    LightSwitch,
    SlideCabinet,
    HingeCabinet,
    Microwave,
    Kettle,
}

impl KitchenTask {
    pub const ALL: [KitchenTask; 7] = [
        KitchenTask::BottomBurner,
        KitchenTask::TopBurner,
        KitchenTask::LightSwitch,
        KitchenTask::SlideCabinet,
        KitchenTask::HingeCabinet,
        KitchenTask::Microwave,
        KitchenTask::Kettle,
    ];

    /// Python's name, e.g. `"bottom burner"`.
    pub fn name(self) -> &'static str {
        match self {
            KitchenTask::BottomBurner => "bottom burner",
            KitchenTask::TopBurner => "top burner",
            KitchenTask::LightSwitch => "light switch",
            KitchenTask::SlideCabinet => "slide cabinet",
            KitchenTask::HingeCabinet => "hinge cabinet",
            KitchenTask::Microwave => "microwave",
            KitchenTask::Kettle => "kettle",
        }
    }

    /// The qpos entries whose values are the task's `achieved_goal` (`OBS_ELEMENT_INDICES`).
    pub fn qpos_indices(self) -> &'static [usize] {
        match self {
            KitchenTask::BottomBurner => &[11, 12],
            KitchenTask::TopBurner => &[15, 16],
            KitchenTask::LightSwitch => &[17, 18],
            KitchenTask::SlideCabinet => &[19],
            KitchenTask::HingeCabinet => &[20, 21],
            KitchenTask::Microwave => &[22],
            KitchenTask::Kettle => &[23, 24, 25, 26, 27, 28, 29],
        }
    }

    /// The task's `desired_goal` (`OBS_ELEMENT_GOALS`).
    pub fn goal(self) -> &'static [f64] {
        match self {
            KitchenTask::BottomBurner => &[-0.88, -0.01],
            KitchenTask::TopBurner => &[-0.92, -0.01],
            KitchenTask::LightSwitch => &[-0.69, -0.05],
            KitchenTask::SlideCabinet => &[0.37],
            KitchenTask::HingeCabinet => &[0.0, 1.45],
            KitchenTask::Microwave => &[-0.75],
            KitchenTask::Kettle => &[-0.23, 0.75, 1.62, 0.99, 0.0, 0.0, -0.06],
        }
    }

    /// The task's joints in `qpos` (its `achieved_goal`).
    pub fn achieved(self, qpos: &[f64]) -> Vec<f64> {
        self.qpos_indices().iter().map(|&i| qpos[i]).collect()
    }

    /// `np.linalg.norm(achieved_goal - desired_goal)` as NumPy computes it on AVX-512 hosts: the
    /// dot product of the difference with itself is OpenBLAS's `ddot`, whose loop for fewer than
    /// 16 numbers accumulates with fused multiply-adds there (measured: bit-identical on 60 000
    /// random vectors of 1, 2 and 7 numbers), then sqrt. OpenBLAS's AVX2 kernel adds plainly, so
    /// NumPy's last bit depends on the host; this is one fixed choice (docs/envs.md).
    pub fn distance(self, qpos: &[f64]) -> f64 {
        let sq = self
            .qpos_indices()
            .iter()
            .zip(self.goal())
            .fold(0.0, |acc: f64, (&i, &g)| (qpos[i] - g).mul_add(qpos[i] - g, acc));
        sq.sqrt()
    }

    fn known() -> String {
        KitchenTask::ALL.map(|t| format!("\"{}\"", t.name())).join(", ")
    }
}

impl fmt::Display for KitchenTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KitchenTask {
    type Err = EnvError;

    /// Python's names (`"light switch"`), case-insensitive, with `_` or `-` for the space.
    fn from_str(s: &str) -> Result<Self, EnvError> {
        let folded: String = s
            .trim()
            .chars()
            .map(|c| if c == '_' || c == '-' { ' ' } else { c.to_ascii_lowercase() })
            .collect();
        KitchenTask::ALL.into_iter().find(|t| t.name() == folded).ok_or_else(|| {
            EnvError::Invalid(format!(
                "unknown FrankaKitchen task `{s}`: the tasks are {}",
                KitchenTask::known()
            ))
        })
    }
}

/// FrankaKitchen-v1's options (`gym.make` keyword arguments); `Default` is what the id
/// registers.
#[derive(Debug, Clone, PartialEq)]
pub struct KitchenOptions {
    /// The episode's tasks (`tasks_to_complete`; a repeated task counts once, as in Python's
    /// goal dictionary). Default: all seven.
    pub tasks_to_complete: Vec<KitchenTask>,
    /// End the episode once every task has been completed.
    pub terminate_on_tasks_completed: bool,
    /// A completed task leaves the list (and earns no more reward); otherwise it earns 1 on
    /// every step it stays complete.
    pub remove_task_when_completed: bool,
    /// Scale of the uniform noise on the objects' positions and velocities.
    pub object_noise_ratio: f64,
    /// Scale of the uniform noise on the robot's joint positions and velocities.
    pub robot_noise_ratio: f64,
    /// The time limit (`gym.make(..., max_episode_steps=...)`).
    pub max_episode_steps: usize,
}

impl Default for KitchenOptions {
    fn default() -> Self {
        KitchenOptions {
            tasks_to_complete: KitchenTask::ALL.to_vec(),
            terminate_on_tasks_completed: true,
            remove_task_when_completed: true,
            object_noise_ratio: 0.0005,
            robot_noise_ratio: 0.01,
            max_episode_steps: MAX_EPISODE_STEPS,
        }
    }
}

impl KitchenOptions {
    /// Parse Python's task names, e.g. `["microwave", "kettle"]`; an unknown name is an error
    /// that lists the seven tasks.
    pub fn parse_tasks<S: AsRef<str>>(names: &[S]) -> Result<Vec<KitchenTask>, EnvError> {
        names.iter().map(|n| n.as_ref().parse()).collect()
    }

    /// The options with repeated tasks dropped; refuses what `gym.make` refuses (a zero time
    /// limit) and non-finite noise.
    fn validated(&self) -> Result<KitchenOptions, EnvError> {
        if self.max_episode_steps == 0 {
            return Err(EnvError::Invalid(
                "FrankaKitchen-v1: max_episode_steps must be > 0".into(),
            ));
        }
        for (what, ratio) in [
            ("object_noise_ratio", self.object_noise_ratio),
            ("robot_noise_ratio", self.robot_noise_ratio),
        ] {
            if !ratio.is_finite() {
                return Err(EnvError::Invalid(format!("FrankaKitchen-v1: {what} is {ratio}")));
            }
        }
        let mut tasks = Vec::new();
        for &task in &self.tasks_to_complete {
            if !tasks.contains(&task) {
                tasks.push(task);
            }
        }
        Ok(KitchenOptions { tasks_to_complete: tasks, ..self.clone() })
    }
}

/// The kitchen's own state: options, NumPy's generator, the last (noisy) observation, and
/// which tasks are left.
#[derive(Debug, Clone)]
pub struct KitchenState {
    options: KitchenOptions,
    /// The joints named `robot*`, in model order: their qpos and qvel addresses.
    robot_qpos_adr: [usize; ROBOT_DOFS],
    robot_dof_adr: [usize; ROBOT_DOFS],
    rng: NpRandom,
    /// `_last_robot_qpos`: the robot's *noisy* observed positions, the base of the next
    /// position target.
    last_robot_qpos: [f64; ROBOT_DOFS],
    obs: [f64; OBS_DIM],
    remaining: Vec<KitchenTask>,
    step_completions: Vec<KitchenTask>,
    episode_completions: Vec<KitchenTask>,
}

/// The robot's joints (`robot_get_obs`: names starting with "robot", each a hinge or a slide).
fn robot_joints(model: &MjModel) -> Result<Vec<(usize, usize)>, String> {
    let mut joints = Vec::new();
    for j in 0..model.ffi().njnt as usize {
        let name = model.id_to_name(MjtObjBase::mjOBJ_JOINT, j).unwrap_or("");
        if !name.starts_with("robot") {
            continue;
        }
        let kind = model.jnt_type()[j];
        if kind != MjtJoint::mjJNT_HINGE && kind != MjtJoint::mjJNT_SLIDE {
            return Err(format!("robot joint {name} is not a hinge or a slide"));
        }
        joints.push((model.jnt_qposadr()[j] as usize, model.jnt_dofadr()[j] as usize));
    }
    if joints.len() != ROBOT_DOFS {
        return Err(format!("{} joints named robot*, expected {ROBOT_DOFS}", joints.len()));
    }
    Ok(joints)
}

/// The kitchen's sizes and robot joints (what `EnvConfig::make` checks of a given model).
pub(crate) fn check_layout(model: &MjModel) -> Result<(), String> {
    let ffi = model.ffi();
    let got = (ffi.nq as usize, ffi.nv as usize, ffi.nu as usize);
    if got != MODEL_SIZES {
        return Err(format!("nq, nv, nu = {got:?}, expected {MODEL_SIZES:?}"));
    }
    robot_joints(model).map(|_| ())
}

/// What `EnvConfig::load_model` checks: the layout, and that franka_config.xml holds the
/// limits and noise amplitudes compiled in here.
pub(crate) fn check_model(model: &MjModel, config_xml: &str) -> Result<(), String> {
    check_layout(model)?;
    for i in 0..NV {
        let element = config_element(config_xml, &format!("qpos{i}"))
            .ok_or_else(|| format!("franka_config.xml has no <qpos{i}>"))?;
        let numbers = |attr: &str| -> Result<Vec<f64>, String> {
            let text = config_attr(element, attr)
                .ok_or_else(|| format!("franka_config.xml: <qpos{i}> has no {attr}"))?;
            text.split_whitespace()
                .map(|t| t.parse::<f64>().map_err(|e| format!("<qpos{i}> {attr}: {e}")))
                .collect()
        };
        let mut same = numbers("pos_noise_amp")?.first() == Some(&POS_NOISE_AMP[i])
            && numbers("vel_noise_amp")?.first() == Some(&VEL_NOISE_AMP[i]);
        if i < ROBOT_DOFS {
            same &= numbers("pos_bound")? == POS_BOUND[i] && numbers("vel_bound")? == VEL_BOUND[i];
        }
        if !same {
            return Err(format!("franka_config.xml's <qpos{i}> is not Gymnasium-Robotics 1.4.2's"));
        }
    }
    Ok(())
}

/// The text of `<name .../>` in franka_config.xml (its elements are on one line each).
fn config_element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name} "))?;
    let rest = &xml[start..];
    Some(&rest[..rest.find('>')?])
}

/// The value of ` attr='...'` (or `"..."`) in an element's text.
fn config_attr<'a>(element: &'a str, attr: &str) -> Option<&'a str> {
    let at = element.find(&format!(" {attr}="))? + attr.len() + 2;
    let quote = element[at..].chars().next()?;
    let value = &element[at + 1..];
    Some(&value[..value.find(quote)?])
}

impl KitchenState {
    /// `KitchenEnv.__init__` on a fresh `MjData` (the model's qpos0): the observation it draws
    /// there comes from an unseeded generator in Python; here from seed 0. `reset(seed=...)`
    /// replaces the generator, so seeded episodes do not depend on it.
    pub(crate) fn new(
        model: &MjModel,
        qpos: &[f64],
        qvel: &[f64],
        options: &KitchenOptions,
    ) -> Result<KitchenState, EnvError> {
        let options = options.validated()?;
        let joints = robot_joints(model).map_err(|e| {
            EnvError::Invalid(format!("the model is not FrankaKitchen-v1's kitchen: {e}"))
        })?;
        let mut state = KitchenState {
            remaining: options.tasks_to_complete.clone(),
            options,
            robot_qpos_adr: std::array::from_fn(|i| joints[i].0),
            robot_dof_adr: std::array::from_fn(|i| joints[i].1),
            rng: NpRandom::new(0),
            last_robot_qpos: [0.0; ROBOT_DOFS],
            obs: [0.0; OBS_DIM],
            step_completions: Vec::new(),
            episode_completions: Vec::new(),
        };
        state.observe(qpos, qvel);
        Ok(state)
    }

    /// `reset(seed=seed)`'s generator: `Some` reseeds it, `None` goes on with it.
    pub(crate) fn seed(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = NpRandom::new(seed);
        }
    }

    /// The rest of `reset` once the state is set: the observation (robot then object draws),
    /// and every task to do again.
    pub(crate) fn begin_episode(&mut self, qpos: &[f64], qvel: &[f64]) {
        self.observe(qpos, qvel);
        self.remaining = self.options.tasks_to_complete.clone();
        self.step_completions.clear();
        self.episode_completions.clear();
    }

    /// `FrankaRobot.step` up to the physics: clip the action to [-1, 1], denormalise, clip to
    /// the velocity bounds, target = last noisy robot qpos + velocity * dt, clipped to the
    /// position bounds.
    pub(crate) fn write_ctrl<A: ActionScalar>(&self, action: &[A], dt: f64, ctrl: &mut [f64]) {
        for (i, (c, a)) in ctrl.iter_mut().zip(action).enumerate() {
            let a = ACT_MID + a.to_f64().clamp(-1.0, 1.0) * ACT_RNG;
            let velocity = a.clamp(VEL_BOUND[i][0], VEL_BOUND[i][1]);
            let target = self.last_robot_qpos[i] + velocity * dt;
            *c = target.clamp(POS_BOUND[i][0], POS_BOUND[i][1]);
        }
    }

    /// `KitchenEnv.step` after the physics: the observation, the tasks completed in this step
    /// (reward = their number), their removal, termination and truncation.
    pub(crate) fn after_step(
        &mut self,
        qpos: &[f64],
        qvel: &[f64],
        elapsed_steps: usize,
    ) -> StepInfo {
        self.observe(qpos, qvel);
        self.step_completions.clear();
        for &task in &self.remaining {
            if task.distance(qpos) < BONUS_THRESH {
                self.step_completions.push(task);
            }
        }
        let reward = self.step_completions.len() as f64;
        if self.options.remove_task_when_completed {
            let done = &self.step_completions;
            self.remaining.retain(|t| !done.contains(t));
        }
        for &task in &self.step_completions {
            if !self.episode_completions.contains(&task) {
                self.episode_completions.push(task);
            }
        }
        let success = self.all_completed();
        StepInfo {
            reward,
            terminated: self.options.terminate_on_tasks_completed && success,
            truncated: elapsed_steps >= self.options.max_episode_steps,
            success,
            goal_distance: None,
        }
    }

    /// `FrankaRobot._get_obs` then `KitchenEnv._get_obs`: the state plus noise, 59 draws.
    fn observe(&mut self, qpos: &[f64], qvel: &[f64]) {
        let (robot, objects) = self.obs.split_at_mut(2 * ROBOT_DOFS);
        let (robot_qpos, robot_qvel) = robot.split_at_mut(ROBOT_DOFS);
        let ratio = self.options.robot_noise_ratio;
        for (i, o) in robot_qpos.iter_mut().enumerate() {
            *o = qpos[self.robot_qpos_adr[i]]
                + ratio * POS_NOISE_AMP[i] * self.rng.uniform(-1.0, 1.0);
        }
        for (i, o) in robot_qvel.iter_mut().enumerate() {
            *o = qvel[self.robot_dof_adr[i]]
                + ratio * VEL_NOISE_AMP[i] * self.rng.uniform(-1.0, 1.0);
        }
        self.last_robot_qpos.copy_from_slice(robot_qpos);
        let (obj_qpos, obj_qvel) = objects.split_at_mut(NQ - ROBOT_DOFS);
        let ratio = self.options.object_noise_ratio;
        for (j, o) in obj_qpos.iter_mut().enumerate() {
            let amp = POS_NOISE_AMP[ROBOT_DOFS - 1 + j]; // robot_pos_noise_amp[8:]
            *o = qpos[ROBOT_DOFS + j] + ratio * amp * self.rng.uniform(-1.0, 1.0);
        }
        for (j, o) in obj_qvel.iter_mut().enumerate() {
            let amp = VEL_NOISE_AMP[ROBOT_DOFS + j]; // robot_vel_noise_amp[9:]
            *o = qvel[ROBOT_DOFS + j] + ratio * amp * self.rng.uniform(-1.0, 1.0);
        }
    }

    /// The last observation drawn (at the last reset or step).
    pub fn observation(&self) -> &[f64] {
        &self.obs
    }
    /// The options in use (tasks without repeats).
    pub fn options(&self) -> &KitchenOptions {
        &self.options
    }
    /// The episode's tasks (the keys of `desired_goal`), in the options' order.
    pub fn tasks(&self) -> &[KitchenTask] {
        &self.options.tasks_to_complete
    }
    /// `info["tasks_to_complete"]`: the tasks still to do (all of them when completed tasks
    /// are not removed).
    pub fn remaining_tasks(&self) -> &[KitchenTask] {
        &self.remaining
    }
    /// `info["step_task_completions"]`: the tasks complete after the last step.
    pub fn step_completions(&self) -> &[KitchenTask] {
        &self.step_completions
    }
    /// `info["episode_task_completions"]`: the tasks completed so far in the episode.
    pub fn episode_completions(&self) -> &[KitchenTask] {
        &self.episode_completions
    }
    /// Every task of the episode has been completed (what terminates the episode).
    pub fn all_completed(&self) -> bool {
        self.episode_completions.len() == self.options.tasks_to_complete.len()
    }
    /// The time limit.
    pub fn max_episode_steps(&self) -> usize {
        self.options.max_episode_steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_parse_and_unknown_ones_list_the_seven() {
        assert_eq!("light switch".parse::<KitchenTask>().unwrap(), KitchenTask::LightSwitch);
        assert_eq!("Slide_Cabinet".parse::<KitchenTask>().unwrap(), KitchenTask::SlideCabinet);
        for task in KitchenTask::ALL {
            assert_eq!(task.to_string().parse::<KitchenTask>().unwrap(), task);
            assert_eq!(task.qpos_indices().len(), task.goal().len());
        }
        let err = KitchenOptions::parse_tasks(&["microwave", "toaster"]).unwrap_err().to_string();
        assert!(err.contains("`toaster`"), "{err}");
        for task in KitchenTask::ALL {
            assert!(err.contains(&format!("\"{}\"", task.name())), "{err}");
        }
    }

    #[test]
    fn options_drop_repeated_tasks_and_refuse_a_zero_limit() {
        let options = KitchenOptions {
            tasks_to_complete: vec![
                KitchenTask::Kettle,
                KitchenTask::Microwave,
                KitchenTask::Kettle,
            ],
            ..KitchenOptions::default()
        };
        assert_eq!(
            options.validated().unwrap().tasks_to_complete,
            [KitchenTask::Kettle, KitchenTask::Microwave]
        );
        let zero = KitchenOptions { max_episode_steps: 0, ..KitchenOptions::default() };
        assert!(zero.validated().is_err());
    }

    #[test]
    fn distance_is_numpys_norm() {
        // np.linalg.norm(np.array([-0.041, -0.707]) - np.array([-0.88, -0.01])) etc., NumPy
        // 2.4.6 on an AVX-512 host (a plain sum of squares, and NumPy on an AVX2-only host,
        // give 1.0907474501459997).
        let mut qpos = [0.0; NQ];
        qpos[11] = -0.041;
        qpos[12] = -0.707;
        assert_eq!(KitchenTask::BottomBurner.distance(&qpos), 1.0907474501459995);
        qpos[22] = -0.5;
        assert_eq!(KitchenTask::Microwave.distance(&qpos), 0.25);
    }

    #[test]
    fn config_attributes_are_read_like_python() {
        let xml =
            "<config name='Franka'>\n\t<qpos5 name='q5' pos_bound='00.0 3.8' vel_bound='-.5 .5' />";
        let e = config_element(xml, "qpos5").unwrap();
        assert_eq!(config_attr(e, "pos_bound"), Some("00.0 3.8"));
        assert_eq!(config_attr(e, "vel_bound"), Some("-.5 .5"));
        assert_eq!(config_attr(e, "pos_noise_amp"), None);
        assert_eq!(config_element(xml, "qpos50"), None);
    }
}
