"""One source of parameter defaults: the dataclass and config/imagine.yaml must agree."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from mask2iv_ros.ros.parameters import ImagineParameters, defaults

CONFIG = Path(__file__).resolve().parents[2] / "config" / "imagine.yaml"


def test_yaml_mirrors_dataclass_defaults():
    document = yaml.safe_load(CONFIG.read_text())
    params = document["/**"]["ros__parameters"]
    expected = defaults()
    assert list(params) == list(expected), "same names, same order"
    for name, value in expected.items():
        # rclpy parameters are typed: 1 (int) in the YAML would not override a float default.
        assert type(params[name]) is type(value), f"{name}: YAML type {type(params[name])} vs {type(value)}"
        assert params[name] == value, f"{name}: YAML {params[name]!r} vs default {value!r}"


def test_defaults_are_valid_and_every_field_is_described():
    ImagineParameters().validate()
    for f in dataclasses.fields(ImagineParameters):
        assert f.metadata["description"], f.name


@pytest.mark.parametrize(
    "name, value",
    [
        ("mode", "video"),
        ("trigger", "sometimes"),
        ("busy_policy", "drop"),
        ("device", "gpu"),
        ("num_inference_steps", -1),
        ("prompt_overflow", "ignore"),
        ("torch_threads", -2),
        ("max_input_pixels", -1),
        ("guidance_scale", float("nan")),
        ("max_queue", -1),
        ("sync_slop_s", -0.1),
        ("image_topic", ""),
        ("model_path", ""),
        ("max_samples", 0),
        ("max_samples", 65),
        ("num_samples", 9),   # above the default max_samples 8
        ("depth_topic", ""),
        ("trajectory_encoding", "color"),
        ("result_payload", "metadata"),
        ("video_background", "camera"),
        ("trajectory_votes", -1),
        ("trajectory_votes", 17),
    ],
)
def test_bad_value_names_the_parameter(name, value):
    with pytest.raises(ValueError, match=f"^{name}:"):
        dataclasses.replace(ImagineParameters(), **{name: value}).validate()


def test_rate_trigger_needs_positive_rate():
    with pytest.raises(ValueError, match="max_rate_hz"):
        ImagineParameters(trigger="rate", max_rate_hz=0.0).validate()
    ImagineParameters(device="cuda:1", trigger="rate", max_rate_hz=2.0).validate()


def test_max_samples_limit_is_the_pipelines():
    from mask2iv_ros.pipeline.validation import MAX_SAMPLES
    from mask2iv_ros.ros.parameters import MAX_SAMPLES_LIMIT

    assert MAX_SAMPLES_LIMIT == MAX_SAMPLES
    ImagineParameters(max_samples=MAX_SAMPLES, num_samples=MAX_SAMPLES).validate()


def test_trajectory_votes_limit_is_the_pipelines():
    from mask2iv_ros.pipeline.validation import MAX_TRAJECTORY_VOTES as PIPELINE_LIMIT
    from mask2iv_ros.ros.parameters import MAX_TRAJECTORY_VOTES

    assert MAX_TRAJECTORY_VOTES == PIPELINE_LIMIT
    ImagineParameters(trajectory_votes=MAX_TRAJECTORY_VOTES).validate()


def test_choice_errors_list_the_allowed_values():
    with pytest.raises(ValueError, match=r"^trajectory_encoding: expected one of \['masks', 'colour', 'both'\], got 'color'$"):
        ImagineParameters(trajectory_encoding="color").validate()
    assert (ImagineParameters().trajectory_encoding, ImagineParameters().result_payload) == ("masks", "full")
