"""UNet construction: derived sizes and DynamiCrafter initialisation with zero extra channels."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.training.components import (build_noise_scheduler, build_text_encoder,
                                             build_unet, unet_config)
from mask2iv_ros.training.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_config():
    return load_config(REPO / "training" / "tiny_stage1_text.yaml").model


def _dynamicrafter_checkpoint(tmp_path, model_config, drop=None):
    text_encoder = build_text_encoder(model_config.text_encoder)
    torch.manual_seed(1)
    reference = VideoUNet(unet_config(model_config, text_encoder, 4).replace(in_channels=8))
    state = {f"model.diffusion_model.{k}": v for k, v in reference.state_dict().items()
             if k != drop}
    # tensors a DynamiCrafter file has but this UNet does not use / other components
    state["model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k_ip.weight"] = \
        torch.zeros(2, 2)
    state["first_stage_model.encoder.conv_in.weight"] = torch.zeros(1)
    path = tmp_path / "dynamicrafter.safetensors"
    save_file(state, str(path))
    return path, reference, text_encoder


def test_init_from_dynamicrafter_zero_extra_channels(tmp_path, model_config):
    path, reference, text_encoder = _dynamicrafter_checkpoint(tmp_path, model_config)
    model_config.init_from = str(path)
    unet = build_unet(model_config, text_encoder, num_frames=4)
    assert unet.config.in_channels == 12
    ours, theirs = unet.state_dict(), reference.state_dict()
    conv_in = ours["input_blocks.0.0.weight"]
    assert torch.equal(conv_in[:, :8], theirs["input_blocks.0.0.weight"])
    assert torch.count_nonzero(conv_in[:, 8:]) == 0
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k != "input_blocks.0.0.weight")


def test_init_from_incomplete_checkpoint_names_the_problem(tmp_path, model_config):
    path, _, text_encoder = _dynamicrafter_checkpoint(tmp_path, model_config,
                                                      drop="out.2.weight")
    model_config.init_from = str(path)
    with pytest.raises(ValueError, match=r"model.init_from: .* 1 tensors missing \(e.g. \['out.2.weight'\]\)"):
        build_unet(model_config, text_encoder, num_frames=4)


def test_derived_unet_fields_cannot_be_contradicted(model_config):
    text_encoder = build_text_encoder(model_config.text_encoder)
    model_config.unet = {"context_dim": 64}
    with pytest.raises(ValueError, match="model.unet.context_dim: must be 32"):
        build_unet(model_config, text_encoder, num_frames=4)
    model_config.unet = {"model_channel": 64}
    with pytest.raises(ValueError, match="model.unet.model_channel: unknown UNetConfig field"):
        build_unet(model_config, text_encoder, num_frames=4)


def test_training_schedule_is_dynamicrafters():
    config = load_config(REPO / "training" / "paper_stage2.yaml")
    scheduler = build_noise_scheduler(config.diffusion)
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.config.rescale_betas_zero_snr
    assert scheduler.alphas_cumprod[-1] < 1e-6  # zero terminal SNR
    # scaled_linear: betas are linear in sqrt space from 0.00085 to 0.012 (before the rescale)
    assert scheduler.config.beta_schedule == "scaled_linear"


def test_paper_unet_config_is_dynamicrafter_512_with_mask_channels():
    class OpenCLIPSized:  # the paper's text encoder dimensions, without loading it
        embed_dim, max_length = 1024, 77

    config = load_config(REPO / "training" / "paper_stage1_text.yaml")
    unet = unet_config(config.model, OpenCLIPSized(), config.data.num_frames)
    assert (unet.in_channels, unet.model_channels, unet.channel_mult) == (12, 320, (1, 2, 4, 4))
    assert (unet.context_dim, unet.text_context_len, unet.temporal_length) == (1024, 77, 16)
    assert unet.image_cross_attention  # as DynamiCrafter 512 (test_image_branch.py)
