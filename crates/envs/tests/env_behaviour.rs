//! Behaviour of single environments that the parity test does not isolate: reset noise,
//! clamping and its cost, the v4/v5 healthy-reward rule, the time limit, bad input.

use ofql_envs::{Env, EnvError, EnvId, MAX_EPISODE_STEPS, Task, Version};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn env(name: &str) -> Env {
    Env::new(name.parse().unwrap()).unwrap()
}

#[test]
fn reset_is_seeded_and_inside_the_uniform_noise_bounds() {
    let mut hopper = env("Hopper-v4");
    let fresh = (hopper.qpos().to_vec(), hopper.qvel().to_vec());
    let a = hopper.reset(&mut ChaCha8Rng::seed_from_u64(7));
    let (qpos, qvel) = (hopper.qpos().to_vec(), hopper.qvel().to_vec());
    assert_eq!(a, hopper.reset(&mut ChaCha8Rng::seed_from_u64(7)));
    assert_ne!(a, hopper.reset(&mut ChaCha8Rng::seed_from_u64(8)));
    for (q, q0) in qpos.iter().zip(&fresh.0).chain(qvel.iter().zip(&fresh.1)) {
        let d = q - q0;
        assert!(d.abs() <= 5e-3 && d != 0.0, "noise {d} outside (-0.005, 0.005)");
    }
    assert_eq!(hopper.elapsed_steps(), 0);
}

#[test]
fn half_cheetah_velocity_noise_is_normal_with_scale_0_1() {
    let mut cheetah = env("HalfCheetah-v5");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut pos, mut vel) = (Vec::new(), Vec::new());
    for _ in 0..400 {
        cheetah.reset(&mut rng);
        pos.extend_from_slice(cheetah.qpos());
        vel.extend_from_slice(cheetah.qvel());
    }
    let std = (vel.iter().map(|v| v * v).sum::<f64>() / vel.len() as f64).sqrt();
    assert!((0.095..0.105).contains(&std), "qvel noise std {std}");
    // Normal noise has tails beyond the uniform bound; qpos noise (qpos0 = 0) has none.
    assert!(vel.iter().any(|v| v.abs() > 0.25));
    assert!(pos.iter().all(|p| p.abs() <= 0.1));
}

#[test]
fn observation_is_qpos_without_x_then_clipped_qvel() {
    let mut walker = env("Walker2d-v4");
    let qpos: Vec<f64> =
        (0..9).map(|i| 0.01 * i as f64 + if i == 1 { 1.25 } else { 0.0 }).collect();
    let qvel: Vec<f64> = (0..9).map(|i| (i as f64 - 4.0) * 4.0).collect(); // -16 .. 16
    let obs = walker.reset_to_state(&qpos, &qvel).unwrap();
    assert_eq!(&obs[..8], &qpos[1..]);
    let clipped: Vec<f64> = qvel.iter().map(|v| v.clamp(-10.0, 10.0)).collect();
    assert_eq!(&obs[8..], &clipped[..]);
    // HalfCheetah does not clip.
    let mut cheetah = env("HalfCheetah-v4");
    let obs = cheetah.reset_to_state(&[0.0; 9], &qvel).unwrap();
    assert_eq!(&obs[8..], &qvel[..]);
}

#[test]
fn out_of_range_actions_are_clamped_by_mujoco_but_pay_the_full_control_cost() {
    for name in ["HalfCheetah-v4", "Hopper-v5", "Walker2d-v4"] {
        let (mut inside, mut outside) = (env(name), env(name));
        let start = inside.reset(&mut ChaCha8Rng::seed_from_u64(3));
        let (qpos, qvel) = (inside.qpos().to_vec(), inside.qvel().to_vec());
        assert_eq!(outside.reset_to_state(&qpos, &qvel).unwrap(), start);
        let nu = inside.act_dim();
        let a_in: Vec<f64> = (0..nu).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let a_out: Vec<f64> = a_in.iter().map(|a| a * 3.0).collect();
        let s_in = inside.step(&a_in).unwrap();
        let s_out = outside.step(&a_out).unwrap();
        assert_eq!(s_in.obs, s_out.obs, "{name}: MuJoCo clamps ctrl to ctrlrange");
        let w = inside.spec().unwrap().ctrl_cost_weight;
        let expected = w * nu as f64 * (9.0 - 1.0);
        assert!((s_in.reward - s_out.reward - expected).abs() < 1e-12, "{name}");
    }
}

#[test]
fn reward_is_forward_velocity_minus_control_cost() {
    let mut cheetah = env("HalfCheetah-v4");
    cheetah.reset(&mut ChaCha8Rng::seed_from_u64(4));
    let action = [0.5, -0.2, 0.3, 0.9, -0.7, 0.1];
    let x_before = cheetah.qpos()[0];
    let step = cheetah.step(&action).unwrap();
    let x_velocity = (cheetah.qpos()[0] - x_before) / 0.05;
    let cost = 0.1 * action.iter().map(|a| a * a).sum::<f64>();
    assert!((step.reward - (x_velocity - cost)).abs() < 1e-12);
    assert!(x_velocity.abs() > 1e-6, "the body must move for this to test anything");
}

#[test]
fn f32_and_f64_actions_drive_the_same_physics() {
    let (mut a, mut b) = (env("Hopper-v4"), env("Hopper-v4"));
    a.reset(&mut ChaCha8Rng::seed_from_u64(5));
    b.reset(&mut ChaCha8Rng::seed_from_u64(5));
    let action32 = [0.3f32, -0.6, 0.9];
    let action64: Vec<f64> = action32.iter().map(|&x| f64::from(x)).collect();
    let (s32, s64) = (a.step(&action32).unwrap(), b.step(&action64).unwrap());
    assert_eq!(s32.obs, s64.obs);
    assert!((s32.reward - s64.reward).abs() < 1e-9);
}

/// The healthy reward is what is left of the reward after the forward velocity and the
/// control cost: v2-v4 pay it on every step (the falling one too), v5 only while healthy.
#[test]
fn v4_pays_the_healthy_reward_when_falling_and_v5_does_not() {
    for task in [Task::Hopper, Task::Walker2d] {
        for version in [Version::V4, Version::V5] {
            let mut env = Env::new(EnvId::new(task, version)).unwrap();
            env.reset(&mut ChaCha8Rng::seed_from_u64(6));
            let push = vec![1.0; env.act_dim()];
            let cost = 1e-3 * env.act_dim() as f64;
            let mut fell = false;
            for t in 0..300 {
                let x_before = env.qpos()[0];
                let step = env.step(&push).unwrap();
                let x_velocity = (env.qpos()[0] - x_before) / env.dt();
                let healthy_part = step.reward - (x_velocity - cost);
                let expected = if version == Version::V5 && step.terminated { 0.0 } else { 1.0 };
                assert!((healthy_part - expected).abs() < 1e-9, "{task:?} {version:?} step {t}");
                if step.terminated {
                    fell = true;
                    break;
                }
            }
            assert!(fell, "{task:?} {version:?} never fell under full torque");
        }
    }
}

#[test]
fn hopper_v4_and_v5_share_their_dynamics() {
    let mut v4 = env("Hopper-v4");
    let mut v5 = env("Hopper-v5");
    v4.reset(&mut ChaCha8Rng::seed_from_u64(10));
    v5.reset(&mut ChaCha8Rng::seed_from_u64(10));
    for _ in 0..50 {
        let (a, b) = (v4.step(&[0.2, -0.5, 0.7]).unwrap(), v5.step(&[0.2, -0.5, 0.7]).unwrap());
        assert_eq!((a.obs, a.terminated), (b.obs, b.terminated));
    }
}

#[test]
fn truncates_at_1000_steps_and_reset_restarts_the_count() {
    let mut cheetah = env("HalfCheetah-v4");
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    cheetah.reset(&mut rng);
    let zero = [0.0; 6];
    for t in 1..=MAX_EPISODE_STEPS {
        let step = cheetah.step(&zero).unwrap();
        assert!(!step.terminated, "HalfCheetah never terminates");
        assert_eq!(step.truncated, t == MAX_EPISODE_STEPS, "step {t}");
    }
    cheetah.reset(&mut rng);
    assert!(!cheetah.step(&zero).unwrap().truncated);
    assert_eq!(cheetah.elapsed_steps(), 1);
}

#[test]
fn wrong_action_and_state_sizes_are_clear_errors() {
    let mut hopper = env("Hopper-v4");
    let err = hopper.step(&[0.0; 6]).unwrap_err();
    assert!(matches!(err, EnvError::ActionDim { expected: 3, got: 6, .. }), "{err}");
    assert!(err.to_string().contains("Hopper-v4 takes 3-dimensional actions"), "{err}");
    let err = hopper.reset_to_state(&[0.0; 9], &[0.0; 9]).unwrap_err().to_string();
    assert!(err.contains("Hopper-v4 has 6 qpos") && err.contains("--env"), "{err}");
    let err = hopper.set_state(&[0.0; 6], &[0.0; 5]).unwrap_err().to_string();
    assert!(err.contains("6 qvel"), "{err}");
}

/// The goal-reaching task that trains the maze data's ant: the goal's offset (in the torso's
/// heading frame) ends the observation, the reward is the speed towards the goal plus 1 minus the control cost, and a
/// torso outside [0.2, 1.0] m ends the episode.
#[test]
fn goal_reaching_ant_rewards_progress_and_ends_when_it_falls() {
    use ofql_envs::{EnvConfig, MazeMap, MazeOptions};
    let config = EnvConfig {
        maze: MazeOptions { goal_reaching: true, reset_target: true, ..MazeOptions::default() },
        ..EnvConfig::from(EnvId::ant_maze(MazeMap::Open))
    };
    let mut env = config.make_one().unwrap();
    let obs = env.reset_with_seed(Some(3)).unwrap();
    let goal = env.goal().unwrap();
    assert_eq!(obs.len(), 29);
    assert_eq!(&obs[..13], &env.qpos()[2..]);
    assert_eq!([obs[27], obs[28]], ofql_envs::maze::heading_offset(env.qpos(), goal));
    // Teleport towards the goal between steps: the distance gained shows up as speed.
    let before = ofql_envs::maze::distance([env.qpos()[0], env.qpos()[1]], goal);
    let step = env.step(&[0.5f64; 8]).unwrap();
    let after = ofql_envs::maze::distance([env.qpos()[0], env.qpos()[1]], goal);
    let expected = (before - after) / env.dt() + 1.0 - 0.5 * 8.0 * 0.25;
    assert!((step.reward - expected).abs() < 1e-12, "{} vs {expected}", step.reward);
    assert!(!step.terminated);
    let mut qpos = env.qpos().to_vec();
    qpos[2] = 2.0; // thrown up: above the healthy range for the whole step
    env.set_state(&qpos, &vec![0.0; env.nv()]).unwrap();
    assert!(env.step(&[0.0f64; 8]).unwrap().terminated, "a torso near 2 m is not healthy");
}
