"""Session-wide test settings.

- DDS discovery stays on loopback and this pytest run gets its own ROS_DOMAIN_ID, before any
  test imports rclpy (see mask2iv_ros/ros_env.py). MASK2IV_TEST_DOMAIN_ID pins it if needed.
- One torch thread: the CI machines have 2 cores and tests must not fight over them.
"""
import os

from mask2iv_ros.ros_env import apply_local_ros_env, run_specific_domain_id

_pinned = os.environ.get("MASK2IV_TEST_DOMAIN_ID")
apply_local_ros_env(domain_id=int(_pinned) if _pinned else run_specific_domain_id())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402  (after the environment is set)

torch.set_num_threads(1)
