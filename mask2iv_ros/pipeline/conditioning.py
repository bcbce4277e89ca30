"""Concat conditioning of both Mask2IV stages (shared by sampling and training).

All functions are pure tensor functions on *scaled VAE latents* in DynamiCrafter layout
``[B, C, T, h, w]``. The result is concatenated after the 4 noise channels
(:func:`model_input`), giving the UNet's 12 input channels in the released Mask2IV order
(docs/ARCHITECTURE.md, ``mask2iv_ros.models.layout``):

- stage 1 (trajectory): ``[noise, mask_slot, image_latent]``
  - TT-Gen (text): mask_slot = latent of the colour-coded first-frame mask, on every frame.
  - PT-Gen (position): mask_slot = first-frame mask latent in frame 0, placement latent in
    frame N-1, zeros in between (where DynamiCrafter's interpolation model puts its key frames).
- stage 2 (video): ``[noise, image_latent, trajectory_latent (per frame)]``, so the first-frame
  RGB latent sits on DynamiCrafter's pretrained image channels 4..7 and the trajectory on the
  zero-initialised channels 8..11 when fine-tuning from DynamiCrafter.

The image latent is repeated over all frames, as DynamiCrafter does for its first-frame concat.

Classifier-free guidance contract (what the unconditional branch sees, so training can drop the
same things): TT-Gen drops the prompt (empty-prompt context, same concat); PT-Gen drops the
placement (``placement_latent=None`` -> that slot is zero like the intermediate frames);
stage 2 drops the prompt only (the trajectory and image latents stay).
"""

from __future__ import annotations

import torch

__all__ = ["frame_latent", "tt_condition", "pt_condition", "video_condition", "model_input"]


def frame_latent(latent: torch.Tensor, name: str = "latent") -> torch.Tensor:
    """Accept a single-frame latent ``[B, C, h, w]`` or ``[B, C, 1, h, w]``; return the 5-D form."""
    if latent.dim() == 4:
        return latent.unsqueeze(2)
    if latent.dim() == 5 and latent.shape[2] == 1:
        return latent
    raise ValueError(f"{name}: expected [B, C, h, w] or [B, C, 1, h, w], got {tuple(latent.shape)}")


def _same_shape(reference: torch.Tensor, other: torch.Tensor, name: str) -> None:
    if other.shape != reference.shape:
        raise ValueError(f"{name}: expected shape {tuple(reference.shape)} matching image_latent, "
                         f"got {tuple(other.shape)}")


def tt_condition(image_latent: torch.Tensor, mask_latent: torch.Tensor,
                 num_frames: int) -> torch.Tensor:
    """Stage-1 TT-Gen concat: ``[mask_latent, image_latent]`` each repeated on ``num_frames``.

    ``image_latent``, ``mask_latent``: ``[B, C, h, w]`` or ``[B, C, 1, h, w]`` (the latent of the
    colour-coded first-frame object/actor mask). Returns ``[B, 2C, num_frames, h, w]``.
    """
    image_latent = frame_latent(image_latent, "image_latent")
    mask_latent = frame_latent(mask_latent, "mask_latent")
    _same_shape(image_latent, mask_latent, "mask_latent")
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    return torch.cat([mask_latent, image_latent], dim=1).expand(-1, -1, num_frames, -1, -1).clone()


def pt_condition(image_latent: torch.Tensor, mask_latent: torch.Tensor,
                 placement_latent: torch.Tensor | None, num_frames: int) -> torch.Tensor:
    """Stage-1 PT-Gen concat: ``[mask slots, image_latent]``; the mask slots hold the first/last
    frame's latents and zeros between, the image latent is on every frame.

    Frame 0 of the mask channels holds ``mask_latent`` (first-frame object/actor mask), frame
    ``num_frames - 1`` holds ``placement_latent`` (the target position mask); ``None`` leaves the
    last slot zero (the unconditional branch of guidance). Returns ``[B, 2C, num_frames, h, w]``.
    """
    image_latent = frame_latent(image_latent, "image_latent")
    mask_latent = frame_latent(mask_latent, "mask_latent")
    _same_shape(image_latent, mask_latent, "mask_latent")
    if num_frames < 2:
        raise ValueError(f"num_frames: PT-Gen needs >= 2 frames (first and last slot), got {num_frames}")
    b, c, _, h, w = image_latent.shape
    mask_slots = image_latent.new_zeros(b, c, num_frames, h, w)
    mask_slots[:, :, :1] = mask_latent
    if placement_latent is not None:
        placement_latent = frame_latent(placement_latent, "placement_latent")
        _same_shape(image_latent, placement_latent, "placement_latent")
        mask_slots[:, :, -1:] = placement_latent
    images = image_latent.expand(-1, -1, num_frames, -1, -1)
    return torch.cat([mask_slots, images], dim=1)


def video_condition(trajectory_latents: torch.Tensor, image_latent: torch.Tensor) -> torch.Tensor:
    """Stage-2 concat: ``[image_latent repeated, trajectory_latents (per frame)]``.

    ``trajectory_latents``: ``[B, C, T, h, w]`` latents of the colour-coded mask trajectory.
    Returns ``[B, 2C, T, h, w]``.
    """
    image_latent = frame_latent(image_latent, "image_latent")
    if trajectory_latents.dim() != 5:
        raise ValueError(f"trajectory_latents: expected [B, C, T, h, w], got "
                         f"{tuple(trajectory_latents.shape)}")
    b, c, t, h, w = trajectory_latents.shape
    if image_latent.shape != (b, c, 1, h, w):
        raise ValueError(f"image_latent: expected shape {(b, c, 1, h, w)} matching "
                         f"trajectory_latents, got {tuple(image_latent.shape)}")
    return torch.cat([image_latent.expand(-1, -1, t, -1, -1), trajectory_latents], dim=1)


def model_input(noisy_latents: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """UNet input: noise channels first, then the concat conditioning (``[B, 4 + 2C, T, h, w]``)."""
    if noisy_latents.shape[0] != condition.shape[0] or noisy_latents.shape[2:] != condition.shape[2:]:
        raise ValueError(f"condition: expected [B, C, T, h, w] = {tuple(noisy_latents.shape[:1])} + "
                         f"(C,) + {tuple(noisy_latents.shape[2:])}, got {tuple(condition.shape)}")
    return torch.cat([noisy_latents, condition.to(noisy_latents.dtype)], dim=1)
