"""imagine_node's lifecycle through its lifecycle services (as `ros2 lifecycle` uses them), and /diagnostics."""

import pytest

pytest.importorskip("rclpy", reason="rclpy (ROS 2 Python client) is not installed")

from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from ros_test_helpers import wait_for, wait_future  # noqa: E402

from mask2iv_ros.action import Imagine  # noqa: E402


class LifecycleClient:
    """A plain rclpy client of /<ns>/imagine_node/change_state and get_state."""

    def __init__(self, h):
        self.change = h.client.create_client(ChangeState, f"{h.namespace}/imagine_node/change_state")
        self.get = h.client.create_client(GetState, f"{h.namespace}/imagine_node/get_state")
        assert self.change.wait_for_service(timeout_sec=10.0) and self.get.wait_for_service(timeout_sec=10.0)

    def state(self) -> str:
        return wait_future(self.get.call_async(GetState.Request()), 10.0, "get_state").current_state.label

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition_id))
        return wait_future(self.change.call_async(request), 60.0, "change_state").success


def test_transitions_load_serve_stop_and_free_the_model(start_node):
    h = start_node(autostart=False)
    lifecycle = LifecycleClient(h)
    assert lifecycle.state() == "unconfigured"
    assert h.node.pipeline is None and h.node.action_server is None

    assert lifecycle.transition(Transition.TRANSITION_CONFIGURE) and lifecycle.state() == "inactive"
    assert h.node.pipeline is not None
    assert h.action_client.wait_for_server(timeout_sec=10.0)
    inactive = h.result(h.send(h.goal(trajectory_only=True)))
    assert inactive.status == Imagine.Result.STATUS_REJECTED
    assert inactive.error == "imagine_node is not active (lifecycle state inactive); activate it"
    assert h.node._input_subscriptions == []  # inputs are opened by activate

    assert lifecycle.transition(Transition.TRANSITION_ACTIVATE) and lifecycle.state() == "active"
    assert len(h.node._input_subscriptions) == 2
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED

    assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE) and lifecycle.state() == "inactive"
    assert h.node._input_subscriptions == []
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_REJECTED

    assert lifecycle.transition(Transition.TRANSITION_CLEANUP) and lifecycle.state() == "unconfigured"
    assert h.node.pipeline is None and h.node.action_server is None  # the model is freed
    wait_for(lambda: not h.action_client.server_is_ready(), 10.0, "action server gone")

    # Configure + activate again: served as before.
    assert lifecycle.transition(Transition.TRANSITION_CONFIGURE)
    assert lifecycle.transition(Transition.TRANSITION_ACTIVATE) and lifecycle.state() == "active"
    assert h.action_client.wait_for_server(timeout_sec=10.0)
    assert h.result(h.send(h.goal(trajectory_only=True))).status == Imagine.Result.STATUS_SUCCEEDED

    assert lifecycle.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN) and lifecycle.state() == "finalized"
    assert h.node.pipeline is None


def test_a_goal_that_reaches_the_server_during_autostart_waits_for_activation(start_node):
    """A planner that starts with the node finds the action server as soon as configure creates
    it; a goal it sends before autostart has activated the node is served, not rejected."""
    import threading

    h = start_node(autostart=False)
    gate, activating = threading.Event(), threading.Event()
    create_inputs = h.node._create_inputs

    def held_create_inputs():  # activate waits here until the goal is in
        activating.set()
        assert gate.wait(30.0)
        create_inputs()

    h.node._create_inputs = held_create_inputs
    started = []
    autostart = threading.Thread(target=lambda: started.append(h.node.autostart()))
    autostart.start()
    try:
        assert activating.wait(30.0) and h.node.lifecycle_state == "inactive"
        assert h.action_client.wait_for_server(timeout_sec=10.0)
        goal_handle = h.send(h.goal(trajectory_only=True))
        wait_for(lambda: h.node._active_executes == 1, 10.0, "the goal executing")
    finally:
        gate.set()
        autostart.join(30.0)
    assert started == [True]
    result = h.result(goal_handle)
    assert (result.status, result.error) == (Imagine.Result.STATUS_SUCCEEDED, "")


def test_deactivate_ends_a_running_goal_with_a_reason(start_node):
    from ros_test_helpers import GatedPipeline

    h = start_node()
    gated = GatedPipeline.install(h)
    running = h.send(h.goal(trajectory_only=True))
    wait_for(gated.holding.is_set, 20.0, "goal running")
    lifecycle = LifecycleClient(h)
    assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)
    result = h.result(running)
    assert (result.status, result.error) == (Imagine.Result.STATUS_CANCELED, "imagine_node was deactivated (lifecycle)")


def test_configure_failure_keeps_the_node_unconfigured_with_the_reason(start_node, tmp_path):
    h = start_node(autostart=False)
    h.node._injected_pipeline = None  # load from model_path like a real start
    from rclpy.parameter import Parameter

    assert h.node.set_parameters([Parameter("model_path", value=str(tmp_path / "missing"))])[0].successful
    lifecycle = LifecycleClient(h)
    assert not lifecycle.transition(Transition.TRANSITION_CONFIGURE)
    assert lifecycle.state() == "unconfigured"
    assert h.node.startup_error.startswith(f"model_path: no Mask2IV checkpoint at '{tmp_path / 'missing'}'")
    h.node._injected_pipeline = h.pipeline
    assert lifecycle.transition(Transition.TRANSITION_CONFIGURE) and lifecycle.state() == "inactive"
    # The model's parameters are read at configure: refused while configured, with the reason.
    refused = h.node.set_parameters([Parameter("model_path", value="tiny-random")])[0]
    assert not refused.successful and refused.reason.startswith("model_path: read when the model is loaded")


def test_diagnostics_report_model_queue_latency_and_errors(start_node):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    h = start_node(diagnostics_period_s=0.1)
    received = []
    h.client.create_subscription(DiagnosticArray, "/diagnostics", received.append, 10)
    h.result(h.send(h.goal(trajectory_only=True)))
    h.result(h.send(h.goal(prompt="")))  # invalid_input

    def ours():
        for array in reversed(received):
            for status in array.status:
                if status.name == f"{h.namespace}/imagine_node: imagination":
                    values = {kv.key: kv.value for kv in status.values}
                    if values["results_invalid_input"] == "1":
                        return status, values
        return None

    status, values = wait_for(ours, 10.0, "diagnostics after both goals")
    assert status.level == DiagnosticStatus.OK and status.hardware_id == "cpu"
    assert values["model_id"] == "tiny-test" and values["device"] == "cpu" and values["lifecycle_state"] == "active"
    assert values["queue_length"] == "0" and values["results_succeeded"] == "1"
    assert float(values["last_latency_s"]) > 0 and int(values["error_causes"]) >= 1
    assert values["last_error"].startswith("prompt: mode 'text' needs an action description")
