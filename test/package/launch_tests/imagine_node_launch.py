"""launch_testing description: launch/imagine.launch.py starts imagine_node, drives it through
configure and activate, and the given launch arguments reach the node's parameters.

Run by test/package/test_launch_imagine.py as `launch_test <this file>` in a subprocess (the
launch_testing pytest plugin does not load under the project's pytest 9, see pytest.ini). Not a
pytest module: its name does not match test_*.py.
"""
import os
import time
import unittest
from pathlib import Path

import launch
import launch_testing.actions
import launch_testing.asserts
import rclpy
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from lifecycle_msgs.msg import State
from lifecycle_msgs.srv import GetState
from rcl_interfaces.srv import GetParameters

from mask2iv_ros.ros_env import check_local_ros_env

LAUNCH_FILE = Path(__file__).resolve().parents[3] / "launch" / "imagine.launch.py"
NAMESPACE = f"/launch_test_{os.getpid()}"
NODE = f"{NAMESPACE}/imagine_node"


def generate_test_description():
    check_local_ros_env()  # the launched node inherits loopback-only discovery
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={"model_path": "tiny-random", "mode": "position", "num_inference_steps": "3",
                          "max_rate_hz": "2", "namespace": NAMESPACE}.items(),
    )
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()])


def _call(node, client, request, timeout_s):
    deadline = time.monotonic() + timeout_s
    while not client.wait_for_service(timeout_sec=1.0):
        if time.monotonic() > deadline:
            raise AssertionError(f"service {client.srv_name} not available after {timeout_s} s")
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=max(1.0, deadline - time.monotonic()))
    assert future.done(), f"no answer from {client.srv_name}"
    return future.result()


class TestImagineNodeFromLaunchFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("imagine_launch_test_probe")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_node_is_configured_and_activated_by_the_launch(self):
        client = self.node.create_client(GetState, f"{NODE}/get_state")
        deadline = time.monotonic() + 300  # configure loads the model (a tiny one; slow on a loaded CI)
        state = None
        while time.monotonic() < deadline:
            state = _call(self.node, client, GetState.Request(), 60).current_state
            if state.id == State.PRIMARY_STATE_ACTIVE:
                return
            time.sleep(0.5)
        self.fail(f"imagine_node still {state.label if state else 'unknown'} after 300 s")

    def test_launch_arguments_reach_the_node_typed(self):
        client = self.node.create_client(GetParameters, f"{NODE}/get_parameters")
        names = ["mode", "num_inference_steps", "max_rate_hz", "model_path", "autostart"]
        values = _call(self.node, client, GetParameters.Request(names=names), 120).values
        got = dict(zip(names, values))
        self.assertEqual(got["mode"].string_value, "position")
        self.assertEqual(got["num_inference_steps"].integer_value, 3)
        self.assertEqual(got["max_rate_hz"].double_value, 2.0)
        self.assertEqual(got["model_path"].string_value, "tiny-random")
        self.assertFalse(got["autostart"].bool_value)  # the launch, not the node, drives the lifecycle


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
