"""Environment for ROS 2 processes that this project starts (tests, demo, benchmarks).

DDS discovery traffic must stay on this machine: Kilted ignores ROS_LOCALHOST_ONLY, so every
process gets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, and a run-specific ROS_DOMAIN_ID keeps
parallel runs (two test sessions, a demo beside a test) from seeing each other's topics.
No rclpy import here: this module is used before ROS starts.
"""
from __future__ import annotations

import os
from typing import Mapping, MutableMapping

DISCOVERY_VARIABLE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
DOMAIN_VARIABLE = "ROS_DOMAIN_ID"
# Domain ids 1..100 keep the DDS port numbers inside the range valid for every participant id.
_DOMAIN_SPAN = 100


def run_specific_domain_id(seed: int | None = None) -> int:
    """A domain id in 1..100 derived from `seed` (default: this process id)."""
    return 1 + (os.getpid() if seed is None else seed) % _DOMAIN_SPAN


def local_ros_env(base: Mapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """A copy of `base` (default os.environ) with loopback-only discovery and a domain id.

    An explicit `domain_id` wins; otherwise a ROS_DOMAIN_ID already in `base` is kept (so child
    processes join their parent's domain), else a run-specific one is chosen.
    """
    env = dict(os.environ if base is None else base)
    env[DISCOVERY_VARIABLE] = "LOCALHOST"
    if domain_id is not None:
        env[DOMAIN_VARIABLE] = str(domain_id)
    elif not env.get(DOMAIN_VARIABLE):
        env[DOMAIN_VARIABLE] = str(run_specific_domain_id())
    return env


def apply_local_ros_env(environ: MutableMapping[str, str] | None = None, domain_id: int | None = None) -> dict[str, str]:
    """Set loopback discovery and the domain id in `environ` (default os.environ), in place."""
    target = os.environ if environ is None else environ
    target.update({k: v for k, v in local_ros_env(target, domain_id).items()
                   if k in (DISCOVERY_VARIABLE, DOMAIN_VARIABLE)})
    return dict(target)


def check_local_ros_env(env: Mapping[str, str] | None = None) -> None:
    """Raise RuntimeError unless `env` keeps DDS discovery on loopback with a domain id set."""
    env = os.environ if env is None else env
    if env.get(DISCOVERY_VARIABLE) != "LOCALHOST":
        raise RuntimeError(
            f"{DISCOVERY_VARIABLE} must be LOCALHOST for ROS processes started by this project "
            f"(got {env.get(DISCOVERY_VARIABLE)!r}); Kilted ignores ROS_LOCALHOST_ONLY")
    if not env.get(DOMAIN_VARIABLE, "").isdigit():
        raise RuntimeError(f"{DOMAIN_VARIABLE} must be set to a run-specific integer, got {env.get(DOMAIN_VARIABLE)!r}")
