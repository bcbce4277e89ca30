"""Goal life in imagine_node: deadlines, abandoned goals, the checkpoint's sampling defaults, the model thread."""

import threading

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from rclpy.parameter import Parameter  # noqa: E402
from ros_test_helpers import GatedPipeline, box_mask, sample_image, wait_for, wait_future  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402
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
    assert result.rollout.num_inference_steps == feedback[-1].total_steps == len(feedback)
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
