import pytest
import torch

from mask2iv_ros.pipeline.conditioning import (model_input, pt_condition, tt_condition,
                                               video_condition)

B, C, H, W = 2, 4, 3, 5


def _latent(value):
    """Distinct constant per (batch, channel) so slots are recognisable."""
    base = torch.arange(B * C, dtype=torch.float32).reshape(B, C, 1, 1)
    return (base + value).expand(B, C, H, W).clone()


def test_tt_condition_repeats_mask_then_image_latents():
    # Released Mask2IV stage 1: cat([mask_slot, image_latent]) after the noise.
    image, mask = _latent(100), _latent(200)
    cond = tt_condition(image, mask, num_frames=5)
    assert cond.shape == (B, 2 * C, 5, H, W)
    for t in range(5):
        assert torch.equal(cond[:, :C, t], mask)
        assert torch.equal(cond[:, C:, t], image)
    assert torch.equal(tt_condition(image.unsqueeze(2), mask.unsqueeze(2), 5), cond)


def test_pt_condition_slots_first_last_zeros_between():
    image, mask, placement = _latent(100), _latent(200), _latent(300)
    cond = pt_condition(image, mask, placement, num_frames=6)
    assert cond.shape == (B, 2 * C, 6, H, W)
    # Released PT-Gen: the slot pattern (first mask, zeros, end mask) comes first, where
    # DynamiCrafter's interpolation key frames sat; the RGB latent follows on every frame.
    for t in range(6):
        assert torch.equal(cond[:, C:, t], image)
    assert torch.equal(cond[:, :C, 0], mask)
    assert torch.equal(cond[:, :C, 5], placement)
    assert (cond[:, :C, 1:5] == 0).all()
    # unconditional branch: no placement -> last slot zero, everything else unchanged
    uncond = pt_condition(image, mask, None, num_frames=6)
    assert (uncond[:, :C, 5] == 0).all()
    assert torch.equal(uncond[:, C:, 5], image)
    assert torch.equal(uncond[:, :, :5], cond[:, :, :5])


def test_video_condition_and_model_input_channel_order():
    trajectory = torch.randn(B, C, 4, H, W)
    image = _latent(100)
    cond = video_condition(trajectory, image)
    noise = torch.randn(B, 4, 4, H, W)
    x = model_input(noise, cond)
    assert x.shape == (B, 12, 4, H, W)
    # Released stage 2 ("maskcat"): [noise, first RGB latent repeated, trajectory latents], so
    # the RGB latent keeps DynamiCrafter's pretrained first-frame channels 4..7.
    assert torch.equal(x[:, :4], noise)
    assert torch.equal(x[:, 4:8], image.unsqueeze(2).expand(-1, -1, 4, -1, -1))
    assert torch.equal(x[:, 8:12], trajectory)


def test_stage1_model_input_channels():
    image, mask, placement = _latent(100), _latent(200), _latent(300)
    noise = torch.randn(B, 4, 3, H, W)
    x = model_input(noise, pt_condition(image, mask, placement, num_frames=3))
    assert torch.equal(x[:, :4], noise)
    assert torch.equal(x[:, 4:8, 0], mask) and torch.equal(x[:, 4:8, 2], placement)
    assert torch.equal(x[:, 8:12, 1], image)
    x = model_input(noise, tt_condition(image, mask, num_frames=3))
    assert torch.equal(x[:, 4:8, 1], mask) and torch.equal(x[:, 8:12, 1], image)


def test_shape_errors_name_the_argument():
    image = _latent(0)
    with pytest.raises(ValueError, match="mask_latent: expected shape"):
        tt_condition(image, torch.zeros(B, C, H, W + 1), 4)
    with pytest.raises(ValueError, match="num_frames: PT-Gen needs >= 2"):
        pt_condition(image, image, image, 1)
    with pytest.raises(ValueError, match="placement_latent"):
        pt_condition(image, image, torch.zeros(B, C, 2, H, W), 4)
    with pytest.raises(ValueError, match="image_latent: expected shape"):
        video_condition(torch.zeros(B, C, 4, H, W + 1), image)
    with pytest.raises(ValueError, match="condition"):
        model_input(torch.zeros(B, 4, 4, H, W), torch.zeros(B, 8, 3, H, W))
