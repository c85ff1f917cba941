//! Run-time lookup of libmujoco.so: an rpath to the directory we link against, so that
//! binaries and test binaries run without LD_LIBRARY_PATH. Used by every crate whose
//! artefacts load MuJoCo (`build = "../envs/build.rs"`): an rpath only reaches the crate's
//! own binaries, not its dependents'.
fn main() {
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    // No rerun-if-changed=build.rs: relative to each package that shares this script it names
    // a file that does not exist, which made every build rerun it. Cargo rebuilds the script
    // when its source changes anyway.
    match std::env::var("MUJOCO_DYNAMIC_LINK_DIR") {
        Ok(dir) if std::path::Path::new(&dir).join("libmujoco.so").exists() => {
            println!("cargo::rustc-link-arg=-Wl,-rpath,{dir}");
        }
        Ok(dir) => panic!(
            "MuJoCo 3.17.0 is missing: no libmujoco.so in MUJOCO_DYNAMIC_LINK_DIR={dir}. \
             Run `cargo xtask setup` (it fetches the mujoco wheel with pip)."
        ),
        Err(_) => panic!(
            "MUJOCO_DYNAMIC_LINK_DIR is not set: build from the repository (its \
             .cargo/config.toml sets it) after `cargo xtask setup`, or point it at MuJoCo 3.17.0's lib/."
        ),
    }
}
