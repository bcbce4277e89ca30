"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features") from local weights.

The network is built here (no torchvision, nothing downloaded): an AlexNet or VGG16 feature
stack whose parameter names follow torchvision's ``features.<index>.*`` layout, plus the five
LPIPS linear heads named as in the reference ``lpips`` package (``lin<k>.model.1.weight``, v0.1).
Users point it at two local files they already have:

- ``backbone_weights``: torchvision ImageNet weights (``alexnet-owt-7be5be79.pth`` or
  ``vgg16-397923af.pth``, or a safetensors conversion); keys other than ``features.*`` are ignored.
- ``linear_weights``: the LPIPS heads (``lpips/weights/v0.1/alex.pth`` / ``vgg.pth``, or safetensors).

``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)`` (no arbitrary unpickling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
import torch.nn as nn

from .metrics_video import VideoLike, video_to_unit_float

# (out_channels, kernel, stride, padding) per conv, "M" = max-pool; indices match torchvision.
_ALEXNET_FEATURES = [(64, 11, 4, 2), "R", "M3", (192, 5, 1, 2), "R", "M3", (384, 3, 1, 1), "R",
                     (256, 3, 1, 1), "R", (256, 3, 1, 1), "R"]
_VGG16_FEATURES = [(64, 3, 1, 1), "R", (64, 3, 1, 1), "R", "M2",
                   (128, 3, 1, 1), "R", (128, 3, 1, 1), "R", "M2",
                   (256, 3, 1, 1), "R", (256, 3, 1, 1), "R", (256, 3, 1, 1), "R", "M2",
                   (512, 3, 1, 1), "R", (512, 3, 1, 1), "R", (512, 3, 1, 1), "R", "M2",
                   (512, 3, 1, 1), "R", (512, 3, 1, 1), "R", (512, 3, 1, 1), "R"]
# Index (exclusive end) of the feature stack after which LPIPS taps an activation.
_TAPS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
_TAP_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# LPIPS input normalisation (ScalingLayer) for inputs in [-1, 1].
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _build_features(spec) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_channels = 3
    for item in spec:
        if item == "R":
            layers.append(nn.ReLU(inplace=False))
        elif item == "M3":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        elif item == "M2":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out_channels, kernel, stride, padding = item
            layers.append(nn.Conv2d(in_channels, out_channels, kernel, stride, padding))
            in_channels = out_channels
    return nn.Sequential(*layers)


class _LinearHead(nn.Module):
    """``lin<k>``: dropout then a bias-free 1x1 conv to one channel (keys ``model.1.weight``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))


def load_state_dict_file(path: Union[str, Path], name: str) -> dict[str, torch.Tensor]:
    """Read a safetensors or torch (``weights_only=True``) state dict from a local file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{name}: expected a local .safetensors/.pth file, got {str(path)!r} (not a file)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{name}: {str(path)!r} does not hold a state dict")
    return state


class LPIPS(nn.Module):
    """LPIPS distance network. ``net`` is ``"alex"`` (the common choice) or ``"vgg"``.

    Built with random weights; use :meth:`from_local_weights` for meaningful numbers.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in _TAPS:
            raise ValueError(f"net: expected 'alex' or 'vgg', got {net!r}")
        self.net_name = net
        self.features = _build_features(_ALEXNET_FEATURES if net == "alex" else _VGG16_FEATURES)
        self.taps = _TAPS[net]
        for k, channels in enumerate(_TAP_CHANNELS[net]):
            self.add_module(f"lin{k}", _LinearHead(channels))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    @classmethod
    def from_local_weights(cls, backbone_weights: Union[str, Path], linear_weights: Union[str, Path],
                           net: str = "alex") -> "LPIPS":
        model = cls(net)
        backbone = load_state_dict_file(backbone_weights, "backbone_weights")
        features = {k[len("features."):]: v for k, v in backbone.items() if k.startswith("features.")}
        missing, unexpected = model.features.load_state_dict(features, strict=False)
        if missing or unexpected:
            raise ValueError(f"backbone_weights: not torchvision {net} 'features.*' weights "
                             f"(missing {missing[:4]}, unexpected {unexpected[:4]})")
        heads = load_state_dict_file(linear_weights, "linear_weights")
        head_state = {k: v for k, v in heads.items() if k.startswith("lin")}
        expected = {f"lin{k}.model.1.weight" for k in range(5)}
        if set(head_state) != expected:
            raise ValueError(f"linear_weights: expected keys {sorted(expected)}, got {sorted(head_state)[:6]}")
        model.load_state_dict(head_state, strict=False)
        return model

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs, start = [], 0
        for end in self.taps:
            x = self.features[start:end](x)
            outputs.append(x)
            start = end
        return outputs

    def forward(self, image0: torch.Tensor, image1: torch.Tensor) -> torch.Tensor:
        """Distance per pair for images ``[N, 3, H, W]`` in ``[-1, 1]``; returns ``[N]``."""
        x0 = (image0 - self.shift) / self.scale
        x1 = (image1 - self.shift) / self.scale
        total = image0.new_zeros(image0.shape[0])
        for k, (f0, f1) in enumerate(zip(self._taps(x0), self._taps(x1))):
            f0 = f0 / (f0.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            f1 = f1 / (f1.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            head = getattr(self, f"lin{k}")
            total = total + head.model((f0 - f1).pow(2)).mean(dim=(1, 2, 3))
        return total


@torch.no_grad()
def lpips_video(model: LPIPS, generated: VideoLike, reference: VideoLike, batch_size: int = 16) -> float:
    """Mean per-frame LPIPS of a video pair (uint8 ``[T, H, W, 3]``)."""
    gen = video_to_unit_float(generated, "generated")
    ref = video_to_unit_float(reference, "reference")
    if gen.shape != ref.shape:
        raise ValueError(f"generated: expected the reference's shape, got {tuple(gen.shape)} vs {tuple(ref.shape)}")
    param = next(model.parameters())
    values = []
    for start in range(0, gen.shape[0], batch_size):
        g = (gen[start:start + batch_size] * 2 - 1).to(param.device, param.dtype)
        r = (ref[start:start + batch_size] * 2 - 1).to(param.device, param.dtype)
        values.append(model(g, r))
    return float(torch.cat(values).mean())
