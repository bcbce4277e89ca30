"""Exponential moving average of the trained parameters (only those with ``requires_grad``)."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class ParameterEMA:
    """Shadow copies of a model's trainable parameters, updated after every optimizer step.

    Kept in float32 on the parameters' device; ``state_dict`` holds plain tensors plus the update
    count so a checkpoint is a safetensors file and resume is exact.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay: expected a float in (0, 1), got {decay!r}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = {name: p.detach().float().clone()
                       for name, p in model.named_parameters() if p.requires_grad}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        params = dict(model.named_parameters())
        shadows = list(self.shadow.values())
        current = [params[name].detach().float() for name in self.shadow]
        # shadow <- decay * shadow + (1 - decay) * param, as one fused multi-tensor op.
        torch._foreach_lerp_(shadows, current, 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's trainable parameters with the EMA values."""
        params = dict(model.named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value.to(params[name].dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, tensors: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = sorted(set(self.shadow) - set(tensors))
        unexpected = sorted(set(tensors) - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA state: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for name, value in tensors.items():
            self.shadow[name].copy_(value)
        self.num_updates = int(num_updates)

    def parameters(self) -> Iterable[torch.Tensor]:
        return self.shadow.values()
