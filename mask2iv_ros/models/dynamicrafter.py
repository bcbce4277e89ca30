"""Loading DynamiCrafter checkpoints (``Doubiiu/DynamiCrafter``) from a local file.

A DynamiCrafter checkpoint is one flat state dict whose key prefixes name the components:

====================== ============================================ ==========================
prefix                 component                                    here
====================== ============================================ ==========================
model.diffusion_model. UNet (openaimodel3d.UNetModel)               :class:`VideoUNet`, keys
                                                                    identical after the prefix
first_stage_model.     SD-style AutoencoderKL (ch 128, z 4)          diffusers ``AutoencoderKL``
                                                                    via diffusers' own
                                                                    ``convert_ldm_vae_checkpoint``
image_proj_model.      Resampler (CLIP image tokens -> 16/frame)    :class:`Resampler`, keys
                                                                    identical after the prefix
cond_stage_model.      OpenCLIP ViT-H-14 text encoder               not converted
embedder.              OpenCLIP ViT-H-14 image encoder              not converted
====================== ============================================ ==========================

The OpenCLIP encoders are returned as raw state dicts only (OpenCLIP's layout differs from
transformers' CLIP; converting them is not done here). Mask2IV's extra conditioning channels
(paper: "extra convolution channels") are added by widening ``input_blocks.0.0.weight`` with
zero-initialised input channels after DynamiCrafter's 8 (noise 4, image latent 4), so the
widened UNet computes exactly DynamiCrafter's function until those weights are trained.

Checkpoints are read with ``torch.load(weights_only=True)`` (``.ckpt``/``.pt``/``.pth``; no
arbitrary unpickling) or ``safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .resampler import Resampler, ResamplerConfig
from .unet import VideoUNet
from .unet_config import UNetConfig

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
IMAGE_PROJ_PREFIX = "image_proj_model."
TEXT_ENCODER_PREFIX = "cond_stage_model."
IMAGE_ENCODER_PREFIX = "embedder."
COMPONENT_PREFIXES = {
    "unet": UNET_PREFIX,
    "vae": VAE_PREFIX,
    "image_proj_model": IMAGE_PROJ_PREFIX,
    "text_encoder": TEXT_ENCODER_PREFIX,
    "image_encoder": IMAGE_ENCODER_PREFIX,
}
INPUT_CONV_WEIGHT = "input_blocks.0.0.weight"
DYNAMICRAFTER_IN_CHANNELS = 8

# diffusers AutoencoderKL config equivalent to DynamiCrafter's first_stage_config
# (ch 128, ch_mult 1,2,4,4, 2 res blocks, z 4, no attention besides the mid block).
DYNAMICRAFTER_VAE_CONFIG = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state dict of a local ``.safetensors`` or ``.ckpt``/``.pt``/``.pth`` file.

    Lightning checkpoints keep it under ``"state_dict"``; that level is unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    if path.suffix not in (".ckpt", ".pt", ".pth"):
        raise ValueError(f"path: expected a .safetensors, .ckpt, .pt or .pth file, got {path.name}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) pickles cannot be memory-mapped
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ValueError(f"path: {path.name} is not a weights-only torch checkpoint ({error}); "
                             "convert it to safetensors in a trusted environment") from error
    if isinstance(data, Mapping) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"path: {path.name} does not hold a state dict of tensors")
    return dict(data)


def split_components(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``{component: state dict without its prefix}`` for :data:`COMPONENT_PREFIXES`;
    keys matching no prefix go to ``"other"``."""
    parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in (*COMPONENT_PREFIXES, "other")}
    for key, value in state_dict.items():
        for name, prefix in COMPONENT_PREFIXES.items():
            if key.startswith(prefix):
                parts[name][key[len(prefix):]] = value
                break
        else:
            parts["other"][key] = value
    return parts


def expand_input_channels(unet_state_dict: Mapping[str, torch.Tensor],
                          in_channels: int) -> dict[str, torch.Tensor]:
    """Widen the input conv to ``in_channels``; channels past the checkpoint's are zero."""
    state = dict(unet_state_dict)
    if INPUT_CONV_WEIGHT not in state:
        raise KeyError(f"state dict has no {INPUT_CONV_WEIGHT!r}: not a DynamiCrafter UNet")
    weight = state[INPUT_CONV_WEIGHT]
    have = weight.shape[1]
    if in_channels < have:
        raise ValueError(f"config.in_channels: {in_channels} is fewer than the checkpoint's {have} "
                         "input channels")
    if in_channels > have:
        extra = weight.new_zeros(weight.shape[0], in_channels - have, *weight.shape[2:])
        state[INPUT_CONV_WEIGHT] = torch.cat([weight, extra], dim=1)
    return state


def _load_into(module_cls, config, state_dict, device, dtype):
    state_dict = {k: v.to(device=device, dtype=dtype) for k, v in state_dict.items()}
    with torch.device("meta"):  # no throw-away random init of ~1.4B parameters
        model = module_cls(config)
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.eval()


def load_dynamicrafter_unet(path: str | Path | Mapping[str, torch.Tensor],
                            config: UNetConfig | None = None, device: str | torch.device = "cpu",
                            dtype: torch.dtype = torch.float32) -> VideoUNet:
    """A :class:`VideoUNet` with DynamiCrafter's UNet weights (strict load).

    ``path`` is a checkpoint file (or an already read full state dict). ``config`` defaults to
    :meth:`UNetConfig.dynamicrafter_512`; with ``config.in_channels > 8`` the extra input
    channels start at zero.
    """
    config = config or UNetConfig.dynamicrafter_512()
    state = path if isinstance(path, Mapping) else read_checkpoint(path)
    unet_state = split_components(state)["unet"]
    if not unet_state:
        raise ValueError(f"path: no {UNET_PREFIX!r} keys in the checkpoint")
    unet_state = expand_input_channels(unet_state, config.in_channels)
    return _load_into(VideoUNet, config, unet_state, device, dtype)


def load_dynamicrafter_resampler(state_dict: Mapping[str, torch.Tensor],
                                 config: ResamplerConfig | None = None,
                                 device: str | torch.device = "cpu",
                                 dtype: torch.dtype = torch.float32) -> Resampler:
    """The ``image_proj_model`` of a full DynamiCrafter state dict as a :class:`Resampler`."""
    resampler_state = split_components(state_dict)["image_proj_model"]
    if not resampler_state:
        raise ValueError(f"state_dict: no {IMAGE_PROJ_PREFIX!r} keys")
    return _load_into(Resampler, config or ResamplerConfig.dynamicrafter_512(), resampler_state,
                      device, dtype)


def convert_vae_state_dict(vae_state_dict: Mapping[str, torch.Tensor],
                           config: Mapping | None = None) -> dict[str, torch.Tensor]:
    """DynamiCrafter ``first_stage_model`` weights (prefix stripped) -> diffusers AutoencoderKL
    keys, using diffusers' ``convert_ldm_vae_checkpoint``. ``config`` is the diffusers
    AutoencoderKL config (default :data:`DYNAMICRAFTER_VAE_CONFIG`)."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    prefixed = {VAE_PREFIX + k: v for k, v in vae_state_dict.items()}
    return convert_ldm_vae_checkpoint(prefixed, dict(config or DYNAMICRAFTER_VAE_CONFIG))
