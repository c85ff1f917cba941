//! `cargo xtask setup`: native dependencies from the Python package registry, fetched with pip.
//!
//! Each wheel is pinned by version and SHA-256, downloaded once into `.deps/wheels/`, and the
//! few files we need are unpacked next to it. A `.complete` marker holding the wheel's hash makes
//! the step idempotent and lets it run offline once done.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// A wheel pinned by exact file name and hash: pip's platform flags make the choice of file
/// independent of the local Python, so the hash is stable.
struct Wheel {
    requirement: &'static str,
    platform: &'static str,
    file: &'static str,
    sha256: &'static str,
}

const MUJOCO: Wheel = Wheel {
    requirement: "mujoco==3.17.0",
    platform: "manylinux_2_28_x86_64",
    file: "mujoco-3.17.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "d66928d86a2d1b601bbaa4dc11db50214d17d5301bb8afd84721313b67ff0874",
};

const GYMNASIUM: Wheel = Wheel {
    requirement: "gymnasium==1.2.2",
    platform: "manylinux_2_28_x86_64",
    file: "gymnasium-1.2.2-py3-none-any.whl",
    sha256: "f04ec362b1fdf73a8b327db5ef89384a3f2ba411e05d3521513414fbbb2199c8",
};

const CMAKE: Wheel = Wheel {
    requirement: "cmake==3.31.6",
    platform: "manylinux_2_17_x86_64",
    file: "cmake-3.31.6-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    sha256: "1c8b05df0602365da91ee6a3336fe57525b137706c4ab5675498f662ae1dbcec",
};

/// Only for FrankaKitchen-v1's model: the kitchen and the Franka robot (XML, meshes, textures).
const GYMNASIUM_ROBOTICS: Wheel = Wheel {
    requirement: "gymnasium-robotics==1.4.2",
    platform: "manylinux_2_28_x86_64",
    file: "gymnasium_robotics-1.4.2-py3-none-any.whl",
    sha256: "a1743530431cb377e6b3b956d284bc96436fc68bac1648ef205054c178e7dc4b",
};

/// Gymnasium-Robotics' assets that the envs crate loads, kept in the wheel's layout (the kitchen's
/// XML includes its other files by relative paths).
const ROBOTICS_ASSETS: &str = "kitchen_franka/";
/// The kitchen's model, the probe that the unpacked assets are there.
const KITCHEN_MODEL: &str = "kitchen_franka/kitchen_assets/kitchen_env_model.xml";

/// Only for its DejaVu Sans font: PNG plots need one font, and a system's fonts vary.
const MATPLOTLIB: Wheel = Wheel {
    requirement: "matplotlib==3.10.7",
    platform: "manylinux_2_17_x86_64",
    file: "matplotlib-3.10.7-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
    sha256: "2222c7ba2cbde7fe63032769f6eb7e83ab3227f47d997a8453377709b7fe3a5a",
};

/// Gymnasium's MuJoCo models that the envs crate loads (v4 and v5 definitions; the ant for
/// Gymnasium-Robotics' mazes, which add their walls to it).
pub const MODEL_FILES: [&str; 5] =
    ["half_cheetah.xml", "hopper.xml", "walker2d.xml", "walker2d_v5.xml", "ant.xml"];

pub fn run(root: &Path) -> Result<()> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        bail!(
            "`cargo xtask setup` knows the x86_64 Linux wheels only; on other platforms set \
               MUJOCO_DYNAMIC_LINK_DIR, OFQL_MODELS_DIR, OFQL_ROBOTICS_ASSETS_DIR and CMAKE yourself"
        );
    }
    let deps = root.join(".deps");
    let wheels = deps.join("wheels");

    let mujoco_lib = deps.join("mujoco/lib");
    match user_override("MUJOCO_DYNAMIC_LINK_DIR", &mujoco_lib) {
        Some(dir) => {
            if !Path::new(&dir).join("libmujoco.so").is_file() {
                bail!(
                    "MUJOCO_DYNAMIC_LINK_DIR={dir} has no libmujoco.so; unset it to let \
                       `cargo xtask setup` provision MuJoCo 3.17.0, or point it at MuJoCo 3.17.0's lib/"
                );
            }
            eprintln!("setup: MuJoCo: using your MUJOCO_DYNAMIC_LINK_DIR={dir}");
        }
        None => provision(&MUJOCO, &wheels, &deps.join("mujoco"), "lib/", |dest| {
            let lib = dest.join("lib");
            extract(&wheels.join(MUJOCO.file), &lib, "mujoco/", &["mujoco/libmujoco.so.3.17.0"])?;
            std::os::unix::fs::symlink("libmujoco.so.3.17.0", lib.join("libmujoco.so"))
                .context("symlink libmujoco.so")
        })?,
    }

    let models = deps.join("gymnasium/assets");
    match user_override("OFQL_MODELS_DIR", &models) {
        Some(dir) => eprintln!("setup: models: using your OFQL_MODELS_DIR={dir}"),
        None => {
            provision(&GYMNASIUM, &wheels, &deps.join("gymnasium"), "assets/ant.xml", |dest| {
                let prefix = "gymnasium/envs/mujoco/assets/";
                let members: Vec<String> =
                    MODEL_FILES.iter().map(|f| format!("{prefix}{f}")).collect();
                let members: Vec<&str> = members.iter().map(String::as_str).collect();
                extract(&wheels.join(GYMNASIUM.file), &dest.join("assets"), prefix, &members)
            })?
        }
    }

    let robotics = deps.join("gymnasium-robotics/assets");
    match user_override("OFQL_ROBOTICS_ASSETS_DIR", &robotics) {
        Some(dir) => eprintln!("setup: robotics assets: using your OFQL_ROBOTICS_ASSETS_DIR={dir}"),
        None => {
            let dest = deps.join("gymnasium-robotics");
            let probe = format!("assets/{KITCHEN_MODEL}");
            provision(&GYMNASIUM_ROBOTICS, &wheels, &dest, &probe, |dest| {
                let prefix = "gymnasium_robotics/envs/assets/";
                let member = format!("{prefix}{ROBOTICS_ASSETS}");
                extract(
                    &wheels.join(GYMNASIUM_ROBOTICS.file),
                    &dest.join("assets"),
                    prefix,
                    &[&member],
                )
            })?
        }
    }

    let cmake = deps.join("cmake/bin/cmake");
    match user_override("CMAKE", &cmake) {
        Some(exe) => eprintln!("setup: CMake: using your CMAKE={exe}"),
        None => provision(&CMAKE, &wheels, &deps.join("cmake"), "bin/cmake", |dest| {
            extract(&wheels.join(CMAKE.file), dest, "cmake/data/", &["cmake/data/"])
        })?,
    }
    let font_member = "matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf";
    provision(&MATPLOTLIB, &wheels, &deps.join("fonts"), "DejaVuSans.ttf", |dest| {
        extract(
            &wheels.join(MATPLOTLIB.file),
            dest,
            "matplotlib/mpl-data/fonts/ttf/",
            &[font_member],
        )
    })?;
    Ok(())
}

/// The user's own value of `var`, if it is set and differs from the path this project manages.
/// (`.cargo/config.toml` sets our default only when the user has not set the variable.)
fn user_override(var: &str, ours: &Path) -> Option<String> {
    let value = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    (Path::new(&value) != ours).then_some(value)
}

/// Download (if needed), verify and unpack one wheel into `dest`, unless `dest` already holds
/// the unpacked files of exactly this wheel.
fn provision(
    wheel: &Wheel,
    wheels: &Path,
    dest: &Path,
    probe: &str,
    unpack: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let marker = dest.join(".complete");
    if fs::read_to_string(&marker).is_ok_and(|m| m.trim() == wheel.sha256)
        && dest.join(probe).exists()
    {
        return Ok(());
    }
    let file = download(wheel, wheels)?;
    eprintln!("setup: unpacking {} into {}", file.display(), dest.display());
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("remove stale {}", dest.display()))?;
    }
    fs::create_dir_all(dest)?;
    unpack(dest)?;
    if !dest.join(probe).exists() {
        bail!("unpacking {} did not produce {}", wheel.file, dest.join(probe).display());
    }
    fs::write(&marker, wheel.sha256)?;
    Ok(())
}

fn download(wheel: &Wheel, wheels: &Path) -> Result<PathBuf> {
    let file = wheels.join(wheel.file);
    if file.is_file() && sha256_file(&file)? == wheel.sha256 {
        return Ok(file);
    }
    fs::create_dir_all(wheels)?;
    eprintln!("setup: python3 -m pip download {}", wheel.requirement);
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"])
        .args(["--platform", wheel.platform, "--python-version", "3.11", "--implementation", "cp"])
        .arg("--dest")
        .arg(wheels)
        .arg(wheel.requirement)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!(
            "`python3 -m pip download {}` failed ({s}). It needs the Python package registry \
             once; afterwards `cargo xtask setup` works offline. Alternatively put {} into {}",
            wheel.requirement,
            wheel.file,
            wheels.display()
        ),
        Err(e) => bail!(
            "could not run python3 ({e}): install Python 3 with pip, then run `cargo xtask setup`"
        ),
    }
    if !file.is_file() {
        bail!("pip did not produce {} in {}", wheel.file, wheels.display());
    }
    let got = sha256_file(&file)?;
    if got != wheel.sha256 {
        bail!(
            "{} has SHA-256 {got}, expected {}: refusing to use it (delete it and retry)",
            file.display(),
            wheel.sha256
        );
    }
    Ok(file)
}

fn sha256_file(path: &Path) -> Result<String> {
    let bytes = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Extract wheel members (exact names, or prefixes ending in '/') into `dest`, dropping
/// `strip` from their names and keeping Unix permission bits (the CMake binary must stay
/// executable). Python's zipfile does the reading: pip already requires Python.
fn extract(wheel: &Path, dest: &Path, strip: &str, members: &[&str]) -> Result<()> {
    const SCRIPT: &str = r#"
import os, sys, zipfile
whl, dest, strip, members = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def wanted(n):
    return any(n == m or (m.endswith('/') and n.startswith(m)) for m in members)
count = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        n = info.filename
        if n.endswith('/') or not wanted(n):
            continue
        out = os.path.join(dest, n[len(strip):] if n.startswith(strip) else n)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, 'wb') as dst:
            dst.write(src.read())
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(out, mode)
        count += 1
if count == 0:
    sys.exit('no member of %s matched %s' % (whl, members))
"#;
    let status = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(wheel)
        .arg(dest)
        .arg(strip)
        .args(members)
        .status()
        .context("run python3 to unpack a wheel")?;
    if !status.success() {
        bail!("unpacking {} failed ({status})", wheel.display());
    }
    Ok(())
}

/// The parity test's Python side (crates/envs/tests/parity.rs): Gymnasium's environments on the
/// same MuJoCo, pinned. NumPy is pinned too: NumPy 2 keeps a float32 control cost in float32.
/// Gymnasium-Robotics for the mazes' parity test.
const PARITY_REQUIREMENTS: [&str; 4] =
    ["gymnasium[mujoco]==1.2.2", "gymnasium-robotics==1.4.2", "mujoco==3.17.0", "numpy==2.4.6"];

/// Create `.deps/parity-venv` (python3 -m venv + pip install of the pinned packages), unless a
/// complete one with exactly these pins exists. `.cargo/config.toml` names its python in
/// `OFQL_PARITY_PYTHON`.
pub fn parity_venv(root: &Path) -> Result<()> {
    let venv = root.join(".deps/parity-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(".complete");
    let pins = PARITY_REQUIREMENTS.join(" ");
    if python.is_file() && fs::read_to_string(&marker).is_ok_and(|m| m.trim() == pins) {
        return Ok(());
    }
    eprintln!("setup: creating {} with {pins}", venv.display());
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("remove stale {}", venv.display()))?;
    }
    let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!(
            "`python3 -m venv {}` failed ({s}): install Python's venv module (Debian: \
             python3-venv), then run `cargo xtask setup`",
            venv.display()
        ),
        Err(e) => bail!("could not run python3 ({e}): install Python 3, then `cargo xtask setup`"),
    }
    // Reuse the wheels `setup` already fetched (MuJoCo, Gymnasium, Gymnasium-Robotics) instead of
    // downloading again.
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--find-links"])
        .arg(root.join(".deps/wheels"))
        .args(PARITY_REQUIREMENTS)
        .status()
        .context("run the parity venv's pip")?;
    if !status.success() {
        bail!(
            "`pip install {pins}` into {} failed ({status}); it needs the Python package \
             registry once",
            venv.display()
        );
    }
    let check =
        "import gymnasium, gymnasium_robotics, mujoco; assert mujoco.__version__ == '3.17.0'";
    let status = Command::new(&python).args(["-c", check]).status()?;
    if !status.success() {
        bail!(
            "the parity venv at {} does not import gymnasium, gymnasium_robotics and mujoco 3.17.0",
            venv.display()
        );
    }
    fs::write(&marker, pins)?;
    Ok(())
}
