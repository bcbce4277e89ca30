"""DDS discovery must never leave the machine: every ROS process this project starts runs with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a run-specific ROS_DOMAIN_ID."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mask2iv_ros.ros_env import check_local_ros_env, local_ros_env

ROOT = Path(__file__).resolve().parents[2]


def test_this_test_run_keeps_discovery_on_loopback():
    check_local_ros_env()  # raises if conftest did not set it
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100


def test_check_rejects_an_environment_without_loopback_discovery():
    env = {k: v for k, v in os.environ.items() if k != "ROS_AUTOMATIC_DISCOVERY_RANGE"}
    with pytest.raises(RuntimeError, match="ROS_AUTOMATIC_DISCOVERY_RANGE"):
        check_local_ros_env(env)
    with pytest.raises(RuntimeError, match="LOCALHOST"):
        check_local_ros_env({**env, "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "ROS_DOMAIN_ID": "3"})
    with pytest.raises(RuntimeError, match="ROS_DOMAIN_ID"):
        check_local_ros_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})


def test_child_env_overrides_a_network_wide_setting():
    env = local_ros_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "PATH": "/bin"}, domain_id=7)
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST" and env["ROS_DOMAIN_ID"] == "7"
    assert local_ros_env({"ROS_DOMAIN_ID": "12"})["ROS_DOMAIN_ID"] == "12"  # children join the parent's domain


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to read a process environment")
def test_a_started_ros_node_process_has_the_setting():
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    code = (
        "import os, rclpy, sys; rclpy.init(); n = rclpy.create_node('env_probe');"
        "sys.stdout.write(open('/proc/self/environ','rb').read().decode(errors='replace')); "
        "n.destroy_node(); rclpy.shutdown()"
    )
    out = subprocess.run([sys.executable, "-c", code], env=local_ros_env(), capture_output=True, timeout=60, check=True)
    child_env = dict(kv.split("=", 1) for kv in out.stdout.decode().split("\0") if "=" in kv)
    check_local_ros_env(child_env)
    assert child_env["ROS_DOMAIN_ID"] == os.environ["ROS_DOMAIN_ID"]


def test_makefile_exports_loopback_discovery():
    makefile = (ROOT / "Makefile").read_text()
    assert "export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST" in makefile
