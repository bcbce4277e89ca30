"""The weighted diffusion losses (released stage-1 foreground weight, stage-2 contact weight in
both forms), dynamic x0 rescale, and the EMA."""

import numpy as np
import pytest
import torch

from mask2iv_ros.data.augment import (contact_loss_weights, contact_map, downsample_weights,
                                      foreground_loss_weights)
from mask2iv_ros.masks import encode_mask_video
from mask2iv_ros.pipeline.sampling import dynamic_rescale_schedule
from mask2iv_ros.training.ema import ParameterEMA
from mask2iv_ros.training.losses import rescale_x0, weighted_diffusion_loss


def test_loss_forms_on_a_hand_made_example():
    target = torch.zeros(1, 4, 2, 2, 2)
    prediction = torch.ones_like(target)
    weights = torch.ones(1, 1, 2, 2, 2)
    weights[..., 0, 0] = 5.0  # one weight-5 cell per frame
    plain = weighted_diffusion_loss(prediction, target)
    assert plain.item() == pytest.approx(1.0)
    # released get_loss: mean(w * err^2) = (6*1 + 2*5) / 8
    released = weighted_diffusion_loss(prediction, target, weights)
    assert released.item() == pytest.approx((6 + 2 * 5) / 8)
    assert weighted_diffusion_loss(prediction, target, weights, "squared_error") == released
    # eq. 3 as printed: mean((w * err)^2) = (6*1 + 2*25) / 8
    literal = weighted_diffusion_loss(prediction, target, weights, "weighted_residual")
    assert literal.item() == pytest.approx((6 + 2 * 25) / 8)
    with pytest.raises(ValueError, match="form: expected one of"):
        weighted_diffusion_loss(prediction, target, weights, "squared")


def _touching_masks():
    """16x16 actor and object touching along columns 7|8, rows 4..11 (two 8x8 latent blocks
    per side): the contact band holds pixel (8, 8) but not (0, 0), (0, 8) or (8, 0)."""
    actor = np.zeros((1, 16, 16), bool)
    obj = np.zeros((1, 16, 16), bool)
    actor[:, 4:12, 2:8] = True
    obj[:, 4:12, 8:14] = True
    return actor, obj


def test_contact_cell_weighs_lambda_on_the_squared_error_not_lambda_squared():
    actor, obj = _touching_masks()
    contact = contact_map(actor, obj, kernel_size=3)
    assert contact[0, 8, 8] and not contact[0, 0, 0] and not contact[0, 8, 0]
    assert contact[0, 4:8, 7].all()  # contact pixels inside block (0, 0) too
    pixel_weights = contact_loss_weights(contact, 5.0)
    latent_weights = downsample_weights(pixel_weights, 8, mode="nearest")[:, None][None]
    assert latent_weights.shape == (1, 1, 1, 2, 2)
    # nearest: block (i, j) takes pixel (8i, 8j) -> only cell (1, 1) is a contact cell
    assert latent_weights.flatten().tolist() == [1.0, 1.0, 1.0, 5.0]
    # max pooling would mark block (0, 0) as well (it holds contact pixels)
    assert downsample_weights(pixel_weights, 8, mode="max")[0, 0, 0] == 5.0

    target = torch.zeros(1, 4, 1, 2, 2)
    at_contact, far = target.clone(), target.clone()
    at_contact[..., 1, 1] = 1.0
    far[..., 0, 1] = 1.0
    near_loss = weighted_diffusion_loss(at_contact, target, latent_weights)
    far_loss = weighted_diffusion_loss(far, target, latent_weights)
    assert near_loss.item() == pytest.approx(5 * far_loss.item())
    near_eq3 = weighted_diffusion_loss(at_contact, target, latent_weights, "weighted_residual")
    far_eq3 = weighted_diffusion_loss(far, target, latent_weights, "weighted_residual")
    assert near_eq3.item() == pytest.approx(25 * far_eq3.item())


def test_nearest_downsampling_is_the_releases_interpolate():
    """The release: F.interpolate(x, scale_factor=1/8, mode='nearest') on [B, T, H, W], which
    samples pixel (8i, 8j) of each block."""
    weights = torch.rand(2, 3, 40, 64)
    ours = downsample_weights(weights, 8, mode="nearest")
    assert torch.equal(ours, weights[..., ::8, ::8])
    assert torch.equal(ours, torch.nn.functional.interpolate(weights, scale_factor=1 / 8,
                                                             mode="nearest"))


def test_foreground_weights_follow_the_release_formula():
    # Colour mask video [B, 3, T, H, W] in [-1, 1]: object red, actor green, background black.
    actor = np.zeros((2, 16, 24), bool)
    obj = np.zeros((2, 16, 24), bool)
    actor[0, 0:8, 0:8] = True           # frame 0: actor on block (0, 0)
    obj[0, 8:16, 16:24] = True          # frame 0: object on block (1, 2)
    obj[1, 9:16, 9:16] = True           # frame 1: object in block (1, 1) but not its pixel (8, 8)
    video = torch.from_numpy(encode_mask_video(obj, actor)).permute(3, 0, 1, 2).float()
    video = (video / 127.5 - 1.0)[None]
    weights = foreground_loss_weights(video, fg_weight=5.0, factor=8)
    assert weights.shape == (1, 1, 2, 2, 3)
    expected = torch.ones(1, 1, 2, 2, 3)
    expected[0, 0, 0, 0, 0] = 5.0
    expected[0, 0, 0, 1, 2] = 5.0
    assert torch.equal(weights, expected)
    # the release's expression on the same video
    mask_sum = ((video + 1) / 2).sum(1)
    release = torch.nn.functional.interpolate(mask_sum, scale_factor=1 / 8, mode="nearest")
    assert torch.equal(weights, release.unsqueeze(1) * (5 - 1) + 1)
    assert torch.equal(foreground_loss_weights(video, 1.0), torch.ones_like(weights))
    with pytest.raises(ValueError, match="fg_weight"):
        foreground_loss_weights(video, 0.5)
    with pytest.raises(ValueError, match="mask_video"):
        foreground_loss_weights(video[:, :1], 5.0)


def test_rescale_x0_multiplies_by_the_dynamicrafter_schedule():
    scale_arr = dynamic_rescale_schedule(0.7)
    latents = torch.randn(3, 4, 2, 3, 3)
    timesteps = torch.tensor([0, 200, 999])
    out = rescale_x0(latents, timesteps, scale_arr)
    for i, s in enumerate([1.0, 1.0 - 0.3 * 200 / 399, 0.7]):
        torch.testing.assert_close(out[i], latents[i] * s)
    assert rescale_x0(latents, timesteps, None) is latents


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="prediction: expected shape"):
        weighted_diffusion_loss(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 4, 2, 2, 3))


def test_ema_tracks_trainable_parameters_only():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    model[1].requires_grad_(False)
    ema = ParameterEMA(model, decay=0.5, warmup=False)
    assert set(ema.shadow) == {"0.weight", "0.bias"}
    before = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(2.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["0.weight"], before + 1.0)
    ema.copy_to(model)
    assert torch.allclose(model[0].weight, before + 1.0)
