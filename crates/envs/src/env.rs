//! One environment: Gymnasium's `step`/`reset`/`set_state` on a MuJoCo model.

use std::sync::Arc;

use mujoco_rs::prelude::{MjData, MjModel};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::action::ActionScalar;
use crate::error::EnvError;
use crate::id::{EnvId, Task};
use crate::models::load_model;
use crate::spec::{MAX_EPISODE_STEPS, ResetNoise, Spec};

/// What one `step` returns besides the observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    pub reward: f64,
    /// The body fell (Hopper, Walker2d): the episode ends, and its value is zero after it.
    pub terminated: bool,
    /// The time limit (1000 steps) was reached.
    pub truncated: bool,
}

/// One `step`'s result with its observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub obs: Vec<f64>,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
}

pub struct Env {
    id: EnvId,
    spec: Spec,
    data: MjData<Arc<MjModel>>,
    init_qpos: Vec<f64>,
    init_qvel: Vec<f64>,
    dt: f64,
    elapsed_steps: usize,
}

/// (nq, nv, nu) of Gymnasium's models: a guard against a wrong file under OFQL_MODELS_DIR.
fn expected_sizes(task: Task) -> (usize, usize, usize) {
    match task {
        Task::HalfCheetah => (9, 9, 6),
        Task::Hopper => (6, 6, 3),
        Task::Walker2d => (9, 9, 6),
    }
}

/// Load the model an environment runs on, to share between many `Env`s with `with_model`.
pub fn load_env_model(id: EnvId) -> Result<Arc<MjModel>, EnvError> {
    let spec = Spec::of(id);
    let model = load_model(spec.xml)?;
    let ffi = model.ffi();
    let got = (ffi.nq as usize, ffi.nv as usize, ffi.nu as usize);
    if got != expected_sizes(id.task) {
        let (nq, nv, nu) = expected_sizes(id.task);
        return Err(EnvError::Invalid(format!(
            "{} in {} has nq, nv, nu = {got:?}, but {id} needs ({nq}, {nv}, {nu}): it is not \
             Gymnasium's model (run `cargo xtask setup`, or fix OFQL_MODELS_DIR)",
            spec.xml,
            crate::models::models_dir().display()
        )));
    }
    Ok(Arc::new(model))
}

impl Env {
    pub fn new(id: EnvId) -> Result<Env, EnvError> {
        Ok(Env::with_model(id, load_env_model(id)?))
    }

    /// An environment on an already loaded model (from `load_env_model(id)`).
    pub fn with_model(id: EnvId, model: Arc<MjModel>) -> Env {
        let spec = Spec::of(id);
        let dt = model.opt().timestep * spec.frame_skip as f64;
        let data = MjData::new(model);
        // Gymnasium keeps the state of a fresh MjData as the reset centre.
        let init_qpos = data.qpos().to_vec();
        let init_qvel = data.qvel().to_vec();
        Env { id, spec, data, init_qpos, init_qvel, dt, elapsed_steps: 0 }
    }

    pub fn id(&self) -> EnvId {
        self.id
    }
    pub fn spec(&self) -> &Spec {
        &self.spec
    }
    pub fn obs_dim(&self) -> usize {
        self.nq() - 1 + self.nv()
    }
    pub fn act_dim(&self) -> usize {
        self.data.ctrl().len()
    }
    pub fn nq(&self) -> usize {
        self.init_qpos.len()
    }
    pub fn nv(&self) -> usize {
        self.init_qvel.len()
    }
    /// Seconds of simulated time per `step`.
    pub fn dt(&self) -> f64 {
        self.dt
    }
    pub fn qpos(&self) -> &[f64] {
        self.data.qpos()
    }
    pub fn qvel(&self) -> &[f64] {
        self.data.qvel()
    }
    pub fn elapsed_steps(&self) -> usize {
        self.elapsed_steps
    }
    /// The actuators' control ranges, (low, high) per action dimension.
    pub fn action_bounds(&self) -> Vec<(f64, f64)> {
        self.data.model().actuator_ctrlrange().iter().map(|r| (r[0], r[1])).collect()
    }

    /// Gymnasium's `reset`: `mj_resetData`, then the initial state plus noise (nq draws for
    /// qpos, then nv for qvel), then `mj_forward`.
    pub fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Vec<f64> {
        self.data.reset();
        let mut uniform = |s: f64| -s + (s - -s) * rng.random::<f64>(); // NumPy's formula
        let qpos: Vec<f64> = match self.spec.reset_noise {
            ResetNoise::Uniform { scale } | ResetNoise::UniformPosNormalVel { scale } => {
                self.init_qpos.iter().map(|q| q + uniform(scale)).collect()
            }
        };
        let qvel: Vec<f64> = match self.spec.reset_noise {
            ResetNoise::Uniform { scale } => {
                self.init_qvel.iter().map(|v| v + uniform(scale)).collect()
            }
            ResetNoise::UniformPosNormalVel { scale } => self
                .init_qvel
                .iter()
                .map(|v| v + scale * rng.sample::<f64, _>(StandardNormal))
                .collect(),
        };
        self.write_state(&qpos, &qvel);
        self.elapsed_steps = 0;
        self.observation()
    }

    /// Gymnasium's `reset()` followed by `set_state(qpos, qvel)`: a new episode that starts
    /// in exactly this state (the solver's warm start is cleared as by a reset).
    pub fn reset_to_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError> {
        self.check_state(qpos, qvel)?;
        self.data.reset();
        self.write_state(qpos, qvel);
        self.elapsed_steps = 0;
        Ok(self.observation())
    }

    /// Gymnasium's `set_state`: overwrite qpos and qvel, then `mj_forward`. The episode's
    /// step count is kept.
    pub fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<(), EnvError> {
        self.check_state(qpos, qvel)?;
        self.write_state(qpos, qvel);
        Ok(())
    }

    fn check_state(&self, qpos: &[f64], qvel: &[f64]) -> Result<(), EnvError> {
        let (nq, nv) = (self.nq(), self.nv());
        let err = |what, expected, got| EnvError::StateDim {
            env: self.id.to_string(),
            what,
            expected,
            got,
            nq,
            nv,
        };
        if qpos.len() != nq {
            return Err(err("qpos", nq, qpos.len()));
        }
        if qvel.len() != nv {
            return Err(err("qvel", nv, qvel.len()));
        }
        Ok(())
    }

    fn write_state(&mut self, qpos: &[f64], qvel: &[f64]) {
        self.data.qpos_mut().copy_from_slice(qpos);
        self.data.qvel_mut().copy_from_slice(qvel);
        self.data.forward();
    }

    /// The current observation: qpos[1:] then qvel (clipped to +-10 for Hopper, Walker2d).
    pub fn observation(&self) -> Vec<f64> {
        let mut obs = vec![0.0; self.obs_dim()];
        self.observe_into(&mut obs);
        obs
    }

    /// Write the observation into `obs` (length `obs_dim`).
    pub fn observe_into(&self, obs: &mut [f64]) {
        let (qpos, qvel) = (self.data.qpos(), self.data.qvel());
        let (pos, vel) = obs.split_at_mut(qpos.len() - 1);
        pos.copy_from_slice(&qpos[1..]);
        match self.spec.obs_velocity_clip {
            Some(c) => vel.iter_mut().zip(qvel).for_each(|(o, v)| *o = v.clamp(-c, c)),
            None => vel.copy_from_slice(qvel),
        }
    }

    /// Gymnasium's `step`, allocating the observation.
    pub fn step<A: ActionScalar>(&mut self, action: &[A]) -> Result<Step, EnvError> {
        let mut obs = vec![0.0; self.obs_dim()];
        let info = self.step_into(action, &mut obs)?;
        Ok(Step {
            obs,
            reward: info.reward,
            terminated: info.terminated,
            truncated: info.truncated,
        })
    }

    /// Gymnasium's `step` writing the next observation into `obs`. The action is not clipped
    /// (Gymnasium does not clip): MuJoCo clamps the control to the actuator's range, and the
    /// control cost is paid on the action as given.
    pub fn step_into<A: ActionScalar>(
        &mut self,
        action: &[A],
        obs: &mut [f64],
    ) -> Result<StepInfo, EnvError> {
        if action.len() != self.act_dim() {
            return Err(EnvError::ActionDim {
                env: self.id.to_string(),
                expected: self.act_dim(),
                got: action.len(),
            });
        }
        assert_eq!(obs.len(), self.obs_dim(), "observation buffer of the wrong length");
        let x_before = self.data.qpos()[0];
        for (ctrl, a) in self.data.ctrl_mut().iter_mut().zip(action) {
            *ctrl = a.to_f64();
        }
        for _ in 0..self.spec.frame_skip {
            self.data.step();
        }
        // Gymnasium then calls mj_rnePostConstraint, which only fills cacc/cfrc_*: outputs no
        // observation, reward or later step of these environments reads (the parity test
        // checks that the trajectories stay identical), so it is skipped to save its cost.
        let x_velocity = (self.data.qpos()[0] - x_before) / self.dt;

        let forward_reward = self.spec.forward_reward_weight * x_velocity;
        let ctrl_cost = A::ctrl_cost(self.spec.ctrl_cost_weight, action);
        let (reward, terminated) = match &self.spec.health {
            None => (forward_reward - ctrl_cost, false),
            Some(health) => {
                let healthy = health.is_healthy(self.data.qpos(), self.data.qvel());
                let healthy_reward = if healthy || !health.reward_only_while_healthy {
                    self.spec.healthy_reward
                } else {
                    0.0
                };
                ((forward_reward + healthy_reward) - ctrl_cost, !healthy)
            }
        };
        self.elapsed_steps += 1;
        self.observe_into(obs);
        Ok(StepInfo { reward, terminated, truncated: self.elapsed_steps >= MAX_EPISODE_STEPS })
    }
}
