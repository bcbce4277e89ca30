"""Latent consistency distillation (LCD) arithmetic: LCM (Luo et al. 2023, Algorithm 1), as the
video LCMs AnimateLCM / T2V-Turbo apply it, for a v-prediction teacher with guidance folded in.

One LCD step on clean latents ``x0`` (pure tensor functions here; the loop is in
:mod:`mask2iv_ros.training.distill`):

1. draw a solver index ``n`` and noise: ``x_{t_{n+k}} = sqrt(a) x0 + sqrt(1 - a) eps`` at the
   coarse-grid timestep ``t_{n+k}`` (:class:`DDIMSolver`: ``k = T // N`` training steps apart);
2. student: ``f(x, t) = c_skip(t) x + c_out(t) x0_hat(x, t)`` at ``t_{n+k}``
   (:func:`consistency_output`, boundary scalings :func:`boundary_scalings`: ``c_skip(0) = 1``,
   ``c_out(0) = 0``, so ``f(x, 0) = x``);
3. teacher: the classifier-free-guided prediction exactly as the pipeline's sampler forms it
   (guidance and guidance rescale on the model output, :func:`guided_output`), turned into
   ``x0`` / ``eps`` estimates (:func:`x0_and_eps`) and one deterministic DDIM step to ``t_n``
   (:meth:`DDIMSolver.step`);
4. target: the EMA ("target") network's ``f(x_{t_n}, t_n)``, no gradient;
5. loss: pseudo-Huber (LCM) or L2 between the two (:func:`consistency_loss`).
"""

from __future__ import annotations

from typing import Optional

import torch

from mask2iv_ros.pipeline.sampling import rescale_guidance

PREDICTION_TYPES = ("v_prediction", "epsilon", "sample")


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """``[B]`` -> ``[B, 1, ..., 1]`` broadcasting against a ``ndim``-D batch."""
    return values.reshape(values.shape[0], *([1] * (ndim - 1)))


def boundary_scalings(timesteps: torch.Tensor, sigma_data: float = 0.5,
                      timestep_scaling: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """LCM's consistency-function parameterisation ``(c_skip, c_out)`` at integer timesteps.

    ``c_skip = s^2 / ((t * scaling)^2 + s^2)``, ``c_out = t * scaling / sqrt((t * scaling)^2 +
    s^2)`` with ``s = sigma_data``; what ``LCMScheduler.get_scalings_for_boundary_condition_discrete``
    computes at sampling time (same ``timestep_scaling`` in the exported scheduler config).
    """
    scaled = timesteps.double() * timestep_scaling
    denominator = scaled ** 2 + sigma_data ** 2
    return (sigma_data ** 2 / denominator).float(), (scaled / denominator.sqrt()).float()


def x0_and_eps(model_output: torch.Tensor, timesteps: torch.Tensor, sample: torch.Tensor,
               alphas_cumprod: torch.Tensor, prediction_type: str = "v_prediction"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean-latent and noise estimates a model output implies at ``timesteps`` ``[B]``.

    v-prediction (DynamiCrafter): ``x0 = a x - s v``, ``eps = a v + s x`` with ``a =
    sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)``; finite at zero terminal SNR (``a = 0``).
    """
    alpha_bar = alphas_cumprod.to(sample.device)[timesteps].float()
    alpha = _per_sample(alpha_bar.sqrt(), sample.ndim)
    sigma = _per_sample((1.0 - alpha_bar).sqrt(), sample.ndim)
    output = model_output.float()
    if prediction_type == "v_prediction":
        return alpha * sample - sigma * output, alpha * output + sigma * sample
    if prediction_type == "epsilon":
        return (sample - sigma * output) / alpha, output
    if prediction_type == "sample":
        return output, (sample - alpha * output) / sigma
    raise ValueError(f"prediction_type: expected one of {list(PREDICTION_TYPES)}, got "
                     f"{prediction_type!r}")


def consistency_output(model_output: torch.Tensor, timesteps: torch.Tensor,
                       sample: torch.Tensor, alphas_cumprod: torch.Tensor,
                       prediction_type: str = "v_prediction", sigma_data: float = 0.5,
                       timestep_scaling: float = 10.0) -> torch.Tensor:
    """``f(x, t) = c_skip(t) x + c_out(t) x0_hat``: the consistency function LCMScheduler samples
    with (its ``denoised``)."""
    x0, _ = x0_and_eps(model_output, timesteps, sample, alphas_cumprod, prediction_type)
    c_skip, c_out = boundary_scalings(timesteps, sigma_data, timestep_scaling)
    return _per_sample(c_skip, sample.ndim) * sample + _per_sample(c_out, sample.ndim) * x0


def guided_output(conditional: torch.Tensor, unconditional: Optional[torch.Tensor],
                  guidance_scale: float, guidance_rescale: float = 0.0) -> torch.Tensor:
    """The teacher's guided model output as the pipeline's sampler forms it
    (:func:`mask2iv_ros.pipeline.sampling.denoise`): ``u + w (c - u)``, then guidance rescale;
    no guidance when ``unconditional`` is None or ``w == 1``."""
    if unconditional is None or guidance_scale == 1.0:
        return conditional.float()
    conditional, unconditional = conditional.float(), unconditional.float()
    guided = unconditional + guidance_scale * (conditional - unconditional)
    if guidance_rescale > 0.0:
        guided = rescale_guidance(guided, conditional, guidance_rescale)
    return guided


class DDIMSolver:
    """Deterministic DDIM (eta 0) on LCM's coarse grid of ``num_ddim_timesteps`` timesteps.

    Grid ``t_i = (i + 1) k - 1`` for ``i = 0..N-1``, ``k = T // N`` (for N = 50: 19, 39, ...,
    999 — the pipeline's trailing DDIM timesteps and LCMScheduler's ``original_inference_steps``
    grid). A step from grid index ``i`` lands on ``t_{i-1}``; from ``i = 0`` on alpha_bar[0], as
    LCM's solver does. ``t_end = max(t_i - k, 0)`` is where the target network is evaluated.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, num_ddim_timesteps: int = 50) -> None:
        num_train = int(alphas_cumprod.shape[0])
        if not 1 <= num_ddim_timesteps <= num_train:
            raise ValueError(f"lcd.num_ddim_timesteps: expected an int in [1, {num_train}], got "
                             f"{num_ddim_timesteps!r}")
        self.skip = num_train // num_ddim_timesteps
        self.num_ddim_timesteps = num_ddim_timesteps
        self.alphas_cumprod = alphas_cumprod.detach().float().cpu()
        self.timesteps = torch.arange(1, num_ddim_timesteps + 1, dtype=torch.long) * self.skip - 1
        self.alphas_prev = torch.cat([self.alphas_cumprod[:1],
                                      self.alphas_cumprod[self.timesteps[:-1]]])

    def to(self, device: torch.device | str) -> "DDIMSolver":
        self.alphas_cumprod = self.alphas_cumprod.to(device)
        self.timesteps = self.timesteps.to(device)
        self.alphas_prev = self.alphas_prev.to(device)
        return self

    def sample_indices(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Uniform grid indices ``[batch]`` on the generator's device."""
        return torch.randint(0, self.num_ddim_timesteps, (batch,), generator=generator,
                             device=generator.device).to(self.timesteps.device)

    def start_and_end(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(t_{n+k}, t_n)``: the student's timestep and the target network's."""
        start = self.timesteps[index]
        return start, (start - self.skip).clamp_min(0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor,
                  timesteps: torch.Tensor) -> torch.Tensor:
        """The forward process ``sqrt(a) x0 + sqrt(1 - a) noise`` at ``timesteps`` ``[B]``."""
        alpha_bar = _per_sample(self.alphas_cumprod[timesteps], x0.ndim)
        return alpha_bar.sqrt() * x0 + (1.0 - alpha_bar).sqrt() * noise

    def step(self, x0: torch.Tensor, eps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """DDIM (eta 0) from grid index ``index`` to the previous grid point."""
        alpha_prev = _per_sample(self.alphas_prev[index], x0.ndim)
        return alpha_prev.sqrt() * x0 + (1.0 - alpha_prev).sqrt() * eps


def consistency_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str = "huber",
                     huber_c: float = 0.001, weights: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
    """Mean pseudo-Huber ``sqrt(r^2 + c^2) - c`` (LCM) or squared error of ``r = prediction -
    target``; ``weights`` (e.g. the stage-2 contact weights ``[B, 1, T, h, w]``) multiply the
    residual, as in the training loss (eq. 3). float32 whatever the autocast dtype."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction: expected shape {tuple(target.shape)} like target, got "
                         f"{tuple(prediction.shape)}")
    residual = prediction.float() - target.float()
    if weights is not None:
        residual = residual * weights.float()
    if kind == "l2":
        return residual.square().mean()
    if kind == "huber":
        return ((residual.square() + huber_c ** 2).sqrt() - huber_c).mean()
    raise ValueError(f"lcd.loss: expected 'huber' or 'l2', got {kind!r}")


@torch.no_grad()
def update_target(target: torch.nn.Module, online: torch.nn.Module, decay: float) -> None:
    """``target <- decay * target + (1 - decay) * online`` over matching parameters (the LCM
    target network ``theta^-``), one fused multi-tensor op."""
    targets = list(target.parameters())
    sources = [p.detach().to(t.dtype) for p, t in zip(online.parameters(), targets)]
    torch._foreach_lerp_(targets, sources, 1.0 - decay)
