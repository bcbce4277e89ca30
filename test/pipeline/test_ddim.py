"""SafeDDIMScheduler against DynamiCrafter's DDIM sampler, and finite at eta 1 for every step count.

The reference functions below re-implement, from the source text of Doubiiu/DynamiCrafter
(``lvdm/models/utils_diffusion.py``: ``make_beta_schedule("linear")``,
``rescale_zero_terminal_snr``, ``make_ddim_timesteps("uniform_trailing")``,
``make_ddim_sampling_parameters``; ``lvdm/models/samplers/ddim.py``: ``p_sample_ddim`` with
v-parameterisation), its arithmetic including its dtypes: float32 ``alphas_cumprod``, sigmas
computed from them, per-step coefficients made float32 by ``torch.full``.
"""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from mask2iv_ros.pipeline import SafeDDIMScheduler, dynamicrafter_scheduler
from mask2iv_ros.pipeline.ddim import scheduler_class


def dynamicrafter_alphas_cumprod() -> np.ndarray:
    """DynamiCrafter's schedule: linear_start 0.00085, linear_end 0.012, zero-SNR rescale (float64)."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    sqrt_bar = np.sqrt(np.cumprod(1.0 - betas))
    first, last = sqrt_bar[0].copy(), sqrt_bar[-1].copy()
    sqrt_bar = (sqrt_bar - last) * first / (first - last)
    bar = sqrt_bar ** 2
    alphas = np.concatenate([bar[0:1], bar[1:] / bar[:-1]])
    return np.cumprod(alphas)


def dynamicrafter_trailing_timesteps(num_steps: int) -> np.ndarray:
    """``make_ddim_timesteps("uniform_trailing")``: ascending."""
    c = 1000 / num_steps
    return np.flip(np.round(np.arange(1000, 0, -c))).astype(np.int64) - 1


def dynamicrafter_step(x, v, index, ddim_timesteps, alphacums, eta, noise, clamp=False):
    """``p_sample_ddim`` (v-prediction, no dynamic rescale) for DDIM index ``index``."""
    alphas = alphacums[ddim_timesteps]
    alphas_prev = np.asarray([alphacums[0]] + alphacums[ddim_timesteps[:-1]].tolist())
    sigmas = eta * np.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    t = ddim_timesteps[index]
    sqrt_a = torch.tensor(np.sqrt(alphacums[t].double().numpy()), dtype=torch.float32)
    sqrt_1ma = torch.tensor(np.sqrt(1.0 - alphacums[t].double().numpy()), dtype=torch.float32)
    size = (x.shape[0], 1, 1, 1, 1)
    a_prev = torch.full(size, float(alphas_prev[index]))
    sigma_t = torch.full(size, float(sigmas[index]))
    e_t = sqrt_a * v + sqrt_1ma * x                 # predict_eps_from_z_and_v
    pred_x0 = sqrt_a * x - sqrt_1ma * v             # predict_start_from_z_and_v
    term = 1.0 - a_prev - sigma_t ** 2
    dir_xt = (term.clamp(min=0) if clamp else term).sqrt() * e_t
    return a_prev.sqrt() * pred_x0 + dir_xt + sigma_t * noise, pred_x0, term


def test_schedule_is_dynamicrafters():
    scheduler = dynamicrafter_scheduler()
    reference = dynamicrafter_alphas_cumprod()
    assert reference[-1] == 0.0 and float(scheduler.alphas_cumprod[-1]) == 0.0   # zero SNR
    np.testing.assert_allclose(scheduler.alphas_cumprod.double().numpy(), reference, atol=1e-6)
    assert float(scheduler.final_alpha_cumprod) == float(scheduler.alphas_cumprod[0])


def test_trailing_timesteps_every_count_1_to_1000():
    scheduler = dynamicrafter_scheduler()
    for n in range(1, 1001):
        scheduler.set_timesteps(n)
        got = scheduler.timesteps.numpy()
        reference = dynamicrafter_trailing_timesteps(n)[::-1]
        # the float arange gives N + 1 values ending in -1 for some N; the schedule is the first N
        assert len(got) == n and got[0] == 999 and got[-1] >= 0 and (np.diff(got) < 0).all(), n
        np.testing.assert_array_equal(got, reference[:n])
        if len(reference) > n:
            assert reference[n] == -1
    # one of those N: diffusers' own DDIMScheduler would evaluate the model at t = -1
    plain = DDIMScheduler.from_config(scheduler.config)
    plain.set_timesteps(61)
    assert len(plain.timesteps) == 62 and int(plain.timesteps[-1]) == -1


@pytest.mark.parametrize("num_steps", [50, 30, 25])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_each_step_matches_dynamicrafter_p_sample_ddim(num_steps, eta):
    scheduler = dynamicrafter_scheduler()
    scheduler.set_timesteps(num_steps)
    alphacums = scheduler.alphas_cumprod.clone()   # float32, as DynamiCrafter's buffer
    ddim_timesteps = dynamicrafter_trailing_timesteps(num_steps)
    generator = torch.Generator().manual_seed(num_steps)
    for i, t in enumerate(scheduler.timesteps.tolist()):
        index = num_steps - i - 1                  # DynamiCrafter's loop: index counts down
        assert ddim_timesteps[index] == t
        x, v, noise = (torch.randn(2, 4, 3, 5, 6, generator=generator) for _ in range(3))
        got = scheduler.step(v, t, x, eta=eta, variance_noise=noise if eta > 0 else None)
        # the clamp is the only difference and only matters where the term is ~0 (the first
        # step at eta > 0): there DynamiCrafter takes sqrt of a float32 rounding error (~6e-8),
        # i.e. adds ~2.4e-4 * e_t, where SafeDDIMScheduler adds nothing
        clamp = i == 0 and eta > 0
        expected, pred_x0, term = dynamicrafter_step(x, v, index, ddim_timesteps, alphacums, eta,
                                                     noise, clamp=clamp)
        if clamp:
            assert abs(float(term.flatten()[0])) < 1e-6   # 1 - a_prev - sigma^2 is 0 up to rounding
        torch.testing.assert_close(got.pred_original_sample, pred_x0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.prev_sample, expected, rtol=1e-5, atol=1e-3 if clamp else 1e-5)


def test_diffusers_previous_timestep_differs_where_n_does_not_divide_1000():
    """What the DynamiCrafter comparison catches: diffusers steps 966 -> 933 at N = 30."""
    safe, plain = dynamicrafter_scheduler(), DDIMScheduler.from_config(dynamicrafter_scheduler().config)
    safe.set_timesteps(30)
    plain.set_timesteps(30)
    assert safe.timesteps.tolist()[:3] == [999, 966, 932] and safe.previous_timestep(966) == 932
    x, v = torch.randn(1, 4, 2, 3, 3), torch.randn(1, 4, 2, 3, 3)
    assert not torch.allclose(safe.step(v, 966, x).prev_sample, plain.step(v, 966, x).prev_sample,
                              atol=1e-4)


def _sample_with_fake_model(scheduler, num_steps: int, eta: float, seed: int = 0) -> torch.Tensor:
    """The denoising loop on a tiny latent, the UNet replaced by a fixed random v per step."""
    generator = torch.Generator().manual_seed(seed)
    scheduler.set_timesteps(num_steps)
    x = torch.randn(1, 4, 2, 4, 4, generator=generator)
    for t in scheduler.timesteps:
        v = torch.randn(x.shape, generator=generator)
        x = scheduler.step(v, t, x, eta=eta, generator=generator).prev_sample
    return x


def test_eta_1_is_finite_at_every_step_count_1_to_100():
    scheduler = dynamicrafter_scheduler()
    bad = [n for n in range(1, 101)
           if not torch.isfinite(_sample_with_fake_model(scheduler, n, eta=1.0)).all()]
    assert bad == []


@pytest.mark.parametrize("num_steps", [250, 500, 1000])
@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_eta_is_finite_at_large_step_counts(num_steps, eta):
    assert torch.isfinite(_sample_with_fake_model(dynamicrafter_scheduler(), num_steps, eta)).all()


def test_eta_0_step_equals_diffusers_ddim_where_they_agree():
    """Where N divides 1000 the only difference to DDIMScheduler is the clamp (eta 0: none)."""
    safe = dynamicrafter_scheduler()
    plain = DDIMScheduler.from_config(safe.config)
    torch.testing.assert_close(_sample_with_fake_model(safe, 20, 0.0),
                               _sample_with_fake_model(plain, 20, 0.0), rtol=1e-5, atol=1e-5)


def test_registered_by_class_name_and_swappable(tmp_path):
    scheduler = dynamicrafter_scheduler()
    scheduler.save_pretrained(tmp_path)
    assert '"_class_name": "SafeDDIMScheduler"' in (tmp_path / "scheduler_config.json").read_text()
    cls = scheduler_class("SafeDDIMScheduler")
    assert cls is SafeDDIMScheduler
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(cls.from_pretrained(tmp_path).config) == public(scheduler.config)
    assert scheduler_class("DDIMScheduler") is DDIMScheduler
    with pytest.raises(ValueError, match="scheduler: expected a diffusers scheduler class name"):
        scheduler_class("NoSuchScheduler")
    # diffusers' from_config swapping, both ways and to another family
    plain = DDIMScheduler.from_config(scheduler.config)
    assert type(plain) is DDIMScheduler and plain.config.rescale_betas_zero_snr
    assert type(SafeDDIMScheduler.from_config(plain.config)) is SafeDDIMScheduler
    dpm = DPMSolverMultistepScheduler.from_config(scheduler.config)
    assert dpm.config.prediction_type == "v_prediction"
