"""imagine_node as a process (its console entry point) and the planner example against it."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from mask2iv_ros.ros_env import check_local_ros_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NODE = [sys.executable, "-m", "mask2iv_ros.ros.node", "--ros-args"]


def child_env():
    env = dict(os.environ)
    check_local_ros_env(env)  # loopback discovery + this run's domain, inherited by the children
    return env


def test_missing_model_logs_a_clear_message_and_exits_nonzero(tmp_path):
    missing = tmp_path / "no_model_here"
    proc = subprocess.run(NODE + ["-p", f"model_path:={missing}"], env=child_env(), capture_output=True,
                          text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert f"model_path: no Mask2IV checkpoint at '{missing}'" in output
    assert "tiny-random" in output  # says how to start for tests


def test_bad_parameter_value_exits_nonzero():
    proc = subprocess.run(NODE + ["-p", "model_path:=tiny-random", "-p", "busy_policy:=drop"], env=child_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "busy_policy: expected one of ['queue', 'reject']" in proc.stderr + proc.stdout


def test_planner_example_against_a_node_process(tmp_path):
    namespace = f"/planner_test_{os.getpid()}"
    log = open(tmp_path / "node.log", "w+")
    node = subprocess.Popen(
        NODE + ["-r", f"__ns:={namespace}", "-p", "model_path:=tiny-random", "-p", "num_inference_steps:=2"],
        env=child_env(), stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        example = subprocess.run(
            [sys.executable, str(REPO / "examples" / "plan_with_imagination.py"), "--action", f"{namespace}/imagine",
             "--timeout", "120"],
            env=child_env(), capture_output=True, text=True, timeout=240,
        )
        log.seek(0)
        assert example.returncode == 0, example.stdout + example.stderr + log.read()
        lines = example.stdout.splitlines()
        assert "trajectory step   1/2" in example.stdout and "video      step   2/2" in example.stdout
        waypoints = [line for line in lines if line.startswith("frame ")]
        assert len(waypoints) == 4 and waypoints[0].startswith("frame 0: object ")
    finally:
        node.send_signal(signal.SIGINT)
        returncode = node.wait(timeout=20)
        log.close()
    assert returncode == 0
