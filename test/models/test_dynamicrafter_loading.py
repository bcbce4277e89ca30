"""Reading DynamiCrafter-layout checkpoint files and widening the input conv."""

import json

import pytest
import torch
from safetensors.torch import save_file

from mask2iv_ros.models import UNetConfig, VideoUNet
from mask2iv_ros.models.dynamicrafter import (
    DYNAMICRAFTER_VAE_CONFIG,
    convert_vae_state_dict,
    expand_input_channels,
    load_dynamicrafter_resampler,
    load_dynamicrafter_unet,
    read_checkpoint,
    split_components,
)
from mask2iv_ros.models.resampler import Resampler, ResamplerConfig
from mask2iv_ros.pipeline.conditioning import model_input, tt_condition, video_condition

B, T, H, W = 1, 4, 8, 8
TINY_RESAMPLER = ResamplerConfig(dim=32, depth=1, dim_head=8, heads=2, num_queries=4,
                                 embedding_dim=24, output_dim=32, video_length=T)


def _fake_dynamicrafter_checkpoint(seed: int = 0):
    """A tiny 8-channel UNet + Resampler in DynamiCrafter's checkpoint layout."""
    torch.manual_seed(seed)
    unet = VideoUNet(UNetConfig.tiny(in_channels=8)).eval()
    with torch.no_grad():
        for param in unet.parameters():
            param.normal_(0.0, 0.05)
    resampler = Resampler(TINY_RESAMPLER).eval()
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"image_proj_model.{k}": v for k, v in resampler.state_dict().items()})
    state["first_stage_model.quant_conv.weight"] = torch.zeros(8, 8, 1, 1)
    state["cond_stage_model.model.token_embedding.weight"] = torch.zeros(10, 4)
    state["scale_factor"] = torch.tensor(0.18215)
    return unet, resampler, state


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_extra_input_channels_start_at_zero_and_keep_dynamicrafter_output(tmp_path, suffix):
    original, _, state = _fake_dynamicrafter_checkpoint()
    path = tmp_path / f"model{suffix}"
    if suffix == ".ckpt":
        torch.save({"state_dict": state, "global_step": 7}, path)  # Lightning layout
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    widened = load_dynamicrafter_unet(path, UNetConfig.tiny(in_channels=12))
    weight = widened.input_blocks[0][0].weight
    assert weight.shape == (32, 12, 3, 3)
    assert torch.equal(weight[:, :8], original.input_blocks[0][0].weight)
    assert torch.count_nonzero(weight[:, 8:]) == 0

    x8, ctx = torch.randn(B, 8, T, H, W), torch.randn(B, 8, 32)
    mask_latent = torch.randn(B, 4, T, H, W)
    with torch.no_grad():
        expected = original(x8, 250, ctx)
        torch.testing.assert_close(widened(torch.cat([x8, torch.zeros_like(mask_latent)], 1), 250, ctx), expected)
        # zero weights: whatever the mask latent holds, the untrained widened UNet ignores it
        torch.testing.assert_close(widened(torch.cat([x8, mask_latent], 1), 250, ctx), expected)


def test_released_layout_puts_the_rgb_latent_on_dynamicrafters_pretrained_channels():
    """Fine-tuning start as the release does it: input_blocks.0.0.weight[:, :8] copied, 8..11
    zero. Stage 2's [noise, image, trajectory] then feeds DynamiCrafter's own [noise, image] to
    its pretrained channels (the widened UNet is DynamiCrafter, whatever the trajectory); stage
    1's [noise, mask_slot, image] puts the mask slot there instead (the interpolation key-frame
    slot) and the RGB latent on the new channels."""
    original, _, state = _fake_dynamicrafter_checkpoint()
    widened = load_dynamicrafter_unet(state, UNetConfig.tiny(in_channels=12))
    noise, image = torch.randn(B, 4, T, H, W), torch.randn(B, 4, H, W)
    trajectory, mask = torch.randn(B, 4, T, H, W), torch.randn(B, 4, H, W)
    ctx = torch.randn(B, 8, 32)
    repeated = image.unsqueeze(2).expand(-1, -1, T, -1, -1)
    with torch.no_grad():
        dynamicrafter_i2v = original(torch.cat([noise, repeated], 1), 500, ctx)
        stage2 = widened(model_input(noise, video_condition(trajectory, image)), 500, ctx)
        torch.testing.assert_close(stage2, dynamicrafter_i2v)
        stage1 = widened(model_input(noise, tt_condition(image, mask, T)), 500, ctx)
        with_mask = original(torch.cat([noise, mask.unsqueeze(2).expand(-1, -1, T, -1, -1)], 1),
                             500, ctx)
        torch.testing.assert_close(stage1, with_mask)


def test_same_width_load_is_strict_and_exact(tmp_path):
    original, _, state = _fake_dynamicrafter_checkpoint()
    loaded = load_dynamicrafter_unet(state, UNetConfig.tiny(in_channels=8))
    loaded_state = loaded.state_dict()
    for name, value in original.state_dict().items():
        assert torch.equal(loaded_state[name], value), name
    del state["model.diffusion_model.out.2.bias"]
    with pytest.raises(RuntimeError, match="out.2.bias"):
        load_dynamicrafter_unet(state, UNetConfig.tiny(in_channels=8))


def test_split_components_and_resampler():
    _, resampler, state = _fake_dynamicrafter_checkpoint()
    parts = split_components(state)
    assert "input_blocks.0.0.weight" in parts["unet"]
    assert set(parts["vae"]) == {"quant_conv.weight"}
    assert set(parts["text_encoder"]) == {"model.token_embedding.weight"}
    assert set(parts["other"]) == {"scale_factor"}
    loaded = load_dynamicrafter_resampler(state, TINY_RESAMPLER)
    embeds = torch.randn(2, 5, 24)
    with torch.no_grad():
        assert loaded(embeds).shape == (2, T * 4, 32)
        torch.testing.assert_close(loaded(embeds), resampler(embeds))


def test_bad_inputs_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        read_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=".safetensors, .ckpt"):
        read_checkpoint(tmp_path / "model.bin")
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights-only"):
        read_checkpoint(tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="in_channels"):
        expand_input_channels({"input_blocks.0.0.weight": torch.zeros(32, 8, 3, 3)}, 4)
    with pytest.raises(ValueError, match="model.diffusion_model"):
        load_dynamicrafter_unet({"first_stage_model.x": torch.zeros(1)}, UNetConfig.tiny())


def test_vae_weights_convert_to_diffusers_autoencoder(dynamicrafter_shapes):
    from diffusers import AutoencoderKL

    reference = dynamicrafter_shapes("first_stage_model_512_state_dict_shapes.json")
    dynamicrafter_vae = {k: torch.empty(s, device="meta") for k, s in reference["state_dict"]}
    converted = convert_vae_state_dict(dynamicrafter_vae)
    with torch.device("meta"):
        vae = AutoencoderKL(**DYNAMICRAFTER_VAE_CONFIG)
    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == expected
    vae.load_state_dict(converted, strict=True, assign=True)
    assert json.dumps(DYNAMICRAFTER_VAE_CONFIG)  # JSON-able config for the pipeline folder
