//! MuJoCo's warnings (Gymnasium's HalfCheetah XML uses the deprecated `settotalmass`) must
//! not litter the working directory with MUJOCO_LOG.TXT. Alone in its test binary because it
//! changes the working directory.

#[test]
fn loading_a_model_that_warns_writes_no_log_file() {
    let dir = tempfile::tempdir().unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    let model = ofql_envs::load_model("half_cheetah.xml").unwrap();
    assert_eq!(model.ffi().nq, 9);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(files.is_empty(), "files appeared in the working directory: {files:?}");
}
