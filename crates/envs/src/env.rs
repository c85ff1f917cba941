//! One environment: Gymnasium's `step`/`reset`/`set_state` on a MuJoCo model. The locomotion
//! robots follow Gymnasium's `mujoco/*_v{4,5}.py`; the mazes Gymnasium-Robotics'
//! `maze/ant_maze_v4.py` (see `maze.rs` for the maps and draws); the kitchen its
//! `franka_kitchen/` (see `kitchen.rs`).

use std::sync::Arc;

use mujoco_rs::prelude::{MjData, MjModel};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::action::ActionScalar;
use crate::error::EnvError;
use crate::id::{EnvId, Task};
use crate::kitchen::{self, KitchenOptions, KitchenState, KitchenTask};
use crate::maze::{ANT_MAZE_HEIGHT, ANT_MAZE_SCALING, GOAL_RADIUS, Maze, distance};
use crate::models::{load_model, load_robotics_model, read_model_text, robotics_asset};
use crate::np_random::NpRandom;
use crate::spec::{MAX_EPISODE_STEPS, ResetNoise, Spec};

/// What one `step` returns besides the observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    pub reward: f64,
    /// The body fell (Hopper, Walker2d), the ant reached the goal (an episodic maze), every
    /// task was completed (the kitchen, unless told not to end): the episode ends.
    pub terminated: bool,
    /// The time limit (`max_episode_steps`) was reached.
    pub truncated: bool,
    /// A maze's `info["success"]`: the ant ended the step at the goal it had; the kitchen's:
    /// every task of the episode has been completed so far. Always false for locomotion.
    pub success: bool,
    /// A maze's distance (m) from the ant's torso to its goal after the step; None elsewhere.
    pub goal_distance: Option<f64>,
}

/// One `step`'s result with its observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub obs: Vec<f64>,
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub success: bool,
}

/// The maze's reward (`reward_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MazeReward {
    /// 1 within `GOAL_RADIUS` of the goal, else 0 (the registered default).
    Sparse,
    /// exp(-distance to the goal).
    Dense,
}

/// AntMaze's options (`gym.make` keyword arguments); `Default` is what the ids register.
#[derive(Debug, Clone, PartialEq)]
pub struct MazeOptions {
    pub reward: MazeReward,
    /// Reaching the goal does not end the episode (only the time limit does).
    pub continuing_task: bool,
    /// In a continuing task, a reached goal is replaced by a new one.
    pub reset_target: bool,
    /// A map instead of the id's (`maze_map`): its walls and its start and goal cells, e.g. a
    /// dataset's evaluation map with one `r` and one `g` cell.
    pub cells_map: Option<Vec<String>>,
    /// Append `desired_goal` to the flat observation (29 + 2 numbers); off, the observation is
    /// D4RL's layout: `achieved_goal` (x, y) then `observation` = qpos then qvel (29 numbers).
    pub goal_in_observation: bool,
    /// This project's goal-reaching task for training the ant that collects maze data (as
    /// Minari trained its own): not Gymnasium-Robotics' task. The observation is `observation`
    /// (27) then the goal's offset in the torso's heading frame (2, `maze::heading_offset`);
    /// the reward is the speed towards the goal plus 1 while
    /// healthy minus 0.5 |a|^2 (Ant-v4's terms); the episode ends when the torso's height
    /// leaves Ant-v4's healthy range [0.2, 1.0]. Overrides `reward` and `goal_in_observation`.
    pub goal_reaching: bool,
}

/// Ant-v4's healthy torso heights, for the goal-reaching task.
const ANT_HEALTHY_Z: (f64, f64) = (0.2, 1.0);

impl Default for MazeOptions {
    fn default() -> Self {
        MazeOptions {
            reward: MazeReward::Sparse,
            continuing_task: true,
            reset_target: false,
            cells_map: None,
            goal_in_observation: false,
            goal_reaching: false,
        }
    }
}

/// The maze's own state: the cells to draw from, the goal, and NumPy's generator.
struct MazeState {
    maze: Maze,
    options: MazeOptions,
    rng: NpRandom,
    goal: [f64; 2],
    max_episode_steps: usize,
}

enum Kind {
    Locomotion(Spec),
    AntMaze(Box<MazeState>),
    Kitchen(Box<KitchenState>),
}

pub struct Env {
    id: EnvId,
    kind: Kind,
    frame_skip: usize,
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
        Task::AntMaze(_) => (15, 14, 8),
        Task::FrankaKitchen => kitchen::MODEL_SIZES,
    }
}

/// Gymnasium's ant, whose model the mazes extend.
const ANT_XML: &str = "ant.xml";
/// AntMaze's ant steps 5 physics steps of 0.01 s (Ant-v4's frame skip).
const ANT_FRAME_SKIP: usize = 5;
/// MuJoCo numbers the world's geoms first: ant.xml's floor, then a maze's walls, then the
/// ant's 13 (torso and 4 x 3 leg parts).
const WALLS_FROM_GEOM: usize = 1;
const ANT_BODY_GEOMS: usize = 13;

/// Which environment and how it is made: the id, and for a maze or the kitchen its options
/// (`gym.make(id, **kwargs)`); a plain `EnvId` converts into the registered defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvConfig {
    pub id: EnvId,
    /// Used by the mazes only.
    pub maze: MazeOptions,
    /// Used by FrankaKitchen-v1 only.
    pub kitchen: KitchenOptions,
}

impl From<EnvId> for EnvConfig {
    fn from(id: EnvId) -> Self {
        EnvConfig { id, maze: MazeOptions::default(), kitchen: KitchenOptions::default() }
    }
}

impl std::fmt::Display for EnvConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.id)
    }
}

impl EnvConfig {
    /// The maze this config builds (its own map, else the id's); `None` for locomotion.
    fn maze(&self) -> Result<Option<Maze>, EnvError> {
        let Task::AntMaze(map) = self.id.task else { return Ok(None) };
        match &self.maze.cells_map {
            Some(rows) => Ok(Some(Maze::from_rows(rows, ANT_MAZE_SCALING, ANT_MAZE_HEIGHT)?)),
            None => Ok(Some(Maze::ant(map))),
        }
    }

    /// Check what can be checked without MuJoCo (a maze map of the user's), so a bad option is
    /// an error before anything is loaded or trained.
    pub fn validate(&self) -> Result<(), EnvError> {
        self.maze().map(|_| ())
    }

    /// Load the model the environment runs on (for a maze: the ant with this map's walls), to
    /// share between many `Env`s with `make`.
    pub fn load_model(&self) -> Result<Arc<MjModel>, EnvError> {
        let id = self.id;
        if id.task == Task::FrankaKitchen {
            return load_kitchen_model();
        }
        let (file, model) = match self.maze()? {
            Some(maze) => {
                let xml = maze.mjcf(&read_model_text(ANT_XML)?)?;
                let model = MjModel::from_xml_string(&xml).map_err(|e| {
                    EnvError::Invalid(format!("MuJoCo could not load {id}'s maze model: {e}"))
                })?;
                (ANT_XML, model)
            }
            None => {
                let spec = Spec::of(id).expect("a locomotion task");
                (spec.xml, load_model(spec.xml)?)
            }
        };
        let ffi = model.ffi();
        let got = (ffi.nq as usize, ffi.nv as usize, ffi.nu as usize);
        if got != expected_sizes(id.task) {
            let (nq, nv, nu) = expected_sizes(id.task);
            return Err(EnvError::Invalid(format!(
                "{file} in {} has nq, nv, nu = {got:?}, but {id} needs ({nq}, {nv}, {nu}): it is \
                 not Gymnasium's model (run `cargo xtask setup`, or fix OFQL_MODELS_DIR)",
                crate::models::models_dir().display()
            )));
        }
        Ok(Arc::new(model))
    }

    /// An environment on a model from `self.load_model()`.
    pub fn make(&self, model: Arc<MjModel>) -> Result<Env, EnvError> {
        if self.id.task == Task::FrankaKitchen {
            kitchen::check_layout(&model).map_err(|e| {
                EnvError::Invalid(format!(
                    "the model given for {self} is not the kitchen's ({e}): load it with \
                     EnvConfig::load_model"
                ))
            })?;
        }
        let mut env = Env::with_model(self.id, model);
        if let Kind::Kitchen(state) = &mut env.kind {
            // The options change the noise of the observation drawn at creation: draw it again.
            let data = &env.data;
            **state = KitchenState::new(data.model(), data.qpos(), data.qvel(), &self.kitchen)?;
        }
        if let (Kind::AntMaze(state), Some(maze)) = (&mut env.kind, self.maze()?) {
            // The walls' geoms follow the floor, in the map's order: compare their x, y.
            let walls = maze.walls();
            let model = env.data.model();
            let geoms = model.geom_pos().get(WALLS_FROM_GEOM..WALLS_FROM_GEOM + walls.len());
            let same = model.ffi().ngeom as usize == WALLS_FROM_GEOM + walls.len() + ANT_BODY_GEOMS
                && geoms.is_some_and(|geoms| {
                    geoms.iter().zip(&walls).all(|(g, w)| g[0] == w[0] && g[1] == w[1])
                });
            if !same {
                return Err(EnvError::Invalid(format!(
                    "the model given for {self} was not built from its maze map (load it with \
                     EnvConfig::load_model)"
                )));
            }
            state.maze = maze;
            state.options = self.maze.clone();
        }
        Ok(env)
    }

    /// Load the model and make one environment.
    pub fn make_one(&self) -> Result<Env, EnvError> {
        self.make(self.load_model()?)
    }
}

/// The kitchen's model from Gymnasium-Robotics' assets, checked: sizes, robot joints, and the
/// robot's limits and noise amplitudes in franka_config.xml.
fn load_kitchen_model() -> Result<Arc<MjModel>, EnvError> {
    let model = load_robotics_model(kitchen::KITCHEN_MODEL)?;
    let config = robotics_asset(kitchen::FRANKA_CONFIG)?;
    let checked = std::fs::read_to_string(&config)
        .map_err(|e| format!("cannot read {}: {e}", config.display()))
        .and_then(|xml| kitchen::check_model(&model, &xml));
    checked.map_err(|e| {
        EnvError::Invalid(format!(
            "{} is not Gymnasium-Robotics 1.4.2's kitchen ({e}): run `cargo xtask setup`, or fix \
             OFQL_ROBOTICS_ASSETS_DIR",
            crate::models::robotics_assets_dir().join(kitchen::KITCHEN_MODEL).display()
        ))
    })?;
    Ok(Arc::new(model))
}

/// Load the model of an environment with its registered options.
pub fn load_env_model(id: EnvId) -> Result<Arc<MjModel>, EnvError> {
    EnvConfig::from(id).load_model()
}

impl Env {
    pub fn new(id: EnvId) -> Result<Env, EnvError> {
        Ok(Env::with_model(id, load_env_model(id)?))
    }

    /// An environment on an already loaded model (from `load_env_model(id)`).
    ///
    /// # Panics
    /// For FrankaKitchen-v1, when the model is not the kitchen's (load it with
    /// `load_env_model`, which checks it).
    pub fn with_model(id: EnvId, model: Arc<MjModel>) -> Env {
        if id.task == Task::FrankaKitchen {
            let data = MjData::new(model);
            let options = KitchenOptions::default();
            let state = KitchenState::new(data.model(), data.qpos(), data.qvel(), &options)
                .expect("the kitchen's model (from load_env_model)");
            // `KitchenEnv.__init__` replaces the reset state; the velocities reset to zero.
            let init_qvel = vec![0.0; data.qvel().len()];
            return Env {
                id,
                dt: data.model().opt().timestep * kitchen::FRAME_SKIP as f64,
                kind: Kind::Kitchen(Box::new(state)),
                frame_skip: kitchen::FRAME_SKIP,
                data,
                init_qpos: kitchen::INIT_QPOS.to_vec(),
                init_qvel,
                elapsed_steps: 0,
            };
        }
        let (kind, frame_skip) = match id.task {
            Task::AntMaze(map) => {
                let state = MazeState {
                    maze: Maze::ant(map),
                    options: MazeOptions::default(),
                    rng: NpRandom::new(0),
                    goal: [0.0; 2],
                    max_episode_steps: map.max_episode_steps(),
                };
                (Kind::AntMaze(Box::new(state)), ANT_FRAME_SKIP)
            }
            _ => {
                let spec = Spec::of(id).expect("a locomotion task");
                (Kind::Locomotion(spec), spec.frame_skip)
            }
        };
        let dt = model.opt().timestep * frame_skip as f64;
        let data = MjData::new(model);
        // Gymnasium keeps the state of a fresh MjData as the reset centre.
        let init_qpos = data.qpos().to_vec();
        let init_qvel = data.qvel().to_vec();
        Env { id, kind, frame_skip, data, init_qpos, init_qvel, dt, elapsed_steps: 0 }
    }

    pub fn id(&self) -> EnvId {
        self.id
    }
    /// The locomotion constants (`None` for a maze or the kitchen).
    pub fn spec(&self) -> Option<&Spec> {
        match &self.kind {
            Kind::Locomotion(spec) => Some(spec),
            Kind::AntMaze(_) | Kind::Kitchen(_) => None,
        }
    }
    /// The time limit (Gymnasium's `max_episode_steps`).
    pub fn max_episode_steps(&self) -> usize {
        match &self.kind {
            Kind::Locomotion(_) => MAX_EPISODE_STEPS,
            Kind::AntMaze(state) => state.max_episode_steps,
            Kind::Kitchen(state) => state.max_episode_steps(),
        }
    }
    pub fn obs_dim(&self) -> usize {
        match &self.kind {
            Kind::Locomotion(_) => self.nq() - 1 + self.nv(),
            Kind::AntMaze(state) if state.options.goal_reaching => self.nq() - 2 + self.nv() + 2,
            Kind::AntMaze(state) => {
                self.nq() + self.nv() + if state.options.goal_in_observation { 2 } else { 0 }
            }
            Kind::Kitchen(_) => kitchen::OBS_DIM,
        }
    }
    /// The maze's current goal (`desired_goal`), `None` for locomotion and the kitchen.
    pub fn goal(&self) -> Option<[f64; 2]> {
        match &self.kind {
            Kind::AntMaze(state) => Some(state.goal),
            Kind::Locomotion(_) | Kind::Kitchen(_) => None,
        }
    }
    /// Put a maze's goal here (a replay of recorded data sets each row's goal).
    pub fn set_goal(&mut self, goal: [f64; 2]) -> Result<(), EnvError> {
        match &mut self.kind {
            Kind::AntMaze(state) => {
                state.goal = goal;
                Ok(())
            }
            Kind::Locomotion(_) | Kind::Kitchen(_) => {
                Err(EnvError::Invalid(format!("{} has no goal position", self.id)))
            }
        }
    }

    /// Within `GOAL_RADIUS` of the maze's goal (`info["success"]`); in the kitchen, every task
    /// of the episode completed so far; `false` for locomotion.
    pub fn is_success(&self) -> bool {
        if let Kind::Kitchen(state) = &self.kind {
            return state.all_completed();
        }
        let xy = [self.data.qpos()[0], self.data.qpos()[1]];
        self.goal().is_some_and(|goal| distance(xy, goal) <= GOAL_RADIUS)
    }
    /// The kitchen's state: its options, the tasks left, completed in the last step and in
    /// the episode (`info`), the last observation. `None` for the other environments.
    pub fn kitchen(&self) -> Option<&KitchenState> {
        match &self.kind {
            Kind::Kitchen(state) => Some(state),
            _ => None,
        }
    }
    /// The kitchen's `achieved_goal`: each task of the episode with its joints' current
    /// (noise-free) positions, in the options' order. `None` for the other environments.
    pub fn kitchen_achieved_goals(&self) -> Option<Vec<(KitchenTask, Vec<f64>)>> {
        let qpos = self.data.qpos();
        self.kitchen().map(|k| k.tasks().iter().map(|&t| (t, t.achieved(qpos))).collect())
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
    /// The controls of the last step (MuJoCo's `data.ctrl`: the action, or the kitchen's
    /// position targets).
    pub fn ctrl(&self) -> &[f64] {
        self.data.ctrl()
    }
    pub fn elapsed_steps(&self) -> usize {
        self.elapsed_steps
    }
    /// The action space's bounds, (low, high) per action dimension: the actuators' control
    /// ranges, except for the kitchen, whose actions are joint velocities in [-1, 1].
    pub fn action_bounds(&self) -> Vec<(f64, f64)> {
        if let Kind::Kitchen(_) = self.kind {
            return vec![(-1.0, 1.0); self.act_dim()];
        }
        self.data.model().actuator_ctrlrange().iter().map(|r| (r[0], r[1])).collect()
    }

    /// Gymnasium's `reset`: `mj_resetData`, then the initial state plus noise (nq draws for
    /// qpos, then nv for qvel), then `mj_forward`. A maze or the kitchen takes a seed from
    /// `rng` and resets as `reset(seed=...)` does in Python (`reset_with_seed`).
    pub fn reset<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Vec<f64> {
        let spec = match &self.kind {
            Kind::Locomotion(spec) => *spec,
            Kind::AntMaze(_) | Kind::Kitchen(_) => {
                let seed = rng.random::<u64>();
                return self
                    .reset_with_seed(Some(seed))
                    .expect("Maze::from_rows checked the cells; the kitchen's reset cannot fail");
            }
        };
        self.data.reset();
        let mut uniform = |s: f64| -s + (s - -s) * rng.random::<f64>(); // NumPy's formula
        let qpos: Vec<f64> = match spec.reset_noise {
            ResetNoise::Uniform { scale } | ResetNoise::UniformPosNormalVel { scale } => {
                self.init_qpos.iter().map(|q| q + uniform(scale)).collect()
            }
        };
        let qvel: Vec<f64> = match spec.reset_noise {
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

    /// `reset(seed=seed)` as Gymnasium-Robotics does it: `Some(seed)` reseeds NumPy's
    /// generator, `None` goes on with it. A maze then draws the goal cell + noise, the start
    /// cell (away from the goal) + noise, and puts the ant at rest at the start (Ant-v4 with no
    /// reset noise). The kitchen: `mj_resetData`, `set_state(init_qpos, zeros)`, then the
    /// observation's noise (robot then objects), and every task to do.
    pub fn reset_with_seed(&mut self, seed: Option<u64>) -> Result<Vec<f64>, EnvError> {
        if let Kind::Kitchen(state) = &mut self.kind {
            state.seed(seed);
            let (qpos, qvel) = (self.init_qpos.clone(), self.init_qvel.clone());
            return Ok(self.start_kitchen_episode(&qpos, &qvel));
        }
        let Kind::AntMaze(state) = &mut self.kind else {
            return Err(EnvError::Invalid(format!(
                "{} is not a maze or the kitchen: use reset(rng)",
                self.id
            )));
        };
        if let Some(seed) = seed {
            state.rng = NpRandom::new(seed);
        }
        let goal = state.maze.draw_goal_cell(&mut state.rng);
        state.goal = state.maze.add_position_noise(&mut state.rng, goal);
        let start = state.maze.draw_reset_cell(&mut state.rng, state.goal)?;
        let start = state.maze.add_position_noise(&mut state.rng, start);
        let mut qpos = self.init_qpos.clone();
        qpos[..2].copy_from_slice(&start);
        let qvel = self.init_qvel.clone();
        self.data.reset();
        self.write_state(&qpos, &qvel);
        self.elapsed_steps = 0;
        Ok(self.observation())
    }

    /// Gymnasium's `reset()` followed by `set_state(qpos, qvel)`: a new episode that starts
    /// in exactly this state (the solver's warm start is cleared as by a reset). The kitchen
    /// draws its observation's noise for this state (continuing its generator) and resets its
    /// tasks, as `reset` does for its own start state.
    pub fn reset_to_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<Vec<f64>, EnvError> {
        self.check_state(qpos, qvel)?;
        if let Kind::Kitchen(_) = self.kind {
            return Ok(self.start_kitchen_episode(qpos, qvel));
        }
        self.data.reset();
        self.write_state(qpos, qvel);
        self.elapsed_steps = 0;
        Ok(self.observation())
    }

    /// The kitchen's reset from `mj_resetData` on, in this state.
    fn start_kitchen_episode(&mut self, qpos: &[f64], qvel: &[f64]) -> Vec<f64> {
        self.data.reset();
        self.write_state(qpos, qvel);
        self.elapsed_steps = 0;
        let Kind::Kitchen(state) = &mut self.kind else { unreachable!("only for the kitchen") };
        state.begin_episode(self.data.qpos(), self.data.qvel());
        state.observation().to_vec()
    }

    /// Gymnasium's `set_state`: overwrite qpos and qvel, then `mj_forward`. The episode's
    /// step count is kept. The kitchen draws no observation here (as in Python): its
    /// observation stays the last one drawn until the next step.
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

    /// The current observation: qpos[1:] then qvel (clipped to +-10 for Hopper, Walker2d); for
    /// a maze qpos then qvel (= achieved_goal then observation), then the goal if asked for;
    /// for the kitchen its noisy 59-number `observation` as last drawn (by a reset or step).
    pub fn observation(&self) -> Vec<f64> {
        let mut obs = vec![0.0; self.obs_dim()];
        self.observe_into(&mut obs);
        obs
    }

    /// Write the observation into `obs` (length `obs_dim`).
    pub fn observe_into(&self, obs: &mut [f64]) {
        let (qpos, qvel) = (self.data.qpos(), self.data.qvel());
        match &self.kind {
            Kind::Locomotion(spec) => {
                let (pos, vel) = obs.split_at_mut(qpos.len() - 1);
                pos.copy_from_slice(&qpos[1..]);
                match spec.obs_velocity_clip {
                    Some(c) => vel.iter_mut().zip(qvel).for_each(|(o, v)| *o = v.clamp(-c, c)),
                    None => vel.copy_from_slice(qvel),
                }
            }
            Kind::AntMaze(state) if state.options.goal_reaching => {
                let (pos, rest) = obs.split_at_mut(qpos.len() - 2);
                pos.copy_from_slice(&qpos[2..]);
                let (vel, to_goal) = rest.split_at_mut(qvel.len());
                vel.copy_from_slice(qvel);
                to_goal.copy_from_slice(&crate::maze::heading_offset(qpos, state.goal));
            }
            Kind::AntMaze(state) => {
                let (pos, rest) = obs.split_at_mut(qpos.len());
                pos.copy_from_slice(qpos);
                let (vel, goal) = rest.split_at_mut(qvel.len());
                vel.copy_from_slice(qvel);
                goal.copy_from_slice(&state.goal[..goal.len()]);
            }
            Kind::Kitchen(state) => obs.copy_from_slice(state.observation()),
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
            success: info.success,
        })
    }

    /// Gymnasium's `step` writing the next observation into `obs`. The action is not clipped
    /// (Gymnasium does not clip): MuJoCo clamps the control to the actuator's range, and the
    /// control cost is paid on the action as given. The kitchen clips its velocity actions to
    /// [-1, 1] and turns them into position targets (`kitchen.rs`).
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
        let (x_before, y_before) = (self.data.qpos()[0], self.data.qpos()[1]);
        if let Kind::Kitchen(state) = &self.kind {
            state.write_ctrl(action, self.dt, self.data.ctrl_mut());
        } else {
            for (ctrl, a) in self.data.ctrl_mut().iter_mut().zip(action) {
                *ctrl = a.to_f64();
            }
        }
        for _ in 0..self.frame_skip {
            self.data.step();
        }
        // Gymnasium then calls mj_rnePostConstraint, which only fills cacc/cfrc_*: outputs no
        // observation, reward or later step of these environments reads (the parity test
        // checks that the trajectories stay identical), so it is skipped to save its cost.
        self.elapsed_steps += 1;
        let spec = match &mut self.kind {
            Kind::Locomotion(spec) => *spec,
            Kind::AntMaze(state) => {
                let step = Moved {
                    xy_before: [x_before, y_before],
                    qpos: self.data.qpos(),
                    qvel: self.data.qvel(),
                    action_sq: action.iter().map(|a| a.to_f64() * a.to_f64()).sum(),
                    dt: self.dt,
                };
                let info = state.after_step(&step, self.elapsed_steps);
                self.observe_into(obs);
                // update_goal comes after the observation: it shows the goal just reached.
                if let Kind::AntMaze(state) = &mut self.kind {
                    state.update_goal([self.data.qpos()[0], self.data.qpos()[1]]);
                }
                return Ok(info);
            }
            Kind::Kitchen(state) => {
                let info = state.after_step(self.data.qpos(), self.data.qvel(), self.elapsed_steps);
                obs.copy_from_slice(state.observation());
                return Ok(info);
            }
        };
        let x_velocity = (self.data.qpos()[0] - x_before) / self.dt;

        let forward_reward = spec.forward_reward_weight * x_velocity;
        let ctrl_cost = A::ctrl_cost(spec.ctrl_cost_weight, action);
        let (reward, terminated) = match &spec.health {
            None => (forward_reward - ctrl_cost, false),
            Some(health) => {
                let healthy = health.is_healthy(self.data.qpos(), self.data.qvel());
                let healthy_reward = if healthy || !health.reward_only_while_healthy {
                    spec.healthy_reward
                } else {
                    0.0
                };
                ((forward_reward + healthy_reward) - ctrl_cost, !healthy)
            }
        };
        self.observe_into(obs);
        let truncated = self.elapsed_steps >= MAX_EPISODE_STEPS;
        Ok(StepInfo { reward, terminated, truncated, success: false, goal_distance: None })
    }
}

/// What one step's physics left behind, for a maze's reward.
struct Moved<'a> {
    xy_before: [f64; 2],
    qpos: &'a [f64],
    qvel: &'a [f64],
    /// sum(a^2) of the action.
    action_sq: f64,
    dt: f64,
}

impl MazeState {
    /// AntMaze's reward, termination and truncation after the physics of one step (or the
    /// goal-reaching task's reward and termination, when that option is on).
    fn after_step(&self, step: &Moved, elapsed_steps: usize) -> StepInfo {
        let xy = [step.qpos[0], step.qpos[1]];
        let d = distance(xy, self.goal);
        let success = d <= GOAL_RADIUS;
        let (reward, terminated) = if self.options.goal_reaching {
            let speed = (distance(step.xy_before, self.goal) - d) / step.dt;
            let healthy = step.qpos.iter().chain(step.qvel).all(|x| x.is_finite())
                && (ANT_HEALTHY_Z.0..=ANT_HEALTHY_Z.1).contains(&step.qpos[2]);
            (speed + 1.0 - 0.5 * step.action_sq, !healthy)
        } else {
            let reward = match self.options.reward {
                MazeReward::Sparse => f64::from(u8::from(success)),
                MazeReward::Dense => (-d).exp(),
            };
            (reward, !self.options.continuing_task && success)
        };
        StepInfo {
            reward,
            terminated,
            truncated: elapsed_steps >= self.max_episode_steps,
            success,
            goal_distance: Some(d),
        }
    }

    /// `update_goal`: in a continuing task with `reset_target`, a reached goal is replaced by
    /// new goals (cell + noise) until one is out of reach.
    fn update_goal(&mut self, achieved: [f64; 2]) {
        let reached = |goal| distance(achieved, goal) <= GOAL_RADIUS;
        if self.options.continuing_task
            && self.options.reset_target
            && reached(self.goal)
            && self.maze.goal_locations().len() > 1
        {
            while reached(self.goal) {
                let cell = self.maze.draw_goal_cell(&mut self.rng);
                self.goal = self.maze.add_position_noise(&mut self.rng, cell);
            }
        }
    }
}
