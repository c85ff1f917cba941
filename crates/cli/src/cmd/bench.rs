//! `ofql bench`: training steps per second and decisions per second at HalfCheetah sizes
//! (obs 17, act 6, 3x256 Mish networks, batch 256), for each thread count, with the achieved
//! FLOP/s and a GEMM peak to compare against.
//!
//! candle reads its thread count from RAYON_NUM_THREADS at every matrix product, so each
//! thread count runs in a child process of its own with that variable set: no measurement
//! sees another's thread pool or warm caches.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use clap::Args;
use ofql_algo::policy::{Decider, Protocol, select_actions};
use ofql_algo::{Config, agent};
use ofql_data::{NextObs, ReplayBuffer, Transitions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::output::Output;

const OBS: usize = 17;
const ACT: usize = 6;

#[derive(Args)]
pub struct BenchArgs {
    /// Thread counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Timed training steps per thread count (after 10 warm-up steps).
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Timed decisions per protocol.
    #[arg(long, default_value_t = 2000)]
    pub decisions: usize,
    /// The method: ofql, dql (Diffusion-QL, --nfe diffusion steps) or fql (Flow Q-Learning).
    #[arg(long, default_value = "ofql")]
    pub algo: String,
    /// Diffusion steps (network evaluations per action) for --algo dql.
    #[arg(long, default_value_t = 5)]
    pub nfe: usize,
    /// Also time the same update in PyTorch with this Python (crates/algo/benches/ofql_torch.py,
    /// dql_torch.py or fql_torch.py),
    /// in the same run, e.g. a venv's bin/python with torch installed.
    #[arg(long, value_name = "PYTHON")]
    pub torch_python: Option<std::path::PathBuf>,
    /// Internal: measure in this process with the current thread setting.
    #[arg(long, hide = true)]
    pub worker: bool,
}

/// What one thread count measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    threads: usize,
    train_step_ms: f64,
    steps_per_second: f64,
    /// 1M training steps at this rate, in hours (the paper's Figure 3 unit).
    hours_per_million_steps: f64,
    /// Achieved FLOP/s of the training step (model FLOPs / time); OFQL only.
    train_gflops: Option<f64>,
    /// One observation in, one action out, plain one-step sampling, on the compiled actor
    /// (`Decider`, the deployment path).
    decision_us: f64,
    /// The same decision through candle tensors (`select_actions`, as evaluation batches it).
    decision_tensor_us: f64,
    /// One observation, 50 candidates, Q-softmax (the paper's protocol), on the compiled
    /// actor and target critics (`Decider`).
    decision50_us: f64,
    /// The same through candle tensors.
    decision50_tensor_us: f64,
    /// Plain decisions for a batch of 2500 observations at once (the paper's Figure 3
    /// batch), through candle tensors, in batches per second.
    batch2500_per_second: f64,
    /// A 1024^3 f32 matrix product: the GEMM peak of this machine with these threads.
    gemm_gflops: f64,
}

#[derive(Serialize)]
struct Report {
    algo: String,
    /// Network evaluations per action (1 for OFQL, T for DQL).
    nfe: usize,
    sizes: String,
    batch: usize,
    /// OFQL's step (the FLOP count is OFQL's).
    flops_per_step: Option<f64>,
    runs: Vec<Measured>,
    train_step_ms_1t: Option<f64>,
    train_step_ms_2t: Option<f64>,
    decision_us: Option<f64>,
    decision50_us: Option<f64>,
    /// FLOPs per step / GEMM peak on the most threads measured: the time no implementation
    /// built on this GEMM can beat.
    floor_ms: Option<f64>,
    /// The PyTorch version of the same update, when --torch-python was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    torch: Option<serde_json::Value>,
}

pub fn run(args: BenchArgs, out: &Output) -> Result<()> {
    if args.worker {
        let m = measure(&args)?;
        crate::output::emit(&serde_json::to_string(&m)?);
        return Ok(());
    }
    let nfe = match args.algo.as_str() {
        "ofql" => 1,
        "dql" if args.nfe >= 1 => args.nfe,
        "dql" => bail!("--nfe must be at least 1"),
        "fql" => 1,
        other => bail!("--algo {other}: use ofql, dql or fql"),
    };
    let exe = std::env::current_exe().context("cannot find the ofql executable")?;
    let mut runs = Vec::new();
    for &n in &args.threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        eprintln!("measuring with {n} thread(s)...");
        let child = Command::new(&exe)
            .args(["bench", "--worker", "--steps", &args.steps.to_string()])
            .args(["--decisions", &args.decisions.to_string()])
            .args(["--algo", &args.algo, "--nfe", &args.nfe.to_string()])
            .env("RAYON_NUM_THREADS", n.to_string())
            .output()
            .context("cannot run the benchmark worker")?;
        if !child.status.success() {
            bail!("benchmark worker failed: {}", String::from_utf8_lossy(&child.stderr));
        }
        let mut m: Measured = serde_json::from_slice(&child.stdout)?;
        m.threads = n;
        runs.push(m);
    }
    let by = |n: usize| runs.iter().find(|m| m.threads == n);
    let flops = (args.algo == "ofql").then(|| step_flops(256));
    let peak = runs.iter().max_by_key(|m| m.threads).map(|m| m.gemm_gflops);
    let report = Report {
        sizes: match args.algo.as_str() {
            "ofql" => {
                format!("obs {OBS}, act {ACT}, actor and critics 3x256 Mish, time MLP 64-128-64")
            }
            "fql" => format!(
                "obs {OBS}, act {ACT}, BC flow, one-step policy and critics 4x512 GELU \
                 (LayerNorm in the critics), 10 Euler steps per distillation target"
            ),
            _ => format!(
                "obs {OBS}, act {ACT}, noise net and critics 3x256 Mish, time MLP 16-32-16, T = {nfe}"
            ),
        },
        algo: args.algo.clone(),
        nfe,
        batch: 256,
        flops_per_step: flops,
        train_step_ms_1t: by(1).map(|m| m.train_step_ms),
        train_step_ms_2t: by(2).map(|m| m.train_step_ms),
        decision_us: by(1).map(|m| m.decision_us),
        decision50_us: by(1).map(|m| m.decision50_us),
        floor_ms: flops.zip(peak).map(|(f, p)| f / (p * 1e9) * 1e3),
        runs,
        torch: match &args.torch_python {
            Some(python) => Some(run_torch(python, &args)?),
            None => None,
        },
    };
    out.report(&report, || text(&report));
    Ok(())
}

/// The PyTorch script's JSON (its source is compiled into the binary, so any working
/// directory will do).
fn run_torch(python: &std::path::Path, args: &BenchArgs) -> Result<serde_json::Value> {
    const OFQL: &str = include_str!("../../../algo/benches/ofql_torch.py");
    const DQL: &str = include_str!("../../../algo/benches/dql_torch.py");
    const FQL: &str = include_str!("../../../algo/benches/fql_torch.py");
    let (script, nfe) = match args.algo.as_str() {
        "dql" => (DQL, vec!["--nfe".to_string(), args.nfe.to_string()]),
        "fql" => (FQL, vec![]),
        _ => (OFQL, vec![]),
    };
    eprintln!("measuring PyTorch with {}...", python.display());
    let threads: Vec<String> = args.threads.iter().map(|t| t.to_string()).collect();
    let child = Command::new(python)
        .args(["-W", "ignore", "-c", script, "--threads", &threads.join(",")])
        .args(&nfe)
        .args(["--steps", &args.steps.to_string(), "--decisions", &args.decisions.to_string()])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !child.status.success() {
        bail!(
            "the PyTorch benchmark failed (is torch installed for {}?): {}",
            python.display(),
            String::from_utf8_lossy(&child.stderr)
        );
    }
    serde_json::from_slice(&child.stdout).context("the PyTorch benchmark printed no JSON")
}

fn measure(args: &BenchArgs) -> Result<Measured> {
    let dev = Device::Cpu;
    let mut cfg = Config::default();
    cfg.train.steps = 1_000_000;
    cfg.algo.name = args.algo.clone();
    cfg.dql.steps = args.nfe;
    cfg.validate()?;
    let buffer = ReplayBuffer::new(random_transitions(100_000));
    let mut agent = agent::build(&cfg, OBS, ACT, None, &dev)?;
    let mut rng = ChaCha8Rng::seed_from_u64(0);

    for _ in 0..10 {
        agent.update(&buffer.sample(256, &mut rng)?)?;
    }
    let t0 = Instant::now();
    for _ in 0..args.steps {
        agent.update(&buffer.sample(256, &mut rng)?)?;
    }
    let step = t0.elapsed().as_secs_f64() / args.steps as f64;

    let obs_row = buffer.transitions().observations[..OBS].to_vec();
    let obs = Tensor::from_slice(&obs_row, (1, OBS), &dev)?;
    let cleandiffuser =
        Protocol::CleanDiffuser { candidates: 50, temperature: 0.5, q_weight: 50.0 };
    let mut through_tensors = |protocol: Protocol| -> Result<f64> {
        for _ in 0..50 {
            select_actions(agent.as_ref(), &obs, protocol, &mut rng)?;
        }
        let t0 = Instant::now();
        for _ in 0..args.decisions {
            select_actions(agent.as_ref(), &obs, protocol, &mut rng)?.to_vec2::<f32>()?;
        }
        Ok(t0.elapsed().as_secs_f64() / args.decisions as f64)
    };
    let decision_tensor = through_tensors(Protocol::Plain)?;
    let decision50_tensor = through_tensors(cleandiffuser)?;
    // The compiled path is timed over more decisions: a plain one takes microseconds.
    let compiled = |protocol: Protocol, reps: usize, rng: &mut ChaCha8Rng| -> Result<f64> {
        let mut decider = Decider::new(agent.as_ref(), protocol)?;
        let mut action = [0f32; ACT];
        for _ in 0..reps / 10 {
            decider.act(&obs_row, rng, &mut action);
        }
        let t0 = Instant::now();
        for _ in 0..reps {
            decider.act(std::hint::black_box(&obs_row), rng, &mut action);
            std::hint::black_box(&action);
        }
        Ok(t0.elapsed().as_secs_f64() / reps as f64)
    };
    let decision = compiled(Protocol::Plain, args.decisions * 10, &mut rng)?;
    let decision50 = compiled(cleandiffuser, args.decisions, &mut rng)?;

    let big = buffer.transitions().observations[..2500 * OBS].to_vec();
    let big = Tensor::from_vec(big, (2500, OBS), &dev)?;
    select_actions(agent.as_ref(), &big, Protocol::Plain, &mut rng)?;
    let reps = (args.decisions / 100).max(3);
    let t0 = Instant::now();
    for _ in 0..reps {
        select_actions(agent.as_ref(), &big, Protocol::Plain, &mut rng)?.to_vec2::<f32>()?;
    }
    let batch2500 = reps as f64 / t0.elapsed().as_secs_f64();

    let a = Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?;
    let b = Tensor::randn(0f32, 1.0, (1024, 1024), &dev)?;
    a.matmul(&b)?;
    let reps = 10;
    let t0 = Instant::now();
    for _ in 0..reps {
        a.matmul(&b)?;
    }
    let gemm = 2.0 * 1024f64.powi(3) * reps as f64 / t0.elapsed().as_secs_f64();

    Ok(Measured {
        threads: candle_core::utils::get_num_threads(),
        train_step_ms: step * 1e3,
        steps_per_second: 1.0 / step,
        hours_per_million_steps: step * 1e6 / 3600.0,
        train_gflops: (args.algo == "ofql").then(|| step_flops(256) / step / 1e9),
        decision_us: decision * 1e6,
        decision_tensor_us: decision_tensor * 1e6,
        decision50_us: decision50 * 1e6,
        decision50_tensor_us: decision50_tensor * 1e6,
        batch2500_per_second: batch2500,
        gemm_gflops: gemm / 1e9,
    })
}

fn random_transitions(n: usize) -> Transitions {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut v = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<_>>();
    Transitions {
        obs_dim: OBS,
        act_dim: ACT,
        observations: v(n * OBS),
        actions: v(n * ACT),
        rewards: v(n),
        next_observations: v(n * OBS),
        dones: vec![0.0; n],
        next_obs: NextObs::Recorded,
    }
}

/// Multiply-adds of one sample through an MLP with these layer widths.
fn macs(dims: &[usize]) -> f64 {
    dims.windows(2).map(|w| (w[0] * w[1]) as f64).sum()
}

/// The FLOPs one OFQL step at batch `b` cannot do without (2 per multiply-add), so that the
/// floor is a floor: a backward pass is twice its forward (input and weight gradients); the
/// MeanFlow tangent shares the forward's pre-activations, so it adds one forward's worth;
/// the Q term needs both critics' values but the gradient of one only, and only towards
/// its input (the critics' weights are not trained by it).
fn step_flops(b: usize) -> f64 {
    let time_mlp = 2.0 * macs(&[64, 128, 64]); // t and r
    let actor = macs(&[ACT + OBS + 128, 256, 256, 256, ACT]) + time_mlp;
    let critics = 2.0 * macs(&[OBS + ACT, 256, 256, 256, 1]);
    let target = actor + critics; // EMA actor and target critics, forward only
    let critic = 3.0 * critics; // forward + backward
    let meanflow = 4.0 * actor; // forward, tangent, backward
    let q_term = 3.0 * actor + 1.5 * critics; // sample fwd/bwd; critics fwd, one head's input grad
    2.0 * b as f64 * (target + critic + meanflow + q_term)
}

fn text(r: &Report) -> String {
    let flops = r.flops_per_step.map(|f| format!(": {:.2} GFLOP per step", f / 1e9));
    let mut s = format!(
        "{} step at batch {} ({}){}\n\
         threads  ms/step  steps/s  h/1M steps  GFLOP/s  decision us (tensor path)  decision(50) us (tensor path)  batches of 2500/s  GEMM GFLOP/s\n",
        r.algo.to_uppercase(),
        r.batch,
        r.sizes,
        flops.unwrap_or_default()
    );
    for m in &r.runs {
        s.push_str(&format!(
            "{:>7}  {:>7.2}  {:>7.1}  {:>10.2}  {:>7}  {:>11.2} ({:>11.1})  {:>15.1} ({:>11.1})  {:>17.1}  {:>12.1}\n",
            m.threads,
            m.train_step_ms,
            m.steps_per_second,
            m.hours_per_million_steps,
            m.train_gflops.map_or("-".into(), |g| format!("{g:.1}")),
            m.decision_us,
            m.decision_tensor_us,
            m.decision50_us,
            m.decision50_tensor_us,
            m.batch2500_per_second,
            m.gemm_gflops
        ));
    }
    if let Some(f) = r.floor_ms {
        s.push_str(&format!("FLOP floor at the measured GEMM peak: {f:.2} ms per step"));
    }
    if let Some(runs) = r.torch.as_ref().and_then(|t| t["runs"].as_array()) {
        s.push_str("\nPyTorch, same update:\nthreads  ms/step  decision us  decision(50) us\n");
        for m in runs {
            s.push_str(&format!(
                "{:>7}  {:>7.2}  {:>11.1}  {:>15.1}\n",
                m["threads"].as_u64().unwrap_or(0),
                m["train_step_ms"].as_f64().unwrap_or(f64::NAN),
                m["decision_us"].as_f64().unwrap_or(f64::NAN),
                m["decision50_us"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_count_matches_a_hand_count() {
        // Actor: 151*256 + 2*256*256 + 256*6 = 171264 MACs, time MLP 2*(64*128 + 128*64).
        let actor = 171_264.0 + 32_768.0;
        let critics = 2.0 * (23.0 * 256.0 + 2.0 * 65_536.0 + 256.0);
        // Target (forward), critic step (fwd + bwd), MeanFlow (fwd, tangent, bwd), Q term
        // (sample fwd + bwd; both critics' values, one head's input gradient).
        let per_sample =
            (actor + critics) + 3.0 * critics + 4.0 * actor + (3.0 * actor + 1.5 * critics);
        assert_eq!(step_flops(1), 2.0 * per_sample);
        assert!((step_flops(256) / 1e9 - 1.61).abs() < 0.01, "{}", step_flops(256) / 1e9);
    }
}
