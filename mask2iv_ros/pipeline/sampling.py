"""The denoising loop shared by both stages: any diffusers scheduler, batched CFG, interrupts.

Classifier-free guidance runs the conditional and unconditional branches as one batch of 2.
The loop never reads device values back to the host (timesteps for callbacks come from a CPU
copy made before the loop), so CUDA work queues up without synchronisation. A non-finite latent
raises :class:`Mask2IVNonFiniteError` naming the stage and the first bad step: on the CPU
checked after every step, on other devices through an on-device flag read once per stage.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from tqdm.auto import tqdm

from .conditioning import model_input
from .ddim import SafeDDIMScheduler

# one generator for the whole batch, or one per sample (batched hypotheses: seed, seed+1, ...)
Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class StepInfo:
    """What ``callback_on_step_end`` receives after each denoising step."""

    stage: str          # "trajectory" | "video"
    step: int           # 1-based
    total_steps: int
    timestep: int


class Mask2IVInterrupted(RuntimeError):
    """Raised inside a running pipeline call after :meth:`Mask2IVPipeline.interrupt`."""


class Mask2IVNonFiniteError(FloatingPointError):
    """A denoising step produced NaN/inf latents (the video would come out black)."""

    def __init__(self, stage: str, step: int, total_steps: int, hint: str = "") -> None:
        self.stage, self.step, self.total_steps = stage, step, total_steps
        super().__init__(f"{stage} stage step {step}/{total_steps}: latent has NaN/inf{hint}")


def dynamicrafter_scheduler() -> SafeDDIMScheduler:
    """DynamiCrafter's schedule and DDIM sampler in diffusers terms (docs/ARCHITECTURE.md).

    ``timestep_spacing="trailing"`` is DynamiCrafter's ``uniform_trailing``; its last step goes
    to ``alphas_cumprod[0]`` (``set_alpha_to_one=False``), not to alpha_bar = 1.
    """
    return SafeDDIMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
        beta_schedule="scaled_linear", prediction_type="v_prediction",
        rescale_betas_zero_snr=True, timestep_spacing="trailing", clip_sample=False,
        set_alpha_to_one=False, steps_offset=0)


def dynamic_rescale_schedule(base_scale: float = 0.7, turning_step: int = 400,
                             num_train_timesteps: int = 1000) -> torch.Tensor:
    """DynamiCrafter's ``scale_arr`` (``use_dynamic_rescale``): the factor ``s(t)`` by which
    training multiplies the clean latent before noising at timestep ``t``.

    ``s`` falls linearly from 1 to ``base_scale`` over the first ``turning_step`` timesteps and
    stays at ``base_scale`` after. Training that reproduces DynamiCrafter computes
    ``x_start * s[t]``; sampling undoes it (``denoise(dynamic_rescale=...)``).
    """
    ramp = torch.linspace(1.0, base_scale, turning_step, dtype=torch.float64)
    return torch.cat([ramp, torch.full((num_train_timesteps,), base_scale, dtype=torch.float64)])


def rescale_guidance(guided: torch.Tensor, conditional: torch.Tensor,
                     guidance_rescale: float) -> torch.Tensor:
    """Guidance rescale of Lin et al. 2023 (sec. 3.4), as in DynamiCrafter's DDIM sampler.

    Matches the per-sample standard deviation of the guided prediction to the conditional one,
    then mixes ``guidance_rescale`` of that with the plain guided prediction.
    """
    dims = list(range(1, guided.dim()))
    # clamp: a constant guided prediction (e.g. a zero-initialised UNet) would give 0/0
    guided_std = guided.std(dim=dims, keepdim=True).clamp_min(1e-12)
    rescaled = guided * (conditional.std(dim=dims, keepdim=True) / guided_std)
    return guidance_rescale * rescaled + (1.0 - guidance_rescale) * guided


def autocast_context(device: torch.device) -> contextlib.AbstractContextManager:
    """fp32 on CPU; CUDA autocast in bf16 where supported, else fp16."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _step_kwargs(scheduler: SchedulerMixin, generator: Generators,
                 eta: float) -> tuple[dict, bool]:
    """Only pass ``eta``/``generator`` to schedulers whose ``step`` accepts them; the flag says
    whether the loop hands DDIM its noise (``variance_noise``) instead of the generator."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    own_noise = eta > 0 and "eta" in accepted and "variance_noise" in accepted
    if "generator" in accepted and not own_noise:
        kwargs["generator"] = generator
    return kwargs, own_noise


def _step_noise(shape: torch.Size, generator: Generators, device: torch.device) -> torch.Tensor:
    """A DDIM step's noise, drawn on the CPU as diffusers' ``randn_tensor`` draws it for a CPU
    generator (the same seed gives the same samples on every device). To a GPU it goes from
    pinned memory without blocking: a pageable copy would wait for the queued UNet each step."""
    noise = cpu_noise(shape, generator)
    if device.type != "cuda":
        return noise.to(device)
    return noise.pin_memory().to(device, non_blocking=True)


def cpu_noise(shape: torch.Size | tuple[int, ...], generator: Generators) -> torch.Tensor:
    """Standard normal float32 noise on the CPU. A list of generators draws sample ``i`` of the
    batch from ``generator[i]`` alone, as a batch-1 call with that generator would (diffusers'
    ``randn_tensor`` convention), so a batch of seeds equals a loop over them."""
    if not isinstance(generator, (list, tuple)):
        return torch.randn(shape, generator=generator, dtype=torch.float32)
    if len(generator) != shape[0]:
        raise ValueError(f"generator: expected one generator per sample ({shape[0]}), got "
                         f"{len(generator)}")
    return torch.cat([torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32)
                      for g in generator])


def _dynamic_rescale_corrections(scheduler: SchedulerMixin, timesteps: list[int],
                                 base_scale: float | None) -> list[float] | None:
    """Coefficients ``c_i`` with ``x_prev += c_i * pred_x0`` that turn diffusers' DDIM step into
    DynamiCrafter's ``x_prev = sqrt(a_prev) * r * pred_x0 + dir_xt + noise``, where
    ``r = s(t_prev) / s(t)`` (1 at the last step): ``c_i = sqrt(a_prev) * (r - 1)``.

    ``t_prev`` and ``a_prev`` are taken exactly as the scheduler's ``step`` takes them. Python
    floats, so the loop reads nothing back from the device.
    """
    if base_scale is None:
        return None
    if not isinstance(scheduler, DDIMScheduler):
        raise ValueError(f"dynamic_rescale: implemented for DDIMScheduler only, got "
                         f"{type(scheduler).__name__}; set dynamic_rescale=None")
    num_train = scheduler.config.num_train_timesteps
    scale = dynamic_rescale_schedule(base_scale, num_train_timesteps=num_train)
    alphas = scheduler.alphas_cumprod.double()
    corrections = []
    for t in timesteps:
        t_prev = scheduler.previous_timestep(t) if isinstance(scheduler, SafeDDIMScheduler) \
            else t - num_train // scheduler.num_inference_steps
        if t_prev < 0:  # last step: DynamiCrafter's ratio is 1 there
            corrections.append(0.0)
            continue
        ratio = float(scale[t_prev] / scale[t])
        corrections.append(float(alphas[t_prev]) ** 0.5 * (ratio - 1.0))
    return corrections


def denoise(
    unet: torch.nn.Module,
    scheduler: SchedulerMixin,
    condition: torch.Tensor,
    context: torch.Tensor | None,
    *,
    uncond_condition: torch.Tensor | None = None,
    uncond_context: torch.Tensor | None = None,
    fs: int | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    guidance_rescale: float = 0.0,
    eta: float = 0.0,
    dynamic_rescale: float | None = None,
    generator: Generators = None,
    stage: str = "trajectory",
    on_step: Callable[[StepInfo], None] | None = None,
    interrupt_event: threading.Event | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Sample latents ``[B, out_channels, T, h, w]`` given the concat ``condition`` ``[B, C, T, h, w]``.

    Guidance is on when ``guidance_scale != 1`` and an unconditional part differs from the
    conditional one: ``uncond_condition``/``uncond_context`` replace ``condition``/``context``
    in the unconditional branch (``None`` = same as conditional). The initial noise is drawn
    on the CPU from ``generator`` so a seed gives the same start on every device; a list of
    generators (one per sample) makes every sample of the batch what a batch-1 call with its
    generator gives, up to floating-point batching effects (:func:`cpu_noise`).
    ``dynamic_rescale`` (DynamiCrafter's ``base_scale``, 0.7 for its 512/1024 models) rescales
    the predicted clean latent each step as DynamiCrafter's DDIM sampler does; DDIM only.
    """
    device = condition.device
    batch, _, num_frames, height, width = condition.shape
    out_channels = unet.config.out_channels
    guided = guidance_scale != 1.0 and (uncond_condition is not None or uncond_context is not None)
    if guided:
        condition = torch.cat([condition, condition if uncond_condition is None else uncond_condition])
        if context is not None:
            context = torch.cat([context, context if uncond_context is None else uncond_context])
    model_batch = condition.shape[0]

    scheduler.set_timesteps(num_inference_steps)
    timesteps = scheduler.timesteps
    timestep_values = [int(t) for t in timesteps.tolist()]  # host copy for callbacks
    model_timesteps = timesteps.to(device=device)
    fs_tensor = None if fs is None else torch.full((model_batch,), fs, device=device, dtype=torch.long)
    step_kwargs, own_noise = _step_kwargs(scheduler, generator, eta)
    x0_corrections = _dynamic_rescale_corrections(scheduler, timestep_values, dynamic_rescale)

    noise = cpu_noise((batch, out_channels, num_frames, height, width), generator)
    latents = noise.to(device) * scheduler.init_noise_sigma

    total = len(timestep_values)
    watch = NonFiniteWatch(stage, total, device, _nonfinite_hint(scheduler, eta))
    for index in tqdm(range(total), desc=stage, disable=not progress, leave=False):
        if interrupt_event is not None and interrupt_event.is_set():
            raise Mask2IVInterrupted(f"{stage} stage interrupted before step {index + 1}/{total}")
        timestep = timesteps[index]
        scaled = scheduler.scale_model_input(latents, timestep)
        if guided:
            scaled = torch.cat([scaled, scaled])
        with autocast_context(device):
            prediction = unet(model_input(scaled, condition),
                              model_timesteps[index].expand(model_batch), context, fs_tensor)
        prediction = prediction.float()
        if guided:
            conditional, unconditional = prediction.chunk(2)
            prediction = unconditional + guidance_scale * (conditional - unconditional)
            if guidance_rescale > 0.0:
                prediction = rescale_guidance(prediction, conditional, guidance_rescale)
        if own_noise:
            step_kwargs["variance_noise"] = _step_noise(latents.shape, generator, device)
        result = scheduler.step(prediction, timestep, latents, **step_kwargs)
        latents = result.prev_sample
        if x0_corrections and x0_corrections[index] != 0.0:
            latents = latents + x0_corrections[index] * result.pred_original_sample
        watch.after_step(index, latents)
        if on_step is not None:
            on_step(StepInfo(stage=stage, step=index + 1, total_steps=total,
                             timestep=timestep_values[index]))
    watch.finish()
    return latents


class NonFiniteWatch:
    """Raises :class:`Mask2IVNonFiniteError` for the first step whose latents hold NaN/inf.

    On the CPU (``per_step``) the check after each step costs nothing and stops at once. On a
    GPU, reading a flag back every step would sync the host with the device every step, so the
    first bad step number accumulates on the device and :meth:`finish` reads it once per stage
    (the stage ends with a device -> host copy anyway).
    """

    def __init__(self, stage: str, total_steps: int, device: torch.device, hint: str = "",
                 per_step: bool | None = None) -> None:
        self.stage, self.total_steps, self.hint = stage, total_steps, hint
        self.per_step = device.type == "cpu" if per_step is None else per_step
        if not self.per_step:
            self._step_numbers = torch.arange(1, total_steps + 1, device=device)
            self._first_bad = torch.zeros((), dtype=torch.long, device=device)

    def after_step(self, index: int, latents: torch.Tensor) -> None:
        """``index``: 0-based step that produced ``latents``."""
        finite = torch.isfinite(latents).all()
        if self.per_step:
            if not finite:
                raise Mask2IVNonFiniteError(self.stage, index + 1, self.total_steps, self.hint)
            return
        first = ~finite & (self._first_bad == 0)
        self._first_bad = torch.where(first, self._step_numbers[index], self._first_bad)

    def finish(self) -> None:
        if not self.per_step:
            step = int(self._first_bad)  # the stage's one read-back
            if step:
                raise Mask2IVNonFiniteError(self.stage, step, self.total_steps, self.hint)


def _nonfinite_hint(scheduler: SchedulerMixin, eta: float) -> str:
    """The known cause worth naming: diffusers' DDIM with eta > 0 on a zero-SNR schedule."""
    if eta > 0 and type(scheduler) is DDIMScheduler and scheduler.config.rescale_betas_zero_snr:
        return ("; diffusers' DDIMScheduler with eta > 0 on a zero-SNR schedule can give NaN at "
                "the first step, use mask2iv_ros.pipeline.ddim.SafeDDIMScheduler (or eta 0)")
    return ""
