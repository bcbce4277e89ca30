"""DDIM as DynamiCrafter's sampler steps it, safe for eta > 0 on a zero-terminal-SNR schedule.

diffusers' ``DDIMScheduler.step`` computes the direction term ``sqrt(1 - a_prev - sigma**2)``
from float32 scalars. With zero-SNR betas the first step has ``a_t = 0``, so
``sigma**2 = eta**2 * (1 - a_prev)`` and at ``eta = 1`` the term is ``1 - a_prev`` minus itself:
a rounding error that is negative for some step counts (25 among them) and turns every latent
into NaN, i.e. an all-black video. DynamiCrafter's ``DDIMSampler.p_sample_ddim`` evaluates the
same expression; its float32 rounding happens to stay >= 0. :class:`SafeDDIMScheduler` clamps
the term at 0 (the exact value there), which makes every step count 1..1000 finite at any eta
in [0, 1].

Two more differences from ``DDIMScheduler``, both as DynamiCrafter samples:

- the previous timestep is the next entry of ``timesteps``, not ``t - 1000 // N``; they agree
  when N divides the training steps, otherwise diffusers' ``x_prev`` lands on a timestep the
  model is not evaluated at next (e.g. N = 30: 966 -> 933 while the schedule goes on at 932);
- ``trailing`` spacing yields exactly N timesteps in [0, 999]. The float ``arange`` both
  diffusers and DynamiCrafter use gives N + 1 values ending in -1 for some N (61, 103, 121, ...),
  which evaluates the model at t = -1 (alpha_bar[-1] = 0 in Python indexing).

Coefficients are Python floats computed in float64 on the host from a CPU copy of
``alphas_cumprod``: a step reads nothing back from the device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.utils.torch_utils import randn_tensor


class SafeDDIMScheduler(DDIMScheduler):
    """``DDIMScheduler`` with DynamiCrafter's step (see the module docstring).

    Same config as ``DDIMScheduler``, so ``from_config`` swaps in both directions; saved
    ``scheduler_config.json`` files name this class, which ``Mask2IVPipeline.from_pretrained``
    resolves (:func:`scheduler_class`).
    """

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        super().set_timesteps(num_inference_steps, device)
        if self.config.timestep_spacing == "trailing":
            # the same float arange (same rounding), cut to exactly N values (the last >= 0)
            ratio = self.config.num_train_timesteps / num_inference_steps
            trailing = np.round(np.arange(self.config.num_train_timesteps, 0, -ratio))
            trailing = trailing[:num_inference_steps].astype(np.int64) - 1
            self.timesteps = torch.from_numpy(trailing).to(device)
        values = [int(t) for t in self.timesteps.tolist()]   # once per set_timesteps
        self._previous = dict(zip(values, values[1:] + [-1]))
        # float64 host copy: add_noise() may move alphas_cumprod to a GPU
        self._alphas = self.alphas_cumprod.detach().to("cpu", torch.float64)
        self._final_alpha = float(self.final_alpha_cumprod)

    def previous_timestep(self, timestep: int | torch.Tensor) -> int:
        """The timestep ``step`` moves ``timestep`` to (-1 = past the end: ``final_alpha_cumprod``)."""
        t = int(timestep)
        if t in self._previous:
            return self._previous[t]
        return t - self.config.num_train_timesteps // self.num_inference_steps

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             eta: float = 0.0, use_clipped_model_output: bool = False,
             generator: torch.Generator | None = None, variance_noise: torch.Tensor | None = None,
             return_dict: bool = True) -> DDIMSchedulerOutput | tuple:
        """One DDIM update (DDIM paper eq. 12 and 16), arguments as ``DDIMScheduler.step``."""
        if self.num_inference_steps is None:
            raise ValueError("SafeDDIMScheduler.step: call set_timesteps() first")
        if variance_noise is not None and generator is not None:
            raise ValueError("generator/variance_noise: expected at most one of them, got both")
        t = int(timestep)
        prev_t = self.previous_timestep(t)
        a_t = float(self._alphas[t])
        a_prev = float(self._alphas[prev_t]) if prev_t >= 0 else self._final_alpha
        b_t = 1.0 - a_t

        kind = self.config.prediction_type
        if kind == "v_prediction":
            pred_x0 = math.sqrt(a_t) * sample - math.sqrt(b_t) * model_output
            pred_eps = math.sqrt(a_t) * model_output + math.sqrt(b_t) * sample
        elif kind == "epsilon":
            pred_x0 = (sample - math.sqrt(b_t) * model_output) / math.sqrt(a_t)
            pred_eps = model_output
        elif kind == "sample":
            pred_x0 = model_output
            pred_eps = (sample - math.sqrt(a_t) * pred_x0) / math.sqrt(b_t)
        else:
            raise ValueError(f"prediction_type: expected 'epsilon', 'sample' or 'v_prediction', "
                             f"got {kind!r}")
        if self.config.thresholding:
            pred_x0 = self._threshold_sample(pred_x0)
        elif self.config.clip_sample:
            pred_x0 = pred_x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)
        if use_clipped_model_output:
            pred_eps = (sample - math.sqrt(a_t) * pred_x0) / math.sqrt(b_t)

        # sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        variance = (1.0 - a_prev) / b_t * (1.0 - a_t / a_prev)
        sigma = eta * math.sqrt(max(variance, 0.0))
        # The clamp: exactly 0 at a_t = 0, eta = 1, where rounding can make it negative (NaN).
        direction = math.sqrt(max(1.0 - a_prev - sigma * sigma, 0.0))
        prev_sample = math.sqrt(a_prev) * pred_x0 + direction * pred_eps
        if eta > 0:
            if variance_noise is None:
                variance_noise = randn_tensor(model_output.shape, generator=generator,
                                              device=model_output.device, dtype=model_output.dtype)
            prev_sample = prev_sample + sigma * variance_noise
        if not return_dict:
            return prev_sample, pred_x0
        return DDIMSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_x0)


# Scheduler classes of this project, found by the class name a scheduler_config.json records.
SCHEDULERS = {cls.__name__: cls for cls in (SafeDDIMScheduler,)}


def scheduler_class(name: str) -> type:
    """The scheduler class called ``name``: this project's (:data:`SCHEDULERS`) or diffusers'."""
    import diffusers

    cls = SCHEDULERS.get(name) or getattr(diffusers, str(name), None)
    if not isinstance(cls, type) or not issubclass(cls, diffusers.SchedulerMixin):
        raise ValueError(f"scheduler: expected a diffusers scheduler class name or one of "
                         f"{sorted(SCHEDULERS)}, got {name!r}")
    return cls
