"""VideoUNet behaviour on tiny configs (CPU, fp32)."""

import json

import pytest
import torch

from mask2iv_ros.models import UNetConfig, VideoUNet, temporal_attention_parameters
from mask2iv_ros.models.transformer import TemporalTransformer

B, T, H, W = 2, 4, 8, 8


def _randomised(config: UNetConfig, seed: int = 0) -> VideoUNet:
    """A UNet whose zero-initialised layers are randomised too, so outputs are non-trivial."""
    torch.manual_seed(seed)
    unet = VideoUNet(config).eval()
    with torch.no_grad():
        for param in unet.parameters():
            param.normal_(0.0, 0.05)
    return unet


def test_output_shape_for_text_only_context():
    config = UNetConfig.tiny(in_channels=12)
    unet = VideoUNet(config)
    y = unet(torch.randn(B, 12, T, H, W), torch.tensor([1, 999]), torch.randn(B, 8, 32))
    assert y.shape == (B, 4, T, H, W)


def test_image_cross_attention_uses_per_frame_image_tokens():
    config = UNetConfig.tiny(image_cross_attention=True)  # 8 text tokens, 4 image tokens/frame
    unet = _randomised(config)
    x, t = torch.randn(B, 8, T, H, W), torch.tensor([3, 700])
    text = torch.randn(B, 8, 32)
    per_frame = torch.randn(B, 4, 32).repeat(1, T, 1)  # identical image tokens on every frame
    with torch.no_grad():
        y_per_frame = unet(x, t, torch.cat([text, per_frame], dim=1))
        y_shared = unet(x, t, torch.cat([text, per_frame[:, :4]], dim=1))
        changed = per_frame.clone()
        changed[:, -4:] += 1.0  # only the last frame's image tokens
        y_changed = unet(x, t, torch.cat([text, changed], dim=1))
    torch.testing.assert_close(y_per_frame, y_shared)
    assert not torch.allclose(y_changed, y_per_frame)


def test_unconditional_config_runs_without_context():
    unet = _randomised(UNetConfig.tiny(context_dim=None))
    with torch.no_grad():
        y = unet(torch.randn(B, 8, T, H, W), 10)
    assert y.shape == (B, 4, T, H, W) and torch.isfinite(y).all()
    with pytest.raises(ValueError, match="context"):
        unet(torch.randn(B, 8, T, H, W), 10, torch.randn(B, 8, 32))


def test_forward_is_deterministic_and_depends_on_every_condition():
    unet = _randomised(UNetConfig.tiny())
    x, t, ctx = torch.randn(B, 8, T, H, W), torch.tensor([5, 500]), torch.randn(B, 8, 32)
    with torch.no_grad():
        y = unet(x, t, ctx, fs=8)
        assert torch.equal(y, unet(x, t, ctx, fs=8))
        assert torch.equal(y, unet(x, t, ctx))  # default_fs of the tiny config is 8
        assert not torch.allclose(y, unet(x, t, ctx, fs=3))
        assert not torch.allclose(y, unet(x, t + 100, ctx))
        assert not torch.allclose(y, unet(x, t, ctx + 1.0))
        # scalar timestep == the same timestep for every sample
        torch.testing.assert_close(unet(x, 5, ctx), unet(x, torch.tensor([5, 5]), ctx))


def test_frames_interact_only_through_temporal_layers():
    unet = _randomised(UNetConfig.tiny())
    x, ctx = torch.randn(B, 8, T, H, W), torch.randn(B, 8, 32)
    x_changed = x.clone()
    x_changed[:, :, -1] += 1.0
    with torch.no_grad():
        y, y_changed = unet(x, 10, ctx), unet(x_changed, 10, ctx)
    assert not torch.allclose(y[:, :, 0], y_changed[:, :, 0])  # temporal layers mix frames
    spatial_only = _randomised(UNetConfig.tiny(temporal_conv=False, temporal_attention=False,
                                               addition_attention=False))
    with torch.no_grad():
        y, y_changed = spatial_only(x, 10, ctx), spatial_only(x_changed, 10, ctx)
    torch.testing.assert_close(y[:, :, :-1], y_changed[:, :, :-1])


def test_bad_inputs_name_the_argument():
    unet = VideoUNet(UNetConfig.tiny())
    ctx = torch.randn(B, 8, 32)
    with pytest.raises(ValueError, match=r"x: expected a tensor \[B, 8, T, H, W\]"):
        unet(torch.randn(B, 4, T, H, W), 1, ctx)
    with pytest.raises(ValueError, match="multiples of 2"):
        unet(torch.randn(B, 8, T, 7, 8), 1, ctx)
    with pytest.raises(ValueError, match="timesteps"):
        unet(torch.randn(B, 8, T, H, W), torch.tensor([1, 2, 3]), ctx)
    with pytest.raises(ValueError, match="context"):
        unet(torch.randn(B, 8, T, H, W), 1, torch.randn(B, 8, 16))
    with pytest.raises(ValueError, match="context"):
        unet(torch.randn(B, 8, T, H, W), 1, None)
    image_unet = VideoUNet(UNetConfig.tiny(image_cross_attention=True))
    with pytest.raises(ValueError, match="image tokens per frame"):
        image_unet(torch.randn(B, 8, T, H, W), 1, torch.randn(B, 8 + 5, 32))


def test_gradient_checkpointing_gives_the_same_gradients():
    x, ctx = torch.randn(1, 8, T, H, W), torch.randn(1, 8, 32)
    grads = []
    for checkpointing in (False, True):
        unet = _randomised(UNetConfig.tiny(use_checkpoint=checkpointing))
        unet(x, 10, ctx).square().mean().backward()
        grads.append({n: p.grad for n, p in unet.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, msg=name)


def test_temporal_attention_parameters_are_exactly_the_temporal_transformers():
    unet = VideoUNet(UNetConfig.tiny())
    selected = temporal_attention_parameters(unet)
    expected = {f"{module_name}.{name}"
                for module_name, module in unet.named_modules()
                if isinstance(module, TemporalTransformer)
                for name, _ in module.named_parameters()}
    assert set(selected) == expected
    assert any(k.startswith("init_attn.") for k in selected)
    assert not any("temopral_conv" in k or ".attn2.to_k_ip" in k for k in selected)
    named = dict(unet.named_parameters())
    assert all(named[k] is p for k, p in selected.items())
    # freezing them leaves every other parameter trainable
    for p in selected.values():
        p.requires_grad_(False)
    trainable = {n for n, p in unet.named_parameters() if p.requires_grad}
    assert trainable == set(named) - set(selected)


def test_temporal_attention_selection_on_paper_config(dynamicrafter_shapes):
    with torch.device("meta"):
        unet = VideoUNet(UNetConfig.dynamicrafter_512())
    selected = unet.temporal_attention_parameters()
    reference = dict(dynamicrafter_shapes("unet_512_state_dict_shapes.json")["state_dict"])
    # DynamiCrafter module paths of its TemporalTransformers: init_attn.0 and index 2 of every
    # block that has attention (index 1 is the SpatialTransformer)
    roots = {k.split(".norm.")[0] for k in reference if k.endswith(".norm.weight") and ".transformer_blocks." not in k}
    temporal_roots = {r for r in roots if r == "init_attn.0" or r.endswith(".2")}
    assert len(temporal_roots) == 17  # init_attn + 6 input + 1 middle + 9 output blocks
    expected = {k for k in reference if any(k.startswith(r + ".") for r in temporal_roots)}
    assert set(selected) == expected


def test_config_json_round_trip_and_validation():
    config = UNetConfig.dynamicrafter_512(in_channels=12)
    assert UNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown keys"):
        UNetConfig.from_dict({**config.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="model_channels"):
        UNetConfig.tiny(model_channels=24)
    with pytest.raises(ValueError, match="image_cross_attention"):
        UNetConfig.tiny(context_dim=None, image_cross_attention=True)


def test_save_and_load_pretrained(tmp_path):
    unet = _randomised(UNetConfig.tiny(in_channels=12))
    unet.save_pretrained(tmp_path / "unet")
    loaded = VideoUNet.from_pretrained(tmp_path / "unet")
    assert loaded.config == unet.config
    x, ctx = torch.randn(1, 12, T, H, W), torch.randn(1, 8, 32)
    saved_state = unet.state_dict()
    assert all(torch.equal(v, saved_state[k]) for k, v in loaded.state_dict().items())
    # weights are copied into fresh storage (not views into the file buffer): bit-exact outputs
    assert all(p.data_ptr() % 64 == 0 for p in loaded.parameters())
    with torch.no_grad():
        assert torch.equal(loaded(x, 3, ctx), unet(x, 3, ctx))
    with pytest.raises(FileNotFoundError, match="config.json"):
        VideoUNet.from_pretrained(tmp_path)


def test_bf16_autocast_follows_fp32():
    config = UNetConfig.tiny(image_cross_attention=True, image_cross_attention_scale_learnable=True,
                             use_relative_position=True, use_causal_attention=True)
    unet = _randomised(config)
    x, ctx = torch.randn(B, 8, T, H, W), torch.randn(B, 8 + T * 4, 32)
    with torch.no_grad():
        reference = unet(x, torch.tensor([3, 900]), ctx)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low_precision = unet(x, torch.tensor([3, 900]), ctx)
    assert low_precision.dtype == torch.float32  # returned in the input's dtype
    relative_error = (low_precision - reference).norm() / reference.norm()
    assert relative_error < 0.02  # observed ~0.004


def test_dynamicrafter_params_outside_our_support_are_rejected():
    with pytest.raises(ValueError, match="dims"):
        UNetConfig.from_dynamicrafter_params({"dims": 3, "in_channels": 8})
