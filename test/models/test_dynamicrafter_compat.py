"""Our networks against facts dumped from DynamiCrafter's own code (test/fixtures/dynamicrafter)."""

import torch

from mask2iv_ros.models import UNetConfig, VideoUNet
from mask2iv_ros.models.resampler import Resampler, ResamplerConfig
from mask2iv_ros.models.resblock import ResBlock
from mask2iv_ros.models.transformer import SpatialTransformer, TemporalTransformer

# fp32, same weights: differences are summation order only (SDPA vs einsum softmax).
ATOL, RTOL = 1e-5, 1e-4


def _meta_unet(config: UNetConfig) -> VideoUNet:
    with torch.device("meta"):
        return VideoUNet(config)


def test_paper_config_state_dict_matches_dynamicrafter_512(dynamicrafter_shapes):
    reference = dynamicrafter_shapes("unet_512_state_dict_shapes.json")
    ours = {k: list(v.shape) for k, v in _meta_unet(UNetConfig.dynamicrafter_512()).state_dict().items()}
    assert ours == dict(reference["state_dict"])
    assert len(ours) == reference["num_tensors"] == 1516
    assert sum(torch.Size(s).numel() for s in ours.values()) == reference["num_parameters"] == 1_438_854_980


def test_dynamicrafter_yaml_params_give_the_preset(dynamicrafter_shapes):
    params = dynamicrafter_shapes("unet_512_state_dict_shapes.json")["unet_config_params"]
    from_yaml = UNetConfig.from_dynamicrafter_params({k: v for k, v in params.items() if k != "use_checkpoint"})
    assert from_yaml == UNetConfig.dynamicrafter_512()


def test_twelve_channel_variant_differs_only_in_input_conv(dynamicrafter_shapes):
    reference = dict(dynamicrafter_shapes("unet_512_state_dict_shapes.json")["state_dict"])
    ours = {k: list(v.shape) for k, v in
            _meta_unet(UNetConfig.dynamicrafter_512(in_channels=12)).state_dict().items()}
    assert ours.keys() == reference.keys()
    differing = {k for k in ours if ours[k] != reference[k]}
    assert differing == {"input_blocks.0.0.weight"}
    assert ours["input_blocks.0.0.weight"] == [320, 12, 3, 3]
    assert reference["input_blocks.0.0.weight"] == [320, 8, 3, 3]


def test_tiny_unet_reproduces_dynamicrafter_outputs(golden):
    fixture = golden("unet_tiny_golden.safetensors")
    config = UNetConfig.from_dynamicrafter_params(fixture.params("unet_config_params"))
    unet = VideoUNet(config).eval()
    unet.load_state_dict(fixture.weights["weights."], strict=True)
    t = fixture.tensors
    with torch.no_grad():
        y = unet(t["inputs.x"], t["inputs.timesteps"], t["inputs.context"], fs=t["inputs.fs"])
        y_default_fs = unet(t["inputs.x"], t["inputs.timesteps"], t["inputs.context"])
    torch.testing.assert_close(y, t["outputs.y"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(y_default_fs, t["outputs.y_default_fs"], atol=ATOL, rtol=RTOL)
    # the fixture is sensitive to the frame-rate condition (so it checks the fs embedding)
    assert (t["outputs.y"] - t["outputs.y_default_fs"]).abs().max() > 1e-2


def test_temporal_transformer_with_relative_position_and_causal_mask(golden):
    fixture = golden("blocks_golden.safetensors")
    block = TemporalTransformer(**fixture.params("temporal_transformer")).eval()
    block.load_state_dict(fixture.weights["temporal_transformer.weights."], strict=True)
    x = fixture.tensors["temporal_transformer.inputs.x"]  # [B, C, T, H, W]
    b, c, t, h, w = x.shape
    with torch.no_grad():
        y = block(x.transpose(1, 2).reshape(b * t, c, h, w), num_frames=t)
    y = y.reshape(b, t, c, h, w).transpose(1, 2)
    torch.testing.assert_close(y, fixture.tensors["temporal_transformer.outputs.y"], atol=ATOL, rtol=RTOL)


def test_conv_projection_spatial_transformer_uses_first_77_context_tokens(golden):
    fixture = golden("blocks_golden.safetensors")
    block = SpatialTransformer(**fixture.params("spatial_transformer")).eval()
    block.load_state_dict(fixture.weights["spatial_transformer.weights."], strict=True)
    t = fixture.tensors
    with torch.no_grad():
        y = block(t["spatial_transformer.inputs.x"], t["spatial_transformer.inputs.context"])
    torch.testing.assert_close(y, t["spatial_transformer.outputs.y"], atol=ATOL, rtol=RTOL)


def test_res_block_variants(golden):
    fixture = golden("blocks_golden.safetensors")
    for name in ("resblock_plain", "resblock_scale_shift", "resblock_down", "resblock_up"):
        block = ResBlock(**fixture.params(name)).eval()
        block.load_state_dict(fixture.weights[f"{name}.weights."], strict=True)
        t = fixture.tensors
        with torch.no_grad():
            y = block(t[f"{name}.inputs.x"], t[f"{name}.inputs.emb"], num_frames=2)
        torch.testing.assert_close(y, t[f"{name}.outputs.y"], atol=ATOL, rtol=RTOL, msg=name)


def test_resampler_matches_dynamicrafter(golden, dynamicrafter_shapes):
    reference = dynamicrafter_shapes("image_proj_model_512_state_dict_shapes.json")
    with torch.device("meta"):
        paper = Resampler(ResamplerConfig.dynamicrafter_512())
    assert {k: list(v.shape) for k, v in paper.state_dict().items()} == dict(reference["state_dict"])

    fixture = golden("resampler_tiny_golden.safetensors")
    resampler = Resampler(ResamplerConfig.from_dict(fixture.params("resampler_params"))).eval()
    resampler.load_state_dict(fixture.weights["weights."], strict=True)
    with torch.no_grad():
        tokens = resampler(fixture.tensors["inputs.image_embeds"])
    torch.testing.assert_close(tokens, fixture.tensors["outputs.tokens"], atol=ATOL, rtol=RTOL)
