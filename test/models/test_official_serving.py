"""A converted (tiny, official-layout) release checkpoint is served by imagine_node as a process
and answers an Imagine goal from a planner client."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

import official_fakes as fakes  # noqa: E402
from mask2iv_ros.convert import main  # noqa: E402
from mask2iv_ros.ros_env import check_local_ros_env  # noqa: E402


def test_imagine_node_serves_a_converted_release_checkpoint(tmp_path):
    from mask2iv_ros.ros.image_conversion import image_msg_to_mask
    from mask2iv_ros.ros.planner_client import ImagineClient

    state1, _ = fakes.fake_checkpoint(1)
    state2, _ = fakes.fake_checkpoint(2)
    stage1 = fakes.save_lightning(state1, tmp_path / "first_stage_bdv2_model.ckpt")
    stage2 = fakes.save_safetensors(state2, tmp_path / "second_stage_bdv2_model.safetensors")
    fakes.tokenizer().save_pretrained(tmp_path / "tokenizer")
    out = tmp_path / "mask2iv_bdv2"
    assert main(["--stage1", str(stage1), "--stage2", str(stage2), "--out", str(out),
                 "--tokenizer", str(tmp_path / "tokenizer"),
                 "--model-config", str(fakes.model_config_json(tmp_path / "tiny.json")),
                 "--resolution", "32", "48", "--num-frames", str(fakes.FRAMES)]) == 0

    env = dict(os.environ)
    check_local_ros_env(env)  # loopback discovery + this run's domain
    namespace = f"/official_{os.getpid()}"
    log = open(tmp_path / "node.log", "w+")
    node = subprocess.Popen([sys.executable, "-m", "mask2iv_ros.ros.node", "--ros-args", "-r",
                             f"__ns:={namespace}", "-p", f"model_path:={out}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        image = np.full((48, 64, 3), 120, np.uint8)
        obj, placement = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
        obj[20:30, 10:20], placement[20:30, 40:50] = True, True
        with ImagineClient(f"{namespace}/imagine") as client:
            log.seek(0)
            assert client.wait_for_server(60.0), "imagine action not served: " + log.read()
            goal = client.make_goal(image, obj, mode="position", placement_mask=placement,
                                    num_inference_steps=2, guidance_scale=1.0, seed=0)
            steps = []
            result = client.imagine(goal, timeout_s=120.0, on_feedback=lambda fb: steps.append(fb.stage))
        log.seek(0)
        assert result.status == "succeeded", result.error + log.read()
        rollout = result.rollout
        assert len(rollout.mask_trajectory.object_masks) == fakes.FRAMES
        assert len(rollout.video_frames) == fakes.FRAMES
        assert image_msg_to_mask(rollout.mask_trajectory.object_masks[0], "object_masks").shape == (48, 64)
        assert "trajectory" in steps and "video" in steps
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(timeout=20)
        log.close()
