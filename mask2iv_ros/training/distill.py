"""``mask2iv-distill``: latent consistency distillation of one stage of a Mask2IV pipeline into a
few-step student sampled with ``LCMScheduler`` (LCM / AnimateLCM / T2V-Turbo style).

The teacher is the pipeline folder's DDIM sampler with its classifier-free guidance folded in:
each step the teacher takes one guided DDIM step on a coarse grid (``lcd.num_ddim_timesteps``)
and the student learns to map both ends of that step to the same clean latent, the far end
through the target network (an EMA of the student). Arithmetic: :mod:`.lcd`; export:
:mod:`.distill_export`. The run uses the trainer's parts: the dataset and resumable data order,
the stage inputs (conditioning built by :mod:`mask2iv_ros.pipeline.conditioning`, as in
training and sampling), accelerate, checkpoint folders of safetensors with exact resume, the
time budget, the loss CSV and its curve.

One process on CPU::

    mask2iv-distill --config training/distill/tiny_distill.yaml

Several GPUs::

    accelerate launch --multi_gpu --num_processes 2 -m mask2iv_ros.training.distill \\
        --config training/distill/paper_distill_stage1.yaml

Then ``Mask2IVPipeline.from_pretrained(<export_dir>)`` samples in ``lcd.export_steps`` steps
without guidance (the recorded defaults).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from diffusers import LCMScheduler
from torch import nn

from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.pipeline import Mask2IVPipeline
from mask2iv_ros.pipeline.conditioning import model_input, pt_condition
from mask2iv_ros.pipeline.context import image_tokens, text_tokens

from . import lcd
from .components import freeze
from .config import DiffusionConfig
from .dataset import build_dataset
from .distill_config import DistillConfig, load_distill_config
from .distill_export import export_student
from .ema import ParameterEMA
from .export import cpu_unet_copy
from .stage_inputs import DiffusionInputs, StageInputs
from .loop import StepTrainer, parse_run_args, run_verb

logger = logging.getLogger(__name__)
# Classifier-free guidance of folders that record no sampling defaults (the pipeline's former
# call defaults).
LEGACY_GUIDANCE = (7.5, 0.7)


def teacher_guidance(config: Any, guidance_scale: Optional[float],
                     guidance_rescale: Optional[float]) -> tuple[float, float]:
    """``(scale, rescale)`` folded into the teacher: the given values, else the folder's
    recorded defaults (``config.sampling``), else :data:`LEGACY_GUIDANCE`."""
    sampling = getattr(config, "sampling", None)
    recorded = (sampling.guidance_scale, sampling.guidance_rescale) if sampling is not None \
        else (LEGACY_GUIDANCE[0], getattr(config, "guidance_rescale", LEGACY_GUIDANCE[1]))
    return (float(recorded[0] if guidance_scale is None else guidance_scale),
            float(recorded[1] if guidance_rescale is None else guidance_rescale))


def teacher_diffusion(scheduler: Any) -> DiffusionConfig:
    """The teacher scheduler's noise schedule as a training DiffusionConfig."""
    cfg = scheduler.config
    return DiffusionConfig(num_train_timesteps=cfg.num_train_timesteps, beta_start=cfg.beta_start,
                           beta_end=cfg.beta_end, beta_schedule=cfg.beta_schedule,
                           prediction_type=cfg.prediction_type,
                           rescale_betas_zero_snr=bool(cfg.get("rescale_betas_zero_snr", False)))


def placement_slot(latents: torch.Tensor) -> torch.Tensor:
    """1 where PT-Gen's concat conditioning holds the placement latent, else 0 (``[1, 2C, T, h,
    w]`` for target latents ``[B, C, T, h, w]``), from :func:`pt_condition` itself, so it follows
    the conditioning layout."""
    _, channels, frames, height, width = latents.shape
    zeros = latents.new_zeros(1, channels, 1, height, width)
    return pt_condition(zeros, zeros, torch.ones_like(zeros), frames)


class LCDModules(nn.Module):
    """The student and its target network, checkpointed together (``student.*``/``target.*``)."""

    def __init__(self, student: VideoUNet, target: VideoUNet) -> None:
        super().__init__()
        self.student = student
        self.target = target


class Distiller(StepTrainer):
    """Builds the teacher, student, target network and data from a :class:`DistillConfig` and
    runs latent consistency distillation."""

    loss_name = "distillation loss"

    def __init__(self, config: DistillConfig, resume: bool = False,
                 show_progress: bool = True) -> None:
        self._start_run(config, show_progress)
        acc = self.accelerator
        self.description = f"distill {config.stage}"
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(acc.mixed_precision)
        self.autocast_dtype = autocast_dtype

        teacher_pipe = Mask2IVPipeline.from_pretrained(config.teacher)
        self._check_teacher(teacher_pipe)
        self.guidance_scale, self.guidance_rescale = teacher_guidance(
            teacher_pipe.config, config.lcd.guidance_scale, config.lcd.guidance_rescale)
        self.prediction_type = teacher_pipe.scheduler.config.prediction_type
        alphas_cumprod = teacher_pipe.scheduler.alphas_cumprod
        self.solver = lcd.DDIMSolver(alphas_cumprod, config.lcd.num_ddim_timesteps).to(self.device)
        self.alphas_cumprod = self.solver.alphas_cumprod

        # Frozen encoders of the teacher (fp32 weights, autocast in mixed precision).
        self.vae = freeze(teacher_pipe.vae).to(self.device, torch.float32)
        self.text_encoder = freeze(teacher_pipe.text_encoder).to(self.device, torch.float32)
        image_branch = teacher_pipe.image_encoder is not None
        self.image_encoder = self.image_projection = None
        if image_branch:
            self.image_encoder = freeze(teacher_pipe.image_encoder).to(self.device, torch.float32)
            self.image_projection = freeze(teacher_pipe.image_projection).to(self.device,
                                                                             torch.float32)
        diffusion = teacher_diffusion(teacher_pipe.scheduler)
        # The stage inputs keep every condition, except stage 2's prompt when it samples on the
        # empty prompt (lcd.video_prompt); the unconditional inputs are derived from them.
        self.video_empty = config.stage == "video" and config.lcd.video_prompt == "empty"
        self.train_config = config.train_config(diffusion, image_branch,
                                                1.0 if self.video_empty else 0.0)
        # as in training: frozen encoders under bf16 autocast in bf16 runs only (fp16 VAEs overflow)
        self.inputs = StageInputs(self.train_config, self.vae, self.text_encoder, self.device,
                                  autocast_dtype=torch.bfloat16 if acc.mixed_precision == "bf16"
                                  else None)
        self._empty_tokens: Optional[torch.Tensor] = None
        # Guidance needs an unconditional branch that differs from the conditional one.
        self.guided = self.guidance_scale != 1.0 and (not self.video_empty or image_branch)

        teacher_unet: VideoUNet = getattr(teacher_pipe, config.component)
        teacher_dtype = torch.bfloat16 if acc.mixed_precision == "bf16" else torch.float32
        self.teacher = freeze(copy.deepcopy(teacher_unet)).to(self.device, teacher_dtype)
        student = copy.deepcopy(teacher_unet).train().requires_grad_(True)
        if config.gradient_checkpointing:
            student.set_gradient_checkpointing(True)
        # the target network runs without dropout (the temporal convs' 0.1): a deterministic target
        target = copy.deepcopy(teacher_unet).eval().requires_grad_(False)
        self.teacher_folder = Path(config.teacher)
        del teacher_pipe, teacher_unet

        self.student = self._prepare_optimizer(student, list(student.parameters()))
        self.target = target.to(self.device)
        self.lcd_modules = LCDModules(self.unwrapped_student, self.target)
        self.ema = ParameterEMA(self.unwrapped_student, config.ema.decay, config.ema.warmup) \
            if config.ema.enabled else None
        self._start_data(build_dataset(self.train_config, acc), resume)

    # ------------------------------------------------------------------ set-up helpers
    def _check_teacher(self, pipe: Mask2IVPipeline) -> None:
        cfg = self.config
        if getattr(pipe, cfg.component) is None:
            raise ValueError(f"teacher: {cfg.teacher} has no {cfg.component} (stage {cfg.stage!r})")
        if isinstance(pipe.scheduler, LCMScheduler):
            raise ValueError(f"teacher: {cfg.teacher} is already a distilled (LCMScheduler) "
                             "pipeline; distil from the DDIM teacher folder")
        sampling = getattr(pipe.config, "sampling", pipe.config)
        if getattr(sampling, "dynamic_rescale", None) is not None:
            raise ValueError(f"teacher: {cfg.teacher} is sampled with DynamiCrafter's dynamic "
                             "rescale (config dynamic_rescale not null), which the LCM student "
                             "and LCMScheduler do not model; not supported")
        if pipe.scheduler.config.prediction_type not in lcd.PREDICTION_TYPES:
            raise ValueError(f"teacher: unsupported prediction_type "
                             f"{pipe.scheduler.config.prediction_type!r}")

    @property
    def unwrapped_student(self) -> VideoUNet:
        return self.accelerator.unwrap_model(self.student)

    # ------------------------------------------------------------------ StepTrainer hooks
    @property
    def _trained_module(self) -> nn.Module:
        return self.student

    @property
    def _checkpoint_module(self) -> nn.Module:
        return self.lcd_modules

    def _after_optimizer_step(self) -> None:
        """The target network and the optional slow EMA follow the student."""
        lcd.update_target(self.target, self.unwrapped_student, self.config.lcd.target_decay)
        if self.ema is not None:
            self.ema.update(self.unwrapped_student)

    def _checkpoint_extra(self) -> dict:
        return {"kind": "lcd"}

    def _plot_title(self) -> str:
        return f"consistency distillation: {self.config.stage} ({self.config.component})"

    # ------------------------------------------------------------------ export
    def exported_unet(self) -> VideoUNet:
        """fp32 CPU copy of the weights ``lcd.export_weights`` names."""
        which = self.config.lcd.export_weights
        if which == "target":
            return cpu_unet_copy(self.target)
        ema_state = self.ema.state_dict() if which == "ema" else None
        return cpu_unet_copy(self.unwrapped_student, ema_state)

    def export(self) -> Path:
        """Write the student into the LCM pipeline folder (main process)."""
        cfg = self.config
        folder = cfg.resolved_export_dir
        if self.accelerator.is_main_process:
            info = {"teacher": str(self.teacher_folder), "stage": cfg.stage,
                    "steps": self.global_step, "weights": cfg.lcd.export_weights,
                    "num_ddim_timesteps": cfg.lcd.num_ddim_timesteps,
                    "guidance_scale": self.guidance_scale,
                    "guidance_rescale": self.guidance_rescale,
                    "video_prompt": cfg.lcd.video_prompt if cfg.stage == "video" else None,
                    "loss": cfg.lcd.loss, "target_decay": cfg.lcd.target_decay}
            export_student(folder, self.teacher_folder, cfg.component, self.exported_unet(),
                           num_ddim_timesteps=cfg.lcd.num_ddim_timesteps,
                           timestep_scaling=cfg.lcd.timestep_scaling,
                           num_inference_steps=cfg.lcd.export_steps, info=info)
        self.accelerator.wait_for_everyone()
        return folder

    # ------------------------------------------------------------------ one LCD step
    def _context(self, inputs: DiffusionInputs) -> torch.Tensor:
        """Text tokens, then the frozen image branch's tokens when the teacher has it."""
        if inputs.images is None:
            return inputs.context
        with self._autocast():
            tokens = image_tokens(self.image_encoder, self.image_projection, inputs.images,
                                  inputs.drop_image)
        return torch.cat([inputs.context, tokens.to(inputs.context.dtype)], dim=1)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def empty_prompt_tokens(self, batch: int) -> torch.Tensor:
        """The empty prompt's text tokens ``[batch, L, D]`` (computed once)."""
        if self._empty_tokens is None:
            with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                 enabled=self.inputs.autocast_dtype is not None):
                self._empty_tokens = text_tokens(self.text_encoder, [""]).float()
        return self._empty_tokens.expand(batch, -1, -1)

    def unconditional(self, cond: DiffusionInputs) -> DiffusionInputs:
        """What the pipeline's unconditional branch sees for these inputs
        (:mod:`mask2iv_ros.pipeline.conditioning`): PT-Gen without the placement latent, TT-Gen
        and stage 2 on the empty prompt; with the image branch, the all-zero image too."""
        changes: dict[str, Any] = {}
        if self.config.stage == "trajectory_position":
            changes["condition"] = cond.condition * (1.0 - placement_slot(cond.latents))
        elif not self.video_empty:
            changes["context"] = self.empty_prompt_tokens(cond.latents.shape[0]).to(
                cond.context.dtype)
        if cond.images is not None:
            changes["drop_image"] = torch.ones_like(cond.drop_image)
        return dataclasses.replace(cond, **changes)

    def stage_inputs(self, batch: dict) -> tuple[DiffusionInputs, Optional[DiffusionInputs]]:
        """Conditional and (when guided) unconditional inputs of one batch, with their full
        cross-attention context."""
        cond = self.inputs(batch, self.host_rng, self.generator)
        uncond = self.unconditional(cond) if self.guided else None
        cond = dataclasses.replace(cond, context=self._context(cond))
        if uncond is None:
            return cond, None
        return cond, dataclasses.replace(uncond, context=self._context(uncond))

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, index: torch.Tensor, cond: DiffusionInputs,
                     uncond: Optional[DiffusionInputs]) -> torch.Tensor:
        """One guided DDIM step of the teacher from grid index ``index`` (batched CFG)."""
        start, _ = self.solver.start_and_end(index)
        x_in, timesteps = x, start
        condition, context, fs = cond.condition, cond.context, cond.fs
        if uncond is not None:
            x_in, timesteps = torch.cat([x, x]), torch.cat([start, start])
            condition = torch.cat([condition, uncond.condition])
            context = torch.cat([context, uncond.context])
            fs = torch.cat([fs, uncond.fs])
        with self._autocast():
            output = self.teacher(model_input(x_in, condition), timesteps, context, fs).float()
        conditional, unconditional = output.chunk(2) if uncond is not None else (output, None)
        guided = lcd.guided_output(conditional, unconditional, self.guidance_scale,
                                   self.guidance_rescale)
        x0, eps = lcd.x0_and_eps(guided, start, x, self.alphas_cumprod, self.prediction_type)
        return self.solver.step(x0, eps, index)

    def consistency(self, model: nn.Module, x: torch.Tensor, timesteps: torch.Tensor,
                    inputs: DiffusionInputs) -> torch.Tensor:
        with self._autocast():
            output = model(model_input(x, inputs.condition), timesteps, inputs.context, inputs.fs)
        return lcd.consistency_output(output, timesteps, x, self.alphas_cumprod,
                                      self.prediction_type,
                                      timestep_scaling=self.config.lcd.timestep_scaling)

    def _loss(self, batch: dict) -> torch.Tensor:
        cond, uncond = self.stage_inputs(batch)
        x0 = cond.latents
        index = self.solver.sample_indices(x0.shape[0], self.generator)
        start, end = self.solver.start_and_end(index)
        noise = torch.randn(x0.shape, generator=self.generator, device=self.device)
        x_start = self.solver.add_noise(x0, noise, start)
        prediction = self.consistency(self.student, x_start, start, cond)
        x_prev = self.teacher_step(x_start, index, cond, uncond)
        with torch.no_grad():
            target = self.consistency(self.target, x_prev, end, cond)
        return lcd.consistency_loss(prediction, target, self.config.lcd.loss,
                                    self.config.lcd.huber_c, cond.loss_weights)


# ---------------------------------------------------------------------- CLI


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return parse_run_args("mask2iv-distill", __doc__, argv, config_help="distillation YAML (see training/)",
                          override_example="lcd.num_ddim_timesteps=20",
                          export_help="only export the newest checkpoint's student into the LCM folder")


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_verb("mask2iv-distill", parse_args(argv), load_distill_config, Distiller,
                    lambda config: f", LCM pipeline in {config.resolved_export_dir}")


if __name__ == "__main__":
    sys.exit(main())
