"""launch/imagine.launch.py under the real launch / launch_ros: the declared arguments, refusal of
an unknown or mistyped argument (the launch stops before starting anything), and the lifecycle
actions. launch and launch_ros are not on PyPI: where they are missing, these tests skip (the
argument logic itself is tested in test_launch_arguments.py, the started node in
test_launch_imagine.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

if importlib.util.find_spec("launch") is None or importlib.util.find_spec("launch_ros") is None:
    pytest.skip("launch / launch_ros are not installed (not on PyPI; part of a ROS 2 install)", allow_module_level=True)

from launch import LaunchDescription, LaunchService  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from mask2iv_ros.ros import launch_arguments  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "imagine.launch.py"


def _description() -> LaunchDescription:
    spec = importlib.util.spec_from_file_location("imagine_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_declares_every_generated_argument():
    declared = {argument.name for argument in _description().get_launch_arguments()}
    assert declared == launch_arguments.declared_names()
    assert "mode" in declared and "auto_activate" in declared


def _run(arguments: dict) -> int:
    service = LaunchService(argv=[])
    service.include_launch_description(IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments=arguments.items()))
    return service.run()


@pytest.mark.parametrize("arguments", [{"mdoe": "position"}, {"max_rate_hz": "fast"}])
def test_bad_arguments_stop_the_launch_before_the_node_starts(arguments, caplog):
    assert _run(arguments) != 0
    text = caplog.text  # launch logs through `logging` ("Caught exception in launch: ...")
    assert ("did you mean 'mode'" in text) or ("max_rate_hz: expected a number" in text), text[-2000:]
    assert "process started" not in text
