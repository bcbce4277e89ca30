"""Residual, temporal-convolution and resampling blocks of the VideoUNet (DynamiCrafter layout).

Feature maps are ``[(B*T), C, H, W]``; blocks that mix frames take ``num_frames`` to unfold them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype (DynamiCrafter ``normalization``)."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


class TemporalConvBlock(nn.Module):
    """Four residual 3-D convolutions along time (kernel 3 over frames), identity at init.

    ``spatial_aware`` makes the kernels ``(3,3,1)`` / ``(3,1,3)`` (DynamiCrafter
    ``tempspatial_aware``); otherwise they are ``(3,1,1)``.
    """

    def __init__(self, channels: int, dropout: float = 0.1, spatial_aware: bool = False):
        super().__init__()
        kernel_h, pad_h = ((3, 3, 1), (1, 1, 0)) if spatial_aware else ((3, 1, 1), (1, 0, 0))
        kernel_w, pad_w = ((3, 1, 3), (1, 0, 1)) if spatial_aware else ((3, 1, 1), (1, 0, 0))
        self.conv1 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(),
                                   nn.Conv3d(channels, channels, kernel_h, padding=pad_h))
        self.conv2 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout),
                                   nn.Conv3d(channels, channels, kernel_w, padding=pad_w))
        self.conv3 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout),
                                   nn.Conv3d(channels, channels, kernel_h, padding=pad_h))
        self.conv4 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout),
                                   nn.Conv3d(channels, channels, kernel_w, padding=pad_w))
        nn.init.zeros_(self.conv4[-1].weight)
        nn.init.zeros_(self.conv4[-1].bias)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """``clip`` [B, C, T, H, W]."""
        return clip + self.conv4(self.conv3(self.conv2(self.conv1(clip))))


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 conv (``use_conv``) or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or channels
        if use_conv:
            self.op = nn.Conv2d(channels, out_channels, 3, stride=2, padding=1)
        else:
            if out_channels != channels:
                raise ValueError("Downsample: pooling cannot change the channel count")
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double H and W (nearest), then an optional 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool, out_channels: int | None = None):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class ResBlock(nn.Module):
    """Timestep-conditioned residual block with an optional temporal conv block after it."""

    def __init__(self, channels: int, emb_channels: int, dropout: float,
                 out_channels: int | None = None, use_scale_shift_norm: bool = False,
                 up: bool = False, down: bool = False, use_temporal_conv: bool = False,
                 tempspatial_aware: bool = False):
        super().__init__()
        self.out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, self.out_channels, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        emb_out = 2 * self.out_channels if use_scale_shift_norm else self.out_channels
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(
            GroupNorm32(self.out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1))
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        if self.out_channels == channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(channels, self.out_channels, 1)
        self.use_temporal_conv = use_temporal_conv
        if use_temporal_conv:
            # "temopral" (sic) is DynamiCrafter's parameter name; kept for checkpoint keys.
            self.temopral_conv = TemporalConvBlock(self.out_channels, dropout=0.1,
                                                   spatial_aware=tempspatial_aware)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, emb: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``x`` [(B*T), C, H, W], ``emb`` [(B*T), emb_channels]."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(self._forward, x, emb, num_frames, use_reentrant=False)
        return self._forward(x, emb, num_frames)

    def _forward(self, x: torch.Tensor, emb: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self.updown:
            h = self.in_layers[:-1](x)
            h = self.in_layers[-1](self.h_upd(h))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        h = self.skip_connection(x) + h
        if self.use_temporal_conv:
            frames, channels, height, width = h.shape
            clip = h.view(frames // num_frames, num_frames, channels, height, width).transpose(1, 2)
            clip = self.temopral_conv(clip)
            h = clip.transpose(1, 2).reshape(frames, channels, height, width)
        return h
