"""The released concat order, conversion of checkpoints written in the project's old order, and
the marker that keeps a folder from being converted twice."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mask2iv_ros.models import UNetConfig, VideoUNet
from mask2iv_ros.models import layout
from mask2iv_ros.models.controlnet import VideoControlNet
from mask2iv_ros.pipeline import Mask2IVPipeline, build_tiny_pipeline, conditioning
from mask2iv_ros.pipeline.conditioning import (model_input, pt_condition, tt_condition,
                                               video_condition)

B, T, H, W = 1, 4, 8, 8
EMBEDDED = Path(layout.__file__).resolve().parents[1] / "assets" / "default_model"
UNET_FOLDERS = ("trajectory_unet_text", "trajectory_unet_position", "video_unet")


def _random_unet(seed: int) -> VideoUNet:
    torch.manual_seed(seed)
    unet = VideoUNet(UNetConfig.tiny(in_channels=12)).eval()
    with torch.no_grad():
        for param in unet.parameters():  # zero-initialised outputs too: the UNet must respond
            param.normal_(0.0, 0.05)
    return unet


def _converted(unet: VideoUNet, stage: str) -> VideoUNet:
    new = VideoUNet(unet.config).eval()
    new.load_state_dict(layout.convert_legacy_concat_order(unet.state_dict(), stage))
    return new


# Old project order, written out here as the old code built it (the reference the conversion
# must reproduce): stage 1 [noise, image, mask], stage 2 [noise, trajectory, image].
def _legacy_tt(image, mask, n):
    return torch.cat([image, mask], 1).unsqueeze(2).expand(-1, -1, n, -1, -1).clone()


def _legacy_pt(image, mask, placement, n):
    slots = torch.zeros(image.shape[0], image.shape[1], n, *image.shape[2:])
    slots[:, :, 0] = mask
    if placement is not None:
        slots[:, :, -1] = placement
    return torch.cat([image.unsqueeze(2).expand(-1, -1, n, -1, -1), slots], 1)


def _legacy_video(trajectory, image):
    return torch.cat([trajectory, image.unsqueeze(2).expand(-1, -1, trajectory.shape[2], -1, -1)], 1)


def test_release_layout_per_stage():
    assert layout.RELEASE_LAYOUT["trajectory"] == ("noise", "mask_slot", "image_latent")
    assert layout.RELEASE_LAYOUT["video"] == ("noise", "image_latent", "trajectory_latent")
    swap = list(range(4)) + list(range(8, 12)) + list(range(4, 8))
    # both old layouts differ from the released one by the same swap of the two concat blocks
    for stage in layout.STAGES:
        assert layout.legacy_to_release_index(stage).tolist() == swap


def test_conversion_gives_the_identical_function_stage1():
    legacy = _random_unet(0)
    converted = _converted(legacy, "trajectory")
    noise, image, mask, placement = (torch.randn(B, 4, T, H, W), torch.randn(B, 4, H, W),
                                     torch.randn(B, 4, H, W), torch.randn(B, 4, H, W))
    ctx = torch.randn(B, 8, 32)
    with torch.no_grad():
        for old, new in ((_legacy_tt(image, mask, T), tt_condition(image, mask, T)),
                         (_legacy_pt(image, mask, placement, T),
                          pt_condition(image, mask, placement, T)),
                         (_legacy_pt(image, mask, None, T), pt_condition(image, mask, None, T))):
            before = legacy(torch.cat([noise, old], 1), 500, ctx)
            after = converted(model_input(noise, new), 500, ctx)
            torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
            assert before.abs().mean() > 1e-3  # the UNet responds to its input
            # and the old weights fed the new order are a different function
            assert not torch.allclose(legacy(model_input(noise, new), 500, ctx), before, atol=1e-4)


def test_conversion_gives_the_identical_function_stage2_and_controlnet_branch():
    legacy = _random_unet(1)
    converted = _converted(legacy, "video")
    noise, trajectory, image = (torch.randn(B, 4, T, H, W), torch.randn(B, 4, T, H, W),
                                torch.randn(B, 4, H, W))
    ctx = torch.randn(B, 8, 32)
    with torch.no_grad():
        before = legacy(torch.cat([noise, _legacy_video(trajectory, image)], 1), 250, ctx)
        after = converted(model_input(noise, video_condition(trajectory, image.unsqueeze(2))), 250, ctx)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def _make_legacy(folder: Path) -> None:
    """Turn a freshly saved component folder into what the old code wrote for the same
    function: input channels in the old order, no marker."""
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    config = json.loads(config_path.read_text())
    assert config.pop(layout.CONCAT_ORDER_KEY) == layout.RELEASE_ORDER
    config_path.write_text(json.dumps(config))
    state = {k: v.clone() for k, v in load_file(str(weights_path)).items()}
    # the swap is its own inverse: applying it to release weights gives the legacy ones
    state = layout.convert_legacy_concat_order(state, layout.stage_of_component(folder.name))
    save_file(state, str(weights_path))


def test_saved_folders_carry_the_marker_and_load_unchanged(tmp_path, caplog):
    unet = _random_unet(2)
    unet.save_pretrained(tmp_path / "video_unet")
    assert json.loads((tmp_path / "video_unet" / "config.json").read_text())["concat_order"] == "release"
    with caplog.at_level(logging.WARNING, logger="mask2iv_ros.models.layout"):
        loaded = VideoUNet.from_pretrained(tmp_path / "video_unet")
    assert not caplog.records
    for name, value in unet.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert layout.convert_folder(tmp_path) == []  # nothing to convert, nothing rewritten


def test_legacy_unet_and_controlnet_folders_convert_on_load_and_on_disk_once(tmp_path, caplog):
    unet = _random_unet(3)
    branch = VideoControlNet.from_unet(unet)
    unet.save_pretrained(tmp_path / "video_unet")
    branch.save_pretrained(tmp_path / "video_controlnet")
    for name in ("video_unet", "video_controlnet"):
        _make_legacy(tmp_path / name)
    legacy_weight = load_file(str(tmp_path / "video_unet" / "model.safetensors"))[layout.INPUT_CONV_WEIGHT]
    assert not torch.equal(legacy_weight, unet.input_blocks[0][0].weight)

    with caplog.at_level(logging.WARNING, logger="mask2iv_ros.models.layout"):
        loaded = VideoUNet.from_pretrained(tmp_path / "video_unet")
        loaded_branch = VideoControlNet.from_pretrained(tmp_path / "video_controlnet")
    assert len(caplog.records) == 2 and "concat_order" in caplog.records[0].getMessage()
    assert torch.equal(loaded.input_blocks[0][0].weight, unet.input_blocks[0][0].weight)
    assert torch.equal(loaded_branch.input_blocks[0][0].weight, branch.input_blocks[0][0].weight)

    converted = layout.convert_folder(tmp_path)
    assert sorted(p.name for p in converted) == ["video_controlnet", "video_unet"]
    assert layout.convert_folder(tmp_path) == []  # marked now: never permuted twice
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mask2iv_ros.models.layout"):
        again = VideoUNet.from_pretrained(tmp_path / "video_unet")
    assert not caplog.records
    for name, value in unet.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


def test_unknown_marker_value_is_an_error(tmp_path):
    _random_unet(4).save_pretrained(tmp_path / "u")
    config = json.loads((tmp_path / "u" / "config.json").read_text())
    config["concat_order"] = "mine"
    (tmp_path / "u" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="concat_order expected 'release'"):
        VideoUNet.from_pretrained(tmp_path / "u")


def test_bad_state_dicts_are_clear_errors():
    with pytest.raises(ValueError, match="stage: expected one of"):
        layout.convert_legacy_concat_order({}, "stage1")
    with pytest.raises(KeyError, match="input_blocks.0.0.weight"):
        layout.convert_legacy_concat_order({}, "video")
    with pytest.raises(ValueError, match="8 input channels"):
        layout.convert_legacy_concat_order({layout.INPUT_CONV_WEIGHT: torch.zeros(2, 8, 3, 3)}, "video")


def _legacy_conditioning(monkeypatch):
    """The pipeline's old code path: the old concat order of every stage."""
    monkeypatch.setattr(conditioning, "tt_condition",
                        lambda image, mask, n: _legacy_tt(image[:, :, 0] if image.dim() == 5 else image,
                                                          mask[:, :, 0] if mask.dim() == 5 else mask, n))
    monkeypatch.setattr(conditioning, "pt_condition", lambda image, mask, placement, n: _legacy_pt(
        image[:, :, 0] if image.dim() == 5 else image, mask[:, :, 0] if mask.dim() == 5 else mask,
        None if placement is None else (placement[:, :, 0] if placement.dim() == 5 else placement), n))
    monkeypatch.setattr(conditioning, "video_condition", lambda trajectory, image: _legacy_video(
        trajectory, image[:, :, 0] if image.dim() == 5 else image))


def test_tiny_pipeline_output_is_the_same_before_and_after_conversion(tmp_path, monkeypatch):
    """Old code path (legacy weights + old order) vs a legacy folder loaded today (converted
    weights + released order): same seed, same outputs."""
    pipe = build_tiny_pipeline(seed=5)
    pipe.save_pretrained(tmp_path / "legacy")
    for name in UNET_FOLDERS:
        _make_legacy(tmp_path / "legacy" / name)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    obj = np.zeros((32, 48), bool)
    obj[8:20, 10:24] = True
    placement = np.roll(obj, 12, axis=1)
    calls = [dict(placement_mask=placement), dict(prompt="push the block left")]

    after = Mask2IVPipeline.from_pretrained(tmp_path / "legacy")
    results_after = [after(image, obj, num_inference_steps=3, guidance_scale=2.0, seed=1, **c)
                     for c in calls]

    # before: the legacy weights exactly as stored, run through the old concat order
    before = Mask2IVPipeline.from_pretrained(tmp_path / "legacy")
    for name in UNET_FOLDERS:
        raw = load_file(str(tmp_path / "legacy" / name / "model.safetensors"))
        getattr(before, name).load_state_dict(raw)
    _legacy_conditioning(monkeypatch)
    results_before = [before(image, obj, num_inference_steps=3, guidance_scale=2.0, seed=1, **c)
                      for c in calls]
    for old, new in zip(results_before, results_after):
        assert old.video is not None
        np.testing.assert_array_equal(new.object_masks, old.object_masks)
        np.testing.assert_array_equal(new.actor_masks, old.actor_masks)
        diff = np.abs(new.video.astype(int) - old.video.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # float summation order only
    # and the legacy weights without conversion would not reproduce them
    monkeypatch.undo()
    wrong = before(image, obj, num_inference_steps=3, guidance_scale=2.0, seed=1, **calls[0])
    assert np.abs(wrong.video.astype(int) - results_after[0].video.astype(int)).max() > 1


def test_embedded_default_is_in_the_released_order_and_loads(caplog):
    for name in UNET_FOLDERS:
        config = json.loads((EMBEDDED / name / "config.json").read_text())
        assert config.get("concat_order") == "release", name
        assert (EMBEDDED / name / "model.safetensors").is_file()
    with caplog.at_level(logging.WARNING, logger="mask2iv_ros.models.layout"):
        pipe = Mask2IVPipeline.from_pretrained(EMBEDDED)  # what `make demo`'s node loads
    assert not caplog.records  # nothing converted on load
    assert set(pipe.modes) == {"text", "position"} and pipe.video_unet is not None
