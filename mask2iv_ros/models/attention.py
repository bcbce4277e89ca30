"""Multi-head attention with DynamiCrafter's parameter layout (``lvdm/modules/attention.py``).

One module covers the three uses in the UNet:

* spatial self-attention (``attn1`` of a spatial transformer block),
* text (+ per-frame image) cross-attention (``attn2``): the context is split after
  ``text_context_len`` tokens; text and image tokens are attended separately and the image
  result is added with weight ``image_cross_attention_scale`` (times ``tanh(alpha) + 1`` when
  learnable), exactly as DynamiCrafter does,
* temporal self-attention, optionally with relative position embeddings and a causal mask.

Attention itself runs through ``torch.nn.functional.scaled_dot_product_attention`` (flash /
memory-efficient kernels on CUDA). Only relative-position attention is computed explicitly: its
value term needs the attention probabilities, which SDPA does not expose; it only ever runs over
the (short) frame axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RelativePosition(nn.Module):
    """Learned embedding per clipped relative distance ``key_index - query_index``."""

    def __init__(self, num_units: int, max_relative_position: int):
        super().__init__()
        self.max_relative_position = max_relative_position
        self.embeddings_table = nn.Parameter(torch.empty(max_relative_position * 2 + 1, num_units))
        nn.init.xavier_uniform_(self.embeddings_table)

    def forward(self, length_q: int, length_k: int) -> torch.Tensor:
        device = self.embeddings_table.device
        distance = torch.arange(length_k, device=device)[None, :] - torch.arange(length_q, device=device)[:, None]
        distance = distance.clamp(-self.max_relative_position, self.max_relative_position)
        return self.embeddings_table[distance + self.max_relative_position]  # [Lq, Lk, units]


def _split_heads(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, _ = tensor.shape
    return tensor.view(batch, length, heads, -1).transpose(1, 2)  # [B, heads, L, d]


def _merge_heads(tensor: torch.Tensor) -> torch.Tensor:
    batch, heads, length, dim_head = tensor.shape
    return tensor.transpose(1, 2).reshape(batch, length, heads * dim_head)


class Attention(nn.Module):
    """DynamiCrafter ``CrossAttention`` (same submodule names, so state dicts load unchanged)."""

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        relative_position: bool = False,
        temporal_length: int | None = None,
        image_cross_attention: bool = False,
        image_cross_attention_scale: float = 1.0,
        image_cross_attention_scale_learnable: bool = False,
        text_context_len: int = 77,
    ):
        super().__init__()
        inner_dim = dim_head * heads
        context_dim = query_dim if context_dim is None else context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head ** -0.5
        self.text_context_len = text_context_len
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))

        self.relative_position = relative_position
        if relative_position:
            if temporal_length is None:
                raise ValueError("Attention: relative_position=True needs temporal_length")
            self.relative_position_k = RelativePosition(dim_head, temporal_length)
            self.relative_position_v = RelativePosition(dim_head, temporal_length)

        self.image_cross_attention = image_cross_attention
        self.image_cross_attention_scale = image_cross_attention_scale
        self.image_cross_attention_scale_learnable = image_cross_attention_scale_learnable
        if image_cross_attention:
            self.to_k_ip = nn.Linear(context_dim, inner_dim, bias=False)
            self.to_v_ip = nn.Linear(context_dim, inner_dim, bias=False)
            if image_cross_attention_scale_learnable:
                self.alpha = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                causal: bool = False) -> torch.Tensor:
        """``x`` [B, L, query_dim]; ``context`` [B, S, context_dim] or None (self-attention)."""
        q = _split_heads(self.to_q(x), self.heads)
        image_context = None
        if context is None:
            context = x
        else:
            if self.image_cross_attention:
                image_context = context[:, self.text_context_len:]
            context = context[:, : self.text_context_len]
        k = _split_heads(self.to_k(context), self.heads)
        v = _split_heads(self.to_v(context), self.heads)

        if self.relative_position:
            out = self._relative_position_attention(q, k, v, causal)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = _merge_heads(out)

        if image_context is not None:
            k_ip = _split_heads(self.to_k_ip(image_context), self.heads)
            v_ip = _split_heads(self.to_v_ip(image_context), self.heads)
            out_ip = _merge_heads(F.scaled_dot_product_attention(q, k_ip, v_ip))
            weight = self.image_cross_attention_scale
            if self.image_cross_attention_scale_learnable:
                weight = weight * (torch.tanh(self.alpha) + 1)
            out = out + weight * out_ip
        return self.to_out(out)

    def _relative_position_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                     causal: bool) -> torch.Tensor:
        len_q, len_k = q.shape[2], k.shape[2]
        rel_k = self.relative_position_k(len_q, len_k).to(q.dtype)
        rel_v = self.relative_position_v(len_q, len_k).to(v.dtype)
        scores = (q @ k.transpose(-1, -2) + torch.einsum("bhqd,qkd->bhqk", q, rel_k)) * self.scale
        if causal:
            keep = torch.ones(len_q, len_k, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        probs = scores.softmax(dim=-1)
        return probs @ v + torch.einsum("bhqk,qkd->bhqd", probs, rel_v)
