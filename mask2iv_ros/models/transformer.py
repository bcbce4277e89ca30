"""Spatial and temporal transformers of the VideoUNet (DynamiCrafter layout).

Inside the UNet, feature maps travel as ``[(B*T), C, H, W]``: frames are folded into the
batch. The spatial transformer attends over the ``H*W`` positions of each frame (and
cross-attends to that frame's context); the temporal transformer unfolds the frames and
attends, per spatial position, over the ``T`` frames.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import Attention


class BasicTransformerBlock(nn.Module):
    """``x + attn1(norm1 x)``, ``x + attn2(norm2 x, context)``, ``x + ff(norm3 x)``.

    In temporal blocks both attentions are self-attentions over frames (DynamiCrafter's
    ``only_self_att``); ``attn2`` then gets ``context=None``.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float = 0.0,
                 context_dim: int | None = None, relative_position: bool = False,
                 temporal_length: int | None = None, image_cross_attention: bool = False,
                 image_cross_attention_scale_learnable: bool = False, text_context_len: int = 77):
        super().__init__()
        temporal = dict(relative_position=relative_position, temporal_length=temporal_length)
        self.attn1 = Attention(dim, None, heads, dim_head, dropout, **temporal)
        # GEGLU feed-forward: diffusers' FeedForward has DynamiCrafter's keys (net.0.proj, net.2).
        self.ff = FeedForward(dim, dropout=dropout, activation_fn="geglu")
        self.attn2 = Attention(
            dim, context_dim, heads, dim_head, dropout, **temporal,
            image_cross_attention=image_cross_attention,
            image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
            text_context_len=text_context_len)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(self._forward, x, context, causal, use_reentrant=False)
        return self._forward(x, context, causal)

    def _forward(self, x: torch.Tensor, context: torch.Tensor | None, causal: bool) -> torch.Tensor:
        x = self.attn1(self.norm1(x), causal=causal) + x
        x = self.attn2(self.norm2(x), context=context, causal=causal) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Per-frame transformer over ``H*W`` tokens; ``use_linear`` projects with Linear, else 1x1 conv."""

    def __init__(self, in_channels: int, heads: int, dim_head: int, depth: int = 1,
                 dropout: float = 0.0, context_dim: int | None = None, use_linear: bool = False,
                 image_cross_attention: bool = False,
                 image_cross_attention_scale_learnable: bool = False, text_context_len: int = 77):
        super().__init__()
        inner_dim = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6, affine=True)
        self.proj_in = (nn.Linear(in_channels, inner_dim) if use_linear
                        else nn.Conv2d(in_channels, inner_dim, kernel_size=1))
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(
                inner_dim, heads, dim_head, dropout, context_dim,
                image_cross_attention=image_cross_attention,
                image_cross_attention_scale_learnable=image_cross_attention_scale_learnable,
                text_context_len=text_context_len)
            for _ in range(depth)
        ])
        self.proj_out = (nn.Linear(inner_dim, in_channels) if use_linear
                         else nn.Conv2d(inner_dim, in_channels, kernel_size=1))
        # Zero output projection: a freshly built block is the identity (DynamiCrafter init).
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` [(B*T), C, H, W]; ``context`` [(B*T), S, context_dim] or None."""
        frames, channels, height, width = x.shape
        h = self.norm(x)
        if not self.use_linear:
            h = self.proj_in(h)
        h = h.flatten(2).transpose(1, 2)  # [(B*T), H*W, C]
        if self.use_linear:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context=context)
        if self.use_linear:
            h = self.proj_out(h)
        h = h.transpose(1, 2).reshape(frames, -1, height, width)
        if not self.use_linear:
            h = self.proj_out(h)
        return h + x


class TemporalTransformer(nn.Module):
    """Self-attention over the frame axis at every spatial position.

    The GroupNorm is taken over the whole clip ``[B, C, T, H, W]`` (statistics shared by all
    frames), as in DynamiCrafter.
    """

    def __init__(self, in_channels: int, heads: int, dim_head: int, depth: int = 1,
                 dropout: float = 0.0, use_linear: bool = False, causal_attention: bool = False,
                 relative_position: bool = False, temporal_length: int | None = None):
        super().__init__()
        inner_dim = heads * dim_head
        self.use_linear = use_linear
        self.causal_attention = causal_attention
        self.norm = nn.GroupNorm(32, in_channels, eps=1e-6, affine=True)
        self.proj_in = (nn.Linear(in_channels, inner_dim) if use_linear
                        else nn.Conv1d(in_channels, inner_dim, kernel_size=1))
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner_dim, heads, dim_head, dropout, context_dim=None,
                                  relative_position=relative_position,
                                  temporal_length=temporal_length)
            for _ in range(depth)
        ])
        self.proj_out = (nn.Linear(inner_dim, in_channels) if use_linear
                         else nn.Conv1d(inner_dim, in_channels, kernel_size=1))
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``x`` [(B*T), C, H, W] -> same shape."""
        frames, channels, height, width = x.shape
        batch = frames // num_frames
        clip = x.view(batch, num_frames, channels, height, width).transpose(1, 2)  # B C T H W
        h = self.norm(clip)
        # one sequence of T tokens per (batch, position): [(B*H*W), C, T]
        h = h.permute(0, 3, 4, 1, 2).reshape(batch * height * width, channels, num_frames)
        if not self.use_linear:
            h = self.proj_in(h)
        h = h.transpose(1, 2)  # [(B*H*W), T, C]
        if self.use_linear:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, causal=self.causal_attention)
        if self.use_linear:
            h = self.proj_out(h).transpose(1, 2)
        else:
            h = self.proj_out(h.transpose(1, 2))
        # [(B*H*W), C, T] -> [(B*T), C, H, W]
        h = h.reshape(batch, height, width, channels, num_frames).permute(0, 4, 3, 1, 2)
        return x + h.reshape(frames, channels, height, width)
