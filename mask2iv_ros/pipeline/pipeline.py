"""Mask2IVPipeline: image + object mask (+ prompt or placement mask) -> mask trajectory -> video.

Stage 1 (TT-Gen for a prompt, PT-Gen for a placement mask) samples the colour-coded mask
trajectory, which is decoded by the VAE and snapped to the palette; stage 2 samples the video
conditioned on the *snapped* trajectory re-encoded by the VAE. UNets with image
cross-attention also see CLIP tokens of the first frame (optional ``image_encoder`` +
``image_projection``, :mod:`.context`). See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..masks import ACTOR, DEFAULT_PALETTE, OBJECT, MaskPalette, encode_masks, labels_to_rgb, palette_labels
from ..models.image_encoder import ImageEncoder, load_image_encoder
from ..models.resampler import Resampler
from ..models.text_encoder import TextEncoder, load_text_encoder
from ..models.unet import VideoUNet
from ..models.vae import VideoVAE
from . import background, conditioning, context, resize, validation
from . import hypotheses as hypotheses_module
from .ddim import scheduler_class
from .pipeline_config import MODEL_INDEX, PipelineConfig, SamplingDefaults  # noqa: F401 (re-export)
from .sampling import StepInfo, denoise, dynamicrafter_scheduler

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
# <component>/image_projection/: the Resampler that UNet was trained with (see stage_projections)
STAGE_PROJECTION = "image_projection"
UNET_COMPONENTS = {"text": "trajectory_unet_text", "position": "trajectory_unet_position"}
CallbackFn = Callable[["Mask2IVPipeline", StepInfo], None]
TrajectoryCallbackFn = Callable[["Mask2IVPipeline", "Mask2IVOutput"], None]


@dataclass
class Mask2IVOutput:
    # The arrays are on the model grid, cut to the part that shows the input (resize.py):
    # [T, h, w] covers ``input_region`` of the input image; masks_in_input_frame() maps them back.
    mask_trajectory: np.ndarray          # uint8 [T, h, w, 3], snapped to the palette
    actor_masks: np.ndarray              # bool [T, h, w]
    object_masks: np.ndarray             # bool [T, h, w]
    video: np.ndarray | None             # uint8 [T, h, w, 3], None with trajectory_only
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    fps: float = 8.0
    mode: str = "text"
    seed: int | None = None
    input_region: tuple[int, int, int, int] | None = None  # (x_offset, y_offset, width, height)
    input_size: tuple[int, int] | None = None              # (H, W) of the input image
    # num_samples > 1: every hypothesis of the call, ranked best first (the call returns the
    # first), each with its score; all share the list, agreement and ranking (hypotheses.py).
    # One sample: [self], score 1.0, agreement 1.0, ranking "single".
    hypotheses: list["Mask2IVOutput"] = field(default_factory=list, repr=False, compare=False)
    score: float = 1.0      # mean object-mask IoU with the other hypotheses
    agreement: float = 1.0  # mean pairwise object-mask IoU of the call's hypotheses, in [0, 1]
    ranking: str = hypotheses_module.SINGLE
    # whose pixels the video shows outside the imagined regions: "imagined" (the model's) or
    # "input" (composited onto the input image, background.py); None without a video
    video_background: str | None = None
    # the VAE's decoding of the trajectory before the snap (uint8 [T, h, w, 3]): snapping it with
    # other palette weights gives what those weights would have given (eval/calibrate_snap.py)
    decoded_trajectory: np.ndarray | None = field(default=None, repr=False, compare=False)
    # stage-1 samples voted into this trajectory (hypotheses.vote_labels); with more than one,
    # decoded_trajectory is the decoding of the vote that ties went to
    trajectory_votes: int = 1

    def __post_init__(self) -> None:
        if not self.hypotheses:
            self.hypotheses = [self]

    @property
    def hypothesis_scores(self) -> list[float]:
        """The score of each hypothesis, in rank order."""
        return [hypothesis.score for hypothesis in self.hypotheses]

    def masks_in_input_frame(self, palette: MaskPalette = DEFAULT_PALETTE) -> resize.InputFrameMasks:
        """The masks on the input image's pixel grid (outside ``input_region`` = background)."""
        return resize.masks_in_input_frame(self, palette)


def _to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[1, 3, T, H, W]`` in [-1, 1]; ``[B, T, H, W, 3]`` ->
    ``[B, 3, T, H, W]``."""
    video = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    if video.dim() == 4:
        video = video.unsqueeze(0)
    return (video.permute(0, 4, 1, 2, 3).float() / 127.5) - 1.0


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    """``[B, 3, T, H, W]`` in [-1, 1] -> uint8 ``[B, T, H, W, 3]`` (one device->host copy)."""
    frames = ((video.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return frames.permute(0, 2, 3, 4, 1).cpu().numpy()


class Mask2IVPipeline:
    """Two-stage Mask2IV generation; components are plain ``nn.Module`` s and a diffusers scheduler."""

    def __init__(self, vae: VideoVAE, text_encoder: TextEncoder | None,
                 trajectory_unet_text: VideoUNet | None, trajectory_unet_position: VideoUNet | None,
                 video_unet: VideoUNet | None, scheduler: Any = None,
                 config: PipelineConfig | None = None, image_encoder: ImageEncoder | None = None,
                 image_projection: Resampler | None = None,
                 stage_projections: Mapping[str, Resampler] | None = None) -> None:
        self.vae = vae
        self.text_encoder = text_encoder
        # DynamiCrafter's image cross-attention branch (embedder + image_proj_model), optional
        self.image_encoder = image_encoder
        self.image_projection = image_projection
        # The Resampler each stage was trained with, where it differs from the shared one (the
        # released Mask2IV trains an image_proj_model per stage): UNet component name ->
        # Resampler, stored in <component>/image_projection/. A UNet without one uses
        # ``image_projection``.
        self.stage_projections: dict[str, Resampler] = dict(stage_projections or {})
        self.trajectory_unet_text = trajectory_unet_text
        self.trajectory_unet_position = trajectory_unet_position
        self.video_unet = video_unet
        self.scheduler = scheduler if scheduler is not None else dynamicrafter_scheduler()
        self.config = config if config is not None else PipelineConfig()
        self._interrupt = threading.Event()
        self._warned_guidance = False  # the CFG-without-condition-dropout warning, once
        self._check_components()
        for module in self._modules().values():
            module.eval()

    @classmethod
    def from_components(cls, vae: VideoVAE, text_encoder: TextEncoder | None = None,
                        trajectory_unet_text: VideoUNet | None = None,
                        trajectory_unet_position: VideoUNet | None = None,
                        video_unet: VideoUNet | None = None, scheduler: Any = None,
                        config: PipelineConfig | None = None,
                        image_encoder: ImageEncoder | None = None,
                        image_projection: Resampler | None = None,
                        stage_projections: Mapping[str, Resampler] | None = None) -> "Mask2IVPipeline":
        """Build from in-memory components (e.g. after training); scheduler defaults to DDIM.

        ``image_encoder`` + ``image_projection`` (a :class:`Resampler`) are needed by UNets with
        ``image_cross_attention`` (DynamiCrafter's image context tokens); ``stage_projections``
        (component name -> Resampler) gives a UNet the Resampler it was trained with instead.
        """
        return cls(vae, text_encoder, trajectory_unet_text, trajectory_unet_position, video_unet,
                   scheduler, config, image_encoder, image_projection, stage_projections)

    # ------------------------------------------------------------------ properties
    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(mode for mode, name in UNET_COMPONENTS.items() if getattr(self, name) is not None)

    @property
    def resolution(self) -> tuple[int, int]:
        return tuple(self.config.resolution)  # type: ignore[return-value]

    @property
    def palette(self) -> MaskPalette:
        return self.config.palette

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def _unets(self) -> dict[str, VideoUNet]:
        names = (*UNET_COMPONENTS.values(), "video_unet")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def _modules(self) -> dict[str, torch.nn.Module]:
        modules: dict[str, torch.nn.Module] = {"vae": self.vae, **self._unets()}
        for name in ("text_encoder", "image_encoder", "image_projection"):
            if getattr(self, name) is not None:
                modules[name] = getattr(self, name)
        for name, projection in self.stage_projections.items():
            modules[f"{name}/{STAGE_PROJECTION}"] = projection
        return modules

    def projection_for(self, unet: VideoUNet | None) -> Resampler | None:
        """The Resampler that makes ``unet``'s image tokens: its stage's own, else the shared one."""
        for name, candidate in self._unets().items():
            if candidate is unet and name in self.stage_projections:
                return self.stage_projections[name]
        return self.image_projection

    def to(self, device: str | torch.device | None = None,
           dtype: torch.dtype | None = None) -> "Mask2IVPipeline":
        for module in self._modules().values():
            module.to(device=device, dtype=dtype)
        return self

    def interrupt(self) -> None:
        """Thread-safe: the running call raises ``Mask2IVInterrupted`` before its next step.

        Calls that start afterwards are not affected (each call clears the request).
        """
        self._interrupt.set()

    def _check_components(self) -> None:
        if not self.modes:
            raise ValueError("trajectory_unet_text/trajectory_unet_position: expected at least one "
                             "trajectory model, got neither")
        if (self.image_encoder is None) != (self.image_projection is None):
            raise ValueError("image_encoder/image_projection: expected both (the image branch) or "
                             f"neither, got {type(self.image_encoder).__name__}/"
                             f"{type(self.image_projection).__name__}")
        unknown = sorted(set(self.stage_projections) - set(self._unets()))
        if unknown or (self.stage_projections and self.image_projection is None):
            raise ValueError(f"stage_projections: expected Resamplers of this pipeline's UNets "
                             f"{sorted(self._unets())} beside a shared image_projection, got "
                             f"{sorted(self.stage_projections)}")
        h, w = self.resolution
        latent_c = self.vae.latent_channels
        for name, unet in self._unets().items():
            cfg = unet.config
            factor = self.vae.spatial_factor * 2 ** (len(cfg.channel_mult) - 1)
            if h % factor or w % factor:
                raise ValueError(f"config.resolution: {name} needs H and W divisible by {factor}, "
                                 f"got {self.resolution}")
            if cfg.in_channels != 3 * latent_c or cfg.out_channels != latent_c:
                raise ValueError(f"{name}: expected in_channels {3 * latent_c} (noise, 2 latent "
                                 f"conditions) and out_channels {latent_c}, got {cfg.in_channels}/"
                                 f"{cfg.out_channels}")
            if cfg.image_cross_attention:
                self._check_image_branch(name, cfg)
            if cfg.context_dim is not None:
                if self.text_encoder is None:
                    raise ValueError(f"text_encoder: {name} has cross-attention (context_dim "
                                     f"{cfg.context_dim}) and needs a text encoder, got None")
                if self.text_encoder.embed_dim != cfg.context_dim:
                    raise ValueError(f"text_encoder: embed_dim {self.text_encoder.embed_dim} does not "
                                     f"match {name}.config.context_dim {cfg.context_dim}")

    def _check_image_branch(self, name: str, cfg: Any) -> None:
        """The image encoder -> Resampler -> UNet sizes fit together."""
        if self.image_encoder is None or self.image_projection is None:
            raise ValueError(f"image_encoder/image_projection: {name} has image cross-attention "
                             "and needs both (CLIP image embedder + Resampler), got "
                             f"{type(self.image_encoder).__name__}/"
                             f"{type(self.image_projection).__name__}")
        proj = self.image_projection.config
        expected = {"embedding_dim": (proj.embedding_dim, self.image_encoder.embed_dim,
                                      "image_encoder.embed_dim"),
                    "output_dim": (proj.output_dim, cfg.context_dim, f"{name}.config.context_dim"),
                    "num_queries": (proj.num_queries, cfg.image_tokens_per_frame,
                                    f"{name}.config.image_tokens_per_frame")}
        for field_name, (have, want, source) in expected.items():
            if have != want:
                raise ValueError(f"image_projection: config.{field_name} {have} does not match "
                                 f"{source} {want}")

    def _check_image_frames(self, num_frames: int) -> None:
        """A per-frame Resampler (``video_length``) makes tokens for exactly that many frames."""
        uses_images = any(u.config.image_cross_attention for u in self._unets().values())
        video_length = None if self.image_projection is None else \
            self.image_projection.config.video_length
        if uses_images and video_length is not None and num_frames != video_length:
            raise validation.Mask2IVInputError(
                f"num_frames: the image projection of this checkpoint makes context tokens for "
                f"{video_length} frames; expected {video_length}, got {num_frames}")

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``model_index.json`` + one sub-folder per component, atomically (temp + rename)."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            # the recorded scheduler is the one this pipeline samples with (it may be swapped)
            config = self.config.to_dict()
            config["sampling"]["scheduler"] = type(self.scheduler).__name__
            index = {"_class_name": type(self).__name__, "format_version": FORMAT_VERSION,
                     "config": config, "components": {}}
            components = index["components"]
            self.vae.save_pretrained(tmp / "vae")
            components["vae"] = "VideoVAE"
            if self.text_encoder is not None:
                self.text_encoder.save_pretrained(tmp / "text_encoder")
            components["text_encoder"] = None if self.text_encoder is None else \
                self.text_encoder.type_name
            # the image branch is optional; listed only when present, so folders without it
            # stay exactly as before the branch existed
            if self.image_encoder is not None:
                self.image_encoder.save_pretrained(tmp / "image_encoder")
                components["image_encoder"] = self.image_encoder.type_name
            if self.image_projection is not None:
                self.image_projection.save_pretrained(tmp / "image_projection")
                components["image_projection"] = type(self.image_projection).__name__
            for name in (*UNET_COMPONENTS.values(), "video_unet"):
                unet = getattr(self, name)
                if unet is not None:
                    unet.save_pretrained(tmp / name)
                if name in self.stage_projections:
                    self.stage_projections[name].save_pretrained(tmp / name / STAGE_PROJECTION)
                components[name] = None if unet is None else "VideoUNet"
            self.scheduler.save_pretrained(tmp / "scheduler")
            components["scheduler"] = type(self.scheduler).__name__
            (tmp / MODEL_INDEX).write_text(json.dumps(index, indent=2))
            old = None
            if folder.exists():
                old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
                folder.rename(old)
            tmp.rename(folder)
            if old is not None:
                shutil.rmtree(old)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> "Mask2IVPipeline":
        """Load a folder written by :meth:`save_pretrained` (local files, safetensors only).

        The scheduler is ``config.sampling.scheduler`` built from ``scheduler/``'s config
        (a diffusers class or :data:`mask2iv_ros.pipeline.ddim.SCHEDULERS`).
        """
        folder = Path(folder)
        if not (folder / MODEL_INDEX).is_file():
            raise FileNotFoundError(f"folder: {folder} has no {MODEL_INDEX} (not a Mask2IV pipeline)")
        index = json.loads((folder / MODEL_INDEX).read_text())
        if index.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / MODEL_INDEX}: unsupported format_version "
                             f"{index.get('format_version')!r}, expected {FORMAT_VERSION}")
        components = index["components"]
        device = torch.device(device)
        unets = {name: VideoUNet.from_pretrained(folder / name, device=device)
                 if components.get(name) else None
                 for name in (*UNET_COMPONENTS.values(), "video_unet")}
        text_encoder = load_text_encoder(folder / "text_encoder") \
            if components.get("text_encoder") else None
        # optional components (folders written before the image branch have no such keys)
        image_encoder = load_image_encoder(folder / "image_encoder") \
            if components.get("image_encoder") else None
        image_projection = Resampler.from_pretrained(folder / "image_projection") \
            if components.get("image_projection") else None
        stage_projections = {name: Resampler.from_pretrained(folder / name / STAGE_PROJECTION)
                             for name, unet in unets.items() if image_projection is not None
                             and unet is not None and unet.config.image_cross_attention
                             and (folder / name / STAGE_PROJECTION / "config.json").is_file()}
        config = PipelineConfig.from_dict(index["config"], scheduler=components["scheduler"])
        try:
            scheduler_type = scheduler_class(config.sampling.scheduler)
        except ValueError as error:
            raise ValueError(f"{folder / MODEL_INDEX}: config.sampling.{error}") from None
        # from_config: the sampling scheduler may differ from the class that wrote scheduler/
        scheduler_config = scheduler_type.load_config(folder / "scheduler")
        pipe = cls(vae=VideoVAE.from_pretrained(folder / "vae"), text_encoder=text_encoder,
                   scheduler=scheduler_type.from_config(scheduler_config), config=config,
                   image_encoder=image_encoder, image_projection=image_projection,
                   stage_projections=stage_projections, **unets)
        return pipe.to(device=device, dtype=dtype)

    # ------------------------------------------------------------------ generation
    def encode_context(self, prompts: Sequence[str], images: torch.Tensor | None = None, *,
                       unet: VideoUNet | str | None = None,
                       drop_prompt: torch.Tensor | Sequence[bool] | None = None,
                       drop_image: torch.Tensor | Sequence[bool] | None = None
                       ) -> torch.Tensor | None:
        """The cross-attention context ``[B, text_len (+ image tokens), D]`` sampling feeds a UNet.

        Training calls this to build exactly the context inference builds. ``prompts``: B
        strings. ``images``: the conditioning (first) frames ``[B, 3, H, W]`` in [-1, 1], any
        size (the image encoder resizes); needed when image tokens are appended. ``unet``
        (a UNet or component name) decides that: image tokens iff its config has
        ``image_cross_attention``, None if it has no cross-attention; without ``unet``, image
        tokens iff this pipeline has an image branch. ``drop_prompt``/``drop_image`` (bool [B])
        are classifier-free-guidance drops as in DynamiCrafter: the empty prompt's tokens, the
        all-zero image's tokens (see :mod:`mask2iv_ros.pipeline.context`).
        """
        if isinstance(unet, str):
            if unet not in self._unets():
                raise ValueError(f"unet: expected one of {sorted(self._unets())} or a VideoUNet, "
                                 f"got {unet!r}")
            unet = self._unets()[unet]
        if unet is not None and unet.config.context_dim is None:
            return None
        with_images = self.image_encoder is not None if unet is None \
            else unet.config.image_cross_attention
        if self.text_encoder is None:
            raise ValueError("encode_context: this pipeline has no text encoder")
        tokens = context.text_tokens(self.text_encoder, prompts, drop_prompt)
        if not with_images:
            return tokens
        if self.image_encoder is None or self.image_projection is None:
            raise ValueError("unet: has image cross-attention but this pipeline has no "
                             "image_encoder/image_projection")
        if images is None or images.shape[0] != tokens.shape[0]:
            got = None if images is None else tuple(images.shape)
            raise ValueError(f"images: expected the {tokens.shape[0]} conditioning frames "
                             f"[{tokens.shape[0]}, 3, H, W] in [-1, 1] (image cross-attention), "
                             f"got {got}")
        image = context.image_tokens(self.image_encoder, self.projection_for(unet), images, drop_image)
        return torch.cat([tokens, image.to(tokens.dtype)], dim=1)

    def guidance_contexts(self, prompt: str | None, image: torch.Tensor
                           ) -> Callable[[VideoUNet], tuple[torch.Tensor | None, torch.Tensor | None]]:
        """``unet -> (context, uncond_context)`` for this call, each computed once per kind.

        The unconditional branch drops the prompt and the image (DynamiCrafter's sampler);
        ``uncond_context`` is None when it would equal ``context`` (no prompt, no image tokens).
        """
        cache: dict[tuple[bool, int], tuple[torch.Tensor | None, torch.Tensor | None]] = {}

        def contexts(unet: VideoUNet) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            if unet.config.context_dim is None:
                return None, None
            with_images = unet.config.image_cross_attention
            key = (with_images, id(self.projection_for(unet)) if with_images else 0)
            if key not in cache:
                both = self.encode_context([prompt or ""] * 2, image.expand(2, -1, -1, -1),
                                           unet=unet, drop_prompt=[False, True],
                                           drop_image=[False, True])
                cond, uncond = both.chunk(2)
                cache[key] = (cond, None if prompt is None and not with_images else uncond)
            return cache[key]

        return contexts

    def _sample(self, unet: VideoUNet, stage: str, condition: torch.Tensor,
                uncond_condition: torch.Tensor | None,
                contexts: Callable[[VideoUNet], tuple[torch.Tensor | None, torch.Tensor | None]],
                batch: int = 1, **kwargs: Any) -> torch.Tensor:
        """Denoise ``batch`` samples; conditions/contexts of batch 1 are shared by all of them."""
        context_tokens, uncond_context = contexts(unet)

        def widen(tensor: torch.Tensor | None) -> torch.Tensor | None:
            if tensor is None or tensor.shape[0] == batch:
                return tensor
            return tensor.expand(batch, *tensor.shape[1:])

        condition, uncond_condition = widen(condition), widen(uncond_condition)
        context_tokens, uncond_context = widen(context_tokens), widen(uncond_context)
        return denoise(unet, self.scheduler, condition, context_tokens,
                       uncond_condition=uncond_condition, uncond_context=uncond_context,
                       fs=self.config.fs, stage=stage, interrupt_event=self._interrupt, **kwargs)

    def _stage2_masks(self, decoded: torch.Tensor, labels: np.ndarray, chosen: list[int],
                      votes: int = 1, medoid_votes: Sequence[int] = ()) -> torch.Tensor:
        """The mask videos ``[len(chosen), 3, T, h, w]`` in [-1, 1] stage 2 is conditioned on
        (``config.sampling.stage2_masks``): the decoded stage-1 videos binarised per channel by
        sign, as the released two-stage inference does, or snapped to the palette. ``decoded``
        holds ``votes`` samples per hypothesis (``labels`` the voted ones); with several, each
        channel's sign is their majority (ties to the medoid vote, as the labels')."""
        if self.config.sampling.stage2_masks == "channel_sign":
            if votes == 1:
                picked = decoded[chosen]
                return torch.where(picked >= 0, 1.0, -1.0).to(picked.dtype)
            signs = (decoded >= 0).cpu().numpy()
            voted = np.stack([hypotheses_module.majority_vote(
                signs[i * votes:(i + 1) * votes], medoid_votes[i] - i * votes) for i in chosen])
            return torch.from_numpy(np.where(voted, 1.0, -1.0)).to(decoded.device, decoded.dtype)
        return _to_tensor(labels_to_rgb(labels[chosen], self.palette), decoded.device)

    def sampling_settings(self, num_inference_steps: int | None = None,
                          guidance_scale: float | None = None, eta: float | None = None,
                          guidance_rescale: float | None = None) -> dict[str, Any]:
        """The validated sampler arguments of one call: each None is the checkpoint's recorded
        default (``config.sampling``). Keys: num_inference_steps, guidance_scale, eta,
        guidance_rescale, dynamic_rescale (the :func:`~.sampling.denoise` keywords).

        Guidance on a checkpoint recorded with ``condition_dropout == 0`` logs a warning (once
        per pipeline): its unconditional branch was never trained.
        """
        recorded = self.config.sampling

        def pick(value: Any, default: Any) -> Any:
            return default if value is None else value

        settings = dict(
            num_inference_steps=validation.check_int(
                "num_inference_steps", pick(num_inference_steps, recorded.num_inference_steps),
                1, validation.MAX_INFERENCE_STEPS),
            guidance_scale=validation.check_float(
                "guidance_scale", pick(guidance_scale, recorded.guidance_scale), 0.0,
                validation.MAX_GUIDANCE_SCALE),
            eta=validation.check_float("eta", pick(eta, recorded.eta), 0.0, 1.0),
            guidance_rescale=validation.check_float(
                "guidance_rescale", pick(guidance_rescale, recorded.guidance_rescale), 0.0, 1.0),
            dynamic_rescale=recorded.dynamic_rescale)
        if settings["guidance_scale"] != 1.0 and self.config.condition_dropout == 0.0 \
                and not self._warned_guidance:
            self._warned_guidance = True
            logger.warning(
                "guidance_scale %g on %s, which was trained without condition dropout "
                "(config.training.condition_dropout 0): its unconditional prediction was never "
                "trained, so classifier-free guidance extrapolates towards noise and degrades "
                "the output; use guidance_scale 1.0 (this checkpoint's default is %g)",
                settings["guidance_scale"], self.config.model_id, recorded.guidance_scale)
        return settings

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, object_mask: np.ndarray, prompt: str | None = None,
                 placement_mask: np.ndarray | None = None, actor_mask: np.ndarray | None = None,
                 num_frames: int | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, seed: int | None = 0,
                 trajectory_only: bool = False, callback_on_step_end: CallbackFn | None = None, *,
                 eta: float | None = None, guidance_rescale: float | None = None,
                 num_samples: int = 1, videos_for_all_samples: bool = False,
                 progress: bool = False,
                 callback_on_trajectory: TrajectoryCallbackFn | None = None,
                 video_background: str | None = None,
                 trajectory_votes: int | None = None) -> Mask2IVOutput:
        """Generate the mask trajectory and (unless ``trajectory_only``) the video.

        Exactly one of ``prompt`` (TT-Gen) and ``placement_mask`` (PT-Gen) must be given; the
        video stage conditions on the empty prompt, as the released Mask2IV pipeline does.
        ``num_inference_steps``, ``guidance_scale``, ``eta``, ``guidance_rescale``: None = the
        checkpoint's recorded default (``config.sampling``, :meth:`sampling_settings`). A given
        ``num_inference_steps`` sets both stages; None samples the video stage with
        ``config.sampling.video_num_inference_steps`` where the checkpoint records one.
        ``seed=None`` draws one. A step producing NaN/inf latents raises
        :class:`~.sampling.Mask2IVNonFiniteError`.

        ``num_samples`` > 1 imagines that many hypotheses with seeds ``seed, seed + 1, ...`` as
        one batch through the trajectory UNet (each sample's noise is what a one-sample call with
        its seed draws), ranks them (:mod:`.hypotheses`: the medoid by object-mask IoU first)
        and returns the first-ranked one, with every hypothesis in ``out.hypotheses``. Only
        that one gets a video unless ``videos_for_all_samples`` (one batch again).

        ``callback_on_trajectory(pipeline, output)`` is called once, as soon as stage 1 has ended
        and before stage 2 starts, with the stage-1 result: the first-ranked hypothesis (video None,
        timings with "trajectory" only; ``output.hypotheses`` = all of them, ranked), so a caller
        can act on the mask trajectory before the video exists. The returned output is a new
        object with the same masks.

        ``video_background``: ``"imagined"`` = every video pixel is the model's; ``"input"`` =
        pixels outside the input's and the imagined frame's actor/object regions (dilated,
        feathered) keep the input image (:mod:`.background`); None = the checkpoint's recorded
        default (``config.sampling.video_background``).

        ``trajectory_votes`` K > 1: each hypothesis' trajectory is the pixelwise majority of K
        stage-1 samples drawn from its seed's stream (one batch of ``num_samples * K``; ties go to
        the samples' medoid, :func:`.hypotheses.vote_labels`), and stage 2 is conditioned on it.
        None = the checkpoint's recorded default (``config.sampling.trajectory_votes``).
        """
        self._interrupt.clear()
        inputs = validation.check_inputs(image, object_mask, prompt, placement_mask, actor_mask,
                                         self.modes)
        num_frames = validation.check_int("num_frames", self.config.num_frames
                                          if num_frames is None else num_frames,
                                          2, validation.MAX_FRAMES)
        num_samples = validation.check_int("num_samples", num_samples, 1, validation.MAX_SAMPLES)
        settings = self.sampling_settings(num_inference_steps, guidance_scale, eta,
                                          guidance_rescale)
        votes = validation.check_int("trajectory_votes", self.config.sampling.trajectory_votes
                                     if trajectory_votes is None else trajectory_votes,
                                     1, validation.MAX_TRAJECTORY_VOTES)
        seed = validation.check_seed(seed, num_samples)
        video_background = background.check_video_background(
            self.config.sampling.video_background if video_background is None else video_background)
        self._check_image_frames(num_frames)
        if not trajectory_only and self.video_unet is None:
            raise validation.Mask2IVInputError("trajectory_only: this checkpoint has no video "
                                               "model; pass trajectory_only=True")

        if seed is None:
            seed = torch.Generator("cpu").seed() % (validation.MAX_SEED - num_samples + 2)
        # one generator per hypothesis: sample i sees exactly the stream of a call with seed + i
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(num_samples)]
        palette, device = self.palette, self.device
        input_size = inputs.image.shape[:2]
        # the training preprocessing (short-side resize + centre crop), resize.py
        grid = resize.crop_geometry(*input_size, *self.resolution)
        model_image = resize.resize_center_crop(inputs.image[None], *self.resolution, "area")[0]
        model_object = resize.mask_to_model_grid("object_mask", inputs.object_mask, *self.resolution)
        model_actor = None if inputs.actor_mask is None else \
            resize.resize_center_crop(inputs.actor_mask[None], *self.resolution, "nearest")[0]

        def on_step(info: StepInfo) -> None:
            if callback_on_step_end is not None:
                callback_on_step_end(self, info)

        sample_kwargs = dict(**settings, on_step=on_step, progress=progress)
        video_steps = self.config.sampling.video_num_inference_steps
        video_kwargs = sample_kwargs if num_inference_steps is not None or video_steps is None \
            else dict(sample_kwargs, num_inference_steps=video_steps)
        timings: dict[str, float] = {}

        # ---- stage 1: mask trajectories of all hypotheses, one batch
        start = time.perf_counter()
        frames = [model_image, encode_masks(model_object, model_actor, palette)]
        if inputs.mode == "position":
            model_placement = resize.mask_to_model_grid("placement_mask", inputs.placement_mask,
                                                        *self.resolution)
            frames.append(encode_masks(model_placement, None, palette))
        latents = self.vae.encode(_to_tensor(np.stack(frames), device))
        image_latent, mask_latent = latents[:, :, 0:1], latents[:, :, 1:2]
        # the RGB first frame conditions both stages' image cross-attention (as in DynamiCrafter)
        first_frame = _to_tensor(model_image[None], device)[:, :, 0]
        contexts = self.guidance_contexts(inputs.prompt, first_frame)
        if inputs.mode == "text":
            condition = conditioning.tt_condition(image_latent, mask_latent, num_frames)
            uncond_condition = None
        else:
            condition = conditioning.pt_condition(image_latent, mask_latent, latents[:, :, 2:3],
                                                  num_frames)
            uncond_condition = conditioning.pt_condition(image_latent, mask_latent, None, num_frames)
        unet = getattr(self, UNET_COMPONENTS[inputs.mode])
        # hypothesis i's votes are consecutive draws from its own generator, so its trajectory is
        # what a one-sample call with seed + i and the same votes gives
        trajectory_latents = self._sample(unet, "trajectory", condition, uncond_condition,
                                          contexts, batch=num_samples * votes,
                                          generator=_generators([g for g in generators
                                                                 for _ in range(votes)]),
                                          **sample_kwargs)
        # [N * votes, 3, T, h, w], about [-1, 1]
        decoded_trajectories = self.vae.decode(trajectory_latents)
        decoded_uint8 = _to_uint8(decoded_trajectories)
        labels = palette_labels(decoded_uint8, palette)  # snapped: [N * votes, T, h, w]
        medoid_votes = list(range(num_samples))  # per hypothesis, the vote its ties went to
        if votes > 1:
            labels, medoid_votes = hypotheses_module.vote_labels(labels, votes, OBJECT)
        timings["trajectory"] = time.perf_counter() - start
        visible_labels = [grid.visible(sample_labels) for sample_labels in labels]
        ranking = hypotheses_module.rank_hypotheses(
            np.stack([sample_labels == OBJECT for sample_labels in visible_labels]))

        def ranked_outputs(videos: dict[int, np.ndarray], timings: dict[str, float]) -> Mask2IVOutput:
            """The first-ranked hypothesis, with every hypothesis (ranked) in ``.hypotheses``."""
            outputs = []
            for index in ranking.order:
                sample_labels = visible_labels[index]
                sample_timings = dict(timings) if index in videos or trajectory_only else \
                    {"trajectory": timings["trajectory"]}
                outputs.append(Mask2IVOutput(
                    mask_trajectory=labels_to_rgb(sample_labels, palette),
                    actor_masks=sample_labels == ACTOR, object_masks=sample_labels == OBJECT,
                    video=videos.get(index), timings=sample_timings, fps=self.config.fps,
                    mode=inputs.mode, seed=seed + index, input_region=tuple(grid.box),
                    input_size=input_size, score=ranking.scores[index],
                    agreement=ranking.agreement, ranking=ranking.method,
                    video_background=video_background if index in videos else None,
                    decoded_trajectory=grid.visible(decoded_uint8[medoid_votes[index]]),
                    trajectory_votes=votes))
            for output in outputs:
                output.hypotheses = outputs
            return outputs[0]

        if callback_on_trajectory is not None:
            callback_on_trajectory(self, ranked_outputs({}, {"trajectory": timings["trajectory"]}))

        # ---- stage 2: videos conditioned on the snapped trajectories (the first-ranked one, or all)
        videos: dict[int, np.ndarray] = {}
        if not trajectory_only:
            start = time.perf_counter()
            chosen = list(ranking.order if videos_for_all_samples else ranking.order[:1])
            trajectory_latents = self.vae.encode(self._stage2_masks(decoded_trajectories, labels,
                                                                    chosen, votes, medoid_votes))
            condition = conditioning.video_condition(
                trajectory_latents, image_latent.expand(len(chosen), -1, -1, -1, -1))
            # the released pipeline's stage 2 sees the empty prompt: the trajectory carries the
            # action (guidance then contrasts only the image tokens, where the UNet has them)
            video_contexts = contexts if inputs.prompt is None else \
                self.guidance_contexts(None, first_frame)
            video_latents = self._sample(self.video_unet, "video", condition, None,
                                         video_contexts, batch=len(chosen),
                                         generator=_generators([generators[i] for i in chosen]),
                                         **video_kwargs)
            decoded_videos = _to_uint8(self.vae.decode(video_latents))
            if video_background == "input":
                input_moving = model_object if model_actor is None else model_object | model_actor
                decoded_videos = np.stack([
                    background.keep_input_background(video, model_image, input_moving, labels[i])
                    for i, video in zip(chosen, decoded_videos)])
            videos = {i: grid.visible(video) for i, video in zip(chosen, decoded_videos)}
            timings["video"] = time.perf_counter() - start

        return ranked_outputs(videos, timings)


def _generators(generators: list[torch.Generator]) -> torch.Generator | list[torch.Generator]:
    """One sample: its generator as before batching; several: one per sample of the batch."""
    return generators[0] if len(generators) == 1 else generators
