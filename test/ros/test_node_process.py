"""imagine_node as a process (its console entry point): start-up faults, SIGINT, the planner example."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from ros_test_helpers import box_mask, sample_image, wait_for, wait_future  # noqa: E402

from mask2iv_ros.ros_env import check_local_ros_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NODE = [sys.executable, "-m", "mask2iv_ros.ros.node", "--ros-args"]
TINY = ["-p", "model_path:=tiny-random", "-p", "torch_threads:=1"]


def child_env():
    env = dict(os.environ)
    check_local_ros_env(env)  # loopback discovery + this run's domain, inherited by the children
    return env


def run_node(*arguments, timeout=120):
    proc = subprocess.run(NODE + list(arguments), env=child_env(), capture_output=True, text=True, timeout=timeout)
    return proc, proc.stdout + proc.stderr


def assert_one_fatal_line(output, *expected):
    fatal = [line for line in output.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1, output
    for text in expected:
        assert text in fatal[0], output
    assert "Traceback" not in output, output


def saved_tiny_model(tiny_pipeline, folder):
    tiny_pipeline.save_pretrained(folder)
    return folder


def test_missing_model_logs_a_clear_message_and_exits_2(tmp_path):
    missing = tmp_path / "no_model_here"
    proc, output = run_node("-p", f"model_path:={missing}")
    assert proc.returncode == 2, output
    assert_one_fatal_line(output, f"model_path: no Mask2IV checkpoint at '{missing}'", "tiny-random")


def test_truncated_safetensors_names_the_file_and_exits_2(tmp_path, tiny_pipeline):
    folder = saved_tiny_model(tiny_pipeline, tmp_path / "model")
    weights = sorted((folder / "video_unet").glob("*.safetensors"))[0]
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # an interrupted copy
    proc, output = run_node("-p", f"model_path:={folder}")
    assert proc.returncode == 2, output
    assert_one_fatal_line(output, f"model_path: '{weights}' is not a complete safetensors file (truncated",
                          "copy or download the checkpoint again")


def test_corrupt_model_index_names_the_file_and_exits_2(tmp_path, tiny_pipeline):
    folder = saved_tiny_model(tiny_pipeline, tmp_path / "model")
    index = folder / "model_index.json"
    index.write_text(index.read_text().replace('"config"', "config", 1))
    proc, output = run_node("-p", f"model_path:={folder}")
    assert proc.returncode == 2, output
    assert_one_fatal_line(output, f"model_path: '{index}' is not valid JSON (Expecting", "export the model again")


def test_cuda_without_cuda_names_the_parameter_and_exits_2():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    proc, output = run_node(*TINY, "-p", "device:=cuda")
    assert proc.returncode == 2, output
    assert_one_fatal_line(output, "device: 'cuda' requested but", "use device:=cpu")


def test_bad_parameter_value_exits_2():
    proc, output = run_node(*TINY, "-p", "busy_policy:=drop")
    assert proc.returncode == 2, output
    assert_one_fatal_line(output, "busy_policy: expected one of ['queue', 'reject']")


def test_bad_trajectory_encoding_exits_2():
    proc, output = run_node(*TINY, "-p", "trajectory_encoding:=png")
    assert proc.returncode == 2, output
    assert_one_fatal_line(output, "trajectory_encoding: expected one of ['masks', 'colour', 'both'], got 'png'")


def test_sigint_while_a_goal_runs_answers_the_client_and_exits_cleanly(tmp_path, ros_context):
    """Ctrl-C during a goal: the client gets a result, no RCLError traceback, exit code 0."""
    from mask2iv_ros.ros.planner_client import ImagineClient

    namespace = f"/sigint_test_{os.getpid()}"
    log = open(tmp_path / "node.log", "w+")
    node = subprocess.Popen(NODE + ["-r", f"__ns:={namespace}", *TINY], env=child_env(), stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    try:
        with ImagineClient(f"{namespace}/imagine", context=ros_context) as client:
            assert client.wait_for_server(120.0), "node did not start"
            feedback = []
            goal = client.make_goal(sample_image(), box_mask(), prompt="push", num_inference_steps=1000)
            handle = wait_future(client.action_client.send_goal_async(goal, feedback_callback=feedback.append),
                                 30.0, "goal response")
            result_future = handle.get_result_async()
            wait_for(lambda: feedback or result_future.done(), 60.0, "the goal running")
            assert feedback, f"the goal ended before any feedback: {result_future.result().result}"
            node.send_signal(signal.SIGINT)
            result = wait_future(result_future, 30.0, "result after SIGINT").result
            assert (result.status, result.error) == ("canceled", "imagine_node is shutting down (SIGINT)")
        returncode = node.wait(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
        log.seek(0)
        output = log.read()
        log.close()
    assert returncode == 0, output
    assert "Traceback" not in output and "RCLError" not in output and "Error raised" not in output, output


def test_planner_example_against_a_node_process(tmp_path):
    namespace = f"/planner_test_{os.getpid()}"
    log = open(tmp_path / "node.log", "w+")
    node = subprocess.Popen(
        NODE + ["-r", f"__ns:={namespace}", *TINY, "-p", "num_inference_steps:=2"],
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
        assert "trajectory received after" in example.stdout  # the early trajectory, before the video ended
        waypoints = [line for line in lines if line.startswith("frame ")]
        assert len(waypoints) == 4 and waypoints[0].startswith("frame 0: object ")
    finally:
        node.send_signal(signal.SIGINT)
        returncode = node.wait(timeout=20)
        log.close()
    assert returncode == 0


def test_planner_3d_example_asks_for_four_hypotheses_with_depth(tmp_path):
    """examples/plan_in_3d.py against a node process: 4 ranked hypotheses, their agreement, and the
    object paths in metres on the example's table plane (0.6 m below a camera pitched 60 degrees)."""
    import re

    import numpy as np

    from mask2iv_ros.geometry.synthetic import tabletop_plane

    namespace = f"/planner_3d_test_{os.getpid()}"
    log = open(tmp_path / "node.log", "w+")
    node = subprocess.Popen(
        NODE + ["-r", f"__ns:={namespace}", *TINY, "-p", "num_inference_steps:=2"],
        env=child_env(), stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        example = subprocess.run(
            [sys.executable, str(REPO / "examples" / "plan_in_3d.py"), "--action", f"{namespace}/imagine",
             "--samples", "4", "--timeout", "120"],
            env=child_env(), capture_output=True, text=True, timeout=240,
        )
        log.seek(0)
        assert example.returncode == 0, example.stdout + example.stderr + log.read()
    finally:
        node.send_signal(signal.SIGINT)
        returncode = node.wait(timeout=20)
        log.close()
    assert returncode == 0
    out = example.stdout
    summary = re.search(r"^4 hypotheses, ranked by medoid_object_iou; agreement ([0-9.]+)", out, re.M)
    assert summary and 0.0 <= float(summary.group(1)) <= 1.0, out
    ranks = re.findall(r"^hypothesis (\d): seed (\d+), score ([0-9.]+)", out, re.M)
    assert [int(r[0]) for r in ranks] == [0, 1, 2, 3] and sorted(int(r[1]) for r in ranks) == [0, 1, 2, 3], out
    scores = [float(r[2]) for r in ranks]
    assert scores == sorted(scores, reverse=True)
    assert len(re.findall(r"^  frame \d: object ", out, re.M)) == 4 * 4   # 4 frames per hypothesis
    points = np.array(re.findall(r"object \(([-+0-9.]+), ([-+0-9.]+), ([-+0-9.]+)\) m", out), float)
    assert len(points) > 0, out
    plane = tabletop_plane(0.6, 60.0)
    assert np.abs(points @ plane[:3] + plane[3]).max() < 0.005   # printed in mm precision, on the table
