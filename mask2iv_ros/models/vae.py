"""Frame-wise video VAE: a diffusers ``AutoencoderKL`` applied to ``[B, C, T, H, W]`` videos.

DynamiCrafter encodes and decodes each frame independently with the Stable Diffusion VAE
(``perframe_ae``); this wrapper does the same in chunks of ``chunk_size`` frames so memory stays
bounded for long or high-resolution videos. Latents are scaled by the VAE's
``scaling_factor`` (0.18215 for SD/DynamiCrafter), i.e. they are what the UNet sees.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers import AutoencoderKL
from torch import nn

SD_SCALE_FACTOR = 0.18215


def sd21_vae_config() -> dict[str, Any]:
    """``AutoencoderKL`` config of Stable Diffusion 2.1 (the VAE inside DynamiCrafter)."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512), norm_num_groups=32, sample_size=768,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        act_fn="silu", scaling_factor=SD_SCALE_FACTOR,
    )


def tiny_vae_config() -> dict[str, Any]:
    """A CPU-test-sized ``AutoencoderKL`` with the SD downsampling factor of 8."""
    return dict(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(16, 16, 32, 32), norm_num_groups=8, sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        act_fn="silu", scaling_factor=SD_SCALE_FACTOR,
    )


class VideoVAE(nn.Module):
    """Encode/decode ``[B, 3, T, H, W]`` videos in [-1, 1] to/from scaled latents ``[B, 4, T, h, w]``."""

    def __init__(self, autoencoder: AutoencoderKL, chunk_size: int = 8) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size: expected a positive int, got {chunk_size}")
        self.autoencoder = autoencoder
        self.chunk_size = chunk_size

    @classmethod
    def from_config(cls, config: dict[str, Any], chunk_size: int = 8) -> "VideoVAE":
        return cls(AutoencoderKL(**config), chunk_size=chunk_size)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, chunk_size: int = 8,
                        torch_dtype: torch.dtype | None = None) -> "VideoVAE":
        """Load a diffusers ``AutoencoderKL`` folder (config.json + safetensors), local only."""
        autoencoder = AutoencoderKL.from_pretrained(
            os.fspath(folder), use_safetensors=True, local_files_only=True, torch_dtype=torch_dtype)
        return cls(autoencoder, chunk_size=chunk_size)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        self.autoencoder.save_pretrained(os.fspath(folder), safe_serialization=True)

    # ------------------------------------------------------------------ properties
    @property
    def scale_factor(self) -> float:
        return float(self.autoencoder.config.scaling_factor)

    @property
    def shift_factor(self) -> float:
        shift = getattr(self.autoencoder.config, "shift_factor", None)
        return 0.0 if shift is None else float(shift)

    @property
    def spatial_factor(self) -> int:
        """Image size / latent size (8 for SD)."""
        return 2 ** (len(self.autoencoder.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.autoencoder.config.latent_channels)

    # ------------------------------------------------------------------ coding
    @staticmethod
    def _frames(video: torch.Tensor, name: str) -> tuple[torch.Tensor, int, int]:
        if video.dim() != 5:
            raise ValueError(f"{name}: expected a [B, C, T, H, W] tensor, got shape "
                             f"{tuple(video.shape)}")
        b, c, t, h, w = video.shape
        return video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w), b, t

    @staticmethod
    def _video(frames: torch.Tensor, b: int, t: int) -> torch.Tensor:
        return frames.reshape(b, t, *frames.shape[1:]).permute(0, 2, 1, 3, 4)

    def encode(self, video: torch.Tensor, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, 3, T, H, W]`` in [-1, 1] -> scaled latents ``[B, 4, T, H/f, W/f]``.

        ``sample=False`` (conditioning) uses the posterior mean; ``sample=True`` (training
        targets) draws from the posterior with ``generator``.
        """
        frames, b, t = self._frames(video, "video")
        if frames.shape[1] != self.autoencoder.config.in_channels:
            raise ValueError(f"video: expected {self.autoencoder.config.in_channels} channels at "
                             f"dim 1, got shape {tuple(video.shape)}")
        frames = frames.to(self.autoencoder.dtype)
        latents = []
        for chunk in frames.split(self.chunk_size):
            posterior = self.autoencoder.encode(chunk).latent_dist
            latents.append(posterior.sample(generator) if sample else posterior.mode())
        latents = (torch.cat(latents) - self.shift_factor) * self.scale_factor
        return self._video(latents, b, t)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents ``[B, 4, T, h, w]`` -> video ``[B, 3, T, h*f, w*f]`` clamped to [-1, 1]."""
        frames, b, t = self._frames(latents, "latents")
        frames = frames.to(self.autoencoder.dtype) / self.scale_factor + self.shift_factor
        decoded = [self.autoencoder.decode(chunk).sample for chunk in frames.split(self.chunk_size)]
        return self._video(torch.cat(decoded).clamp(-1.0, 1.0), b, t)
