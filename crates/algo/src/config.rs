//! The run configuration: every constant of the method is a field here (spec sections 2-7).
//! Files are TOML; unknown keys and out-of-range values are errors that name the key.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Which method trains (`crate::agent::METHODS`).
    pub algo: AlgoConfig,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub actor: ActorConfig,
    pub critic: CriticConfig,
    /// Diffusion-QL's own keys (`algo.name = "dql"`).
    pub dql: DqlConfig,
    /// Flow Q-Learning's own keys (`algo.name = "fql"`).
    pub fql: FqlConfig,
    pub eval: EvalConfig,
}

/// The method. `[actor]` and `[critic]` hold OFQL's networks and losses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgoConfig {
    pub name: String,
}

/// What to train on and where to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// A registry name (e.g. "halfcheetah-medium-v2") or a file path.
    pub dataset: String,
    /// Evaluation environment (e.g. "halfcheetah-v4"); empty: derived from the dataset name.
    pub env: String,
    /// "return_range" (MuJoCo; IQL's and CleanDiffuser's): rewards times 1000 / (max - min
    /// episode return of the dataset), computed from the file; "none": raw rewards.
    pub reward_norm: String,
    /// Then r <- (r + reward_shift) * reward_scale (AntMaze: CleanDiffuser's -1, 1, or DQL's
    /// -0.5, 4).
    pub reward_shift: f64,
    pub reward_scale: f64,
    /// Gaussian-normalise s and s' with the dataset's mean and std (and what the policy sees
    /// at evaluation, from the statistics saved in the checkpoint).
    pub normalize_obs: bool,
    /// Use the file's `next_observations` instead of obs[i + 1] when it has them.
    pub use_next_observations: bool,
    /// A maze dataset's goals: "recorded" (each episode's own, as the file holds them) or
    /// "evaluation" (D4RL's task: every episode's goal drawn as the evaluation draws its goal,
    /// the rewards recomputed for it; `ofql_data::goals`).
    pub goal: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    pub seed: u64,
    /// Evaluate every this many steps (and at the end); 0 disables evaluation.
    pub eval_every: u64,
    pub checkpoint_every: u64,
    /// A metrics row every this many steps.
    pub log_every: u64,
    /// Both learning rates over the run: "cosine" from their value down to `lr_floor` at
    /// `steps` (DQL's), or "constant".
    pub lr_schedule: String,
    pub lr_floor: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActorConfig {
    pub lr: f64,
    /// Weight of the Q term against the flow loss.
    pub eta: f64,
    /// P(t = r) in the MeanFlow loss.
    pub flow_ratio: f64,
    /// k in the sinusoidal time embedding cos/sin(k t f).
    pub time_scale: f64,
    /// Sinusoid features per time (even), and the hidden width of the time MLP that maps
    /// them (dim -> hidden -> Mish -> dim).
    pub time_dim: usize,
    pub time_hidden: usize,
    /// One time MLP for t and r (true), or one each.
    pub share_time_mlp: bool,
    /// (t, r) drawn from sigmoid(N(time_mu, time_sigma)) (MeanFlow's logit-normal).
    pub time_mu: f64,
    pub time_sigma: f64,
    /// Global gradient-norm clip; 0 turns clipping off (CleanDiffuser's pipeline).
    pub grad_norm: f64,
    pub ema_decay: f64,
    pub ema_every: u64,
    pub ema_start: u64,
    /// The EMA actor before `ema_start`: "copy" the actor at every EMA step (DQL's code) or
    /// "hold" its initial weights (CleanDiffuser's pipeline).
    pub ema_warmup: String,
    pub hidden: usize,
    pub layers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriticConfig {
    pub lr: f64,
    pub gamma: f64,
    /// Polyak weight of the online critics in each target step: target <- (1 - tau) target +
    /// tau critic.
    pub tau: f64,
    /// A target step every this many updates (DQL: 1 with tau 0.005; CleanDiffuser's
    /// pipeline: 5 with tau 0.995).
    pub target_every: u64,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub grad_norm: f64,
    pub max_q_backup: bool,
    /// Samples per next state for the max-Q backup.
    pub max_q_samples: usize,
    /// Upper bound on the bootstrapped value in the TD target (none by default). With rewards
    /// that are never positive (AntMaze's r - 1) no true Q exceeds 0, so 0 keeps the
    /// target from following a critic that over-estimates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q_max: Option<f64>,
    pub hidden: usize,
    /// Hidden layers of each Q network.
    pub layers: usize,
}

/// Diffusion-QL's keys; its networks, learning rates, clipping and EMA are `[actor]`'s and
/// `[critic]`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DqlConfig {
    /// Weight of the Q term against the noise-prediction loss (DQL: 1.0 for locomotion).
    pub eta: f64,
    /// Diffusion steps T (DQL: 5).
    pub steps: usize,
    /// Sinusoid features of the step and the hidden width of its MLP (DQL: 16, 32).
    pub time_dim: usize,
    pub time_hidden: usize,
}

/// Flow Q-Learning's keys (FQL's code's defaults); its discount is `critic.gamma`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FqlConfig {
    /// Weight of the distillation loss (FQL's alpha).
    pub alpha: f64,
    /// Euler steps of the BC flow for the distillation target.
    pub flow_steps: usize,
    /// Every network's hidden layers (FQL: 4 x 512, GELU).
    pub hidden: usize,
    pub layers: usize,
    pub actor_layer_norm: bool,
    pub critic_layer_norm: bool,
    /// How the target takes the two critics: "mean" or "min".
    pub q_agg: String,
    /// Divide the Q loss by mean |Q| (detached).
    pub normalize_q_loss: bool,
    /// One Adam over all networks, constant rate.
    pub lr: f64,
    /// Polyak weight of the target critics, every step.
    pub tau: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    pub protocol: EvalProtocol,
    pub episodes: usize,
    pub parallel_envs: usize,
    pub candidates: usize,
    pub temperature: f64,
    /// w in softmax(w * min Q) over the candidates.
    pub q_weight: f64,
    /// With the cleandiffuser protocol, every in-training evaluation also scores one plain
    /// sample per state (reported as `plain_score_*`), so a curve shows whether the
    /// Q-weighted choice helps.
    pub also_plain: bool,
}

/// How actions are chosen in an evaluation: the name a config (`eval.protocol`) and
/// `ofql eval --protocol` take. The numbers that go with it are [`EvalConfig`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvalProtocol {
    /// `candidates` samples at noise `temperature`, one drawn by softmax(`q_weight` * min Q)
    /// (CleanDiffuser's, the paper's).
    Cleandiffuser,
    /// One sample at temperature 1, no critic.
    Plain,
}

impl std::str::FromStr for EvalProtocol {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cleandiffuser" => Ok(EvalProtocol::Cleandiffuser),
            "plain" => Ok(EvalProtocol::Plain),
            other => Err(format!("unknown protocol `{other}`: use cleandiffuser or plain")),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            algo: AlgoConfig { name: "ofql".into() },
            data: DataConfig {
                dataset: String::new(),
                env: String::new(),
                reward_norm: "return_range".into(),
                reward_shift: 0.0,
                reward_scale: 1.0,
                normalize_obs: true,
                use_next_observations: false,
                goal: "recorded".into(),
            },
            train: TrainConfig {
                steps: 2_000_000,
                batch_size: 256,
                seed: 0,
                eval_every: 50_000,
                checkpoint_every: 10_000,
                log_every: 100,
                lr_schedule: "cosine".into(),
                lr_floor: 0.0,
            },
            actor: ActorConfig {
                lr: 3e-4,
                eta: 0.1,
                flow_ratio: 0.5,
                time_scale: 1.0,
                time_dim: 64,
                time_hidden: 128,
                share_time_mlp: true,
                time_mu: -0.4,
                time_sigma: 1.0,
                grad_norm: 9.0,
                ema_decay: 0.995,
                ema_every: 5,
                ema_start: 1000,
                ema_warmup: "copy".into(),
                hidden: 256,
                layers: 3,
            },
            critic: CriticConfig {
                lr: 3e-4,
                gamma: 0.99,
                tau: 0.005,
                target_every: 1,
                grad_norm: 9.0,
                max_q_backup: false,
                max_q_samples: 10,
                q_max: None,
                hidden: 256,
                layers: 3,
            },
            dql: DqlConfig { eta: 1.0, steps: 5, time_dim: 16, time_hidden: 32 },
            fql: FqlConfig {
                alpha: 10.0,
                flow_steps: 10,
                hidden: 512,
                layers: 4,
                actor_layer_norm: false,
                critic_layer_norm: true,
                q_agg: "mean".into(),
                normalize_q_loss: false,
                lr: 3e-4,
                tau: 0.005,
            },
            eval: EvalConfig {
                protocol: EvalProtocol::Cleandiffuser,
                episodes: 150,
                parallel_envs: 50,
                candidates: 50,
                temperature: 0.5,
                q_weight: 50.0,
                also_plain: true,
            },
        }
    }
}

impl Default for AlgoConfig {
    fn default() -> Self {
        Config::default().algo
    }
}
impl Default for DataConfig {
    fn default() -> Self {
        Config::default().data
    }
}
impl Default for TrainConfig {
    fn default() -> Self {
        Config::default().train
    }
}
impl Default for ActorConfig {
    fn default() -> Self {
        Config::default().actor
    }
}
impl Default for CriticConfig {
    fn default() -> Self {
        Config::default().critic
    }
}
impl Default for DqlConfig {
    fn default() -> Self {
        Config::default().dql
    }
}
impl Default for FqlConfig {
    fn default() -> Self {
        Config::default().fql
    }
}
impl Default for EvalConfig {
    fn default() -> Self {
        Config::default().eval
    }
}

impl Config {
    /// Parse TOML and validate; errors name the offending key.
    pub fn from_toml(text: &str) -> Result<Config> {
        Self::from_toml_with(text, &[])
    }

    /// Read a config file, apply `key=value` overrides (e.g. `actor.eta=0.3`), validate.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml_with(&text, overrides)
            .with_context(|| format!("in config file {}", path.display()))
    }

    /// Parse TOML, apply dotted `key=value` overrides, then validate. Overrides go through the
    /// same typed, `deny_unknown_fields` parsing as the file, so a typo is an error too.
    pub fn from_toml_with(text: &str, overrides: &[String]) -> Result<Config> {
        let mut table: toml::Table = toml::from_str(text)?;
        for item in overrides {
            set_dotted(&mut table, item)?;
        }
        let config: Config = toml::Value::Table(table).try_into()?;
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML, as saved next to every run.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// Every number has a range (with upper bounds that keep allocations and run times sane,
    /// and no NaN or infinity); every string one of its values. Errors name the key.
    pub fn validate(&self) -> Result<()> {
        /// `lo <= value <= hi` (`open_lo`: `lo < value`); false for NaN.
        fn within<T: PartialOrd + std::fmt::Display + Copy>(
            key: &str,
            value: T,
            (lo, open_lo): (T, bool),
            hi: T,
        ) -> Result<()> {
            let above = if open_lo { value > lo } else { value >= lo };
            if !(above && value <= hi) {
                let bracket = if open_lo { "(" } else { "[" };
                bail!(
                    "config value {key} = {value} is out of range: it must be in {bracket}{lo}, {hi}]"
                );
            }
            Ok(())
        }
        fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<()> {
            if !allowed.contains(&value) {
                bail!(
                    "config value {key} = {value} is out of range: it must be one of {}",
                    allowed.join(", ")
                );
            }
            Ok(())
        }
        const STEPS: u64 = 10_000_000_000;
        const SIZE: usize = 65_536;
        let (d, t, a, c, e) = (&self.data, &self.train, &self.actor, &self.critic, &self.eval);
        one_of("algo.name", &self.algo.name, &crate::agent::METHODS)?;
        one_of("data.reward_norm", &d.reward_norm, &["return_range", "none"])?;
        one_of("data.goal", &d.goal, &["recorded", "evaluation"])?;
        within("data.reward_shift", d.reward_shift, (-1e6, false), 1e6)?;
        within("data.reward_scale", d.reward_scale, (0.0, true), 1e6)?;
        within("train.steps", t.steps, (0, true), STEPS)?;
        within("train.batch_size", t.batch_size, (0, true), 1_000_000)?;
        within("train.eval_every", t.eval_every, (0, false), STEPS)?;
        within("train.checkpoint_every", t.checkpoint_every, (0, true), STEPS)?;
        within("train.log_every", t.log_every, (0, true), STEPS)?;
        one_of("train.lr_schedule", &t.lr_schedule, &["cosine", "constant"])?;
        within("train.lr_floor", t.lr_floor, (0.0, false), a.lr.min(c.lr))?;
        within("actor.lr", a.lr, (0.0, true), 1.0)?;
        within("actor.eta", a.eta, (0.0, false), 1e6)?;
        within("actor.flow_ratio", a.flow_ratio, (0.0, false), 1.0)?;
        within("actor.time_scale", a.time_scale, (0.0, true), 1e6)?;
        within("actor.time_dim", a.time_dim, (2, false), SIZE)?;
        if !a.time_dim.is_multiple_of(2) {
            bail!("config value actor.time_dim = {} must be even (cos and sin pairs)", a.time_dim);
        }
        within("actor.time_hidden", a.time_hidden, (0, true), SIZE)?;
        within("actor.time_mu", a.time_mu, (-20.0, false), 20.0)?;
        within("actor.time_sigma", a.time_sigma, (0.0, true), 20.0)?;
        within("actor.grad_norm", a.grad_norm, (0.0, false), 1e9)?;
        within("actor.ema_decay", a.ema_decay, (0.0, false), 1.0 - f64::EPSILON)?;
        within("actor.ema_every", a.ema_every, (0, true), STEPS)?;
        within("actor.ema_start", a.ema_start, (0, false), STEPS)?;
        one_of("actor.ema_warmup", &a.ema_warmup, &["copy", "hold"])?;
        within("actor.hidden", a.hidden, (0, true), SIZE)?;
        within("actor.layers", a.layers, (0, true), 64)?;
        within("critic.lr", c.lr, (0.0, true), 1.0)?;
        within("critic.gamma", c.gamma, (0.0, false), 1.0)?;
        within("critic.tau", c.tau, (0.0, true), 1.0)?;
        within("critic.target_every", c.target_every, (0, true), STEPS)?;
        within("critic.grad_norm", c.grad_norm, (0.0, false), 1e9)?;
        within("critic.max_q_samples", c.max_q_samples, (0, true), 1024)?;
        if let Some(m) = c.q_max {
            within("critic.q_max", m, (-1e9, false), 1e9)?;
        }
        within("critic.hidden", c.hidden, (0, true), SIZE)?;
        within("critic.layers", c.layers, (0, true), 64)?;
        within("dql.eta", self.dql.eta, (0.0, false), 1e6)?;
        within("dql.steps", self.dql.steps, (0, true), 1000)?;
        within("dql.time_dim", self.dql.time_dim, (2, false), SIZE)?;
        if !self.dql.time_dim.is_multiple_of(2) {
            bail!(
                "config value dql.time_dim = {} must be even (cos and sin pairs)",
                self.dql.time_dim
            );
        }
        within("dql.time_hidden", self.dql.time_hidden, (0, true), SIZE)?;
        let f = &self.fql;
        within("fql.alpha", f.alpha, (0.0, false), 1e6)?;
        within("fql.flow_steps", f.flow_steps, (0, true), 1000)?;
        within("fql.hidden", f.hidden, (0, true), SIZE)?;
        within("fql.layers", f.layers, (0, true), 64)?;
        one_of("fql.q_agg", &f.q_agg, &["mean", "min"])?;
        within("fql.lr", f.lr, (0.0, true), 1.0)?;
        within("fql.tau", f.tau, (0.0, true), 1.0)?;
        within("eval.episodes", e.episodes, (0, true), 1_000_000)?;
        within("eval.parallel_envs", e.parallel_envs, (0, true), 10_000)?;
        within("eval.candidates", e.candidates, (0, true), 100_000)?;
        within("eval.temperature", e.temperature, (0.0, true), 1e3)?;
        within("eval.q_weight", e.q_weight, (0.0, false), 1e6)?;
        Ok(())
    }
}

/// Set `a.b.c=value` in a TOML table. The value is parsed as a TOML value (number, bool,
/// quoted string, array) and taken as a bare string when it is not one.
fn set_dotted(table: &mut toml::Table, item: &str) -> Result<()> {
    let (key, raw) = item
        .split_once('=')
        .with_context(|| format!("override `{item}` must look like section.key=value"))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty()).context("empty override key")?;
    let mut node = table;
    for part in parts {
        node = node
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .with_context(|| format!("override `{key}`: `{part}` is not a section"))?;
    }
    node.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_the_spec_defaults() {
        let c = Config::from_toml("[actor]\neta = 0.3\n[critic]\ngrad_norm = 2.0\n").unwrap();
        assert_eq!(c.actor.eta, 0.3);
        assert_eq!(c.critic.grad_norm, 2.0);
        assert_eq!(c.actor.flow_ratio, 0.5);
        assert_eq!(c.critic.gamma, 0.99);
        assert_eq!(c.train.batch_size, 256);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let err = Config::from_toml("[actor]\netta = 0.3\n").unwrap_err().to_string();
        assert!(err.contains("etta"), "{err}");
        let err = Config::from_toml("[actor]\nflow_ratio = 1.5\n").unwrap_err().to_string();
        assert!(err.contains("actor.flow_ratio"), "{err}");
        let err = Config::from_toml("[critic]\ngamma = -0.1\n").unwrap_err().to_string();
        assert!(err.contains("critic.gamma"), "{err}");
        let err = Config::from_toml("[eval]\nprotocol = \"greedy\"\n").unwrap_err().to_string();
        assert!(err.contains("eval.protocol"), "{err}");
    }

    #[test]
    fn overrides_are_typed_and_checked() {
        let set = |items: &[&str]| {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            Config::from_toml_with("[actor]\neta = 0.1\n", &items)
        };
        let c =
            set(&["actor.eta=0.3", "train.steps=500", "data.dataset=hopper-medium-v2"]).unwrap();
        assert_eq!(c.actor.eta, 0.3);
        assert_eq!(c.train.steps, 500);
        assert_eq!(c.data.dataset, "hopper-medium-v2");
        assert!(format!("{:#}", set(&["actor.etaa=0.3"]).unwrap_err()).contains("etaa"));
        assert!(format!("{:#}", set(&["train.steps=-5"]).unwrap_err()).contains("steps"));
        assert!(format!("{:#}", set(&["actor.eta"]).unwrap_err()).contains("section.key=value"));
    }

    /// Generated from the config's own keys, so a new key cannot skip its range: every
    /// number refuses NaN, infinity, a huge value and a negative one (except where the
    /// whole type's range is meaningful), and every string an unknown word, each with an
    /// error naming the key.
    #[test]
    fn every_key_refuses_out_of_range_values() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        let mut checked = 0;
        for (section, keys) in &defaults {
            for (key, value) in keys.as_table().unwrap() {
                let name = format!("{section}.{key}");
                let bad: Vec<&str> = match value {
                    toml::Value::Float(_)
                        if ["data.reward_shift", "actor.time_mu"].contains(&name.as_str()) =>
                    {
                        vec!["nan", "inf", "1e300"]
                    }
                    toml::Value::Float(_) => vec!["nan", "inf", "-inf", "1e300", "-1.0"],
                    // Any seed is a seed.
                    toml::Value::Integer(_) if name == "train.seed" => vec!["-1", "0.5"],
                    toml::Value::Integer(_) => vec!["-1", "1000000000000000", "0.5"],
                    // Names and paths: checked where they are resolved, not here.
                    toml::Value::String(_)
                        if ["data.dataset", "data.env"].contains(&name.as_str()) =>
                    {
                        vec!["3"]
                    }
                    toml::Value::String(_) => vec!["\"bogus\""],
                    toml::Value::Boolean(_) => vec!["3"],
                    other => panic!("{name}: no out-of-range cases for {other:?}"),
                };
                for v in bad {
                    let item = format!("{name}={v}");
                    let err = match Config::from_toml_with("", std::slice::from_ref(&item)) {
                        Ok(_) => panic!("`{item}` was accepted"),
                        Err(e) => format!("{e:#}"),
                    };
                    assert!(err.contains(key.as_str()), "`{item}`: the error names no key: {err}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 58, "only {checked} keys found");
        // The edges of a few ranges.
        for ok in ["critic.hidden=1", "actor.eta=0", "actor.grad_norm=0", "data.reward_shift=-1"] {
            Config::from_toml_with("", &[ok.to_string()]).unwrap();
        }
        for bad in ["critic.hidden=0", "actor.layers=0", "critic.tau=0", "eval.candidates=0"] {
            assert!(Config::from_toml_with("", &[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn saved_config_reads_back_identically() {
        let c = set_all_defaults();
        assert_eq!(Config::from_toml(&c.to_toml()).unwrap(), c);
    }

    fn set_all_defaults() -> Config {
        let mut c = Config::default();
        c.data.dataset = "walker2d-medium-v2".into();
        c.actor.eta = 0.01;
        c
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every file in configs/ parses, validates and names its dataset (quick names none).
    #[test]
    fn every_shipped_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = Config::load(&path, &[]).unwrap();
                let stem = path.file_stem().unwrap().to_str().unwrap();
                if stem != "quick" {
                    // Minari's ids (`D4RL/antmaze/...`) are files `D4RL-antmaze-...`.
                    assert_eq!(c.data.dataset.replace('/', "-"), stem, "{}", path.display());
                }
                count += 1;
            }
        }
        assert_eq!(count, 22, "9 MuJoCo + 4 AntMaze + 2 Kitchen (D4RL's and Minari's) + quick");
    }
}
