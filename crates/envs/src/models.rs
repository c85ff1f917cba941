//! Locating and loading Gymnasium's and Gymnasium-Robotics' XML models.
//!
//! Gymnasium's models come from the `gymnasium` wheel, unpacked by `cargo xtask setup` into
//! `.deps/gymnasium/assets`; Gymnasium-Robotics' kitchen (XML, meshes, textures) from the
//! `gymnasium-robotics` wheel into `.deps/gymnasium-robotics/assets`. `OFQL_MODELS_DIR` and
//! `OFQL_ROBOTICS_ASSETS_DIR` at run time override the directories known at build time, so an
//! installed `ofql` binary can be pointed elsewhere.

use std::path::PathBuf;

use mujoco_rs::prelude::MjModel;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "MuJoCo model file {path} is missing: run `cargo xtask setup` (it unpacks Gymnasium's \
         models), or set OFQL_MODELS_DIR to a folder holding {file}"
    )]
    Missing { path: PathBuf, file: String },
    #[error(
        "Gymnasium-Robotics asset {path} is missing: run `cargo xtask setup` (it unpacks \
         Gymnasium-Robotics' assets), or set OFQL_ROBOTICS_ASSETS_DIR to a folder holding {file}"
    )]
    MissingRobotics { path: PathBuf, file: String },
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

/// The folder holding Gymnasium-Robotics' assets in the wheel's layout (`kitchen_franka/...`):
/// `OFQL_ROBOTICS_ASSETS_DIR` at run time, else the one the workspace's `.cargo/config.toml`
/// named at build time.
pub fn robotics_assets_dir() -> PathBuf {
    std::env::var_os("OFQL_ROBOTICS_ASSETS_DIR")
        .map(PathBuf::from)
        .or_else(|| option_env!("OFQL_ROBOTICS_ASSETS_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".deps/gymnasium-robotics/assets"))
}

/// The path of one of Gymnasium-Robotics' assets, e.g.
/// `kitchen_franka/franka_assets/franka_config.xml`, checked to exist.
pub fn robotics_asset(file: &str) -> Result<PathBuf, ModelError> {
    let path = robotics_assets_dir().join(file);
    if !path.is_file() {
        return Err(ModelError::MissingRobotics { path, file: file.to_string() });
    }
    Ok(path)
}

/// Load one of Gymnasium-Robotics' models by its path under the assets folder; MuJoCo resolves
/// its includes, meshes and textures relative to it.
pub fn load_robotics_model(file: &str) -> Result<MjModel, ModelError> {
    crate::mujoco_log::install();
    let path = robotics_asset(file)?;
    MjModel::from_xml(&path).map_err(|e| ModelError::Load { path, reason: e.to_string() })
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
    fn missing_robotics_asset_names_the_fix() {
        let err = load_robotics_model("kitchen_franka/no_such.xml").unwrap_err().to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains("OFQL_ROBOTICS_ASSETS_DIR"), "{err}");
        assert!(err.contains("kitchen_franka/no_such.xml"), "{err}");
    }

    #[test]
    fn missing_model_names_the_fix() {
        let err = load_model("no_such_model.xml").unwrap_err().to_string();
        assert!(err.contains("cargo xtask setup"), "{err}");
        assert!(err.contains("no_such_model.xml"), "{err}");
    }
}
