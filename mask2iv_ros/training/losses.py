"""Diffusion training losses and DynamiCrafter's dynamic x0 rescale.

Weights (all at latent resolution, from :mod:`mask2iv_ros.data.augment`):

- stage 1: the released foreground weight ``mask * (fg_weight - 1) + 1``
  (``foreground_loss_weights``);
- stage 2: the contact weight of eq. 1-2 (``contact_map``, ``contact_loss_weights``,
  ``downsample_weights``).

Two forms of the weighted loss (``LOSS_FORMS``):

- ``"squared_error"`` -- ``mean(w * (target - prediction)**2)``: the weight multiplies the squared
  error, as the released Mask2IV code's ``get_loss`` does (a weight-5 cell counts 5x).
- ``"weighted_residual"`` -- ``mean((w * (target - prediction))**2)``: eq. 3 as the paper writes
  it, the weight inside the squared norm (a weight-5 cell counts 25x).
"""

from __future__ import annotations

from typing import Optional

import torch

LOSS_FORMS = ("squared_error", "weighted_residual")


def weighted_diffusion_loss(prediction: torch.Tensor, target: torch.Tensor,
                            weights: Optional[torch.Tensor] = None,
                            form: str = "squared_error") -> torch.Tensor:
    """Weighted MSE over all elements, in the given ``form`` (module docstring).

    ``weights`` broadcasts against ``[B, C, T, h, w]`` (e.g. ``[B, 1, T, h, w]``); ``None`` gives
    the plain MSE. Computed in float32 whatever the autocast dtype of the prediction.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction: expected shape {tuple(target.shape)} like target, "
                         f"got {tuple(prediction.shape)}")
    if form not in LOSS_FORMS:
        raise ValueError(f"form: expected one of {list(LOSS_FORMS)}, got {form!r}")
    residual = target.float() - prediction.float()
    if weights is None:
        return residual.square().mean()
    if form == "weighted_residual":
        return (residual * weights.float()).square().mean()
    return (residual.square() * weights.float()).mean()


def rescale_x0(latents: torch.Tensor, timesteps: torch.Tensor,
               scale_arr: Optional[torch.Tensor]) -> torch.Tensor:
    """DynamiCrafter's ``use_dynamic_rescale`` in training: ``x0 * scale_arr[t]`` per sample,
    applied to the clean latent before it is noised and before the v target is formed (as its
    ``LatentDiffusion.forward`` does). ``scale_arr``:
    :func:`mask2iv_ros.pipeline.sampling.dynamic_rescale_schedule`; ``None`` = off."""
    if scale_arr is None:
        return latents
    scale = scale_arr.to(latents.device, torch.float32)[timesteps]
    return latents * scale.view(-1, *([1] * (latents.dim() - 1))).to(latents.dtype)
