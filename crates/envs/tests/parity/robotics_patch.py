"""Gymnasium-Robotics 1.4.2 cannot make FrankaKitchen-v1 on MuJoCo 3.17.0 with NumPy 2:
`mujoco_utils.get_joint_qpos/qvel` assert `model.jnt_type[j] in (mjJNT_HINGE, mjJNT_SLIDE)`,
and MuJoCo's enums do not compare equal to a NumPy integer. Importing this module replaces the
two functions with copies that convert the joint type to a Python int first (nothing else in
the package changes); `NEEDS_PATCH` says whether the package as released still fails.
Used by tests/parity/kitchen_rollout.py and benches/gym_step.py.
"""

import gymnasium as gym
import gymnasium_robotics
import mujoco
from gymnasium_robotics.utils import mujoco_utils

gym.register_envs(gymnasium_robotics)


def _joint_values(model, values, name, address, free_dim, ball_dim):
    """The package's joint lookup, with the joint type read as a Python int."""
    joint_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    assert joint_id != -1, f"Joint with name '{name}' is not part of the model!"
    joint_type = int(model.jnt_type[joint_id])
    start = address[joint_id]
    if joint_type == mujoco.mjtJoint.mjJNT_FREE:
        ndim = free_dim
    elif joint_type == mujoco.mjtJoint.mjJNT_BALL:
        ndim = ball_dim
    else:
        assert joint_type in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        ndim = 1
    return values[start : start + ndim].copy()


def get_joint_qpos(model, data, name):
    """mujoco_utils.get_joint_qpos with the joint type as a Python int."""
    return _joint_values(model, data.qpos, name, model.jnt_qposadr, 7, 4)


def get_joint_qvel(model, data, name):
    """mujoco_utils.get_joint_qvel with the joint type as a Python int (the package's sizes,
    4 for a ball joint included)."""
    return _joint_values(model, data.qvel, name, model.jnt_dofadr, 6, 4)


def unpatched_fails():
    """Whether the package as released fails here (so the patch is still needed)."""
    try:
        gym.make("FrankaKitchen-v1").close()
    except AssertionError:
        return True
    return False


NEEDS_PATCH = unpatched_fails()
mujoco_utils.get_joint_qpos = get_joint_qpos
mujoco_utils.get_joint_qvel = get_joint_qvel
