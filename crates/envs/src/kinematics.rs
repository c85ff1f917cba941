//! A site's pose and Jacobian at a joint configuration of one's choosing, on a scratch copy of
//! an environment's model: what a scripted controller (the kitchen demonstrator) steers by,
//! without touching the simulation it acts in.

use std::sync::Arc;

use mujoco_rs::prelude::{MjData, MjModel, MjtObjBase};

use crate::EnvError;

/// Forward kinematics of one site.
pub struct SiteKinematics {
    data: MjData<Arc<MjModel>>,
    site: usize,
}

/// Where a site is and how it moves with the joints.
#[derive(Debug, Clone)]
pub struct SitePose {
    pub pos: [f64; 3],
    /// Row-major rotation from the site's frame to the world's.
    pub rot: [f64; 9],
    /// d pos / d qvel, 3 x nv, row-major.
    pub jacp: Vec<f64>,
    /// d angle / d qvel, 3 x nv, row-major.
    pub jacr: Vec<f64>,
}

impl SiteKinematics {
    pub fn new(model: Arc<MjModel>, site: &str) -> Result<Self, EnvError> {
        let id = model
            .name_to_id(MjtObjBase::mjOBJ_SITE, site)
            .ok_or_else(|| EnvError::Invalid(format!("the model has no site `{site}`")))?;
        Ok(Self { data: MjData::new(model), site: id })
    }

    /// Joints of the model (nv), the width of the Jacobians.
    pub fn nv(&self) -> usize {
        self.data.model().ffi().nv as usize
    }

    /// The site at `qpos[..n]` = `q` (the rest of the configuration stays at the model's
    /// initial one).
    pub fn at(&mut self, q: &[f64]) -> SitePose {
        self.data.qpos_mut()[..q.len()].copy_from_slice(q);
        self.data.kinematics();
        self.data.com_pos();
        let (jacp, jacr) = self.data.jac_site(true, true, self.site);
        SitePose {
            pos: self.data.site_xpos()[self.site],
            rot: self.data.site_xmat()[self.site],
            jacp,
            jacr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EnvId, load_env_model};

    /// The Jacobian as used (row-major, nv wide) is the derivative of the site's position:
    /// central differences over the arm's seven joints.
    #[test]
    fn site_jacobian_matches_finite_differences() {
        let mut kin =
            SiteKinematics::new(load_env_model(EnvId::franka_kitchen()).unwrap(), "end_effector")
                .unwrap();
        let q = [0.15, -1.5, 1.8, -2.4, 0.3, 0.8, 1.5, 0.03, 0.03];
        let pose = kin.at(&q);
        let nv = kin.nv();
        let h = 1e-6;
        for k in 0..7 {
            let (mut up, mut down) = (q, q);
            up[k] += h;
            down[k] -= h;
            let (pu, pd) = (kin.at(&up).pos, kin.at(&down).pos);
            for i in 0..3 {
                let fd = (pu[i] - pd[i]) / (2.0 * h);
                assert!((fd - pose.jacp[i * nv + k]).abs() < 1e-6, "joint {k} axis {i}");
            }
        }
        assert!(
            SiteKinematics::new(load_env_model(EnvId::franka_kitchen()).unwrap(), "nope").is_err()
        );
    }
}
