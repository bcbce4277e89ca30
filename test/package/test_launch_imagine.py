"""launch/imagine.launch.py under launch_testing: the node starts from the launch file, with the
parameters file and a model_path argument, and reports ready.

launch, launch_ros and launch_testing are not on PyPI: on these machines this module is skipped;
on a full ROS 2 install it runs with the launch_testing pytest plugin or with
`launch_test test/package/test_launch_imagine.py` (run that way here once, against launch /
launch_ros / launch_testing sources beside the PyPI wheels: both tests passed).
"""
import os
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI; runs only on a full ROS 2 install")
launch_testing = pytest.importorskip("launch_testing", reason="launch_testing is not on PyPI")

import launch  # noqa: E402
import launch_testing.actions  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from mask2iv_ros.ros_env import check_local_ros_env  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "imagine.launch.py"


@pytest.mark.launch_test
def generate_test_description():
    check_local_ros_env()  # the launched node inherits loopback-only discovery
    node = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={"model_path": "tiny-random", "namespace": f"launch_test_{os.getpid()}"}.items(),
    )
    return launch.LaunchDescription([node, launch_testing.actions.ReadyToTest()])


class TestImagineNodeFromLaunchFile(unittest.TestCase):
    def test_node_reports_ready_with_the_launch_arguments(self, proc_output):
        proc_output.assertWaitFor("imagine_node ready: model tiny-random", timeout=120)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info, allowable_exit_codes=[0, -2, -15])
