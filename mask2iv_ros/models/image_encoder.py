"""Pluggable CLIP image embedders for DynamiCrafter's image cross-attention branch.

DynamiCrafter (``FrozenOpenCLIPImageEmbedderV2``) embeds the first frame with the OpenCLIP
ViT-H-14 visual tower and keeps *all* tokens of the last transformer layer (class token + 256
patches = 257 tokens of width 1280, no ``ln_post``, no projection); the Resampler
(``image_proj_model``) turns them into the UNet's image context tokens. Every encoder here maps
images ``[B, 3, H, W]`` in [-1, 1] to ``[B, num_tokens, embed_dim]`` the same way:

1. resize to ``image_size`` x ``image_size`` (bicubic, antialiased, ``align_corners=True``, as
   DynamiCrafter's kornia resize; the aspect ratio is not kept, as there),
2. map to [0, 1] and normalise with the CLIP mean/std,
3. run the vision transformer and return its last hidden states.

All of it is torch, so it batches and runs on the images' device. Implementations:

- :class:`CLIPVisionEncoder`: ``transformers`` ``CLIPVisionModel`` from a local folder (its
  ``last_hidden_state`` is the encoder output before ``post_layernorm``, i.e. exactly the
  OpenCLIP tokens above); :meth:`CLIPVisionEncoder.tiny` is a random one for tests.
  DynamiCrafter's ``embedder.*`` weights convert to it
  (:func:`mask2iv_ros.models.dynamicrafter.load_dynamicrafter_image_encoder`).
- :class:`OpenCLIPImageEncoder`: the ``open_clip`` visual tower itself, only when ``open_clip``
  is installed.

A component folder holds ``config.json`` (``{"type": ...}``) and the weights under
``weights/`` (safetensors).
"""

from __future__ import annotations

import abc
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_DIR = "weights"
# OpenAI CLIP normalisation, hard-coded in DynamiCrafter's FrozenOpenCLIPImageEmbedderV2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ImageEncoder(nn.Module, abc.ABC):
    """Images ``[B, 3, H, W]`` in [-1, 1] -> tokens ``[B, num_tokens, embed_dim]``."""

    type_name: ClassVar[str]
    embed_dim: int
    num_tokens: int
    image_size: int

    def __init__(self) -> None:
        super().__init__()
        # not persistent: constants, and checkpoints then hold only the network's weights
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images of any size -> CLIP-normalised ``[B, 3, image_size, image_size]`` (fp32)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 \
                or not images.is_floating_point():
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images: expected a float tensor [B, 3, H, W] in [-1, 1], got {got}")
        size = (self.image_size, self.image_size)
        pixels = images.float()
        if tuple(pixels.shape[-2:]) != size:
            pixels = F.interpolate(pixels, size, mode="bicubic", align_corners=True, antialias=True)
        pixels = (pixels + 1.0) / 2.0
        return (pixels - self.mean.float()) / self.std.float()  # fp32 even after .to(bf16)

    @abc.abstractmethod
    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixels -> last-layer tokens ``[B, num_tokens, embed_dim]``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_pixels(self.preprocess(images))

    def unconditional(self, batch_size: int = 1) -> torch.Tensor:
        """Embedding of the all-zero image (mid grey), DynamiCrafter's unconditional image.

        Its sampler embeds ``zeros_like(img)`` and its training zeroes the dropped images; a
        zero image stays zero under the resize, so it is built at ``image_size`` directly.
        """
        zeros = torch.zeros(batch_size, 3, self.image_size, self.image_size, device=self.device)
        return self(zeros)

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``{"type": type_name, ...}``."""

    @abc.abstractmethod
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``config.json`` and the weights (safetensors) into ``folder``."""


class CLIPVisionEncoder(ImageEncoder):
    """``transformers`` ``CLIPVisionModel``; tokens = ``last_hidden_state`` (all patches + class)."""

    type_name = "clip_vision"

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        config = model.config
        self.model = model.eval().requires_grad_(False)
        self.embed_dim = int(config.hidden_size)
        self.image_size = int(config.image_size)
        self.num_tokens = (self.image_size // int(config.patch_size)) ** 2 + 1

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "CLIPVisionEncoder":
        """A local folder holding a ``CLIPVisionModel`` or ``CLIPModel`` (safetensors)."""
        from transformers import CLIPVisionModel

        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"image encoder path: expected a local folder, got {path!r}")
        return cls(CLIPVisionModel.from_pretrained(path, local_files_only=True, use_safetensors=True))

    @classmethod
    def from_config(cls, config: Any) -> "CLIPVisionEncoder":
        """A randomly initialised model of a ``CLIPVisionConfig`` (e.g. to load weights into)."""
        from transformers import CLIPVisionModel

        return cls(CLIPVisionModel(config))

    @classmethod
    def tiny(cls, hidden_size: int = 32, image_size: int = 32, patch_size: int = 8,
             seed: int = 0) -> "CLIPVisionEncoder":
        """A random 2-layer CLIP vision model (17 tokens at the defaults) for tests and demos."""
        from transformers import CLIPVisionConfig

        config = CLIPVisionConfig(hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                                  num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
                                  patch_size=patch_size, hidden_act="gelu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls.from_config(config)

    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        return self.model(pixel_values=pixel_values.to(dtype)).last_hidden_state

    def to_config(self) -> dict[str, Any]:
        return {"type": self.type_name}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_config(), indent=2))
        self.model.save_pretrained(folder / WEIGHTS_DIR, safe_serialization=True)


class OpenCLIPImageEncoder(ImageEncoder):
    """The ``open_clip`` visual tower run as DynamiCrafter's ``encode_with_vision_transformer``.

    Needs the optional ``open_clip`` package; ``path`` is a local OpenCLIP weights file.
    """

    type_name = "open_clip"
    WEIGHTS_FILE = "open_clip_visual.safetensors"

    def __init__(self, arch: str = "ViT-H-14", path: str | os.PathLike | None = None) -> None:
        super().__init__()
        from .text_encoder import create_open_clip_model

        model = create_open_clip_model(arch, path, "OpenCLIPImageEncoder (or use CLIPVisionEncoder)")
        import open_clip  # importable: create_open_clip_model just did
        self.visual = model.visual.eval().requires_grad_(False)
        if getattr(self.visual, "input_patchnorm", False):
            raise ValueError(f"arch: {arch} uses input patchnorm, which is not supported")
        from packaging.version import Version

        # open_clip < 2.26 transformers take [tokens, batch, width] (DynamiCrafter's permutes);
        # from 2.26 on they take batch-first input and transpose internally if at all
        self._sequence_first = Version(open_clip.__version__) < Version("2.26.0")
        self.arch = arch
        self.embed_dim = int(self.visual.conv1.out_channels)
        self.image_size = int(self.visual.image_size[0] if isinstance(self.visual.image_size, tuple)
                              else self.visual.image_size)
        self.num_tokens = int(self.visual.positional_embedding.shape[0])

    def encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        x = visual.conv1(pixel_values.to(visual.conv1.weight.dtype))   # [B, width, grid, grid]
        x = x.flatten(2).transpose(1, 2)                                 # [B, grid**2, width]
        cls_token = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls_token, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.ln_pre(visual.patch_dropout(x))
        if self._sequence_first:
            return visual.transformer(x.transpose(0, 1)).transpose(0, 1)
        return visual.transformer(x)  # last layer's tokens: no ln_post, no proj

    def to_config(self) -> dict[str, Any]:
        return {"type": self.type_name, "arch": self.arch}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        (folder / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_config(), indent=2))
        state = {k: v.detach().contiguous().cpu() for k, v in self.visual.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_DIR / self.WEIGHTS_FILE))

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any]) -> "OpenCLIPImageEncoder":
        from safetensors.torch import load_file

        encoder = cls(arch=config["arch"])
        encoder.visual.load_state_dict(load_file(str(folder / WEIGHTS_DIR / cls.WEIGHTS_FILE)))
        return encoder


def load_image_encoder(folder: str | os.PathLike) -> ImageEncoder:
    """Load an image encoder component folder written by ``save_pretrained``."""
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"folder: {folder} has no {CONFIG_NAME} (expected an image encoder)")
    config = json.loads((folder / CONFIG_NAME).read_text())
    kind = config.get("type")
    if kind == CLIPVisionEncoder.type_name:
        return CLIPVisionEncoder.from_path(folder / WEIGHTS_DIR)
    if kind == OpenCLIPImageEncoder.type_name:
        return OpenCLIPImageEncoder.from_folder(folder, config)
    raise ValueError(f"{folder / CONFIG_NAME}: unknown image encoder type {kind!r}; expected "
                     f"'{CLIPVisionEncoder.type_name}' or '{OpenCLIPImageEncoder.type_name}'")
