//! `ofql critic`: what a checkpoint's critics say about the data's actions and about the
//! policy's own, on states of the run's dataset. The usual way to tell over-estimation (the
//! critic values the actor's actions far above the data's) from a policy that drifted.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use candle_core::{D, DType, Tensor};
use clap::Args;
use ofql_algo::agent::Agent;
use ofql_algo::prepare::prepare;
use ofql_nets::gaussian;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::cmd::eval::{Which, load_agent};
use crate::output::Output;

#[derive(Args)]
pub struct CriticArgs {
    /// A run directory (from `ofql train`) or a checkpoint file (.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Which checkpoint of a run directory.
    #[arg(long, value_enum, default_value = "last")]
    pub which: Which,
    /// Transitions of the run's dataset to look at, drawn uniformly.
    #[arg(long, default_value_t = 2000)]
    pub states: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Download cache holding the run's dataset [default: $OFQL_DATA_DIR or data/cache].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// Means over the sampled states. Q is min_i Q_i of the critics the Q-softmax protocol weighs
/// candidates with (every method's target critics), in the run's reward units.
#[derive(Serialize)]
struct CriticReport {
    checkpoint: PathBuf,
    method: String,
    step: u64,
    dataset: String,
    states: usize,
    seed: u64,
    /// Q(s, a) at the data's actions.
    q_data: f64,
    /// Q(s, pi(s)) at one plain sample of the policy (temperature 1).
    q_policy: f64,
    /// The protocol's candidates (eval.candidates at eval.temperature): the best one's Q,
    /// what the Q-weighted choice tends to as eval.q_weight grows.
    candidates: usize,
    q_best_candidate: f64,
    /// Root-mean-square distance per action dimension from the data's action.
    distance_policy: f64,
    distance_best_candidate: f64,
}

/// States per forward pass (times the candidates): bounds the memory, not the result.
const CHUNK: usize = 200;

pub fn run(args: CriticArgs, out: &Output) -> Result<()> {
    if args.states == 0 {
        bail!("--states must be at least 1");
    }
    let (file, agent) = load_agent(&args.checkpoint, args.which)?;
    let cfg = agent.config().clone();

    // The run's dataset with the run's own data handling; it must be the file it trained on.
    let data = prepare(&cfg.data, args.cache_dir.as_deref())
        .with_context(|| format!("cannot read the run's dataset `{}`", cfg.data.dataset))?;
    let t = data.buffer.transitions();
    if (t.obs_dim, t.act_dim) != (agent.obs_dim(), agent.act_dim())
        || data.obs_norm.as_ref() != agent.obs_norm()
    {
        bail!(
            "{} is not the data the run trained on (its sizes or observation statistics differ): \
             the critic's values would mean nothing on it",
            data.path.display()
        );
    }

    if args.states > t.len() {
        bail!(
            "--states {} is more than the {} transitions of {}: pass at most that many",
            args.states,
            t.len(),
            data.path.display()
        );
    }

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let batch = data.buffer.sample(args.states, &mut rng)?;
    let k = cfg.eval.candidates.max(1);
    let mut sums = [0.0f64; 5];
    for start in (0..args.states).step_by(CHUNK) {
        let n = CHUNK.min(args.states - start);
        let s = batch.observations.narrow(0, start, n)?;
        let a = batch.actions.narrow(0, start, n)?;
        let chunk = measure(agent.as_ref(), &s, &a, k, cfg.eval.temperature, &mut rng)?;
        for (sum, v) in sums.iter_mut().zip(chunk) {
            *sum += v;
        }
    }
    let mean = |i: usize| sums[i] / args.states as f64;
    let act_dim = agent.act_dim() as f64;
    let report = CriticReport {
        checkpoint: file,
        method: agent.method().to_string(),
        step: agent.step(),
        dataset: cfg.data.dataset.clone(),
        states: args.states,
        seed: args.seed,
        q_data: mean(0),
        q_policy: mean(1),
        candidates: k,
        q_best_candidate: mean(2),
        distance_policy: (mean(3) / act_dim).sqrt(),
        distance_best_candidate: (mean(4) / act_dim).sqrt(),
    };
    out.report(&report, || {
        format!(
            "{} ({} at step {}), {} states of {}:\n  Q at the data's actions      {:.3}\n  Q at \
             one policy sample       {:.3}  (rms distance to the data's action {:.3})\n  Q at \
             the best of {} candidates {:.3}  (rms distance {:.3})",
            report.checkpoint.display(),
            report.method,
            report.step,
            report.states,
            report.dataset,
            report.q_data,
            report.q_policy,
            report.distance_policy,
            report.candidates,
            report.q_best_candidate,
            report.distance_best_candidate
        )
    });
    Ok(())
}

/// Sums over the chunk's states: Q at the data's actions, at one plain sample, at the best of
/// `k` candidates, and the squared distances of the sample and of the best candidate to the
/// data's action.
fn measure(
    agent: &dyn Agent,
    s: &Tensor,
    a: &Tensor,
    k: usize,
    temperature: f64,
    rng: &mut ChaCha8Rng,
) -> Result<[f64; 5]> {
    let (n, width) = (s.dim(0)?, agent.noise_width());
    let sum = |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.sum_all()?.to_scalar()?) };
    let q_data = agent.min_q(s, a)?;

    let noise = gaussian(rng, n, width, 1.0, DType::F32, s.device())?;
    let pi = agent.act(s, &noise)?;
    let q_pi = agent.min_q(s, &pi)?;

    // Row i * k + j is candidate j of state i.
    let sk = s.unsqueeze(1)?.repeat((1, k, 1))?.reshape((n * k, s.dim(1)?))?;
    let noise = gaussian(rng, n * k, width, temperature, DType::F32, s.device())?;
    let cands = agent.act(&sk, &noise)?;
    let q = agent.min_q(&sk, &cands)?.reshape((n, k))?;
    let best = q.argmax_keepdim(D::Minus1)?.squeeze(1)?.to_vec1::<u32>()?;
    let rows: Vec<u32> = best.iter().enumerate().map(|(i, &j)| (i * k) as u32 + j).collect();
    let best_actions = cands.index_select(&Tensor::new(rows.as_slice(), s.device())?, 0)?;
    let q_best = q.max_keepdim(D::Minus1)?;

    let sq = |x: &Tensor| -> Result<f64> { sum(&(x - a)?.sqr()?) };
    Ok([sum(&q_data)?, sum(&q_pi)?, sum(&q_best)?, sq(&pi)?, sq(&best_actions)?])
}
