"""launch/imagine.launch.py's arguments (mask2iv_ros.ros.launch_arguments, pure Python, so these run
without launch/launch_ros): one per node parameter, typed overrides of the parameters file only
when given, launch-managed lifecycle, unknown arguments refused."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from mask2iv_ros.ros import launch_arguments
from mask2iv_ros.ros.parameters import ImagineParameters, defaults

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "imagine.launch.py"


def test_every_node_parameter_is_a_launch_argument():
    names = launch_arguments.declared_names()
    for name in defaults():
        if name not in launch_arguments.LAUNCH_MANAGED_PARAMETERS:
            assert name in names, f"node parameter {name} has no launch argument"
    assert {"mode", "model_path", "device", "busy_policy", "num_inference_steps"} <= names
    assert {"params_file", "namespace", "log_level", "use_sim_time", "auto_activate"} <= names


def test_every_parameters_file_entry_is_reachable_as_a_launch_argument():
    section = yaml.safe_load((ROOT / "config" / "imagine.yaml").read_text())["/**"]["ros__parameters"]
    missing = set(section) - launch_arguments.declared_names() - set(launch_arguments.LAUNCH_MANAGED_PARAMETERS)
    assert not missing, missing


def test_a_new_parameter_becomes_a_launch_argument_without_editing_the_launch_side(monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class WithNewParameter(ImagineParameters):
        max_input_pixels: int = dataclasses.field(default=4_000_000, metadata={"description": "Largest input."})

    monkeypatch.setattr(launch_arguments, "ImagineParameters", WithNewParameter)
    argument = next(a for a in launch_arguments.node_parameter_arguments() if a.name == "max_input_pixels")
    assert argument.default == "" and "Largest input." in argument.description and "4000000" in argument.description
    assert launch_arguments.parameter_overrides({"max_input_pixels": "1000"})["max_input_pixels"] == 1000


def test_descriptions_carry_the_parameter_description_and_built_in_default():
    by_name = {a.name: a for a in launch_arguments.all_arguments()}
    field = next(f for f in dataclasses.fields(ImagineParameters) if f.name == "mode")
    assert field.metadata["description"] in by_name["mode"].description
    assert "'text'" in by_name["mode"].description and by_name["mode"].default == ""
    assert "'true'" in by_name["publish_video"].description  # bools shown as ROS writes them


def test_only_given_arguments_override_the_parameters_file_with_their_types():
    overrides = launch_arguments.parameter_overrides({
        "mode": "position", "max_rate_hz": "2", "model_path": "123", "publish_video": "False",
        "num_frames": "8", "params_file": "/x.yaml", "namespace": "robot",
    })
    expected = {"mode": "position", "max_rate_hz": 2.0, "model_path": "123", "publish_video": False,
                "num_frames": 8, **launch_arguments.LAUNCH_MANAGED_PARAMETERS}
    assert overrides == expected
    assert type(overrides["max_rate_hz"]) is float and type(overrides["num_frames"]) is int
    # Nothing given: only what launch manages (the lifecycle), so the file's values stand.
    assert launch_arguments.parameter_overrides({}) == launch_arguments.LAUNCH_MANAGED_PARAMETERS
    assert launch_arguments.parameter_overrides({"use_sim_time": "true"})["use_sim_time"] is True


def test_launch_drives_the_lifecycle_so_the_node_does_not_autostart():
    assert launch_arguments.LAUNCH_MANAGED_PARAMETERS == {"autostart": False}
    assert launch_arguments.option_value("auto_activate", {}) is True
    assert launch_arguments.option_value("auto_activate", {"auto_activate": "false"}) is False


@pytest.mark.parametrize("name, text, expected", [
    ("num_frames", "1.5", "launch argument num_frames: expected an integer, got '1.5'"),
    ("max_rate_hz", "fast", "launch argument max_rate_hz: expected a number, got 'fast'"),
    ("publish_video", "maybe", "launch argument publish_video: expected true or false, got 'maybe'"),
])
def test_a_value_of_the_wrong_type_names_the_argument(name, text, expected):
    with pytest.raises(ValueError) as error:
        launch_arguments.parameter_overrides({name: text})
    assert str(error.value) == expected


def test_unknown_arguments_are_refused_with_the_nearest_known_name():
    with pytest.raises(ValueError, match=r"'mdoe' \(did you mean 'mode'\?\)") as error:
        launch_arguments.check_known({"mdoe": "position", "mode": "text"})
    assert "allow_unknown_arguments:=true" in str(error.value) and "--show-args" in str(error.value)
    with pytest.raises(ValueError, match="'autostart'.*set by the launch file itself"):
        launch_arguments.check_known({"autostart": "true"})
    assert launch_arguments.check_known({"robot_model": "x"}, allow_unknown=True) == ["robot_model"]
    assert launch_arguments.check_known(dict.fromkeys(launch_arguments.declared_names(), "")) == []


def test_the_launch_file_declares_its_arguments_from_this_module():
    tree = ast.parse(LAUNCH_FILE.read_text())
    calls = {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)}
    assert {"launch_arguments.all_arguments", "launch_arguments.check_known",
            "launch_arguments.parameter_overrides"} <= calls
    # No argument is declared by hand next to the generated ones.
    declared = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"]
    assert len(declared) == 1
