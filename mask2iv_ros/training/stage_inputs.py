"""Turns a dataset batch into what the denoiser is trained on, per stage.

Stage 1 (trajectory): target = latents of the colour-coded mask video; concat = object-mask
latent (TT-Gen) or first/last mask slots (PT-Gen), then the image latent, via
:mod:`mask2iv_ros.pipeline.conditioning` (the released order, ``mask2iv_ros.models.layout``);
loss weights = the released foreground weight (``stage1.fg_weight``); with
``stage1.actor_condition_drop_prob`` some first-frame conditions lose the actor, as a request
without an actor mask gives them (:mod:`.actor_drop`). Stage 2 (video): target =
latents of the RGB video; concat = image latent, then the latents of the (perturbed)
ground-truth trajectory; loss weights from the contact map (eq. 1-2, ``stage2.contact_*``). With
``stage2.control: controlnet`` the trajectory latents become the ControlNet hint and the concat
trajectory channels carry zeros (as with ``none``).

Classifier-free guidance dropout follows the pipeline's unconditional branch: the empty prompt
for TT-Gen and stage 2, no placement latent for PT-Gen, and, with the image cross-attention
branch, the all-zero image. The text tokens come from the pipeline's own
:func:`mask2iv_ros.pipeline.context.text_tokens`; with the image branch the first frames and the
image drops are handed on, and the trained module appends their tokens
(:class:`mask2iv_ros.training.image_context.ImageContextModel`, since the Resampler is trained).

Drop probabilities (``p = diffusion.condition_dropout_prob``), as in DynamiCrafter: without the
image branch the condition is dropped with probability p (``LatentDiffusion``, ``uncond_type:
empty_seq``); with it, one uniform draw r per sample decides as in
``LatentVisualDiffusion.get_batch_input``: r < p drops only the condition, p <= r < 2p both,
2p <= r < 3p only the image (so each is dropped with probability 2p, both together with p).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch

from mask2iv_ros.data.augment import (contact_loss_weights, contact_map, downsample_weights,
                                      foreground_loss_weights, last_frame_loss_weights,
                                      random_dilate_erode)
from mask2iv_ros.data.dataset import to_unit_range
from mask2iv_ros.masks import encode_mask_video
from mask2iv_ros.models.text_encoder import TextEncoder
from mask2iv_ros.models.vae import VideoVAE
from mask2iv_ros.pipeline.conditioning import pt_condition, tt_condition, video_condition
from mask2iv_ros.pipeline.context import text_tokens

from .actor_drop import drop_first_frame_actor
from .config import TrainConfig

STAGE1_KEYS = ("mask_video", "first_frame", "object_mask_rgb", "prompt")
STAGE2_KEYS = ("video", "first_frame", "prompt", "actor_masks", "object_masks")


@dataclass
class DiffusionInputs:
    latents: torch.Tensor                 # clean target latents [B, 4, T, h, w]
    condition: torch.Tensor               # concat conditioning [B, 8, T, h, w]
    context: torch.Tensor                 # text tokens [B, text_len, D]
    fs: torch.Tensor                      # frame-rate condition [B]
    loss_weights: Optional[torch.Tensor]  # [B, 1, T, h, w] or None (plain MSE)
    # Trajectory latents [B, 4, T, h, w] for the ControlNet branch (stage2.control=controlnet).
    control_hint: Optional[torch.Tensor] = None
    # How loss_weights enter the loss (training.losses.LOSS_FORMS).
    loss_form: str = "squared_error"
    # Image branch only: first frames [B, 3, H, W] in [-1, 1] whose image tokens follow the
    # text tokens, and bool [B]: rows embedding the all-zero image instead.
    images: Optional[torch.Tensor] = None
    drop_image: Optional[torch.Tensor] = None

    def model_kwargs(self) -> dict[str, torch.Tensor]:
        """The trained module's keyword arguments besides ``x``, ``timesteps``."""
        kwargs = {"context": self.context, "fs": self.fs}
        if self.control_hint is not None:
            kwargs["control_hint"] = self.control_hint
        if self.images is not None:
            kwargs["images"] = self.images
            kwargs["drop_image"] = self.drop_image
        return kwargs


def uint8_video_to_tensor(video: np.ndarray) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> float ``[3, T, H, W]`` in [-1, 1]."""
    return to_unit_range(video)


def _require(batch: Mapping[str, Any], keys: tuple[str, ...], stage: str) -> None:
    missing = [k for k in keys if k not in batch]
    if missing:
        raise KeyError(f"batch: stage {stage!r} needs keys {list(keys)}, missing {missing}")


def _masks_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(bool)
    return np.asarray(value, dtype=bool)


class StageInputs:
    """Callable building :class:`DiffusionInputs` from a collated batch (frozen encoders)."""

    def __init__(self, config: TrainConfig, vae: VideoVAE, text_encoder: TextEncoder,
                 device: torch.device, autocast_dtype: Optional[torch.dtype] = None) -> None:
        self.config = config
        self.vae = vae
        self.text_encoder = text_encoder
        self.device = torch.device(device)
        # bf16 training: the frozen encoders run under autocast (their weights stay fp32).
        self.autocast_dtype = autocast_dtype

    # ------------------------------------------------------------------ helpers
    def _to_device(self, tensor: Any) -> torch.Tensor:
        return torch.as_tensor(tensor).to(self.device, non_blocking=True).float()

    def _encode(self, video: torch.Tensor, sample: bool = False,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.vae.encode(video, sample=sample, generator=generator).float()

    def _encode_frames(self, *images: torch.Tensor) -> list[torch.Tensor]:
        """Encode single images ``[B, 3, H, W]`` in one VAE call; latents ``[B, 4, 1, h, w]``."""
        stacked = torch.cat([self._to_device(im) for im in images]).unsqueeze(2)
        return list(self._encode(stacked).chunk(len(images)))

    def _drops(self, size: int, host_rng: np.random.Generator
               ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(drop the prompt / placement, drop the image or None without the image branch), bool
        ``[size]`` each: DynamiCrafter's training drops (module docstring)."""
        p = self.config.diffusion.condition_dropout_prob
        r = host_rng.random(size)
        if not self.config.uses_image_branch:
            return r < p, None
        return r < 2 * p, (r >= p) & (r < 3 * p)

    def _context(self, prompts: list[str], drop: np.ndarray) -> torch.Tensor:
        drop_prompt = torch.as_tensor(drop, dtype=torch.bool)
        return text_tokens(self.text_encoder, prompts, drop_prompt).float()

    def _image_inputs(self, batch: Mapping[str, Any], drop_image: Optional[np.ndarray]
                      ) -> dict[str, torch.Tensor]:
        if drop_image is None:
            return {}
        return {"images": self._to_device(batch["first_frame"]),
                "drop_image": torch.as_tensor(drop_image, dtype=torch.bool).to(self.device)}

    def _fs(self, batch: Mapping[str, Any], size: int) -> torch.Tensor:
        fps = batch.get("fps")
        if fps is None:
            fps = torch.full((size,), float(self.config.data.fps))
        return torch.as_tensor(fps).reshape(size).round().long().to(self.device)

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def __call__(self, batch: Mapping[str, Any], host_rng: np.random.Generator,
                 generator: torch.Generator) -> DiffusionInputs:
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            if self.config.is_trajectory_stage:
                return self._trajectory(batch, host_rng, generator)
            return self._video(batch, host_rng, generator)

    def _trajectory(self, batch, host_rng, generator) -> DiffusionInputs:
        cfg = self.config
        _require(batch, STAGE1_KEYS + (("placement_mask_rgb",) if cfg.stage ==
                                       "trajectory_position" else ()), cfg.stage)
        prompts = list(batch["prompt"])
        size = len(prompts)
        drop, drop_image = self._drops(size, host_rng)
        mask_video = self._to_device(batch["mask_video"])
        latents = self._encode(mask_video, sample=True, generator=generator)
        num_frames = latents.shape[2]
        first_masks = self._first_frame_condition(batch, host_rng, size)
        if cfg.stage == "trajectory_text":
            image_latent, mask_latent = self._encode_frames(batch["first_frame"], first_masks)
            condition = tt_condition(image_latent, mask_latent, num_frames)
            context = self._context(prompts, drop)
        else:
            image_latent, mask_latent, placement_latent = self._encode_frames(
                batch["first_frame"], first_masks, batch["placement_mask_rgb"])
            # Dropped samples see a zero placement slot (pipeline's unconditional branch).
            keep = torch.as_tensor(~drop, device=self.device).float().view(-1, 1, 1, 1, 1)
            condition = pt_condition(image_latent, mask_latent, placement_latent * keep,
                                     num_frames)
            context = self._context([""] * size, np.zeros(size, dtype=bool))
        weights = None
        if cfg.stage1.fg_weight != 1.0:
            weights = foreground_loss_weights(mask_video, cfg.stage1.fg_weight,
                                              self.vae.spatial_factor)
        if cfg.stage1.last_frame_weight != 1.0:
            weights = last_frame_loss_weights(latents, weights, cfg.stage1.last_frame_weight)
        return DiffusionInputs(latents, condition, context, self._fs(batch, size), weights,
                               **self._image_inputs(batch, drop_image))

    def _first_frame_condition(self, batch, host_rng, size: int) -> Any:
        """The colour-coded first-frame masks; with ``stage1.actor_condition_drop_prob`` some
        rows lose the actor (training/actor_drop.py). No draw when it is 0, so runs without it
        keep their random streams."""
        p = self.config.stage1.actor_condition_drop_prob
        if p <= 0:
            return batch["object_mask_rgb"]
        _require(batch, ("object_masks",), self.config.stage)
        return drop_first_frame_actor(batch["object_mask_rgb"], batch["object_masks"],
                                      host_rng.random(size) < p)

    def _video(self, batch, host_rng, generator) -> DiffusionInputs:
        cfg, s2 = self.config, self.config.stage2
        _require(batch, STAGE2_KEYS, cfg.stage)
        prompts = list(batch["prompt"])
        size = len(prompts)
        drop, drop_image = self._drops(size, host_rng)
        latents = self._encode(self._to_device(batch["video"]), sample=True, generator=generator)
        (image_latent,) = self._encode_frames(batch["first_frame"])

        actor_masks = _masks_numpy(batch["actor_masks"])
        object_masks = _masks_numpy(batch["object_masks"])
        trajectory_latents = None
        if s2.control in ("concat", "controlnet"):
            trajectories = []
            for actor, obj in zip(actor_masks, object_masks):
                if s2.trajectory_content == "actor_only":
                    obj = np.zeros_like(obj)
                if s2.random_dilate_erode:
                    actor, obj = random_dilate_erode((actor, obj), p=s2.dilate_erode_prob,
                                                     kernel_sizes=s2.dilate_erode_kernels,
                                                     rng=host_rng)
                trajectories.append(uint8_video_to_tensor(encode_mask_video(obj, actor)))
            trajectory_latents = self._encode(self._to_device(torch.stack(trajectories)))
        if s2.control == "concat":
            condition = video_condition(trajectory_latents, image_latent)
        else:
            # none (DynamiCrafter-ft baseline) / controlnet (the trajectory enters through the
            # branch instead): the concat trajectory channels carry zeros.
            condition = video_condition(torch.zeros_like(latents), image_latent)
        control_hint = trajectory_latents if s2.control == "controlnet" else None

        weights = None
        if s2.contact_loss_lambda != 1.0:
            # Contact map from the unperturbed ground-truth masks: it marks where the real
            # video's contact pixels are.
            contact = contact_map(actor_masks, object_masks, s2.contact_dilation_kernel)
            pixel_weights = contact_loss_weights(contact, s2.contact_loss_lambda)
            weights = downsample_weights(pixel_weights, self.vae.spatial_factor,
                                         mode=s2.contact_downsample)
            weights = weights.unsqueeze(1).to(self.device, non_blocking=True)
        # The released stage 2 sees the empty prompt (the trajectory carries the action), as the
        # pipeline's stage 2 does at inference; only the text+image baseline (control "none",
        # DynamiCrafter-ft) keeps the prompt, its one description of the motion.
        context = self._context(prompts, drop) if s2.control == "none" else \
            self._context([""] * size, np.zeros(size, dtype=bool))
        return DiffusionInputs(latents, condition, context,
                               self._fs(batch, size), weights, control_hint,
                               loss_form=s2.contact_loss_form,
                               **self._image_inputs(batch, drop_image))
