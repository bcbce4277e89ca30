"""DynamiCrafter's ``image_proj_model``: a Perceiver resampler turning CLIP image tokens into
per-frame context tokens for the UNet's image cross-attention.

Same parameter names as ``lvdm/modules/encoders/resampler.py`` (``latents``, ``proj_in``,
``layers.i.0`` attention, ``layers.i.1`` feed-forward, ``proj_out``, ``norm_out``), so the
``image_proj_model.*`` part of a DynamiCrafter checkpoint loads unchanged. With ``video_length``
set there are ``num_queries`` learned queries per frame; the output ``[B, video_length *
num_queries, output_dim]`` is what :class:`~mask2iv_ros.models.unet.VideoUNet` expects after the
text tokens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from .weights import module_from_state_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class ResamplerConfig:
    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int | None = 16

    @classmethod
    def dynamicrafter_512(cls) -> "ResamplerConfig":
        """``image_proj_stage_config`` of DynamiCrafter ``inference_512_v1.0.yaml`` (the defaults)."""
        return cls()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ResamplerConfig":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"ResamplerConfig.from_dict: unknown keys {unknown}")
        return cls(**data)

    @property
    def num_output_tokens(self) -> int:
        """``video_length * num_queries`` (``num_queries`` shared by all frames without video_length)."""
        return self.num_queries * (self.video_length or 1)


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class PerceiverAttention(nn.Module):
    """Latent queries attend to ``[image tokens, latents]``."""

    def __init__(self, dim: int, dim_head: int, heads: int):
        super().__init__()
        self.heads = heads
        inner_dim = dim_head * heads
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, dim, bias=False)

    def forward(self, image_tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        image_tokens = self.norm1(image_tokens)
        latents = self.norm2(latents)
        batch, length, _ = latents.shape
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat([image_tokens, latents], dim=1)).chunk(2, dim=-1)
        q, k, v = (t.view(batch, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(batch, length, -1))


class Resampler(nn.Module):
    def __init__(self, config: ResamplerConfig | None = None):
        super().__init__()
        self.config = cfg = config or ResamplerConfig()
        self.latents = nn.Parameter(torch.randn(1, cfg.num_output_tokens, cfg.dim) / cfg.dim ** 0.5)
        self.proj_in = nn.Linear(cfg.embedding_dim, cfg.dim)
        self.proj_out = nn.Linear(cfg.dim, cfg.output_dim)
        self.norm_out = nn.LayerNorm(cfg.output_dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverAttention(cfg.dim, cfg.dim_head, cfg.heads),
                           _feed_forward(cfg.dim, cfg.ff_mult)])
            for _ in range(cfg.depth))

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """``image_embeds`` [B, N, embedding_dim] -> [B, video_length*num_queries, output_dim]."""
        cfg = self.config
        if image_embeds.ndim != 3 or image_embeds.shape[-1] != cfg.embedding_dim:
            raise ValueError(f"image_embeds: expected [B, tokens, {cfg.embedding_dim}], "
                             f"got {tuple(image_embeds.shape)}")
        latents = self.latents.expand(image_embeds.shape[0], -1, -1)
        image_tokens = self.proj_in(image_embeds)
        for attention, feed_forward in self.layers:
            latents = attention(image_tokens, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))

    def save_pretrained(self, folder: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device = "cpu") -> "Resampler":
        folder = Path(folder)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"folder: {folder} has no {name} (expected a Resampler folder)")
        config = ResamplerConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text()))
        return module_from_state_dict(lambda: cls(config), load_file(str(folder / WEIGHTS_NAME)),
                                      device=device)
