//! Locating and loading Gymnasium's XML models.
//!
//! The models come from the `gymnasium` wheel, unpacked by `cargo xtask setup` into
//! `.deps/gymnasium/assets`. `OFQL_MODELS_DIR` at run time overrides the directory known at
//! build time, so an installed `ofql` binary can be pointed elsewhere.

use std::path::PathBuf;

use mujoco_rs::prelude::MjModel;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "MuJoCo model file {path} is missing: run `cargo xtask setup` (it unpacks Gymnasium's \
         models), or set OFQL_MODELS_DIR to a folder holding {file}"
    )]
    Missing { path: PathBuf, file: String },
    #[error("MuJoCo could not load {path}: {reason}")]
    Load { path: PathBuf, reason: String },
}

/// The folder holding the XML models: `OFQL_MODELS_DIR` at run time, else the one the
/// workspace's `.cargo/config.toml` named at build time.
pub fn models_dir() -> PathBuf {
    std::env::var_os("OFQL_MODELS_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("OFQL_MODELS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".deps/gymnasium/assets"))
}

/// Load one of Gymnasium's models by file name, e.g. `half_cheetah.xml`.
pub fn load_model(file: &str) -> Result<MjModel, ModelError> {
    crate::mujoco_log::install();
    let path = models_dir().join(file);
    if !path.is_file() {
        return Err(ModelError::Missing { path, file: file.to_string() });
    }
    MjModel::from_xml(&path).map_err(|e| ModelError::Load { path, reason: e.to_string() })
}

/// The text of one of Gymnasium's models (the mazes extend `ant.xml` before loading it).
pub fn read_model_text(file: &str) -> Result<String, ModelError> {
    crate::mujoco_log::install();
    let path = models_dir().join(file);
    if !path.is_file() {
        return Err(ModelError::Missing { path, file: file.to_string() });
    }
    std::fs::read_to_string(&path).map_err(|e| ModelError::Load { path, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use mujoco_rs::prelude::MjData;

    use super::*;

    #[test]
    fn half_cheetah_loads_and_steps() {
        let model = load_model("half_cheetah.xml").unwrap();
        let mut data = MjData::new(&model);
        assert_eq!(data.qpos().len(), 9);
        assert_eq!(data.ctrl().len(), 6);
        // Full forward torque on every joint: the body must move and stay finite.
        data.ctrl_mut().fill(1.0);
        for _ in 0..100 {
            data.step();
        }
        let moved = data.qpos().iter().zip(model.qpos0()).any(|(q, q0)| (q - q0).abs() > 1e-3);
        assert!(moved, "HalfCheetah did not move under full torque");
        assert!(data.qpos().iter().chain(data.qvel()).all(|x| x.is_finite()));
    }

    #[test]
    fn missing_model_names_the_fix() {
        let err = load_model("no_such_model.xml").unwrap_err().to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains("no_such_model.xml"), "{err}");
    }
}
