import json
import threading

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from mask2iv_ros.masks import DEFAULT_PALETTE, palette_labels
from mask2iv_ros.pipeline import (Mask2IVInterrupted, Mask2IVPipeline, StepInfo,
                                  build_tiny_pipeline)

STEPS = 3


def _call(pipe, inputs, mode="text", **kwargs):
    condition = {"prompt": "push the red block"} if mode == "text" else \
        {"placement_mask": inputs["placement_mask"]}
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(inputs["image"], inputs["object_mask"], actor_mask=inputs["actor_mask"],
                **condition, **kwargs)


@pytest.mark.parametrize("mode", ["text", "position"])
def test_output_shapes_on_the_model_grid(tiny_pipe, inputs, mode):
    out = _call(tiny_pipe, inputs, mode)
    # 40x60 has the model's 32x48 aspect: the grid covers the whole image (test_resize_train_infer)
    assert out.input_region == (0, 0, 60, 40) and out.input_size == (40, 60)
    assert out.mask_trajectory.shape == (4, 32, 48, 3) and out.mask_trajectory.dtype == np.uint8
    assert out.video.shape == (4, 32, 48, 3) and out.video.dtype == np.uint8
    assert out.actor_masks.shape == out.object_masks.shape == (4, 32, 48)
    assert out.masks_in_input_frame().object_masks.shape == (4, 40, 60)
    assert out.actor_masks.dtype == out.object_masks.dtype == bool
    assert not (out.actor_masks & out.object_masks).any()
    # the trajectory is snapped: only palette colours, consistent with the masks
    colors = {tuple(c) for c in out.mask_trajectory.reshape(-1, 3)}
    assert colors <= {DEFAULT_PALETTE.background, DEFAULT_PALETTE.object, DEFAULT_PALETTE.actor}
    assert (out.mask_trajectory[out.object_masks] == DEFAULT_PALETTE.object).all()
    assert set(out.timings) == {"trajectory", "video"} and out.fps == tiny_pipe.config.fps
    assert out.mode == mode and out.seed == 0
    assert tiny_pipe.modes == ("text", "position") and tiny_pipe.resolution == (32, 48)


def test_trajectory_only_and_num_frames(tiny_pipe, inputs):
    out = _call(tiny_pipe, inputs, trajectory_only=True, num_frames=6)
    assert out.video is None and set(out.timings) == {"trajectory"}
    assert out.mask_trajectory.shape == (6, 32, 48, 3)


def test_seed_determinism(tiny_pipe, inputs):
    first = _call(tiny_pipe, inputs, seed=3)
    again = _call(tiny_pipe, inputs, seed=3)
    other = _call(tiny_pipe, inputs, seed=4)
    np.testing.assert_array_equal(first.video, again.video)
    np.testing.assert_array_equal(first.mask_trajectory, again.mask_trajectory)
    assert not np.array_equal(first.video, other.video)


def test_save_load_round_trip_is_bit_identical(tiny_pipe, inputs, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_pipe.save_pretrained(folder)
    tiny_pipe.save_pretrained(folder)  # overwriting an existing checkpoint works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp/backup leftovers
    index = json.loads((folder / "model_index.json").read_text())
    assert index["components"] == {
        "vae": "VideoVAE", "text_encoder": "clip", "trajectory_unet_text": "VideoUNet",
        "trajectory_unet_position": "VideoUNet", "video_unet": "VideoUNet",
        "scheduler": "SafeDDIMScheduler"}
    for name in ("vae", "trajectory_unet_text", "trajectory_unet_position", "video_unet",
                 "text_encoder"):
        assert (folder / name / "config.json").is_file()
        assert list((folder / name).rglob("*.safetensors"))
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))
    loaded = Mask2IVPipeline.from_pretrained(folder, device="cpu")
    assert loaded.config == tiny_pipe.config
    for mode in ("text", "position"):
        expected, got = _call(tiny_pipe, inputs, mode), _call(loaded, inputs, mode)
        np.testing.assert_array_equal(got.video, expected.video)
        np.testing.assert_array_equal(got.mask_trajectory, expected.mask_trajectory)


def test_minilm_checkpoint_stores_only_the_reference(inputs, tmp_path):
    pipe = build_tiny_pipeline(seed=1, modes=("text",), text_encoder="minilm", with_video=False)
    pipe.save_pretrained(tmp_path / "ckpt")
    assert [p.name for p in (tmp_path / "ckpt" / "text_encoder").iterdir()] == ["config.json"]
    loaded = Mask2IVPipeline.from_pretrained(tmp_path / "ckpt")
    assert loaded.modes == ("text",) and loaded.video_unet is None
    expected = _call(pipe, inputs, trajectory_only=True)
    got = _call(loaded, inputs, trajectory_only=True)
    np.testing.assert_array_equal(got.mask_trajectory, expected.mask_trajectory)


def test_scheduler_swap_dpm_solver(inputs, tmp_path):
    pipe = build_tiny_pipeline(seed=0)
    ddim = _call(pipe, inputs, num_inference_steps=4)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    steps = []
    dpm = _call(pipe, inputs, num_inference_steps=4,
                callback_on_step_end=lambda p, info: steps.append(info))
    assert [s.step for s in steps] == [1, 2, 3, 4] * 2
    assert np.isfinite(dpm.video.astype(float)).all()
    assert not np.array_equal(dpm.video, ddim.video)
    pipe.save_pretrained(tmp_path / "dpm")
    loaded = Mask2IVPipeline.from_pretrained(tmp_path / "dpm")
    assert isinstance(loaded.scheduler, DPMSolverMultistepScheduler)
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    np.testing.assert_array_equal(_call(loaded, inputs, num_inference_steps=4).video, dpm.video)


def test_default_scheduler_is_dynamicrafter_schedule(tiny_pipe):
    scheduler = tiny_pipe.scheduler
    assert isinstance(scheduler, DDIMScheduler)
    cfg = scheduler.config
    assert (cfg.beta_start, cfg.beta_end, cfg.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert cfg.prediction_type == "v_prediction" and cfg.rescale_betas_zero_snr
    assert cfg.timestep_spacing == "trailing" and not cfg.clip_sample


def test_callback_steps_per_stage(tiny_pipe, inputs):
    seen: list[StepInfo] = []
    _call(tiny_pipe, inputs, num_inference_steps=5,
          callback_on_step_end=lambda pipe, info: seen.append((pipe, info)))
    assert all(pipe is tiny_pipe for pipe, _ in seen)
    infos = [info for _, info in seen]
    assert [(i.stage, i.step, i.total_steps) for i in infos] == \
        [("trajectory", s, 5) for s in range(1, 6)] + [("video", s, 5) for s in range(1, 6)]
    tiny_pipe.scheduler.set_timesteps(5)
    expected = [int(t) for t in tiny_pipe.scheduler.timesteps]
    assert [i.timestep for i in infos[:5]] == expected == [999, 799, 599, 399, 199]


def test_trajectory_callback_comes_once_between_the_stages(tiny_pipe, inputs):
    events = []
    out = _call(tiny_pipe, inputs, num_inference_steps=3, num_samples=2,
                callback_on_step_end=lambda pipe, info: events.append((info.stage, info.step)),
                callback_on_trajectory=lambda pipe, early: events.append(("early", pipe, early)))
    early_at = [i for i, event in enumerate(events) if event[0] == "early"]
    assert len(early_at) == 1
    # after the last trajectory step, before the first video step
    assert events[:early_at[0]] == [("trajectory", s) for s in (1, 2, 3)]
    assert events[early_at[0] + 1:] == [("video", s) for s in (1, 2, 3)]
    _, pipe, early = events[early_at[0]]
    assert pipe is tiny_pipe and early.video is None and set(early.timings) == {"trajectory"}
    # the stage-1 result is the final one's masks, ranked the same way
    assert [h.seed for h in early.hypotheses] == [h.seed for h in out.hypotheses]
    for got, final in zip(early.hypotheses, out.hypotheses):
        np.testing.assert_array_equal(got.object_masks, final.object_masks)
        np.testing.assert_array_equal(got.mask_trajectory, final.mask_trajectory)
    assert out.video is not None


def test_trajectory_callback_with_trajectory_only(tiny_pipe, inputs):
    early = []
    out = _call(tiny_pipe, inputs, trajectory_only=True, callback_on_trajectory=lambda p, o: early.append(o))
    assert len(early) == 1
    np.testing.assert_array_equal(early[0].actor_masks, out.actor_masks)


def test_interrupt_from_another_thread_stops_within_one_step(tiny_pipe, inputs):
    reached_step_2, interrupted = threading.Event(), threading.Event()
    steps = []

    def interrupter():
        reached_step_2.wait(timeout=10)
        tiny_pipe.interrupt()
        interrupted.set()

    def callback(pipe, info):
        steps.append(info.step)
        if info.step == 2:
            reached_step_2.set()
            assert interrupted.wait(timeout=10)

    thread = threading.Thread(target=interrupter)
    thread.start()
    with pytest.raises(Mask2IVInterrupted, match="trajectory stage interrupted before step 3/10"):
        _call(tiny_pipe, inputs, num_inference_steps=10, callback_on_step_end=callback)
    thread.join()
    assert steps == [1, 2]
    # the request does not leak into the next call
    assert _call(tiny_pipe, inputs, trajectory_only=True).mask_trajectory.shape[0] == 4


class _UNetSpy:
    """Records the UNet inputs of each forward call."""

    def __init__(self, unet):
        self.unet, self.calls = unet, []

    def __enter__(self):
        def forward(x, timesteps, context=None, fs=None):
            self.calls.append(dict(x=x.clone(), context=None if context is None else context.clone()))
            return self.original(x, timesteps, context, fs)
        self.original = self.unet.forward
        self.unet.forward = forward
        return self

    def __exit__(self, *exc):
        del self.unet.forward


def test_guidance_batches_cond_and_uncond(tiny_pipe, inputs):
    with _UNetSpy(tiny_pipe.trajectory_unet_text) as spy:
        _call(tiny_pipe, inputs, trajectory_only=True, num_inference_steps=2)
    assert len(spy.calls) == 2 and spy.calls[0]["x"].shape[0] == 2   # one forward per step
    x, context = spy.calls[0]["x"], spy.calls[0]["context"]
    assert torch.equal(x[0, 4:], x[1, 4:])                # same concat, prompt vs empty prompt
    empty, _ = tiny_pipe.text_encoder.encode([""])
    assert torch.equal(context[1], empty[0]) and not torch.equal(context[0], context[1])
    with _UNetSpy(tiny_pipe.trajectory_unet_text) as spy:
        _call(tiny_pipe, inputs, trajectory_only=True, num_inference_steps=2, guidance_scale=1.0)
    assert spy.calls[0]["x"].shape[0] == 1                # no guidance -> single branch


def test_position_mode_guides_on_the_placement_slot(tiny_pipe, inputs):
    with _UNetSpy(tiny_pipe.trajectory_unet_position) as spy_t, \
            _UNetSpy(tiny_pipe.video_unet) as spy_v:
        _call(tiny_pipe, inputs, "position", num_inference_steps=2)
    x = spy_t.calls[0]["x"]
    assert x.shape[0] == 2
    # released stage-1 layout [noise 0..3, mask slots 4..7, image 8..11]
    assert torch.equal(x[0, :4], x[1, :4]) and torch.equal(x[0, 8:], x[1, 8:])
    assert torch.equal(x[0, 4:8, :-1], x[1, 4:8, :-1])
    assert (x[1, 4:8, -1] == 0).all() and (x[0, 4:8, -1] != 0).any()   # placement dropped
    assert (x[0, 4:8, 1:-1] == 0).all()                               # zeros between
    # stage 2 without a prompt: both branches would be identical, so no guidance batch
    assert spy_v.calls[0]["x"].shape[0] == 1


def test_stage2_is_conditioned_on_the_snapped_trajectory(tiny_pipe, inputs):
    encoded = []
    original = tiny_pipe.vae.encode
    tiny_pipe.vae.encode = lambda video, **kw: (encoded.append(video.clone()), original(video, **kw))[1]
    try:
        out = _call(tiny_pipe, inputs)
    finally:
        del tiny_pipe.vae.encode
    first, trajectory = encoded
    assert first.shape[2] == 2 and trajectory.shape == (1, 3, 4, 32, 48)
    pixels = ((trajectory[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    labels = palette_labels(pixels)
    assert set(np.unique(trajectory.numpy())) <= {-1.0, 1.0}         # exact palette colours
    # the first-frame mask fed to stage 1 is the colour-coded object + actor at model size
    first_mask = ((first[0, :, 1].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    assert (palette_labels(first_mask) == 1).sum() > 0 and (palette_labels(first_mask) == 2).sum() > 0
    assert labels.shape == (4, 32, 48) and out.video is not None


def test_position_only_checkpoint_rejects_prompt(inputs):
    pipe = build_tiny_pipeline(seed=2, modes=("position",), with_video=False)
    assert pipe.modes == ("position",)
    with pytest.raises(ValueError, match=r"prompt: this checkpoint has no text-conditioned"):
        _call(pipe, inputs, "text", trajectory_only=True)
    with pytest.raises(ValueError, match="trajectory_only: this checkpoint has no video model"):
        _call(pipe, inputs, "position")


def test_preview_gif(tiny_pipe, inputs, tmp_path):
    import imageio.v3 as iio

    from mask2iv_ros.pipeline.preview import preview_frames, save_gif

    out = _call(tiny_pipe, inputs)
    frames = preview_frames(inputs["image"], out)
    assert frames.shape == (4, 40, 180, 3)
    np.testing.assert_array_equal(frames[:, :, :60], out.masks_in_input_frame().mask_trajectory)
    save_gif(frames, tmp_path / "preview.gif", fps=out.fps)
    assert iio.imread(tmp_path / "preview.gif").shape[:3] == (4, 40, 180)
