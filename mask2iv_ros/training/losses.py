"""Diffusion training losses: the (contact-)weighted objective of the paper's eq. 3.

The contact weights themselves (eq. 1-2) and their reduction to latent resolution come from
:mod:`mask2iv_ros.data.augment` (``contact_map``, ``contact_loss_weights``, ``downsample_weights``).
"""

from __future__ import annotations

from typing import Optional

import torch


def weighted_diffusion_loss(prediction: torch.Tensor, target: torch.Tensor,
                            weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean of ``(w * (target - prediction))**2`` over all elements (eq. 3).

    As in eq. 3 the weight multiplies the residual inside the squared norm, so a contact cell
    with ``w = lambda`` contributes ``lambda**2`` times the squared error of a background cell.
    ``weights`` broadcasts against ``[B, C, T, h, w]`` (e.g. ``[B, 1, T, h, w]``); ``None`` gives
    the plain MSE. Computed in float32 whatever the autocast dtype of the prediction.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction: expected shape {tuple(target.shape)} like target, "
                         f"got {tuple(prediction.shape)}")
    residual = target.float() - prediction.float()
    if weights is not None:
        residual = residual * weights.float()
    return residual.square().mean()
