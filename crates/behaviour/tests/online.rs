//! Online SAC behaviour training on the real simulator: snapshots with evaluated returns, a
//! checkpoint on stop, and a resumed run that finishes the budget.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use ofql_behaviour::online::{
    BehaviourConfig, BehaviourObserver, Quiet, buffer_from, read_snapshots, state_log_from,
    train_behaviour,
};
use ofql_behaviour::sac::SacConfig;
use ofql_nets::Checkpoint;

fn tiny() -> BehaviourConfig {
    BehaviourConfig {
        env: "hopper-v4".into(),
        goal_reaching: false,
        maze_map: None,
        steps: 400,
        eval_every: 200,
        eval_episodes: 2,
        checkpoint_every: 100,
        sac: SacConfig { hidden: 32, batch_size: 64, random_steps: 100, ..SacConfig::default() },
    }
}

struct StopAt<'a>(u64, &'a AtomicBool);
impl BehaviourObserver for StopAt<'_> {
    fn on_step(&mut self, step: u64, _total: u64) {
        if step == self.0 {
            self.1.store(true, Ordering::Relaxed);
        }
    }
}

#[test]
fn sac_run_saves_evaluated_snapshots_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let part = train_behaviour(&tiny(), dir.path(), false, &stop, &mut StopAt(250, &stop)).unwrap();
    assert!(part.interrupted);
    assert_eq!(part.steps, 250);
    assert_eq!(read_snapshots(dir.path()).unwrap().len(), 1);

    let never = AtomicBool::new(false);
    let err = train_behaviour(&tiny(), dir.path(), false, &never, &mut Quiet).unwrap_err();
    assert!(format!("{err:#}").contains("--resume"));
    let done = train_behaviour(&tiny(), dir.path(), true, &never, &mut Quiet).unwrap();
    assert_eq!(done.steps, 400);
    assert!(done.last_losses.critic.is_finite() && done.last_losses.alpha > 0.0);

    let snaps = read_snapshots(dir.path()).unwrap();
    assert_eq!(snaps.iter().map(|s| s.step).collect::<Vec<_>>(), vec![200, 400]);
    for s in &snaps {
        assert!(s.return_mean.is_finite());
        assert!(dir.path().join(&s.file).is_file(), "{}", s.file);
    }
    assert_eq!(done.best_return, snaps.iter().map(|s| s.return_mean).reduce(f64::max));

    // The state log runs beside the replay buffer, row for row; the episode cut by the stop
    // at step 250 is marked as a timeout so that no transition runs across the resume.
    let ck = Checkpoint::load(&dir.path().join("checkpoint.safetensors"), &Device::Cpu).unwrap();
    let buffer = buffer_from(&ck, 11, 3).unwrap();
    assert_eq!(buffer.len(), 400);
    let states = state_log_from(&ck, 400, 6, 6).unwrap();
    let ended = |i: usize| buffer.dones[i] != 0.0 || states.timeouts[i];
    assert!(ended(249), "the row before the resume ends an episode");
    assert!(state_log_from(&ck, 399, 6, 6).is_err(), "sizes are checked");
    // Hopper's observation is qpos[1..] and qvel: the log and the buffer must agree.
    for i in [0, 100, 249, 250, 399] {
        let qpos: Vec<f32> = states.qpos[i * 6 + 1..i * 6 + 6].iter().map(|&x| x as f32).collect();
        assert_eq!(&buffer.observations[i * 11..i * 11 + 5], &qpos[..]);
    }
}

/// The goal-reaching ant trains in a maze's goal-reaching task (29 observation numbers) and
/// saves snapshots; the option is refused for a robot that is not in a maze.
#[test]
fn goal_reaching_ant_trains_in_a_maze() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BehaviourConfig {
        env: "AntMaze_UMaze-v4".into(),
        goal_reaching: true,
        steps: 300,
        eval_every: 300,
        eval_episodes: 1,
        ..tiny()
    };
    assert_eq!(cfg.env_config().unwrap().make_one().unwrap().obs_dim(), 29);
    let stop = AtomicBool::new(false);
    let summary = train_behaviour(&cfg, dir.path(), false, &stop, &mut Quiet).unwrap();
    assert_eq!(summary.steps, 300);
    assert!(summary.best_return.unwrap().is_finite());
    // Its snapshots steer the maze data; a snapshot of the earlier world-frame task is refused.
    let (_, file) = ofql_behaviour::maze_data::load_goal_reaching_actor(dir.path(), Some(300))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(file, "snapshots/step_300.safetensors");
    let Err(err) = ofql_behaviour::maze_data::load_goal_reaching_actor(dir.path(), Some(7)) else {
        panic!("a snapshot that does not exist was loaded");
    };
    assert!(err.to_string().contains("no snapshot of step 7; it has 300"), "{err}");
    let snapshot = dir.path().join("snapshots/step_300.safetensors");
    let mut old = ofql_nets::Checkpoint::load(&snapshot, &candle_core::Device::Cpu).unwrap();
    old.remove_meta("goal_frame");
    old.save(&snapshot).unwrap();
    let Err(err) = ofql_behaviour::maze_data::load_goal_reaching_actor(dir.path(), None) else {
        panic!("a world-frame snapshot was accepted");
    };
    assert!(format!("{err:#}").contains("heading frame"), "{err:#}");
    let hopper = BehaviourConfig { goal_reaching: true, ..tiny() };
    let err = hopper.env_config().unwrap_err().to_string();
    assert!(err.contains("must be a maze"), "{err}");
}

/// The goal-reaching task in a map of the user's (an open field walled round): the ant trains
/// in it, the map is kept in the run's config, and a bad map or a map without the task is
/// refused by name.
#[test]
fn goal_reaching_ant_trains_in_a_custom_map() {
    let field: Vec<String> = std::iter::once("1111111".to_string())
        .chain(std::iter::repeat_n("1000001".to_string(), 5))
        .chain(std::iter::once("1111111".to_string()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = BehaviourConfig {
        env: "AntMaze_Open-v4".into(),
        goal_reaching: true,
        maze_map: Some(field.clone()),
        steps: 200,
        eval_every: 200,
        eval_episodes: 1,
        ..tiny()
    };
    let env = cfg.env_config().unwrap();
    assert_eq!(env.maze.cells_map.as_deref(), Some(&field[..]));
    assert_eq!(env.make_one().unwrap().obs_dim(), 29);
    let stop = AtomicBool::new(false);
    train_behaviour(&cfg, dir.path(), false, &stop, &mut Quiet).unwrap();
    let saved = std::fs::read_to_string(dir.path().join("behaviour.toml")).unwrap();
    let saved: BehaviourConfig = toml::from_str(&saved).unwrap();
    assert_eq!(saved.maze_map, Some(field));

    let bad = BehaviourConfig { maze_map: Some(vec!["111".into(), "1x1".into()]), ..cfg.clone() };
    let err = format!("{:#}", bad.env_config().unwrap_err());
    assert!(err.contains("maze map") && err.contains("`x`"), "{err}");
    let ragged = BehaviourConfig { maze_map: Some(vec!["111".into(), "10".into()]), ..cfg.clone() };
    let err = format!("{:#}", ragged.env_config().unwrap_err());
    assert!(err.contains("rectangle"), "{err}");
    let hopper = BehaviourConfig { maze_map: Some(vec!["111".into()]), ..tiny() };
    let err = hopper.env_config().unwrap_err().to_string();
    assert!(err.contains("goal_reaching"), "{err}");
}
