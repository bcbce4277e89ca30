"""Goal life in imagine_node: deadlines, abandoned goals, the checkpoint's sampling defaults, the model thread."""

import threading

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.parameter import Parameter  # noqa: E402
from ros_test_helpers import GatedPipeline, box_mask, sample_image, wait_for, wait_future  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402
from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory  # noqa: E402
from mask2iv_ros.ros.image_conversion import image_msg_to_mask  # noqa: E402
from mask2iv_ros.ros.planner_client import ImagineClient  # noqa: E402


def test_goal_deadline_stops_queued_and_running_goals(start_node):
    h = start_node()
    gated = GatedPipeline.install(h)  # never opens: runs end only by a deadline or a cancel
    holder = h.send(h.goal(trajectory_only=True))
    wait_for(gated.holding.is_set, 20.0, "goal running")
    queued = h.result(h.send(h.goal(timeout_s=0.5, trajectory_only=True)), timeout_s=30.0)
    assert queued.status == Imagine.Result.STATUS_TIMED_OUT
    assert queued.error == "timeout_s: the goal's deadline of 0.5 s passed before the imagination finished"
    assert len(gated.calls) == 1  # it never reached the model
    wait_future(holder.cancel_goal_async(), 10.0, "cancel")
    assert h.result(holder).status == Imagine.Result.STATUS_CANCELED
    running = h.result(h.send(h.goal(timeout_s=1.0, trajectory_only=True)), timeout_s=30.0)
    assert running.status == Imagine.Result.STATUS_TIMED_OUT and "deadline of 1 s" in running.error
    gated.gate.set()
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED


def test_goal_of_a_client_that_went_away_is_aborted(start_node, ros_context):
    h = start_node(abandoned_goal_timeout_s=0.5)
    h.action_client.destroy()  # the harness' own action client would keep listening
    h.action_client = None
    gated = GatedPipeline.install(h)
    client = ImagineClient(f"{h.namespace}/imagine", context=ros_context, node_name="short_lived_planner")
    assert client.wait_for_server(10.0)
    goal = client.make_goal(sample_image(), box_mask(), prompt="push", trajectory_only=True)
    assert wait_future(client.action_client.send_goal_async(goal), 10.0, "goal response").accepted
    wait_for(gated.holding.is_set, 20.0, "goal running")
    client.close()  # the planner dies: its action client and subscriptions disappear
    wait_for(lambda: h.node.causes.counts["abandoned"] == 1, 20.0, "abandoned goal detected")
    wait_for(lambda: not h.node.worker.busy, 10.0, "model free again")
    assert h.node.stats.snapshot()["results"]["canceled"] == 1
    assert h.node.causes.last_message["abandoned"].startswith("aborting 1 goal(s): abandoned: no action client")


def test_sampling_defaults_are_the_checkpoints_and_overrides_are_passed(start_node):
    h = start_node(num_inference_steps=0)  # 0 = the checkpoint's default (the harness otherwise sets 2)
    gated = GatedPipeline.install(h, open_gate=True)
    feedback = []
    default_goal = h.goal(trajectory_only=True)
    default_goal.num_inference_steps = 0
    result = h.result(h.send(default_goal, feedback), timeout_s=120.0)
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    # Nothing explicit: the pipeline applies the checkpoint's defaults; the rollout reports them.
    assert "num_inference_steps" not in gated.calls[0] and "guidance_scale" not in gated.calls[0]
    # one message per step, then the one saying the trajectory is on its topic
    assert result.rollout.num_inference_steps == feedback[-1].total_steps == len(feedback) - 1
    assert feedback[-1].trajectory_ready and not any(f.trajectory_ready for f in feedback[:-1])
    assert result.rollout.guidance_scale == h.node.capabilities.default_guidance_scale

    result = h.result(h.send(h.goal(num_inference_steps=3, guidance_scale=2.0, trajectory_only=True)))
    assert (gated.calls[1]["num_inference_steps"], gated.calls[1]["guidance_scale"]) == (3, 2.0)
    assert (result.rollout.num_inference_steps, result.rollout.guidance_scale) == (3, 2.0)
    assert h.node.set_parameters([Parameter("num_inference_steps", value=2), Parameter("guidance_scale", value=0.0)])[0].successful
    goal = h.goal(trajectory_only=True)
    goal.num_inference_steps = 0
    h.result(h.send(goal))
    assert (gated.calls[2]["num_inference_steps"], gated.calls[2]["guidance_scale"]) == (2, 0.0)
    refused = h.node.set_parameters([Parameter("num_inference_steps", value=5000)])[0]
    assert not refused.successful and refused.reason.startswith("num_inference_steps: expected 0")
    # video_background: the checkpoint's unless the node parameter says otherwise
    assert all("video_background" not in call for call in gated.calls)
    assert h.node.set_parameters([Parameter("video_background", value="input")])[0].successful
    h.result(h.send(goal))
    assert gated.calls[3]["video_background"] == "input"
    refused = h.node.set_parameters([Parameter("video_background", value="camera")])[0]
    assert not refused.successful and refused.reason.startswith("video_background: expected one of")
    # trajectory_votes: likewise (0 = the checkpoint's recorded default)
    assert all("trajectory_votes" not in call for call in gated.calls)
    assert h.node.set_parameters([Parameter("trajectory_votes", value=4)])[0].successful
    h.result(h.send(goal))
    assert gated.calls[4]["trajectory_votes"] == 4
    refused = h.node.set_parameters([Parameter("trajectory_votes", value=17)])[0]
    assert not refused.successful and refused.reason.startswith("trajectory_votes: expected an integer in [0, 16]")


def test_model_is_loaded_and_run_on_the_same_thread_with_torch_threads(start_node, tiny_pipeline, monkeypatch, tmp_path):
    import torch

    from mask2iv_ros.ros import node as node_module

    loads = []

    def load_pipeline(model_path, device):
        loads.append((threading.get_ident(), torch.get_num_threads(), model_path))
        return tiny_pipeline, "loaded-here"

    monkeypatch.setattr(node_module, "load_pipeline", load_pipeline)
    folder = tmp_path / "checkpoint"
    tiny_pipeline.save_pretrained(folder)  # passes the node's checks of the folder before loading
    h = start_node(autostart=False, torch_threads=1, model_path=str(folder))
    h.node._injected_pipeline = None  # load through load_pipeline, as a real start does
    assert h.node.autostart(), h.node.startup_error
    assert h.action_client.wait_for_server(timeout_sec=10.0)
    gated = GatedPipeline.install(h, open_gate=True)
    for _ in range(2):
        assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED
    assert loads == [(gated.threads[0], 1, str(folder))]
    assert gated.threads == [loads[0][0]] * 2 and gated.torch_threads == [1, 1]
    assert loads[0][0] != threading.get_ident() and h.node.model_id == "loaded-here"


def test_trajectory_is_published_when_stage_1_ends_before_the_video(start_node):
    h = start_node()
    trajectories = h.subscribe(MaskTrajectory, "imagination/mask_trajectory")
    rollouts = h.subscribe(ImaginedRollout, "imagination/rollout")
    gated = GatedPipeline.install(h, hold_stage="video")  # stage 2 waits at its first step
    feedback = []
    goal = h.goal(num_inference_steps=2)
    goal_handle = h.send(goal, feedback)
    wait_for(gated.holding.is_set, 20.0, "stage 2 running")
    ready = wait_for(lambda: [f for f in feedback if f.trajectory_ready], 10.0, "feedback trajectory_ready")
    assert (ready[0].stage, ready[0].step, ready[0].total_steps) == ("trajectory", 2, 2)
    early = wait_for(lambda: trajectories and trajectories[0], 10.0, "trajectory on its topic")
    # the video does not exist yet: no rollout, no result
    assert not rollouts and not goal_handle.get_result_async().done()
    assert early.header.stamp == goal.image.header.stamp and len(early.object_masks) == 4
    assert not early.frames  # trajectory_encoding 'masks' (default): mono8 masks only
    gated.gate.set()
    result = h.result(goal_handle)
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    wait_for(lambda: rollouts, 10.0, "rollout")
    assert len(trajectories) == 1  # sent once, not again at the end
    assert not rollouts[0].mask_trajectory.object_masks and len(rollouts[0].video_frames) == 4
    # the result carries the same trajectory (result_payload 'full')
    for sent, got in zip(early.object_masks, result.rollout.mask_trajectory.object_masks):
        assert (image_msg_to_mask(sent) == image_msg_to_mask(got)).all()
    assert len(result.rollout.video_frames) == 4


def test_result_payload_not_on_topics_leaves_out_what_the_topics_carry(start_node):
    h = start_node(result_payload="not_on_topics", trajectory_encoding="colour")
    trajectories = h.subscribe(MaskTrajectory, "imagination/mask_trajectory")
    result = h.result(h.send(h.goal(num_inference_steps=2, num_samples=2)))
    assert result.status == Imagine.Result.STATUS_SUCCEEDED, result.error
    first = result.rollout
    assert not first.mask_trajectory.frames and not first.mask_trajectory.object_masks and not first.video_frames
    assert first.num_hypotheses == 2 and first.hypothesis_index == 0 and first.mask_trajectory.imagined_region.width > 0
    # the first-ranked trajectory is on the topic; the other hypothesis is on no topic, so the result has it
    wait_for(lambda: trajectories, 10.0, "trajectory on its topic")
    assert len(trajectories[0].frames) == 4 and not trajectories[0].object_masks
    (other,) = result.other_hypotheses
    assert len(other.mask_trajectory.frames) == 4 and not other.mask_trajectory.actor_masks
    refused = h.node.set_parameters([Parameter("result_payload", value="none")])[0]
    assert not refused.successful and refused.reason == \
        "result_payload: expected one of ['full', 'not_on_topics'], got 'none'"
