import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from mask2iv_ros.pipeline.sampling import (denoise, dynamic_rescale_schedule,
                                           dynamicrafter_scheduler, rescale_guidance)


class ConstantV(torch.nn.Module):
    """A stand-in UNet predicting a fixed v whatever its input."""

    class config:  # noqa: N801 - mimics UNetConfig attribute access
        out_channels = 4

    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, x, timesteps, context=None, fs=None):
        return self.v.expand(x.shape[0], -1, -1, -1, -1)


def test_dynamic_rescale_schedule_matches_dynamicrafter():
    scale = dynamic_rescale_schedule(0.7, 400, 1000)
    assert scale.shape == (1400,)
    assert scale[0] == 1.0 and abs(float(scale[399]) - 0.7) < 1e-12 and (scale[400:] == 0.7).all()


def test_dynamic_rescale_step_is_dynamicrafter_ddim_formula():
    """One-step-at-a-time check against DynamiCrafter's p_sample_ddim (eta 0, v-prediction)."""
    torch.manual_seed(0)
    v = torch.randn(1, 4, 2, 3, 3)
    condition = torch.zeros(1, 8, 2, 3, 3)
    steps = 4
    generator = torch.Generator().manual_seed(0)
    got = denoise(ConstantV(v), dynamicrafter_scheduler(), condition, None, num_inference_steps=steps,
                  guidance_scale=1.0, dynamic_rescale=0.7, generator=generator)

    scheduler = dynamicrafter_scheduler()
    scheduler.set_timesteps(steps)
    alphas = scheduler.alphas_cumprod.double()
    scale = dynamic_rescale_schedule(0.7)
    x = torch.randn(1, 4, 2, 3, 3, generator=torch.Generator().manual_seed(0)).double()
    ts = [int(t) for t in scheduler.timesteps]
    for t in ts:
        t_prev = t - 1000 // steps
        a_t = alphas[t]
        a_prev = alphas[max(t_prev, 0)]  # DynamiCrafter: the last step goes to alphas_cumprod[0]
        ratio = scale[t_prev] / scale[t] if t_prev >= 0 else 1.0
        e_t = a_t.sqrt() * v.double() + (1 - a_t).sqrt() * x
        pred_x0 = (a_t.sqrt() * x - (1 - a_t).sqrt() * v.double()) * ratio
        x = a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * e_t
    torch.testing.assert_close(got, x.float(), rtol=1e-4, atol=1e-4)
    plain = denoise(ConstantV(v), dynamicrafter_scheduler(), condition, None,
                    num_inference_steps=steps, guidance_scale=1.0,
                    generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(plain, got)


def test_dynamic_rescale_needs_ddim():
    v = torch.zeros(1, 4, 2, 3, 3)
    scheduler = DPMSolverMultistepScheduler.from_config(dynamicrafter_scheduler().config)
    with pytest.raises(ValueError, match="dynamic_rescale: implemented for DDIMScheduler only"):
        denoise(ConstantV(v), scheduler, torch.zeros(1, 8, 2, 3, 3), None, num_inference_steps=2,
                dynamic_rescale=0.7)


def test_guidance_formula_and_rescale():
    torch.manual_seed(0)
    cond = torch.randn(2, 4, 2, 3, 3)
    guided = cond * 3 + 1
    full = rescale_guidance(guided, cond, 1.0)
    torch.testing.assert_close(full.std(dim=[1, 2, 3, 4]), cond.std(dim=[1, 2, 3, 4]))
    torch.testing.assert_close(rescale_guidance(guided, cond, 0.0), guided)
    assert torch.isfinite(rescale_guidance(torch.zeros_like(cond), torch.zeros_like(cond), 0.7)).all()


def test_eta_noise_is_the_generator_stream_diffusers_would_draw():
    """The loop hands DDIM its step noise (drawn on the CPU, pinned to a GPU): the same samples
    as ``scheduler.step(..., generator=...)`` draws, so a seed means the same as before."""
    torch.manual_seed(0)
    v = torch.randn(1, 4, 2, 3, 3)
    got = denoise(ConstantV(v), dynamicrafter_scheduler(), torch.zeros(1, 8, 2, 3, 3), None,
                  num_inference_steps=5, guidance_scale=1.0, eta=1.0,
                  generator=torch.Generator().manual_seed(3))
    scheduler = dynamicrafter_scheduler()
    scheduler.set_timesteps(5)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 2, 3, 3, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(v, t, x, eta=1.0, generator=generator).prev_sample
    torch.testing.assert_close(got, x, rtol=0, atol=0)
    plain = denoise(ConstantV(v), dynamicrafter_scheduler(), torch.zeros(1, 8, 2, 3, 3), None,
                    num_inference_steps=5, guidance_scale=1.0, eta=0.0,
                    generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(plain, got)
