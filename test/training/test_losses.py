"""The contact-weighted diffusion loss (paper eq. 1-3) and the EMA."""

import numpy as np
import pytest
import torch

from mask2iv_ros.data.augment import contact_loss_weights, contact_map, downsample_weights
from mask2iv_ros.training.ema import ParameterEMA
from mask2iv_ros.training.losses import weighted_diffusion_loss


def test_weights_multiply_the_residual_inside_the_square():
    target = torch.zeros(1, 4, 2, 2, 2)
    prediction = torch.ones_like(target)
    weights = torch.ones(1, 1, 2, 2, 2)
    weights[..., 0, 0] = 5.0  # one contact cell per frame
    plain = weighted_diffusion_loss(prediction, target)
    weighted = weighted_diffusion_loss(prediction, target, weights)
    assert plain.item() == pytest.approx(1.0)
    # 2 of 8 cells per channel have w=5: mean((w*1)^2) = (6*1 + 2*25) / 8
    assert weighted.item() == pytest.approx((6 + 2 * 25) / 8)


def test_contact_pixels_drive_the_loss():
    """An error at a contact pixel costs lambda^2 more than the same error elsewhere."""
    h = w = 16
    actor = np.zeros((1, h, w), bool)
    obj = np.zeros((1, h, w), bool)
    actor[:, 2:8, 2:8] = True
    obj[:, 2:8, 8:14] = True  # touching the actor on column 8
    contact = contact_map(actor, obj, kernel_size=3)
    assert contact.any() and not contact[:, 12:, :].any()
    latent_weights = downsample_weights(contact_loss_weights(contact, 5.0), 8).unsqueeze(0)[:, None]
    assert latent_weights.shape == (1, 1, 1, 2, 2)
    target = torch.zeros(1, 4, 1, 2, 2)
    error_at_contact = target.clone()
    error_at_contact[..., 0, 0] = 1.0  # latent cell (0, 0) covers the contact band
    error_far = target.clone()
    error_far[..., 1, 1] = 1.0
    near = weighted_diffusion_loss(error_at_contact, target, latent_weights)
    far = weighted_diffusion_loss(error_far, target, latent_weights)
    assert near.item() == pytest.approx(25 * far.item())


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
