"""The trained module of a run with DynamiCrafter's image cross-attention branch.

DynamiCrafter (``LatentVisualDiffusion``) fine-tunes ``image_proj_model`` (the Resampler)
together with the UNet and keeps the CLIP ``embedder`` frozen. The Resampler therefore has to run
inside the module the optimizer, DDP, EMA and checkpoints see: :class:`ImageContextModel` holds
the denoiser (a VideoUNet or ControlledVideoUNet) and the Resampler as sub-modules (state dict
keys ``denoiser.*`` / ``image_projection.*``) and appends the image tokens to the text tokens
in its forward, with the pipeline's own :func:`mask2iv_ros.pipeline.context.image_tokens`, so
training sees exactly the context sampling builds. The frozen image encoder is referenced but
not registered: it is not checkpointed, not broadcast by DDP and not averaged by the EMA.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from mask2iv_ros.models.controlnet import ControlledVideoUNet
from mask2iv_ros.models.image_encoder import ImageEncoder
from mask2iv_ros.models.resampler import Resampler
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.models.unet_config import UNetConfig
from mask2iv_ros.pipeline.context import image_tokens


class ImageContextModel(nn.Module):
    """``forward(x, timesteps, context, fs, images, drop_image, **denoiser_kwargs)``: the
    denoiser with ``context`` = text tokens followed by the image tokens of ``images``."""

    def __init__(self, denoiser: VideoUNet | ControlledVideoUNet, image_projection: Resampler,
                 image_encoder: ImageEncoder) -> None:
        super().__init__()
        if not denoiser.config.image_cross_attention:
            raise ValueError("denoiser: expected a UNet with image_cross_attention=True")
        self.denoiser = denoiser
        self.image_projection = image_projection
        # plain attribute, not a sub-module (see the module docstring)
        object.__setattr__(self, "image_encoder", image_encoder)

    @property
    def config(self) -> UNetConfig:
        return self.denoiser.config

    def full_context(self, context: torch.Tensor, images: torch.Tensor,
                     drop_image: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[B, text_len + T * image_tokens_per_frame, D]``: ``context`` (text tokens) then the
        Resampler tokens of the first frames ``images`` ``[B, 3, H, W]`` in [-1, 1]; rows with
        ``drop_image`` embed the all-zero image (the pipeline's unconditional image)."""
        image = image_tokens(self.image_encoder, self.image_projection, images, drop_image)
        return torch.cat([context, image.to(context.dtype)], dim=1)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                fs: Optional[torch.Tensor] = None, images: Optional[torch.Tensor] = None,
                drop_image: Optional[torch.Tensor] = None, **denoiser_kwargs: Any) -> torch.Tensor:
        if images is None:
            raise ValueError("images: the UNet has image cross-attention; expected the first "
                             "frames [B, 3, H, W] in [-1, 1], got None")
        return self.denoiser(x, timesteps, context=self.full_context(context, images, drop_image),
                             fs=fs, **denoiser_kwargs)
