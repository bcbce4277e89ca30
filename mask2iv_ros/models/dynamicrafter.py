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
embedder.model.visual. OpenCLIP ViT-H-14 image encoder              transformers
                                                                    ``CLIPVisionModel``
                                                                    (:func:`convert_openclip_
                                                                    vision_state_dict`)
====================== ============================================ ==========================

The OpenCLIP text encoder is returned as a raw state dict only. The image encoder's visual
tower converts key by key to ``transformers``' CLIPVisionModel, whose ``last_hidden_state`` is
what DynamiCrafter's ``FrozenOpenCLIPImageEmbedderV2`` returns (all tokens of the last block,
before ``ln_post``). Mask2IV's extra conditioning channels
(paper: "extra convolution channels") are added as the released Mask2IV does it: the pretrained
``input_blocks.0.0.weight[:, :8]`` (noise 4, first-frame latent 4) is copied and input channels
8..11 start at zero, so the widened UNet computes exactly DynamiCrafter's function until those
weights are trained. With the released concat order (:mod:`.layout`) stage 2's first-frame RGB
latent lands on DynamiCrafter's pretrained image channels 4..7 and the trajectory on 8..11;
stage 1 puts the mask slots on 4..7 and the RGB latent on 8..11.

Checkpoints are read with ``torch.load(weights_only=True)`` (``.ckpt``/``.pt``/``.pth``; no
arbitrary unpickling) or ``safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from .image_encoder import CLIPVisionEncoder
from .resampler import Resampler, ResamplerConfig
from .unet import VideoUNet
from .unet_config import UNetConfig
from .weights import module_from_state_dict

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
    """Widen the input conv to ``in_channels``: the checkpoint's channels are copied in place
    (``[:, :8]`` for DynamiCrafter), those past them are zero."""
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
    # no throw-away random init of ~1.4B parameters; weights copied once into fresh storage
    return module_from_state_dict(lambda: module_cls(config), state_dict, device=device, dtype=dtype)


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


# ---------------------------------------------------------------------- image encoder (embedder)
OPENCLIP_VISUAL_PREFIX = "model.visual."   # inside ``embedder.``: FrozenOpenCLIPImageEmbedderV2.model
# OpenCLIP's ViT-H-14 (DynamiCrafter's embedder) has 16 heads of width 80 (open_clip's default
# is 64); head counts are not visible in the weights' shapes.
VIT_H_14_HEAD_WIDTH = 80
# OpenCLIP visual keys that have no CLIPVisionModel counterpart: the pooled-output projection.
_OPENCLIP_DROPPED = {"proj"}
_OPENCLIP_RENAMES = {
    "conv1.weight": "embeddings.patch_embedding.weight",
    "class_embedding": "embeddings.class_embedding",
    "positional_embedding": "embeddings.position_embedding.weight",
    "ln_pre.weight": "pre_layrnorm.weight",
    "ln_pre.bias": "pre_layrnorm.bias",
    "ln_post.weight": "post_layernorm.weight",
    "ln_post.bias": "post_layernorm.bias",
}
_OPENCLIP_BLOCK_RENAMES = {
    "ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}


def convert_openclip_vision_state_dict(visual_state: Mapping[str, torch.Tensor]
                                       ) -> dict[str, torch.Tensor]:
    """OpenCLIP ``VisionTransformer`` weights (keys after ``visual.``) -> the keys of
    ``transformers`` ``CLIPVisionModel``'s vision transformer (``embeddings.*``, ``encoder.*``,
    ``pre_layrnorm.*``, ``post_layernorm.*``).

    The fused attention input projection (``in_proj_weight``/``in_proj_bias``, rows q, k, v as
    in ``nn.MultiheadAttention``) is split into ``q_proj``/``k_proj``/``v_proj``; ``proj`` (the
    pooled-embedding projection) is dropped. Unknown keys (e.g. layer scale, attention pooling,
    input patchnorm of other OpenCLIP variants) raise, rather than being silently lost.
    """
    converted: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in visual_state.items():
        if key in _OPENCLIP_DROPPED:
            continue
        if key in _OPENCLIP_RENAMES:
            converted[_OPENCLIP_RENAMES[key]] = value
            continue
        parts = key.split(".")
        if parts[:2] != ["transformer", "resblocks"] or len(parts) < 5:
            unknown.append(key)
            continue
        layer, name, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
        prefix = f"encoder.layers.{layer}."
        if name == "attn" and kind in ("in_proj_weight", "in_proj_bias"):
            suffix = "weight" if kind == "in_proj_weight" else "bias"
            for projection, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                converted[f"{prefix}self_attn.{projection}.{suffix}"] = chunk
        elif name in _OPENCLIP_BLOCK_RENAMES:
            converted[f"{prefix}{_OPENCLIP_BLOCK_RENAMES[name]}.{kind}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"visual_state: OpenCLIP keys with no CLIPVisionModel counterpart: "
                         f"{sorted(unknown)[:8]}{' ...' if len(unknown) > 8 else ''}")
    return converted


def openclip_vision_config(visual_state: Mapping[str, torch.Tensor],
                           head_width: int = VIT_H_14_HEAD_WIDTH):
    """The ``CLIPVisionConfig`` of OpenCLIP visual weights: sizes read from the shapes, heads
    from ``head_width``, OpenCLIP's exact GELU and LayerNorm eps 1e-5."""
    from transformers import CLIPVisionConfig

    required = ("conv1.weight", "positional_embedding", "class_embedding")
    missing = [k for k in required if k not in visual_state]
    if missing:
        raise ValueError(f"visual_state: missing OpenCLIP visual keys {missing}")
    hidden = int(visual_state["class_embedding"].numel())
    patch = int(visual_state["conv1.weight"].shape[-1])
    grid = int(round((visual_state["positional_embedding"].shape[0] - 1) ** 0.5))
    layers = {k.split(".")[2] for k in visual_state if k.startswith("transformer.resblocks.")}
    intermediate = int(visual_state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
    if hidden % head_width:
        raise ValueError(f"head_width: {head_width} does not divide the width {hidden}")
    return CLIPVisionConfig(
        hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=len(layers), num_attention_heads=hidden // head_width,
        image_size=grid * patch, patch_size=patch, hidden_act="gelu", layer_norm_eps=1e-5)


def load_dynamicrafter_image_encoder(state_dict: Mapping[str, torch.Tensor],
                                     head_width: int = VIT_H_14_HEAD_WIDTH,
                                     device: str | torch.device = "cpu",
                                     dtype: torch.dtype = torch.float32) -> CLIPVisionEncoder:
    """DynamiCrafter's ``embedder`` (OpenCLIP ViT-H-14 visual tower) of a full checkpoint state
    dict as a :class:`CLIPVisionEncoder` (257 tokens of width 1280 for 224 px input).

    The text-side leftovers of the OpenCLIP model in ``embedder.model.*`` are ignored.
    """
    embedder = split_components(state_dict)["image_encoder"]
    visual = {k[len(OPENCLIP_VISUAL_PREFIX):]: v for k, v in embedder.items()
              if k.startswith(OPENCLIP_VISUAL_PREFIX)}
    if not visual:
        raise ValueError(f"state_dict: no {IMAGE_ENCODER_PREFIX + OPENCLIP_VISUAL_PREFIX!r} keys")
    converted = convert_openclip_vision_state_dict(visual)
    encoder = CLIPVisionEncoder.from_config(openclip_vision_config(visual, head_width))
    # transformers < 5 nests the modules under ``vision_model``; 5.x has them at the top
    target = getattr(encoder.model, "vision_model", encoder.model)
    own = target.state_dict()
    converted.update({k: v for k, v in own.items() if k.endswith("position_ids")})  # a buffer
    target.load_state_dict(converted, strict=True)
    return encoder.to(device=device, dtype=dtype).eval()
