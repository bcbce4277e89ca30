"""The released Mask2IV checkpoints (``first_stage/*.ckpt``, ``second_stage/*.ckpt``) as project modules.

Each released stage is a Lightning checkpoint of DynamiCrafter's ``LatentVisualDiffusion``
(``{"state_dict": {...}}``) whose key prefixes name its parts (see :mod:`.dynamicrafter`):

========================= =================================== ====================================
prefix                    part                                here
========================= =================================== ====================================
model.diffusion_model.    UNet, in_channels 12                :class:`VideoUNet` (strict; channel
                                                              order fed as the release has it)
first_stage_model.        SD AutoencoderKL                    diffusers ``AutoencoderKL``
cond_stage_model.model.   OpenCLIP ViT-H-14 text tower        transformers ``CLIPTextModel``
                                                              (:mod:`.openclip_text`)
embedder.model.visual.    OpenCLIP ViT-H-14 image tower       transformers ``CLIPVisionModel``
image_proj_model.         Resampler (trained with each stage) :class:`Resampler`
betas, alphas_cumprod ... the noise schedule (buffers)        checked against the project's
scale_arr                 dynamic x0 rescale (base_scale)     DDIM scheduler / rescale schedule
========================= =================================== ====================================

The released stage-2 model also has modules whose code is not public (UNet ``extra_mask_attn``
tensors, a DINOv2 object embedder and its projection): the project cannot place them. Nothing is
dropped silently: :func:`account_keys` sorts every key of a checkpoint into placed / unused by
design (with the reason) / unplaced, and loading refuses unplaced keys unless told otherwise.

Files are read lazily: ``.ckpt`` with ``torch.load(weights_only=True, mmap=True)`` (no arbitrary
unpickling, tensors paged in on use), ``.safetensors`` with ``safe_open`` (one tensor at a time).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from . import dynamicrafter
from .unet import CONFIG_NAME, WEIGHTS_NAME, VideoUNet
from .unet_config import UNetConfig
from .weights import module_from_state_dict

logger = logging.getLogger(__name__)

STAGES = ("trajectory", "video")
MASK2IV_IN_CHANNELS = 12
# default_fs of the release's UNet configs (config_bdv2_first.yaml: 1, config_hoi4d_second.yaml:
# 10); only used when no fs is passed, the release's inference passes fs = 15 (RELEASE_FS).
_RELEASE_DEFAULT_FS = {"trajectory": 1, "video": 10}

# How the release samples (scripts/run_bdv2_2stage.sh, inference_*_2stage.py) and trains
# (configs/training_512_v1.0: uncond_prob 0.00, use_dynamic_rescale with base_scale 0.7).
# stage2_masks: the decoded stage-1 video is binarised per channel, where(sample >= 0, 1, -1),
# before stage 2 encodes it (inference_bdv2_2stage.py / inference_hoi4d_2stage.py)
RELEASE_SAMPLING = {"num_inference_steps": 50, "guidance_scale": 1.0, "eta": 1.0,
                    "guidance_rescale": 0.7, "dynamic_rescale": 0.7, "scheduler": "SafeDDIMScheduler",
                    "stage2_masks": "channel_sign"}
RELEASE_CONDITION_DROPOUT = 0.0
RELEASE_RESOLUTION = (320, 512)
RELEASE_NUM_FRAMES = 16
# The inference scripts build fs_list = [1]*n and fps_list = [15]*n and, with --fps_cond on (its
# default: store_false), feed fps_list: the UNet's frame-rate condition is 15.
RELEASE_FS = 15
# save_results_seperate(..., fps=8): the rate the release writes its generated videos at.
RELEASE_FPS = 8.0

# LatentDiffusion registers its noise schedule as buffers (lvdm/models/ddpm3d.py); the project's
# scheduler recomputes them, so they are checked (alphas_cumprod, scale_arr) rather than loaded.
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod",
                    "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                    "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2")
DYNAMIC_RESCALE_BUFFER = "scale_arr"
# FrozenOpenCLIPImageEmbedderV2 deletes only the text transformer of its OpenCLIP model: these
# text-side leftovers sit in ``embedder.model.*`` and are never used.
_EMBEDDER_TEXT_LEFTOVERS = ("token_embedding.weight", "positional_embedding", "ln_final.weight",
                            "ln_final.bias", "text_projection", "logit_scale")


def release_unet_config(stage: str = "trajectory", **overrides: Any) -> UNetConfig:
    """The UNet of the release's configs: DynamiCrafter 512 with ``in_channels`` 12."""
    check_stage(stage)
    params = dict(in_channels=MASK2IV_IN_CHANNELS, default_fs=_RELEASE_DEFAULT_FS[stage])
    params.update(overrides)
    return UNetConfig.dynamicrafter_512(**params)


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {STAGES}, got {stage!r}")
    return stage


# ----------------------------------------------------------------------------------- reading
class LazyCheckpoint(Mapping):
    """The flat state dict of a checkpoint file, tensors read on access.

    ``.safetensors``: one tensor per ``safe_open`` read. ``.ckpt``/``.pt``/``.pth``:
    ``torch.load(weights_only=True, mmap=True)`` (a Lightning ``{"state_dict": ...}`` is
    unwrapped); the tensors are views of the memory-mapped file until copied.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no checkpoint file at {self.path}")
        if self.path.suffix == ".safetensors":
            from safetensors import safe_open

            self._handle = safe_open(str(self.path), "pt")
            self._keys = list(self._handle.keys())
            self._tensors = None
        else:
            self._tensors = dynamicrafter.read_checkpoint(self.path)  # weights_only, mmap
            self._keys = list(self._tensors)

    def __getitem__(self, key: str) -> torch.Tensor:
        if self._tensors is not None:
            return self._tensors[key]
        if key not in self._keys:
            raise KeyError(key)
        return self._handle.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def shape(self, key: str) -> tuple[int, ...]:
        if self._tensors is not None:
            return tuple(self._tensors[key].shape)
        return tuple(self._handle.get_slice(key).get_shape())


def as_state_dict(path_or_state_dict: str | Path | Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    """A checkpoint path, a Lightning dict (``{"state_dict": ...}``) or a flat state dict ->
    the flat state dict (lazily read for paths)."""
    if isinstance(path_or_state_dict, Mapping):
        state = path_or_state_dict.get("state_dict", path_or_state_dict)
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("path_or_state_dict: expected a state dict of tensors or a Lightning "
                             "checkpoint dict with a 'state_dict' of tensors")
        return state
    return LazyCheckpoint(path_or_state_dict)


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: state[k] for k in state if k.startswith(prefix)}


# -------------------------------------------------------------------------------------- UNet
def place_unet_state(unet_state: Mapping[str, torch.Tensor], config: UNetConfig,
                     source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Match a UNet state dict (prefix stripped) to :class:`VideoUNet` ``config`` strictly:
    every tensor of the UNet must be there with its shape; returns ``(its tensors, the names of
    checkpoint tensors it has no place for)``."""
    with torch.device("meta"):
        expected = VideoUNet(config).state_dict()
    missing = sorted(set(expected) - set(unet_state))
    if missing:
        raise ValueError(f"{source}: {len(missing)} UNet tensors of the config are missing from "
                         f"{dynamicrafter.UNET_PREFIX}* (e.g. {missing[:3]}); does the UNet config "
                         f"match the checkpoint (in_channels {config.in_channels}, model_channels "
                         f"{config.model_channels})?")
    for name, value in expected.items():
        have = tuple(unet_state[name].shape)
        if name == dynamicrafter.INPUT_CONV_WEIGHT and have[1:2] != tuple(value.shape[1:2]):
            hint = (" (a DynamiCrafter UNet: load it with load_dynamicrafter_unet, which adds "
                    "zero channels)" if have[1] == dynamicrafter.DYNAMICRAFTER_IN_CHANNELS else "")
            raise ValueError(f"{source}: the UNet has {have[1]} input channels, config.in_channels "
                             f"is {value.shape[1]}{hint}")
        if have != tuple(value.shape):
            raise ValueError(f"{source}: {dynamicrafter.UNET_PREFIX}{name} has shape {have}, the "
                             f"UNet config expects {tuple(value.shape)}")
    unplaced = sorted(set(unet_state) - set(expected))
    return {k: unet_state[k] for k in expected}, unplaced


def _unplaced_message(source: str, keys: list[str], flag: str) -> str:
    shown = ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")
    return (f"{source}: {len(keys)} tensors the project cannot place ({shown}); the released "
            f"stage-2 model's extra_mask_attn / DINOv2 object modules are not public code. "
            f"Pass {flag} to load without them (the result then differs from the release).")


def load_mask2iv_unet(path_or_state_dict: str | Path | Mapping[str, Any],
                      config: UNetConfig | None = None, stage: str = "trajectory",
                      device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                      allow_missing_modules: bool = False) -> VideoUNet:
    """The :class:`VideoUNet` of one released Mask2IV stage checkpoint.

    ``path_or_state_dict``: a ``.ckpt`` (read with ``torch.load(weights_only=True)``) or
    ``.safetensors`` file, a Lightning dict with ``"state_dict"``, or a flat state dict; its
    ``model.diffusion_model.*`` tensors load strictly into ``config`` (default: the release's
    UNet, :func:`release_unet_config`). The input channels keep the release's order: stage 1
    (``stage="trajectory"``) ``[noise, mask slot, image latent]``, stage 2 (``"video"``)
    ``[noise, image latent, trajectory latent]``. UNet tensors the project has no place for
    (the stage-2 ``extra_mask_attn``) raise unless ``allow_missing_modules`` (then logged).
    """
    check_stage(stage)
    config = config or release_unet_config(stage)
    state = as_state_dict(path_or_state_dict)
    unet_state = strip_prefix(state, dynamicrafter.UNET_PREFIX)
    if not unet_state:
        raise ValueError(f"path_or_state_dict: no {dynamicrafter.UNET_PREFIX!r} keys (not a "
                         "Mask2IV/DynamiCrafter checkpoint)")
    placed, unplaced = place_unet_state(unet_state, config, "path_or_state_dict")
    if unplaced:
        if not allow_missing_modules:
            raise ValueError(_unplaced_message("path_or_state_dict", unplaced,
                                               "allow_missing_modules=True"))
        logger.warning("load_mask2iv_unet: %d UNet tensors not loaded (no place in VideoUNet), "
                       "e.g. %s", len(unplaced), unplaced[0])
    return module_from_state_dict(lambda: VideoUNet(config), placed, device=device, dtype=dtype)


class CheckpointUNet(VideoUNet):
    """A :class:`VideoUNet` built on the meta device whose weights stay in the checkpoint file
    until :meth:`save_pretrained` streams them into a UNet folder (``config.json`` +
    ``model.safetensors``, what :meth:`VideoUNet.from_pretrained` reads).

    Converting a 1.4 B-parameter stage this way never holds more than the written copy in
    memory (no module storage next to it). ``dtype`` casts floating point tensors on the way.
    """

    def __init__(self, config: UNetConfig, weights: Mapping[str, torch.Tensor],
                 dtype: torch.dtype | None = None) -> None:
        with torch.device("meta"):
            super().__init__(config)
        self._weights = weights
        self._dtype = dtype

    def save_pretrained(self, folder: str | Path) -> None:
        from safetensors.torch import save_file
        from tqdm.auto import tqdm

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # the release's checkpoints already use the released concat order (models/layout.py)
        from .layout import mark_release_order

        config = mark_release_order(self.config.to_dict())
        (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
        tensors = {}
        for name in tqdm(list(self.state_dict()), desc=f"UNet -> {folder.name}", unit="tensor",
                         leave=False, mininterval=1.0):
            value = self._weights[name]
            if self._dtype is not None and value.is_floating_point():
                value = value.to(self._dtype)
            tensors[name] = value.contiguous()
        save_file(tensors, str(folder / WEIGHTS_NAME))


# ---------------------------------------------------------------------------- key accounting
@dataclass
class KeyAccount:
    """Where every key of one checkpoint went."""

    placed: dict[str, list[str]] = field(default_factory=dict)     # component -> keys
    unused: dict[str, str] = field(default_factory=dict)           # key -> why not needed
    unplaced: list[str] = field(default_factory=list)              # keys with no place here

    def place(self, component: str, keys: list[str]) -> None:
        self.placed.setdefault(component, []).extend(keys)

    def summary(self) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for reason in self.unused.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        return {"placed": {k: len(v) for k, v in self.placed.items()},
                "unused_by_design": reasons, "unplaced": list(self.unplaced)}


def account_keys(state: Mapping[str, torch.Tensor], unet_config: UNetConfig,
                 text_used: list[str] | None = None, text_unused: Mapping[str, str] | None = None
                 ) -> KeyAccount:
    """Sort the keys of a full stage checkpoint.

    ``text_used``/``text_unused`` come from the text tower conversion (keys after
    ``cond_stage_model.model.``); without them the text tower counts as placed whole.
    """
    account = KeyAccount()
    unet_state = strip_prefix(state, dynamicrafter.UNET_PREFIX)
    _, unet_unplaced = place_unet_state(unet_state, unet_config)
    unplaced_unet = {dynamicrafter.UNET_PREFIX + k for k in unet_unplaced}
    text_prefix = dynamicrafter.TEXT_ENCODER_PREFIX + "model."
    embedder_prefix = dynamicrafter.IMAGE_ENCODER_PREFIX + "model."
    buckets = {"unet": [], "vae": [], "image_projection": [], "image_encoder": [],
               "text_encoder": []}
    for key in state:
        if key in unplaced_unet:
            account.unplaced.append(key)
        elif key.startswith(dynamicrafter.UNET_PREFIX):
            buckets["unet"].append(key)
        elif key.startswith(dynamicrafter.VAE_PREFIX):
            buckets["vae"].append(key)
        elif key.startswith(dynamicrafter.IMAGE_PROJ_PREFIX):
            buckets["image_projection"].append(key)
        elif key.startswith(embedder_prefix + "visual."):
            if key == embedder_prefix + "visual.proj":
                account.unused[key] = "pooled-embedding projection; DynamiCrafter uses all tokens"
            else:
                buckets["image_encoder"].append(key)
        elif key.startswith(embedder_prefix) and key[len(embedder_prefix):] in _EMBEDDER_TEXT_LEFTOVERS:
            account.unused[key] = "text-side leftover of the OpenCLIP image embedder"
        elif key.startswith(text_prefix) and text_used is not None:
            inner = key[len(text_prefix):]
            if inner in (text_unused or {}):
                account.unused[key] = text_unused[inner]
            elif inner in set(text_used):
                buckets["text_encoder"].append(key)
            else:
                account.unplaced.append(key)
        elif key.startswith(text_prefix):
            buckets["text_encoder"].append(key)
        elif key in SCHEDULE_BUFFERS:
            account.unused[key] = "noise-schedule buffer; recomputed (and checked) by the scheduler"
        elif key == DYNAMIC_RESCALE_BUFFER:
            account.unused[key] = "dynamic-rescale schedule; recorded as sampling.dynamic_rescale"
        else:
            account.unplaced.append(key)
    for component, keys in buckets.items():
        if keys:
            account.place(component, keys)
    account.unplaced.sort()
    return account


# --------------------------------------------------------------------------- schedule checks
def check_noise_schedule(state: Mapping[str, torch.Tensor], scheduler: Any,
                         source: str = "checkpoint") -> None:
    """The checkpoint's ``alphas_cumprod`` buffer equals ``scheduler``'s (the release trains
    with DynamiCrafter's zero-SNR scaled-linear schedule); a mismatch raises."""
    if "alphas_cumprod" not in state:
        return
    theirs = state["alphas_cumprod"].double()
    ours = scheduler.alphas_cumprod.double()
    if theirs.shape != ours.shape or not torch.allclose(theirs, ours, rtol=1e-4, atol=1e-6):
        raise ValueError(f"{source}: its noise schedule (alphas_cumprod) differs from the "
                         f"project's DDIM scheduler (v-prediction, zero-SNR scaled-linear "
                         f"0.00085..0.012, 1000 steps); not a DynamiCrafter-schedule model")


def dynamic_rescale_base(state: Mapping[str, torch.Tensor], source: str = "checkpoint"
                         ) -> float | None:
    """``base_scale`` of the checkpoint's ``scale_arr`` buffer (None without one), checked to be
    DynamiCrafter's ramp that :func:`~mask2iv_ros.pipeline.sampling.dynamic_rescale_schedule`
    reproduces."""
    if DYNAMIC_RESCALE_BUFFER not in state:
        return None
    from ..pipeline.sampling import dynamic_rescale_schedule

    scale = state[DYNAMIC_RESCALE_BUFFER].double()
    base = float(scale[-1])
    turning = scale.numel() - 1000
    expected = dynamic_rescale_schedule(base, turning_step=turning) if turning > 0 else None
    if expected is None or not torch.allclose(scale, expected, atol=1e-5):
        raise ValueError(f"{source}: its scale_arr (dynamic rescale) is not DynamiCrafter's "
                         "linear ramp to base_scale")
    return round(base, 6)
