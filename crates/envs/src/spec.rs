//! The constants of each environment, transcribed from Gymnasium 1.2.2's
//! `gymnasium/envs/mujoco/{half_cheetah,hopper,walker2d}_v{4,5}.py`.

use crate::id::{EnvId, Task, Version};

/// Episodes are cut here (Gymnasium's `TimeLimit`, `max_episode_steps=1000`).
pub const MAX_EPISODE_STEPS: usize = 1000;

/// How `reset` perturbs the initial state (`reset_noise_scale` = `scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResetNoise {
    /// qpos + U(-s, s), qvel + s * N(0, 1) (HalfCheetah).
    UniformPosNormalVel { scale: f64 },
    /// qpos + U(-s, s), qvel + U(-s, s) (Hopper, Walker2d).
    Uniform { scale: f64 },
}

/// When the body counts as healthy (Hopper, Walker2d); open intervals as in Gymnasium.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    pub z_range: (f64, f64),
    pub angle_range: (f64, f64),
    /// Bounds on `concat(qpos, qvel)[2:]` (Hopper only).
    pub state_range: Option<(f64, f64)>,
    /// v2-v4 pay the healthy reward on every step (the terminating one too); v5 only while
    /// healthy.
    pub reward_only_while_healthy: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    pub xml: &'static str,
    pub frame_skip: usize,
    pub forward_reward_weight: f64,
    pub ctrl_cost_weight: f64,
    pub healthy_reward: f64,
    /// `None`: never terminates (HalfCheetah).
    pub health: Option<Health>,
    /// Velocities in the observation are clipped to [-v, v].
    pub obs_velocity_clip: Option<f64>,
    pub reset_noise: ResetNoise,
}

impl Spec {
    /// The constants of a locomotion environment (`None` for a maze or the kitchen).
    pub fn of(id: EnvId) -> Option<Spec> {
        let v5 = id.version == Version::V5;
        Some(match id.task {
            Task::AntMaze(_) | Task::FrankaKitchen => return None,
            Task::HalfCheetah => Spec {
                xml: "half_cheetah.xml",
                frame_skip: 5,
                forward_reward_weight: 1.0,
                ctrl_cost_weight: 0.1,
                healthy_reward: 0.0,
                health: None,
                obs_velocity_clip: None,
                reset_noise: ResetNoise::UniformPosNormalVel { scale: 0.1 },
            },
            Task::Hopper => Spec {
                xml: "hopper.xml",
                frame_skip: 4,
                forward_reward_weight: 1.0,
                ctrl_cost_weight: 1e-3,
                healthy_reward: 1.0,
                health: Some(Health {
                    z_range: (0.7, f64::INFINITY),
                    angle_range: (-0.2, 0.2),
                    state_range: Some((-100.0, 100.0)),
                    reward_only_while_healthy: v5,
                }),
                obs_velocity_clip: Some(10.0),
                reset_noise: ResetNoise::Uniform { scale: 5e-3 },
            },
            Task::Walker2d => Spec {
                xml: if v5 { "walker2d_v5.xml" } else { "walker2d.xml" },
                frame_skip: 4,
                forward_reward_weight: 1.0,
                ctrl_cost_weight: 1e-3,
                healthy_reward: 1.0,
                health: Some(Health {
                    z_range: (0.8, 2.0),
                    angle_range: (-1.0, 1.0),
                    state_range: None,
                    reward_only_while_healthy: v5,
                }),
                obs_velocity_clip: Some(10.0),
                reset_noise: ResetNoise::Uniform { scale: 5e-3 },
            },
        })
    }
}

impl Health {
    /// Gymnasium's `is_healthy`: z = qpos[1], angle = qpos[2], strict bounds (NaN is unhealthy).
    pub fn is_healthy(&self, qpos: &[f64], qvel: &[f64]) -> bool {
        let inside = |x: f64, (lo, hi): (f64, f64)| lo < x && x < hi;
        let state_ok = match self.state_range {
            Some(range) => qpos[2..].iter().chain(qvel).all(|&x| inside(x, range)),
            None => true,
        };
        state_ok && inside(qpos[1], self.z_range) && inside(qpos[2], self.angle_range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hopper() -> Health {
        Spec::of(EnvId::new(Task::Hopper, Version::V4)).unwrap().health.unwrap()
    }

    #[test]
    fn hopper_health_bounds_are_strict() {
        let h = hopper();
        let qvel = [0.0; 6];
        assert!(h.is_healthy(&[0.0, 1.25, 0.0, 0.0, 0.0, 0.0], &qvel));
        assert!(!h.is_healthy(&[0.0, 0.7, 0.0, 0.0, 0.0, 0.0], &qvel), "z = 0.7 is not > 0.7");
        assert!(!h.is_healthy(&[0.0, 1.25, 0.2, 0.0, 0.0, 0.0], &qvel), "angle = 0.2");
        assert!(!h.is_healthy(&[0.0, 1.25, -0.2, 0.0, 0.0, 0.0], &qvel), "angle = -0.2");
        assert!(!h.is_healthy(&[0.0, f64::NAN, 0.0, 0.0, 0.0, 0.0], &qvel), "NaN z");
    }

    #[test]
    fn hopper_state_range_covers_qpos_from_index_2_and_all_qvel() {
        let h = hopper();
        let qpos = [0.0, 1.25, 0.0, 0.0, 0.0, 0.0];
        // qpos[0] (x) is outside the state check: the hopper may travel far.
        assert!(h.is_healthy(&[500.0, 1.25, 0.0, 0.0, 0.0, 0.0], &[0.0; 6]));
        // Every velocity is inside it, including the root x velocity (qvel[0]).
        assert!(!h.is_healthy(&qpos, &[100.0, 0.0, 0.0, 0.0, 0.0, 0.0]));
        assert!(!h.is_healthy(&qpos, &[0.0, 0.0, 0.0, 0.0, 0.0, -100.0]));
        assert!(!h.is_healthy(&[0.0, 1.25, 0.0, 100.0, 0.0, 0.0], &[0.0; 6]));
        assert!(h.is_healthy(&qpos, &[99.9, 0.0, 0.0, 0.0, 0.0, -99.9]));
    }

    #[test]
    fn walker_has_an_upper_height_bound_and_no_state_bound() {
        let h = Spec::of(EnvId::new(Task::Walker2d, Version::V5)).unwrap().health.unwrap();
        let qpos = |z: f64, a: f64| [0.0, z, a, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(h.is_healthy(&qpos(1.25, 0.0), &[1e6; 9]));
        assert!(!h.is_healthy(&qpos(2.0, 0.0), &[0.0; 9]));
        assert!(!h.is_healthy(&qpos(0.8, 0.0), &[0.0; 9]));
        assert!(!h.is_healthy(&qpos(1.25, 1.0), &[0.0; 9]));
        assert!(h.is_healthy(&qpos(1.25, -0.99), &[0.0; 9]));
    }

    #[test]
    fn versions_differ_only_where_gymnasium_does() {
        let w4 = Spec::of(EnvId::new(Task::Walker2d, Version::V4)).unwrap();
        let w5 = Spec::of(EnvId::new(Task::Walker2d, Version::V5)).unwrap();
        assert_eq!((w4.xml, w5.xml), ("walker2d.xml", "walker2d_v5.xml"));
        assert!(!w4.health.unwrap().reward_only_while_healthy);
        assert!(w5.health.unwrap().reward_only_while_healthy);
        let c4 = Spec::of(EnvId::new(Task::HalfCheetah, Version::V4)).unwrap();
        let c5 = Spec::of(EnvId::new(Task::HalfCheetah, Version::V5)).unwrap();
        assert_eq!(c4, c5);
    }
}
