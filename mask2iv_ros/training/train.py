"""``mask2iv-train``: offline training of Mask2IV stage 1 (TT-Gen / PT-Gen) and stage 2.

One process on CPU::

    mask2iv-train --config training/tiny_stage1_text.yaml

Several GPUs (one process each; HF accelerate sets up the process group)::

    accelerate launch --multi_gpu --num_processes 2 -m mask2iv_ros.training.train \\
        --config training/paper_stage2.yaml

``--resume`` continues from the newest complete checkpoint in ``<output_dir>/checkpoints``;
``--export`` only writes the UNet of the newest checkpoint into the pipeline folder.

With ``stage2.control: controlnet`` the trained module is the UNet plus a ControlNet branch
(:class:`~mask2iv_ros.models.controlnet.ControlledVideoUNet`): one optimizer, one EMA and one
checkpoint ``model.safetensors`` cover both (keys ``unet.*`` / ``controlnet.*``). With the image
cross-attention branch (``model.image_encoder``) the trained module also holds the Resampler
(:class:`~mask2iv_ros.training.image_context.ImageContextModel`, keys ``denoiser.*`` /
``image_projection.*``), trained with the UNet as in DynamiCrafter; the image encoder is frozen.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from mask2iv_ros.pipeline.conditioning import model_input
from mask2iv_ros.pipeline.sampling import dynamic_rescale_schedule

from mask2iv_ros.models import layout
from mask2iv_ros.models.controlnet import ControlledVideoUNet, VideoControlNet
from mask2iv_ros.models.resampler import Resampler
from mask2iv_ros.models.unet import VideoUNet

from .components import (CheckpointReader, build_denoiser, build_image_encoder,
                         build_image_projection, build_noise_scheduler, build_text_encoder,
                         build_unet, build_vae, freeze, freeze_temporal_attention)
from .config import TrainConfig, load_config
from .dataset import build_dataset
from .ema import ParameterEMA
from .export import export_unet, sub_state
from .image_context import ImageContextModel
from .losses import rescale_x0, weighted_diffusion_loss
from .stage_inputs import StageInputs
from .loop import StepTrainer, parse_run_args, resolve_mixed_precision, run_verb  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)


def _check_checkpoint_concat_order(folder: Path) -> None:
    """Refuse a training checkpoint written with the project's old concat order: its input conv
    (and the optimizer moments of it) would meet the conditioning channels swapped."""
    state_path = Path(folder) / "trainer_state.json"
    if not state_path.is_file():
        return  # load_checkpoint reports the incomplete folder
    state = json.loads(state_path.read_text(encoding="utf-8"))
    if not layout.is_release_order(state, str(state_path)):
        raise ValueError(f"--resume: {folder} was written with the old concat order (no "
                         f"{layout.CONCAT_ORDER_KEY!r} in trainer_state.json) and cannot be "
                         "continued. Export it with the mask2iv_ros version that wrote it, then "
                         "start a new run with model.init_from=<exported UNet folder> (converted "
                         "on load, see mask2iv_ros.models.layout).")


class Trainer(StepTrainer):
    """Builds everything from a :class:`TrainConfig` and runs the optimisation loop."""

    def __init__(self, config: TrainConfig, resume: bool = False,
                 show_progress: bool = True) -> None:
        self._start_run(config, show_progress)
        acc = self.accelerator
        self.description = config.stage

        # Frozen encoders keep fp32 weights (export writes them, and other stages exporting into
        # the same pipeline compare against them) and run under bf16 autocast in bf16 training;
        # fp16 is not used for them (fp16 VAEs can overflow).
        frozen_dtype = torch.float32
        self.vae = freeze(build_vae(config.model.vae)).to(self.device, frozen_dtype)
        self.text_encoder = freeze(build_text_encoder(config.model.text_encoder)).to(
            self.device, frozen_dtype)
        self.stage_inputs = StageInputs(
            config, self.vae, self.text_encoder, self.device,
            autocast_dtype=torch.bfloat16 if acc.mixed_precision == "bf16" else None)
        # model.init_from is read once for the UNet, Resampler and image encoder.
        checkpoints = CheckpointReader()
        with torch.random.fork_rng(devices=[]):  # the UNet init does not depend on it
            image_encoder = build_image_encoder(config.model, checkpoints)
        self.image_encoder = None if image_encoder is None else \
            freeze(image_encoder).to(self.device, frozen_dtype)

        unet = build_unet(config.model, self.text_encoder, config.data.num_frames,
                          self.vae.latent_channels, checkpoints)
        denoiser = build_denoiser(config.model, unet, config.uses_controlnet,
                                  hint_channels=self.vae.latent_channels)
        self.frozen_names: list[str] = []
        if config.model.freeze_temporal_attention:
            self.frozen_names = freeze_temporal_attention(denoiser)
        if self.image_encoder is not None:
            projection = build_image_projection(config.model, unet.config, self.image_encoder,
                                                config.data.num_frames, checkpoints)
            denoiser = ImageContextModel(denoiser, projection, self.image_encoder)
        del checkpoints
        trainable = [p for p in denoiser.parameters() if p.requires_grad]
        logger.info("training %s parameters (%s frozen in the trained module)",
                    f"{sum(p.numel() for p in trainable):,}",
                    f"{sum(p.numel() for p in denoiser.parameters() if not p.requires_grad):,}")
        # ``denoiser`` is what the optimizer trains (DDP-wrapped on several GPUs).
        self.denoiser = self._prepare_optimizer(denoiser, trainable)
        self.noise_scheduler = build_noise_scheduler(config.diffusion)
        # DynamiCrafter's use_dynamic_rescale: x0 * s(t) before noising (None = off); the
        # exported pipeline records the base scale so its sampler undoes it.
        self.scale_arr = None if config.diffusion.dynamic_rescale is None else \
            dynamic_rescale_schedule(config.diffusion.dynamic_rescale,
                                     num_train_timesteps=config.diffusion.num_train_timesteps
                                     ).to(self.device, torch.float32)
        self.ema = ParameterEMA(self.model, config.ema.decay,
                                config.ema.warmup) if config.ema.enabled else None
        self._start_data(build_dataset(config, acc), resume)

    # ------------------------------------------------------------------ modules
    @property
    def model(self) -> VideoUNet | ControlledVideoUNet:
        """The trained module without its DDP / autocast wrapper."""
        return self.accelerator.unwrap_model(self.denoiser)

    @property
    def _denoiser(self) -> VideoUNet | ControlledVideoUNet:
        model = self.model
        return model.denoiser if isinstance(model, ImageContextModel) else model

    @property
    def unet(self) -> VideoUNet:
        model = self._denoiser
        return model.unet if isinstance(model, ControlledVideoUNet) else model

    @property
    def controlnet(self) -> Optional[VideoControlNet]:
        """The ControlNet branch (``stage2.control: controlnet``), else None."""
        model = self._denoiser
        return model.controlnet if isinstance(model, ControlledVideoUNet) else None

    @property
    def image_projection(self) -> Optional[Resampler]:
        """The Resampler of the image branch (trained unless model.image_projection.trainable
        is false), else None."""
        model = self.model
        return model.image_projection if isinstance(model, ImageContextModel) else None

    # ------------------------------------------------------------------ StepTrainer hooks
    @property
    def _trained_module(self) -> torch.nn.Module:
        return self.denoiser

    @property
    def _checkpoint_module(self) -> torch.nn.Module:
        return self.model

    def _after_optimizer_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def _check_resumable(self, folder: Path) -> None:
        _check_checkpoint_concat_order(folder)

    def _checkpoint_extra(self) -> dict:
        return {layout.CONCAT_ORDER_KEY: layout.RELEASE_ORDER}

    # ------------------------------------------------------------------ export
    def export(self) -> Path:
        """Write the trained (EMA if configured) UNet, and the ControlNet branch if any, into
        the pipeline folder (main process)."""
        folder = self.config.resolved_export_dir
        if self.accelerator.is_main_process:
            ema_state = self.ema.state_dict() \
                if self.ema is not None and self.config.ema.export_ema else None
            image_branch = {}
            if self.image_projection is not None:
                image_branch = dict(image_encoder=self.image_encoder,
                                    image_projection=self.image_projection,
                                    image_projection_ema_state=sub_state(ema_state,
                                                                         "image_projection."))
                ema_state = sub_state(ema_state, "denoiser.")
            if self.controlnet is None:
                export_unet(self.config, self.unet, self.vae, self.text_encoder, ema_state,
                            **image_branch)
            else:
                export_unet(self.config, self.unet, self.vae, self.text_encoder,
                            sub_state(ema_state, "unet."), controlnet=self.controlnet,
                            controlnet_ema_state=sub_state(ema_state, "controlnet."),
                            **image_branch)
        self.accelerator.wait_for_everyone()
        return folder

    # ------------------------------------------------------------------ optimisation
    def _timesteps(self, batch: int) -> torch.Tensor:
        """Training timesteps: uniform over the schedule, or over ``diffusion.train_timesteps``
        (each +- ``train_timestep_jitter``, clipped to the schedule)."""
        cfg, total = self.config.diffusion, self.noise_scheduler.config.num_train_timesteps
        if cfg.train_timesteps is None:
            return torch.randint(0, total, (batch,), generator=self.generator, device=self.device)
        grid = torch.tensor(cfg.train_timesteps, device=self.device)
        picked = grid[torch.randint(0, len(grid), (batch,), generator=self.generator,
                                    device=self.device)]
        jitter = cfg.train_timestep_jitter
        if jitter:
            picked = picked + torch.randint(-jitter, jitter + 1, (batch,), generator=self.generator,
                                            device=self.device)
        return picked.clamp(0, total - 1)

    def _loss(self, batch: dict) -> torch.Tensor:
        inputs = self.stage_inputs(batch, self.host_rng, self.generator)
        latents = inputs.latents
        noise = torch.randn(latents.shape, generator=self.generator, device=self.device)
        timesteps = self._timesteps(latents.shape[0])
        latents = rescale_x0(latents, timesteps, self.scale_arr)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        prediction = self.denoiser(model_input(noisy, inputs.condition), timesteps,
                                   **inputs.model_kwargs())
        return weighted_diffusion_loss(prediction, target, inputs.loss_weights, inputs.loss_form)


# ---------------------------------------------------------------------- CLI


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return parse_run_args("mask2iv-train", __doc__, argv, config_help="training YAML (see training/)",
                          override_example="optim.lr=1e-4",
                          export_help="only export the newest checkpoint's UNet into the pipeline folder")


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_verb("mask2iv-train", parse_args(argv), load_config, Trainer,
                    lambda config: f", UNet exported to {config.resolved_export_dir}"
                    if config.export_at_end else "")


if __name__ == "__main__":
    sys.exit(main())
