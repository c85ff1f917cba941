use serde::Serialize;

use crate::output::Output;

#[derive(Serialize)]
struct Versions {
    ofql: &'static str,
    mujoco: &'static str,
    hdf5: String,
    models_dir: String,
    threads: usize,
}

pub fn run(out: &Output) -> anyhow::Result<()> {
    let v = Versions {
        ofql: env!("CARGO_PKG_VERSION"),
        mujoco: ofql_envs::mujoco_version(),
        hdf5: ofql_data::hdf5_version(),
        models_dir: ofql_envs::models_dir().display().to_string(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    out.report(&v, || {
        format!(
            "ofql {}\nMuJoCo {}\nHDF5 {}\nmodels {}\nthreads {}",
            v.ofql, v.mujoco, v.hdf5, v.models_dir, v.threads
        )
    });
    Ok(())
}
