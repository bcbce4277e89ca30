import pytest
import torch

from mask2iv_ros.models.controlnet import ControlledVideoUNet, VideoControlNet, encoder_channels
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.models.unet_config import UNetConfig


def _tiny_setup(seed: int = 0):
    torch.manual_seed(seed)
    config = UNetConfig.tiny(in_channels=8, context_dim=32, text_context_len=8)
    unet = VideoUNet(config)
    # The UNet's zero-initialised output conv would make every output 0; randomise it so the
    # equivalence check compares real activations.
    torch.nn.init.normal_(unet.out[-1].weight, std=0.02)
    controlnet = VideoControlNet.from_unet(unet, hint_channels=4)
    x = torch.randn(2, 8, 4, 8, 8)
    hint = torch.randn(2, 4, 4, 8, 8)
    context = torch.randn(2, 8, 32)
    timesteps = torch.tensor([10, 500])
    return unet, controlnet, x, hint, context, timesteps


def test_encoder_channels_match_unet_skips():
    config = UNetConfig.tiny()
    unet = VideoUNet(config)
    assert len(encoder_channels(config)) == len(unet.input_blocks) == len(unet.output_blocks)


def test_zero_initialised_branch_equals_plain_unet_exactly():
    unet, controlnet, x, hint, context, timesteps = _tiny_setup()
    controlled = ControlledVideoUNet(unet, controlnet).eval()
    with torch.no_grad():
        plain = unet.eval()(x, timesteps, context)
        with_branch = controlled(x, timesteps, context, control_hint=hint)
        without_hint = controlled(x, timesteps, context)
    assert plain.abs().sum() > 0
    assert torch.equal(with_branch, plain)
    assert torch.equal(without_hint, plain)


def test_branch_changes_output_once_zero_convs_are_trained():
    unet, controlnet, x, hint, context, timesteps = _tiny_setup()
    for conv in [*controlnet.zero_convs, controlnet.middle_block_out, controlnet.input_hint_block[-1]]:
        torch.nn.init.normal_(conv.weight, std=0.1)
    controlled = ControlledVideoUNet(unet, controlnet).eval()
    with torch.no_grad():
        plain = unet.eval()(x, timesteps, context)
        out_a = controlled(x, timesteps, context, control_hint=hint)
        out_b = controlled(x, timesteps, context, control_hint=-hint)
        out_off = controlled(x, timesteps, context, control_hint=hint, control_scale=0.0)
    assert not torch.allclose(out_a, plain)
    assert not torch.allclose(out_a, out_b)  # the hint itself matters
    assert torch.equal(out_off, plain)


def test_gradients_reach_the_branch():
    unet, controlnet, x, hint, context, timesteps = _tiny_setup()
    controlled = ControlledVideoUNet(unet, controlnet).train()
    loss = controlled(x, timesteps, context, control_hint=hint).pow(2).mean()
    loss.backward()
    # At zero init only the zero convs get gradients (as in ControlNet); they are non-zero.
    zero_conv_grads = [conv.weight.grad for conv in controlnet.zero_convs]
    assert all(g is not None for g in zero_conv_grads)
    assert sum(g.abs().sum() for g in zero_conv_grads) > 0
    assert controlnet.middle_block_out.weight.grad.abs().sum() > 0
    # One optimiser step away from zero, gradients flow into the encoder copy and the hint net.
    with torch.no_grad():
        for conv in [*controlnet.zero_convs, controlnet.middle_block_out, controlnet.input_hint_block[-1]]:
            conv.weight.add_(torch.randn_like(conv.weight) * 0.05)
    controlnet.zero_grad()
    controlled(x, timesteps, context, control_hint=hint).pow(2).mean().backward()
    assert controlnet.input_hint_block[0].weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in controlnet.input_blocks.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in controlnet.middle_block.parameters())


def test_from_unet_copies_encoder_weights():
    unet, controlnet, *_ = _tiny_setup()
    for name, value in unet.input_blocks.state_dict().items():
        assert torch.equal(controlnet.input_blocks.state_dict()[name], value)
    # A copy, not shared storage: training the branch must leave the main UNet untouched.
    first = next(controlnet.input_blocks.parameters())
    assert first.data_ptr() != next(unet.input_blocks.parameters()).data_ptr()


def test_bad_hint_shape_is_named():
    unet, controlnet, x, hint, context, timesteps = _tiny_setup()
    controlled = ControlledVideoUNet(unet, controlnet)
    with pytest.raises(ValueError, match="control_hint"):
        controlled(x, timesteps, context, control_hint=hint[:, :3])


def test_save_and_load_roundtrip(tmp_path):
    unet, controlnet, x, hint, context, timesteps = _tiny_setup()
    torch.nn.init.normal_(controlnet.middle_block_out.weight)
    controlnet.save_pretrained(tmp_path / "controlnet")
    loaded = VideoControlNet.from_pretrained(tmp_path / "controlnet")
    for name, value in controlnet.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
