//! The 2-D toy experiment (paper Figure 4, spec section 9): data sets, training of the
//! average-velocity (MeanFlow) and instantaneous-velocity (flow matching) models, and the
//! numbers that compare their samples with held-out data.

use candle_core::{DType, Device, Result, Tensor};
use ofql_nets::{Adam, AdamConfig, NamedVars, VelocityConfig, VelocityNet};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::Serialize;

use crate::loss::{LossStats, MeanFlowConfig, flow_matching_loss, meanflow_loss};
use crate::time::TimeDist;
use ofql_nets::gaussian;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ToyData {
    /// 8 occupied unit squares of a 4 x 4 board on [-2, 2]^2.
    Checkerboard,
    /// Two interleaved half-moons (scikit-learn's make_moons, noise 0.08), scaled by 1.5.
    Crescent,
    /// Two interleaved spirals (the FFJORD "2spirals" set), divided by 3.
    Spiral,
}

impl ToyData {
    pub const ALL: [ToyData; 3] = [ToyData::Checkerboard, ToyData::Crescent, ToyData::Spiral];

    pub fn name(self) -> &'static str {
        match self {
            ToyData::Checkerboard => "checkerboard",
            ToyData::Crescent => "crescent",
            ToyData::Spiral => "spiral",
        }
    }

    pub fn parse(name: &str) -> Option<ToyData> {
        ToyData::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The square the scatter plots show.
    pub fn plot_range(self) -> (f64, f64) {
        match self {
            ToyData::Checkerboard => (-2.5, 2.5),
            ToyData::Crescent => (-2.5, 2.5),
            ToyData::Spiral => (-4.0, 4.0),
        }
    }

    pub fn sample<R: Rng>(self, n: usize, rng: &mut R) -> Vec<[f64; 2]> {
        (0..n).map(|_| self.point(rng)).collect()
    }

    fn point<R: Rng>(self, rng: &mut R) -> [f64; 2] {
        match self {
            ToyData::Checkerboard => {
                let x: f64 = rng.random_range(-2.0..2.0);
                // In column floor(x) the occupied rows are the two of the same parity.
                let parity = (x.floor() as i64).rem_euclid(2);
                let row = parity + if rng.random_bool(0.5) { -2 } else { 0 };
                [x, row as f64 + rng.random_range(0.0..1.0)]
            }
            ToyData::Crescent => {
                let theta = rng.random_range(0.0..std::f64::consts::PI);
                let noise = Normal::new(0.0, 0.08).expect("positive sigma");
                let (x, y) = if rng.random_bool(0.5) {
                    (theta.cos(), theta.sin())
                } else {
                    (1.0 - theta.cos(), 0.5 - theta.sin())
                };
                [1.5 * (x - 0.5 + noise.sample(rng)), 1.5 * (y - 0.25 + noise.sample(rng))]
            }
            ToyData::Spiral => {
                let n = rng.random_range(0.0f64..1.0).sqrt() * 540.0f64.to_radians();
                let x = -n.cos() * n + rng.random_range(0.0..0.5);
                let y = n.sin() * n + rng.random_range(0.0..0.5);
                let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                [sign * x / 3.0, sign * y / 3.0]
            }
        }
    }
}

/// Whether p lies on an occupied square of the checkerboard.
pub fn on_checkerboard(p: [f64; 2]) -> bool {
    let inside = p.iter().all(|c| (-2.0..2.0).contains(c));
    inside && (p[0].floor() as i64 + p[1].floor() as i64).rem_euclid(2) == 0
}

pub fn checkerboard_fraction(points: &[[f64; 2]]) -> f64 {
    points.iter().filter(|p| on_checkerboard(**p)).count() as f64 / points.len().max(1) as f64
}

/// Sliced Wasserstein-1 distance between two equal-size point sets: the mean over random unit
/// directions of the 1-D W1 distance of the projections (sorted and matched).
pub fn sliced_wasserstein<R: Rng>(
    x: &[[f64; 2]],
    y: &[[f64; 2]],
    projections: usize,
    rng: &mut R,
) -> f64 {
    assert_eq!(x.len(), y.len(), "sliced Wasserstein needs equal sample sizes");
    let mut total = 0.0;
    let (mut px, mut py) = (vec![0.0; x.len()], vec![0.0; y.len()]);
    for _ in 0..projections {
        let (a, b): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
        let norm = a.hypot(b).max(1e-12);
        let dir = [a / norm, b / norm];
        for (dst, p) in px.iter_mut().zip(x) {
            *dst = dir[0] * p[0] + dir[1] * p[1];
        }
        for (dst, p) in py.iter_mut().zip(y) {
            *dst = dir[0] * p[0] + dir[1] * p[1];
        }
        px.sort_by(f64::total_cmp);
        py.sort_by(f64::total_cmp);
        total += px.iter().zip(&py).map(|(a, b)| (a - b).abs()).sum::<f64>() / x.len() as f64;
    }
    total / projections as f64
}

/// What a toy model learns.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Objective {
    /// The average velocity u with the MeanFlow loss at this flow ratio.
    MeanFlow { flow_ratio: f64 },
    /// The instantaneous velocity v (conditional flow matching, lambda = 1).
    FlowMatching,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ToyTrainConfig {
    pub epochs: usize,
    pub batches_per_epoch: usize,
    pub batch: usize,
    pub hidden: usize,
    pub layers: usize,
    pub lr: f64,
    pub time_scale: f64,
}

impl Default for ToyTrainConfig {
    /// Spec section 9: 3 x 64 Mish MLPs, 100 epochs x 40 batches of 2048.
    fn default() -> Self {
        ToyTrainConfig {
            epochs: 100,
            batches_per_epoch: 40,
            batch: 2048,
            hidden: 64,
            layers: 3,
            lr: 1e-3,
            time_scale: 1.0,
        }
    }
}

/// A trained toy model and its training losses (mean per epoch).
pub struct ToyModel {
    pub net: VelocityNet,
    pub epoch_loss: Vec<f64>,
    pub last: LossStats,
}

/// Train one model on `train` (a data set of epochs' worth of points, reshuffled per epoch).
/// `progress` is called after every step with (step, total steps, stats).
pub fn train<R: Rng>(
    train: &[[f64; 2]],
    objective: Objective,
    cfg: &ToyTrainConfig,
    rng: &mut R,
    mut progress: impl FnMut(usize, usize, &LossStats),
) -> Result<ToyModel> {
    let dev = Device::Cpu;
    let vcfg = VelocityConfig {
        obs_dim: 0,
        act_dim: 2,
        hidden: cfg.hidden,
        layers: cfg.layers,
        time_scale: cfg.time_scale,
        ..VelocityConfig::default()
    };
    let net = VelocityNet::new(&vcfg, DType::F32, &dev, rng)?;
    let mut adam =
        Adam::new(net.prefixed_vars("toy"), AdamConfig { lr: cfg.lr, ..Default::default() })?;
    let no_state = Tensor::zeros((cfg.batch, 0), DType::F32, &dev)?;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let total = cfg.epochs * cfg.batches_per_epoch;
    let mut epoch_loss = Vec::with_capacity(cfg.epochs);
    let mut last = LossStats::default();
    for epoch in 0..cfg.epochs {
        order.shuffle(rng);
        let mut sum = 0.0;
        for b in 0..cfg.batches_per_epoch {
            let rows: Vec<f32> = (0..cfg.batch)
                .flat_map(|i| train[order[(b * cfg.batch + i) % train.len()]])
                .map(|x| x as f32)
                .collect();
            let a = Tensor::from_vec(rows, (cfg.batch, 2), &dev)?;
            let (loss, stats) = match objective {
                Objective::MeanFlow { flow_ratio } => {
                    let mf = MeanFlowConfig { flow_ratio, time_dist: TimeDist::default() };
                    meanflow_loss(&net, &no_state, &a, &mf, rng)?
                }
                Objective::FlowMatching => {
                    flow_matching_loss(&net, &no_state, &a, &TimeDist::default(), rng)?
                }
            };
            adam.step(&loss.backward()?)?;
            sum += stats.loss;
            last = stats;
            progress(epoch * cfg.batches_per_epoch + b + 1, total, &stats);
        }
        epoch_loss.push(sum / cfg.batches_per_epoch as f64);
    }
    Ok(ToyModel { net, epoch_loss, last })
}

/// How to draw samples from a trained model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Sampler {
    /// a = e - (t - r) u on n even steps (n = 1: the one-step sampler).
    AverageVelocity { steps: usize },
    /// n Euler steps of the instantaneous velocity.
    Euler { steps: usize },
}

/// n samples from `net` with noise from `rng` (f32 network, points returned in f64).
pub fn draw<R: Rng>(
    net: &VelocityNet,
    sampler: Sampler,
    n: usize,
    rng: &mut R,
) -> Result<Vec<[f64; 2]>> {
    let dev = Device::Cpu;
    let noise = gaussian(rng, n, 2, 1.0, DType::F32, &dev)?;
    let s = Tensor::zeros((n, 0), DType::F32, &dev)?;
    let a = match sampler {
        Sampler::AverageVelocity { steps } => {
            crate::sample::mean_flow_sample(net, &s, &noise, steps)?
        }
        Sampler::Euler { steps } => crate::sample::euler_sample(net, &s, &noise, steps)?,
    };
    let flat: Vec<f32> = a.detach().flatten_all()?.to_vec1()?;
    Ok(flat.chunks_exact(2).map(|p| [p[0] as f64, p[1] as f64]).collect())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn checkerboard_samples_cover_all_eight_squares_and_only_them() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let pts = ToyData::Checkerboard.sample(8000, &mut rng);
        assert_eq!(checkerboard_fraction(&pts), 1.0);
        let mut counts = std::collections::HashMap::new();
        for p in &pts {
            *counts.entry((p[0].floor() as i64, p[1].floor() as i64)).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), 8);
        assert!(counts.values().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        // Uniform points on the whole board land on occupied squares half the time.
        let uniform: Vec<[f64; 2]> = (0..20000)
            .map(|_| [rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0)])
            .collect();
        assert!((checkerboard_fraction(&uniform) - 0.5).abs() < 0.02);
    }

    #[test]
    fn sliced_wasserstein_is_zero_for_equal_sets_and_a_shift_for_shifted_ones() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = ToyData::Spiral.sample(4000, &mut rng);
        assert_eq!(sliced_wasserstein(&x, &x, 64, &mut rng), 0.0);
        // Shifting by (d, 0) moves every projection by d cos(angle): mean |cos| = 2 / pi.
        let y: Vec<[f64; 2]> = x.iter().map(|p| [p[0] + 1.0, p[1]]).collect();
        let sw = sliced_wasserstein(&x, &y, 2000, &mut rng);
        assert!((sw - 2.0 / std::f64::consts::PI).abs() < 0.02, "{sw}");
        // Two independent samples of one distribution are close; different sets are far.
        let x2 = ToyData::Spiral.sample(4000, &mut rng);
        let c = ToyData::Crescent.sample(4000, &mut rng);
        let same = sliced_wasserstein(&x, &x2, 64, &mut rng);
        let other = sliced_wasserstein(&x, &c, 64, &mut rng);
        assert!(same < 0.1 && other > 3.0 * same, "same {same} other {other}");
    }
}

/// The whole experiment: for each data set, a MeanFlow model (time scale 1), a flow-matching
/// model, and a MeanFlow model at the large time scale (the k = 1000 row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToyExperiment {
    pub datasets: Vec<ToyData>,
    pub train: ToyTrainConfig,
    pub flow_ratio: f64,
    pub large_time_scale: f64,
    /// Samples drawn per sampler, and the size of the held-out set.
    pub samples: usize,
    pub projections: usize,
    pub seed: u64,
    /// Models trained at the same time (threads).
    pub workers: usize,
}

impl Default for ToyExperiment {
    fn default() -> Self {
        ToyExperiment {
            datasets: ToyData::ALL.to_vec(),
            train: ToyTrainConfig::default(),
            flow_ratio: 0.5,
            large_time_scale: 1000.0,
            samples: 8192,
            projections: 256,
            seed: 0,
            workers: 2,
        }
    }
}

/// One trained model of the experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToyJob {
    pub dataset: ToyData,
    pub objective: Objective,
    pub time_scale: f64,
}

impl ToyJob {
    pub fn label(&self) -> String {
        match self.objective {
            Objective::MeanFlow { .. } => {
                format!("{} u (k = {})", self.dataset.name(), self.time_scale)
            }
            Objective::FlowMatching => {
                format!("{} v (k = {})", self.dataset.name(), self.time_scale)
            }
        }
    }

    fn samplers(&self) -> Vec<Sampler> {
        match self.objective {
            Objective::MeanFlow { .. } => vec![Sampler::AverageVelocity { steps: 1 }],
            Objective::FlowMatching => [1, 2, 5, 10].map(|steps| Sampler::Euler { steps }).to_vec(),
        }
    }
}

impl ToyExperiment {
    pub fn jobs(&self) -> Vec<ToyJob> {
        let mut jobs = Vec::new();
        for &dataset in &self.datasets {
            let mf = Objective::MeanFlow { flow_ratio: self.flow_ratio };
            jobs.push(ToyJob { dataset, objective: mf, time_scale: self.train.time_scale });
            jobs.push(ToyJob {
                dataset,
                objective: Objective::FlowMatching,
                time_scale: self.train.time_scale,
            });
            jobs.push(ToyJob { dataset, objective: mf, time_scale: self.large_time_scale });
        }
        jobs
    }
}

/// One line of the results table.
#[derive(Debug, Clone, Serialize)]
pub struct ToyRow {
    pub dataset: ToyData,
    /// "u" (average velocity, MeanFlow loss) or "v" (instantaneous velocity, flow matching).
    pub velocity: &'static str,
    pub time_scale: f64,
    pub sampler: Sampler,
    /// Network evaluations per sample.
    pub steps: usize,
    /// Sliced Wasserstein-1 distance to held-out data; None if some samples are not finite.
    pub sliced_wasserstein: Option<f64>,
    /// Checkerboard only: fraction of samples on occupied squares (data: 1, uniform: 0.5).
    pub on_squares: Option<f64>,
    pub non_finite_samples: usize,
    /// Mean training loss over the last epoch.
    pub final_loss: f64,
    pub train_seconds: f64,
}

pub struct ToyPanel {
    pub label: String,
    pub points: Vec<[f64; 2]>,
    pub row: Option<usize>,
}

pub struct ToyReport {
    pub rows: Vec<ToyRow>,
    /// Per data set: the distance between two independent data samples (the noise floor).
    pub reference: Vec<(ToyData, f64)>,
    /// Per data set: held-out data, then one panel per (model, sampler) in row order.
    pub panels: Vec<(ToyData, Vec<ToyPanel>)>,
    /// Per job: its label and its mean loss per epoch.
    pub loss_curves: Vec<(String, Vec<f64>)>,
}

struct JobResult {
    rows: Vec<ToyRow>,
    panels: Vec<(String, Vec<[f64; 2]>)>,
    curve: Vec<f64>,
}

fn rng_for(seed: u64, stream: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn run_job(
    exp: &ToyExperiment,
    index: usize,
    job: &ToyJob,
    held_out: &[[f64; 2]],
    progress: &(impl Fn(usize, usize, usize) + Sync),
) -> Result<JobResult> {
    let d = exp.datasets.iter().position(|x| *x == job.dataset).expect("job of a listed data set");
    // The training set depends on the data set only, so every model sees the same points.
    let n_train = exp.train.batch * exp.train.batches_per_epoch;
    let train_set = job.dataset.sample(n_train, &mut rng_for(exp.seed, 100 + d as u64));
    let mut rng = rng_for(exp.seed, 1000 + index as u64);
    let cfg = ToyTrainConfig { time_scale: job.time_scale, ..exp.train };
    let start = std::time::Instant::now();
    let model = train(&train_set, job.objective, &cfg, &mut rng, |step, total, _| {
        progress(index, step, total)
    })?;
    let train_seconds = start.elapsed().as_secs_f64();
    let final_loss = *model.epoch_loss.last().unwrap_or(&f64::NAN);
    let (velocity, mut rows, mut panels) = (
        if matches!(job.objective, Objective::MeanFlow { .. }) { "u" } else { "v" },
        Vec::new(),
        Vec::new(),
    );
    for sampler in job.samplers() {
        let points = draw(&model.net, sampler, exp.samples, &mut rng)?;
        let non_finite = points.iter().filter(|p| !p.iter().all(|c| c.is_finite())).count();
        let sw = (non_finite == 0)
            .then(|| sliced_wasserstein(&points, held_out, exp.projections, &mut rng));
        let on_squares =
            (job.dataset == ToyData::Checkerboard).then(|| checkerboard_fraction(&points));
        let steps = match sampler {
            Sampler::AverageVelocity { steps } | Sampler::Euler { steps } => steps,
        };
        rows.push(ToyRow {
            dataset: job.dataset,
            velocity,
            time_scale: job.time_scale,
            sampler,
            steps,
            sliced_wasserstein: sw,
            on_squares,
            non_finite_samples: non_finite,
            final_loss,
            train_seconds,
        });
        let step_word = if steps == 1 { "step" } else { "steps" };
        panels.push((format!("{velocity}, k={}, {steps} {step_word}", job.time_scale), points));
    }
    Ok(JobResult { rows, panels, curve: model.epoch_loss })
}

/// Train every job on `exp.workers` threads; `progress(job, step, total)` after each step.
pub fn run_experiment(
    exp: &ToyExperiment,
    progress: impl Fn(usize, usize, usize) + Sync,
) -> Result<ToyReport> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let jobs = exp.jobs();
    let held_out: Vec<Vec<[f64; 2]>> = (0..exp.datasets.len())
        .map(|d| exp.datasets[d].sample(exp.samples, &mut rng_for(exp.seed, 200 + d as u64)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<JobResult>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..exp.workers.max(1).min(jobs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let d = exp.datasets.iter().position(|x| *x == job.dataset).expect("listed");
                    let result = run_job(exp, i, job, &held_out[d], &progress);
                    results.lock().expect("no worker panicked")[i] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().expect("no worker panicked");

    let mut report = ToyReport {
        rows: Vec::new(),
        reference: Vec::new(),
        panels: Vec::new(),
        loss_curves: Vec::new(),
    };
    for (d, &dataset) in exp.datasets.iter().enumerate() {
        let other = dataset.sample(exp.samples, &mut rng_for(exp.seed, 300 + d as u64));
        let floor = sliced_wasserstein(
            &other,
            &held_out[d],
            exp.projections,
            &mut rng_for(exp.seed, 400 + d as u64),
        );
        report.reference.push((dataset, floor));
        report.panels.push((
            dataset,
            vec![ToyPanel {
                label: "data (held out)".into(),
                points: held_out[d].clone(),
                row: None,
            }],
        ));
    }
    for (job, result) in jobs.iter().zip(results) {
        let result = result.expect("every job ran")?;
        let d = exp.datasets.iter().position(|x| *x == job.dataset).expect("listed");
        for (row, (label, points)) in result.rows.into_iter().zip(result.panels) {
            report.panels[d].1.push(ToyPanel { label, points, row: Some(report.rows.len()) });
            report.rows.push(row);
        }
        report.loss_curves.push((job.label(), result.curve));
    }
    Ok(report)
}
