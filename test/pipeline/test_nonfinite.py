"""A non-finite latent raises Mask2IVNonFiniteError naming the stage and step (never a black video)."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from mask2iv_ros.pipeline import Mask2IVNonFiniteError
from mask2iv_ros.pipeline.sampling import NonFiniteWatch


class NaNFromCall:
    """Wraps a UNet's forward: from the ``first_bad``-th call (1-based) on, its output is NaN."""

    def __init__(self, unet, first_bad: int):
        self.unet, self.first_bad, self.calls = unet, first_bad, 0

    def __enter__(self):
        original = self.unet.forward

        def forward(*args, **kwargs):
            self.calls += 1
            out = original(*args, **kwargs)
            return out * float("nan") if self.calls >= self.first_bad else out
        self.unet.forward = forward
        return self

    def __exit__(self, *exc):
        del self.unet.forward


def _call(pipe, inputs, **kwargs):
    return pipe(inputs["image"], inputs["object_mask"], prompt="push the red block",
                actor_mask=inputs["actor_mask"], **kwargs)


@pytest.mark.parametrize("stage,component,first_bad", [("video", "video_unet", 3),
                                                       ("trajectory", "trajectory_unet_text", 1)])
def test_nan_unet_raises_naming_stage_and_step(tiny_pipe, inputs, stage, component, first_bad):
    with NaNFromCall(getattr(tiny_pipe, component), first_bad) as spy, \
            pytest.raises(Mask2IVNonFiniteError,
                          match=rf"^{stage} stage step {first_bad}/5: latent has NaN/inf$") as info:
        _call(tiny_pipe, inputs, num_inference_steps=5)
    assert (info.value.stage, info.value.step, info.value.total_steps) == (stage, first_bad, 5)
    assert spy.calls == first_bad    # on the CPU the loop stops at the bad step
    # the pipeline is usable afterwards
    assert _call(tiny_pipe, inputs, num_inference_steps=2, trajectory_only=True).video is None


def test_deferred_check_reports_the_first_bad_step_once_per_stage():
    """The GPU path (per_step=False), run on CPU tensors: nothing raised mid-loop, first bad step."""
    watch = NonFiniteWatch("video", 25, torch.device("cpu"), per_step=False)
    good, bad = torch.zeros(1, 4, 2, 3, 3), torch.full((1, 4, 2, 3, 3), float("inf"))
    for index, latents in enumerate([good, good, bad, good, bad]):
        watch.after_step(index, latents)           # no raise, no host read
    with pytest.raises(Mask2IVNonFiniteError, match=r"^video stage step 3/25: latent has NaN/inf$"):
        watch.finish()
    clean = NonFiniteWatch("video", 2, torch.device("cpu"), per_step=False)
    clean.after_step(0, good)
    clean.after_step(1, good)
    clean.finish()


def test_eta_1_at_25_steps_gives_a_video_not_nan(tiny_pipe, inputs):
    """The issue's symptom: diffusers' DDIM at eta 1.0, 25 steps, zero-SNR made NaN latents
    (an all-black video). The default SafeDDIMScheduler samples; plain DDIM now raises."""
    out = _call(tiny_pipe, inputs, num_inference_steps=25, eta=1.0, guidance_scale=1.0)
    assert out.video.std() > 1.0 and len(np.unique(out.video)) > 10
    safe = tiny_pipe.scheduler
    tiny_pipe.scheduler = DDIMScheduler.from_config(safe.config)
    try:
        with pytest.raises(Mask2IVNonFiniteError, match=r"trajectory stage step 1/25: latent has "
                                                        r"NaN/inf; diffusers' DDIMScheduler"):
            _call(tiny_pipe, inputs, num_inference_steps=25, eta=1.0, guidance_scale=1.0)
    finally:
        tiny_pipe.scheduler = safe
