"""Mask augmentations and the contact-weighted loss of stage 2 (paper eq. 1 and 2).

* :func:`random_dilate_erode` -- "with a probability p (0.2) we dilate or erode the mask using a
  kernel size randomly chosen from {3, 5, 7}". One draw per clip, applied to every frame of every
  mask video given (actor and object alike), so the trajectory stays temporally consistent.
* :func:`contact_map` -- eq. 1: ``m_c = (dilate(m_h) & m_o) | (m_h & dilate(m_o))``.
* :func:`contact_loss_weights` -- eq. 2: ``w = (1 - m_c) + lam * m_c``.
* :func:`downsample_weights` -- brings a pixel-space weight map to latent resolution (the loss is
  computed on VAE latents, 8x smaller). ``"nearest"`` (the released Mask2IV code's
  ``F.interpolate(scale_factor=1/8, mode="nearest")``): each latent cell takes the weight of the
  top-left pixel of its 8x8 block. ``"max"``: a latent cell that covers any contact pixel gets
  the full contact weight, so thin contact regions are not averaged away; ``"area"`` gives the
  mean weight of the covered pixels.
* :func:`foreground_loss_weights` -- the released stage-1 loss weight
  ``mask * (fg_weight - 1) + 1`` with mask = actor or object, from the colour-coded mask video.

All structuring elements are square (``cv2.MORPH_RECT``): a k x k kernel grows/shrinks a mask by
``k // 2`` pixels in every direction, including diagonals.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

MaskArray = np.ndarray


def _check_kernel_size(kernel_size: int, name: str = "kernel_size") -> None:
    if not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name}: expected a positive odd integer, got {kernel_size!r}")


def _morph(masks: np.ndarray, op: str, kernel_size: int) -> np.ndarray:
    """Dilate or erode a bool mask ``[..., H, W]`` frame by frame with a square kernel."""
    masks = np.asarray(masks)
    if masks.ndim < 2:
        raise ValueError(f"masks: expected a bool array [..., H, W], got shape {masks.shape}")
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_size, kernel_size))
    flat = masks.reshape((-1,) + masks.shape[-2:]).astype(np.uint8)
    fn = cv2.dilate if op == "dilate" else cv2.erode
    # BORDER_CONSTANT 0: pixels outside the image count as background for both operations,
    # so erosion shrinks masks touching the border too (OpenCV's default border would not).
    out = np.stack(
        [fn(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) for m in flat]
    )
    return out.reshape(masks.shape).astype(bool)


def dilate(masks: np.ndarray, kernel_size: int) -> np.ndarray:
    _check_kernel_size(kernel_size)
    return _morph(masks, "dilate", kernel_size)


def erode(masks: np.ndarray, kernel_size: int) -> np.ndarray:
    _check_kernel_size(kernel_size)
    return _morph(masks, "erode", kernel_size)


def random_dilate_erode(
    masks: Union[np.ndarray, Sequence[np.ndarray]],
    p: float = 0.2,
    kernel_sizes: Sequence[int] = (3, 5, 7),
    rng: Optional[np.random.Generator] = None,
):
    """With probability ``p``, dilate or erode (50/50) all given masks with one random kernel size.

    Args:
        masks: a bool mask array ``[..., H, W]`` or a sequence of them (e.g. ``(actor_masks,
            object_masks)``); the same operation and kernel are applied to all of them.
        p: probability of perturbing at all.
        kernel_sizes: candidate odd kernel sizes.
        rng: numpy Generator (seeded by the caller for reproducibility).

    Returns:
        The same structure as ``masks`` (new arrays; inputs are not modified).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: expected a probability in [0, 1], got {p}")
    if len(kernel_sizes) == 0:
        raise ValueError("kernel_sizes: expected at least one odd kernel size")
    for k in kernel_sizes:
        _check_kernel_size(k, "kernel_sizes")
    rng = rng if rng is not None else np.random.default_rng()
    single = isinstance(masks, np.ndarray)
    items = [masks] if single else list(masks)
    if rng.random() < p:
        op = "dilate" if rng.random() < 0.5 else "erode"
        k = int(kernel_sizes[int(rng.integers(len(kernel_sizes)))])
        items = [_morph(m, op, k) for m in items]
    else:
        items = [np.array(m, dtype=bool, copy=True) for m in items]
    if single:
        return items[0]
    return tuple(items) if isinstance(masks, tuple) else items


def contact_map(actor_mask: np.ndarray, object_mask: np.ndarray, kernel_size: int = 5) -> np.ndarray:
    """Eq. 1: ``(dilate(actor) & object) | (actor & dilate(object))``; bool, same shape as inputs.

    Works on single masks ``[H, W]`` and mask videos ``[T, H, W]``.
    """
    actor_mask = np.asarray(actor_mask, dtype=bool)
    object_mask = np.asarray(object_mask, dtype=bool)
    if actor_mask.shape != object_mask.shape:
        raise ValueError(
            f"object_mask: expected the shape of actor_mask {actor_mask.shape}, got {object_mask.shape}"
        )
    _check_kernel_size(kernel_size)
    return (dilate(actor_mask, kernel_size) & object_mask) | (actor_mask & dilate(object_mask, kernel_size))


def contact_loss_weights(contact, lam: float = 5.0):
    """Eq. 2: ``w = (1 - m_c) + lam * m_c`` as float32 (numpy in -> numpy out, tensor -> tensor)."""
    if lam < 0:
        raise ValueError(f"lam: expected a non-negative weight, got {lam}")
    if isinstance(contact, torch.Tensor):
        mc = contact.to(torch.float32)
    else:
        mc = np.asarray(contact, dtype=np.float32)
    return (1.0 - mc) + lam * mc


def downsample_weights(weights, factor: int = 8, mode: str = "nearest") -> torch.Tensor:
    """Reduce a pixel-space weight map ``[..., H, W]`` to latent resolution ``[..., H/f, W/f]``.

    ``mode="nearest"`` (default, the released Mask2IV convention) samples pixel ``(f*i, f*j)``
    for latent cell ``(i, j)``; ``"max"`` (max-pool) keeps the contact weight of any latent cell
    touching a contact pixel; ``"area"`` averages. ``H`` and ``W`` must be divisible by ``factor``.
    """
    w = weights if isinstance(weights, torch.Tensor) else torch.from_numpy(np.asarray(weights))
    w = w.to(torch.float32)
    if w.ndim < 2:
        raise ValueError(f"weights: expected a map [..., H, W], got shape {tuple(w.shape)}")
    h, wd = w.shape[-2:]
    if factor < 1 or h % factor or wd % factor:
        raise ValueError(
            f"factor: expected a positive integer dividing the weight map size {(h, wd)}, got {factor}"
        )
    lead = w.shape[:-2]
    flat = w.reshape(-1, 1, h, wd)
    if mode == "nearest":
        out = F.interpolate(flat, scale_factor=1.0 / factor, mode="nearest")
    elif mode == "max":
        out = F.max_pool2d(flat, factor)
    elif mode == "area":
        out = F.avg_pool2d(flat, factor)
    else:
        raise ValueError(f"mode: expected 'nearest', 'max' or 'area', got {mode!r}")
    return out.reshape(*lead, h // factor, wd // factor)


def foreground_loss_weights(mask_video: torch.Tensor, fg_weight: float = 5.0,
                            factor: int = 8) -> torch.Tensor:
    """Stage-1 loss weights of the released Mask2IV code, ``[B, 1, T, H/f, W/f]``.

    ``mask_video``: the colour-coded target mask video ``[B, 3, T, H, W]`` in [-1, 1]. As the
    release computes it: ``mask = ((mask_video + 1) / 2).sum(channels)`` (1 on actor or object
    pixels, 0 on background, for the palette colours), nearest-downsampled by the VAE factor,
    then ``mask * (fg_weight - 1) + 1`` -- the weight of the squared error, so a foreground
    latent cell counts ``fg_weight`` times a background one.
    """
    if fg_weight < 1.0:
        raise ValueError(f"fg_weight: expected a weight >= 1.0 (1.0 = no foreground weighting), "
                         f"got {fg_weight}")
    if mask_video.dim() != 5 or mask_video.shape[1] != 3:
        raise ValueError(f"mask_video: expected a colour mask video [B, 3, T, H, W], got "
                         f"{tuple(mask_video.shape)}")
    mask = ((mask_video.float() + 1.0) / 2.0).sum(dim=1)            # [B, T, H, W]
    mask = downsample_weights(mask, factor, mode="nearest").unsqueeze(1)
    return mask * (fg_weight - 1.0) + 1.0


def last_frame_loss_weights(latents: torch.Tensor, weights: torch.Tensor | None,
                            last_frame_weight: float) -> torch.Tensor:
    """``weights`` (``[B, 1, T, h, w]``, or None = all ones for ``latents [B, C, T, h, w]``) with
    the last frame's multiplied by ``last_frame_weight`` (``stage1.last_frame_weight``)."""
    if last_frame_weight < 1.0:
        raise ValueError(f"last_frame_weight: expected a weight >= 1.0 (1.0 = the released loss), "
                         f"got {last_frame_weight}")
    b, _, t, h, w = latents.shape
    if weights is None:
        weights = torch.ones(b, 1, t, h, w, device=latents.device, dtype=torch.float32)
    frame = torch.ones(t, device=weights.device, dtype=weights.dtype)
    frame[-1] = last_frame_weight
    return weights * frame.view(1, 1, t, 1, 1)
