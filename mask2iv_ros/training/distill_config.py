"""``mask2iv-distill`` configuration: YAML <-> dataclasses, checked like the training configs.

A config names the teacher pipeline folder and the stage to distil; data, optimiser, EMA and
stage-2 sections are the training config's own (:mod:`mask2iv_ros.training.config`), so keys
mean the same in both::

    stage: trajectory_position
    teacher: mask2iv_ros/assets/default_model
    lcd: {num_ddim_timesteps: 50, guidance_scale: null, loss: huber}
    optim: {lr: 1.0e-4, batch_size: 4}
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence


from .config import (DataConfig, DiffusionConfig, EMAConfig, ModelConfig, OptimConfig, RunConfig,
                     Stage2Config, TextEncoderConfig, TrainConfig, VAEConfig, _require)


@dataclass
class LCDConfig:
    """Latent consistency distillation (:mod:`mask2iv_ros.training.lcd`)."""

    # Coarse DDIM grid of the teacher's solver (LCM's N; skip k = 1000 // N training steps).
    # Also the exported LCMScheduler's original_inference_steps.
    num_ddim_timesteps: int = 50
    # Classifier-free guidance folded into the teacher's step. null = the teacher folder's
    # recommended setting (model_index.json config.sampling.guidance_scale /
    # guidance_rescale; 7.5 / 0.7 for folders that record none).
    guidance_scale: Optional[float] = None
    guidance_rescale: Optional[float] = None
    # Stage 2's prompt: "empty" as the released Mask2IV samples its video stage (guidance then
    # contrasts only image tokens, when the UNet has them); "prompt": the episode's prompt with
    # the empty prompt as the unconditional branch.
    video_prompt: Literal["empty", "prompt"] = "empty"
    loss: Literal["huber", "l2"] = "huber"
    huber_c: float = 0.001
    # LCM boundary condition c_skip / c_out (sigma_data 0.5, as LCMScheduler fixes it); the
    # timestep scaling is written into the exported LCMScheduler config.
    timestep_scaling: float = 10.0
    # Decay of the target network theta^- (EMA of the student, updated every step).
    target_decay: float = 0.95
    # Which weights are exported: the target network (LCM's EMA), the online student, or the
    # slow EMA of the ema section (needs ema.enabled).
    export_weights: Literal["target", "online", "ema"] = "target"
    # Sampling defaults recorded in the exported folder (model_index.json config.sampling).
    export_steps: int = 4


@dataclass
class DistillConfig(RunConfig):
    # The run fields (output_dir, seed, time budget, logging, checkpoints, export) are
    # RunConfig's, shared with mask2iv-train; these defaults differ.
    stage: Literal["trajectory_text", "trajectory_position", "video"] = "trajectory_position"
    output_dir: str = "runs/distill"
    max_steps: int = 2000
    checkpoint_every: int = 500
    keep_last_checkpoints: int = 2
    # Pipeline folder of the teacher (Mask2IVPipeline.from_pretrained); the student starts as a
    # copy of its UNet for ``stage`` and the VAE / text encoder / image branch are its, frozen.
    # Written at the end into export_dir (default output_dir/pipeline): a copy of the teacher
    # folder (or of that folder, when another stage was distilled into it before) with the
    # student UNet and an LCMScheduler.
    teacher: str = "mask2iv_ros/assets/default_model"
    gradient_checkpointing: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    # Stage 2's conditions are built as in training (random dilation/erosion of the trajectory);
    # contact_loss_lambda != 1 weights the consistency loss like the training loss.
    stage2: Stage2Config = field(default_factory=Stage2Config)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    lcd: LCDConfig = field(default_factory=LCDConfig)

    # ------------------------------------------------------------------ derived
    def train_config(self, diffusion: DiffusionConfig, image_branch: bool,
                     condition_dropout_prob: float) -> TrainConfig:
        """The training config whose data / stage-input code this run reuses: the teacher's
        frozen encoders, its schedule, and a fixed drop of the conditions (0: all kept, 1: all
        dropped, i.e. the pipeline's unconditional inputs)."""
        teacher = Path(self.teacher)
        model = ModelConfig(
            unet_preset="tiny", vae=VAEConfig(path=str(teacher / "vae")),
            text_encoder=TextEncoderConfig(type="folder", path=str(teacher / "text_encoder")))
        if image_branch:
            model.image_encoder.type = "folder"
            model.image_encoder.path = str(teacher / "image_encoder")
        return TrainConfig(
            stage=self.stage, output_dir=self.output_dir, seed=self.seed,
            mixed_precision=self.mixed_precision, cpu=self.cpu, data=copy.deepcopy(self.data),
            model=model,
            diffusion=dataclasses.replace(diffusion, condition_dropout_prob=condition_dropout_prob),
            stage2=dataclasses.replace(self.stage2, control="concat"), optim=self.optim)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        require = _require
        self.validate_run()
        require(bool(self.teacher), "teacher", "a pipeline folder", self.teacher)
        lcd = self.lcd
        require(1 <= lcd.num_ddim_timesteps <= 1000, "lcd.num_ddim_timesteps",
                "an int in [1, 1000]", lcd.num_ddim_timesteps)
        require(1 <= lcd.export_steps <= lcd.num_ddim_timesteps, "lcd.export_steps",
                f"an int in [1, lcd.num_ddim_timesteps = {lcd.num_ddim_timesteps}] "
                "(LCMScheduler samples a subset of the distillation grid)", lcd.export_steps)
        if lcd.guidance_scale is not None:
            require(lcd.guidance_scale >= 0, "lcd.guidance_scale", "a float >= 0 or null",
                    lcd.guidance_scale)
        if lcd.guidance_rescale is not None:
            require(0 <= lcd.guidance_rescale <= 1, "lcd.guidance_rescale",
                    "a float in [0, 1] or null", lcd.guidance_rescale)
        require(lcd.huber_c > 0, "lcd.huber_c", "a positive float", lcd.huber_c)
        require(lcd.timestep_scaling > 0, "lcd.timestep_scaling", "a positive float",
                lcd.timestep_scaling)
        require(0 <= lcd.target_decay < 1, "lcd.target_decay", "a float in [0, 1)",
                lcd.target_decay)
        require(lcd.export_weights != "ema" or self.ema.enabled, "lcd.export_weights",
                "'target' or 'online' unless ema.enabled", lcd.export_weights)
        # the shared sections' own checks (data sizes, optimiser, EMA, stage 2)
        TrainConfig(stage=self.stage, data=self.data, stage2=self.stage2, optim=self.optim,
                    ema=self.ema, max_steps=self.max_steps).validate()


def load_distill_config(path: str | Path, overrides: Sequence[str] = ()) -> DistillConfig:
    """Read a distillation YAML, apply ``key=value`` overrides (dotted keys) and validate."""
    return DistillConfig.load(path, overrides)
