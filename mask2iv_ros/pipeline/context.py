"""The UNets' cross-attention context: text tokens, then (optionally) image tokens.

DynamiCrafter (``LatentVisualDiffusion``) builds ``c_crossattn = cat([text_tokens,
image_proj_model(embedder(first_frame))], dim=1)``. Classifier-free guidance drops the two
parts the same way in training and sampling, which these functions reproduce:

- a dropped prompt is replaced by the empty prompt's tokens (``uncond_type: empty_seq``),
- a dropped image is the all-zero image (mid grey in [-1, 1]) run through the embedder and the
  Resampler (training multiplies the frame by 0; the sampler embeds ``zeros_like(img)``).

Shared by :meth:`Mask2IVPipeline.encode_context` (training) and the sampling path.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..models.image_encoder import ImageEncoder
from ..models.resampler import Resampler
from ..models.text_encoder import TextEncoder


def drop_mask(name: str, drop: torch.Tensor | Sequence[bool] | None, batch: int,
              device: torch.device) -> torch.Tensor | None:
    """``drop`` as a bool tensor ``[batch]`` on ``device`` (None stays None)."""
    if drop is None:
        return None
    drop = torch.as_tensor(drop, device=device)
    if drop.shape != (batch,) or drop.dtype != torch.bool:
        raise ValueError(f"{name}: expected a bool tensor/sequence of shape ({batch},), got "
                         f"{drop.dtype} {tuple(drop.shape)}")
    return drop


def text_tokens(text_encoder: TextEncoder, prompts: Sequence[str],
                drop_prompt: torch.Tensor | Sequence[bool] | None = None) -> torch.Tensor:
    """``[B, max_length, D]``; rows with ``drop_prompt`` get the empty prompt's tokens."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts: expected a list of str, got {type(prompts).__name__}")
    prompts = list(prompts)
    tokens, _ = text_encoder.encode([*prompts, ""])
    tokens, empty = tokens[:-1], tokens[-1:]
    drop = drop_mask("drop_prompt", drop_prompt, len(prompts), tokens.device)
    if drop is not None:
        tokens = torch.where(drop[:, None, None], empty, tokens)
    return tokens


def image_tokens(image_encoder: ImageEncoder, image_projection: Resampler, images: torch.Tensor,
                 drop_image: torch.Tensor | Sequence[bool] | None = None) -> torch.Tensor:
    """``[B, video_length * num_queries, D]`` from conditioning frames ``[B, 3, H, W]`` in [-1, 1];
    rows with ``drop_image`` embed the all-zero image instead."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images: expected the conditioning frames as a float tensor "
                         f"[B, 3, H, W] in [-1, 1], got {got}")
    drop = drop_mask("drop_image", drop_image, images.shape[0], images.device)
    if drop is not None:
        images = images * (~drop).to(images.dtype)[:, None, None, None]
    embeds = image_encoder(images)
    projection_dtype = next(image_projection.parameters()).dtype
    return image_projection(embeds.to(projection_dtype))
