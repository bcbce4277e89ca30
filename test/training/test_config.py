"""TrainConfig loading: YAML + dotted overrides, with errors that name the key."""

from pathlib import Path

import pytest
import yaml

from mask2iv_ros.training.config import ConfigError, TrainConfig, apply_overrides, load_config

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_configs_load():
    names = sorted(p.name for p in (REPO / "training").glob("*.yaml"))
    assert {"tiny_stage1_text.yaml", "tiny_stage1_position.yaml", "tiny_stage2.yaml",
            "paper_stage1_text.yaml", "paper_stage1_position.yaml",
            "paper_stage2.yaml"} <= set(names)
    for name in names:
        config = load_config(REPO / "training" / name)
        assert config.stage in ("trajectory_text", "trajectory_position", "video")


def test_paper_stage2_matches_paper():
    config = load_config(REPO / "training" / "paper_stage2.yaml")
    assert config.optim.lr == 1e-5
    assert (config.data.num_frames, config.data.height, config.data.width) == (16, 320, 512)
    assert config.stage2.contact_loss_lambda == 5.0
    assert config.stage2.dilate_erode_prob == 0.2
    assert config.stage2.dilate_erode_kernels == [3, 5, 7]
    assert config.component == "video_unet"


@pytest.mark.parametrize("name", ["paper_stage1_text", "paper_stage1_position", "paper_stage2"])
def test_paper_configs_match_the_released_training(name):
    """jes-bro/Mask2IV configs: fg_weight 5 (stage 1), the contact weight on the squared error
    with nearest downsampling (stage 2), use_dynamic_rescale with base_scale 0.7, uncond_prob
    0.00, freeze_temporal in both stages."""
    config = load_config(REPO / "training" / f"{name}.yaml")
    assert config.diffusion.dynamic_rescale == 0.7
    assert config.diffusion.condition_dropout_prob == 0.0
    assert config.model.freeze_temporal_attention is True
    if config.is_trajectory_stage:
        assert config.stage1.fg_weight == 5.0
    else:
        assert config.stage2.contact_loss_form == "squared_error"
        assert config.stage2.contact_downsample == "nearest"


def test_overrides_are_typed_and_nested(tmp_path):
    path = _write(tmp_path, {"stage": "video", "optim": {"lr": 1e-4}})
    config = load_config(path, ["optim.lr=3e-5", "stage2.control=none", "ema.enabled=true",
                                "stage2.dilate_erode_kernels=[3, 5]"])
    assert config.optim.lr == pytest.approx(3e-5)
    assert config.stage2.control == "none" and not config.uses_controlnet
    assert config.ema.enabled is True
    assert load_config(path, ["stage2.control=controlnet"]).uses_controlnet
    assert not load_config(path, ["stage=trajectory_text", "stage2.control=controlnet"]).uses_controlnet
    assert config.stage2.dilate_erode_kernels == [3, 5]
    # apply_overrides leaves its input untouched
    data = {"optim": {"lr": 1.0}}
    assert apply_overrides(data, ["optim.lr=2"])["optim"]["lr"] == 2
    assert data["optim"]["lr"] == 1.0


@pytest.mark.parametrize("data, overrides, message", [
    ({"optim": {"lrr": 1e-4}}, [], "optim.lrr: unknown config key"),
    ({"stage": "stage3"}, [], "stage: expected one of"),
    ({}, ["stage2.contact_loss_lambda=0.5"], "stage2.contact_loss_lambda"),
    ({}, ["stage2.contact_loss_form=eq3"], "stage2.contact_loss_form: expected one of"),
    ({}, ["stage2.contact_downsample=min"], "stage2.contact_downsample: expected one of"),
    ({}, ["stage1.fg_weight=0.5"], "stage1.fg_weight: expected a float >= 1.0"),
    ({}, ["diffusion.dynamic_rescale=1.5"], "diffusion.dynamic_rescale: expected a base scale"),
    ({}, ["diffusion.train_timesteps=[999,1000]"], "diffusion.train_timesteps: expected null or a non-empty list of ints in [0, 999]"),
    ({}, ["diffusion.train_timesteps=[]"], "diffusion.train_timesteps: expected null or a non-empty"),
    ({}, ["diffusion.train_timestep_jitter=-1"], "diffusion.train_timestep_jitter: expected an integer >= 0"),
    ({}, ["data.height=321"], "data.height: expected a multiple of 8"),
    ({}, ["optim.batch_size=two"], "optim.batch_size: expected an integer"),
    ({}, ["ema.enabled=maybe"], "ema.enabled: expected true or false"),
    ({}, ["stage2.control=adapter"], "stage2.control: expected one of .*'controlnet'"),
    ({}, ["stage2.dilate_erode_kernels=[4]"], "stage2.dilate_erode_kernels"),
    ({}, ["model.vae.pth=x"], "model.vae.pth: unknown config key"),
    ({}, ["optim"], "--override: expected key=value"),
    ({"data": 3}, [], "data: expected a mapping"),
])
def test_bad_configs_name_the_key(tmp_path, data, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(_write(tmp_path, data), overrides)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--config: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_round_trip():
    config = TrainConfig()
    assert TrainConfig.from_dict(yaml.safe_load(config.to_yaml())) == config
