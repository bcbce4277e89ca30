"""mask2iv-distill: LCD arithmetic against the LCM paper's formulas and diffusers' schedulers,
the distillation loop on the tiny pipeline (loss goes down, exact resume), and the exported
LCMScheduler folder (loads, samples in 2 and 4 steps as LCM's multistep sampler does)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, LCMScheduler
from safetensors.torch import load_file

from mask2iv_ros.pipeline import Mask2IVPipeline, build_tiny_pipeline
from mask2iv_ros.pipeline.conditioning import model_input, pt_condition, tt_condition
from mask2iv_ros.pipeline.sampling import denoise
from mask2iv_ros.training import checkpoint as ckpt
from mask2iv_ros.training import lcd
from mask2iv_ros.training.config import ConfigError
from mask2iv_ros.training.distill import Distiller, main
from mask2iv_ros.training.distill_config import load_distill_config
from mask2iv_ros.training.plots import read_metrics
from mask2iv_ros.training.stage_inputs import DiffusionInputs


REPO = Path(__file__).resolve().parents[2]


def zero_snr_alphas() -> torch.Tensor:
    """DynamiCrafter's schedule (zero terminal SNR) as diffusers builds it."""
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         rescale_betas_zero_snr=True).alphas_cumprod


# ---------------------------------------------------------------------- independent reference
# The LCM paper (Luo et al. 2023, sec. 4.2 / app. D) with sigma_data = 0.5 and timesteps scaled
# by 10, and the DDIM solver of its Algorithm 1, written out in float64.

def ref_scalings(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scaled = 10.0 * t.astype(np.float64)
    return 0.25 / (scaled ** 2 + 0.25), scaled / np.sqrt(scaled ** 2 + 0.25)


def ref_bcast(values: np.ndarray) -> np.ndarray:
    return values.reshape(-1, 1, 1, 1, 1)


def ref_x0_eps(v: np.ndarray, x: np.ndarray, alpha_bar: np.ndarray):
    a, s = ref_bcast(np.sqrt(alpha_bar)), ref_bcast(np.sqrt(1 - alpha_bar))
    return a * x - s * v, a * v + s * x


def ref_rescale(guided: np.ndarray, conditional: np.ndarray, phi: float) -> np.ndarray:
    std = lambda z: z.reshape(z.shape[0], -1).std(axis=1, ddof=1).reshape(-1, 1, 1, 1, 1)  # noqa
    return phi * guided * std(conditional) / std(guided) + (1 - phi) * guided


# ---------------------------------------------------------------------- toy networks

class ToyUNet(torch.nn.Module):
    """An affine 'UNet' (known outputs) reading noise, concat conditioning, timestep, context."""

    def __init__(self, scale: float, cond_weights: tuple[float, float]) -> None:
        super().__init__()
        self.scale, self.cond_weights = scale, cond_weights

    def forward(self, x, timesteps, context=None, fs=None):
        noisy, condition = x[:, :4], x[:, 4:]
        t = timesteps.float().view(-1, 1, 1, 1, 1)
        return (self.scale * noisy + self.cond_weights[0] * condition[:, :4]
                + self.cond_weights[1] * condition[:, 4:] + 1e-3 * t
                + 0.1 * context.float().mean(dim=(1, 2)).view(-1, 1, 1, 1, 1))

    @staticmethod
    def numpy(scale, cond_weights, x, condition, t, context):
        return (scale * x + cond_weights[0] * condition[:, :4] + cond_weights[1] * condition[:, 4:]
                + 1e-3 * ref_bcast(t.astype(np.float64))
                + 0.1 * ref_bcast(context.mean(axis=(1, 2))))


# ---------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teacher") / "pipeline"
    build_tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture
def distill_config(tmp_path, tiny_data_root, teacher_folder):
    """``distill_config(*overrides, output=...)``: the tiny config on the tiny teacher."""

    def make(*overrides: str, output: str = "run"):
        return load_distill_config(REPO / "training" / "distill" / "tiny_distill.yaml", [
            f"teacher={teacher_folder}", f"output_dir={tmp_path / output}",
            f"export_dir={tmp_path / 'lcm'}", f"data.root={tiny_data_root}",
            "data.synthetic_episodes=6", "max_steps=2", "checkpoint_every=100", "plot_every=100",
            "lcd.guidance_scale=7.5", "lcd.guidance_rescale=0.7", *overrides])

    return make


def _fixed_inputs(distiller: Distiller, batch: int = 2, seed: int = 0) -> DiffusionInputs:
    """PT-Gen inputs with a placement latent (the conditioning module builds the concat)."""
    g = torch.Generator().manual_seed(seed)
    frames, h, w = 4, 4, 6
    image, mask, placement = (torch.randn(batch, 4, 1, h, w, generator=g) for _ in range(3))
    context = distiller.empty_prompt_tokens(batch).clone()
    return DiffusionInputs(latents=torch.randn(batch, 4, frames, h, w, generator=g),
                           condition=pt_condition(image, mask, placement, frames),
                           context=context, fs=torch.full((batch,), 4), loss_weights=None)


# ---------------------------------------------------------------------- LCD arithmetic

def test_boundary_scalings_are_the_lcm_papers_and_lcmschedulers():
    t = np.array([0, 1, 19, 259, 499, 999])
    c_skip, c_out = lcd.boundary_scalings(torch.from_numpy(t))
    ref_skip, ref_out = ref_scalings(t)
    np.testing.assert_allclose(c_skip.numpy(), ref_skip, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(c_out.numpy(), ref_out, rtol=1e-6)
    assert c_skip[0] == 1.0 and c_out[0] == 0.0  # f(x, 0) = x: the boundary condition
    scheduler = LCMScheduler(timestep_scaling=10.0)
    for value, skip, out in zip(t, c_skip.tolist(), c_out.tolist()):
        expected = scheduler.get_scalings_for_boundary_condition_discrete(int(value))
        assert expected == pytest.approx((skip, out), rel=1e-6, abs=1e-12)


def test_solver_grid_is_ddim_trailing_and_lcm_original_schedule():
    alphas = zero_snr_alphas()
    solver = lcd.DDIMSolver(alphas, 50)
    assert solver.skip == 20 and solver.timesteps[0] == 19 and solver.timesteps[-1] == 999
    ddim = DDIMScheduler(timestep_spacing="trailing")
    ddim.set_timesteps(50)
    assert solver.timesteps.flip(0).tolist() == ddim.timesteps.tolist()
    lcm = LCMScheduler(original_inference_steps=50)
    lcm.set_timesteps(50)
    assert solver.timesteps.flip(0).tolist() == lcm.timesteps.tolist()
    start, end = solver.start_and_end(torch.tensor([0, 1, 49]))
    assert start.tolist() == [19, 39, 999] and end.tolist() == [0, 19, 979]
    with pytest.raises(ValueError, match="lcd.num_ddim_timesteps"):
        lcd.DDIMSolver(alphas, 0)


def test_solver_step_is_diffusers_deterministic_ddim():
    alphas = zero_snr_alphas()
    solver = lcd.DDIMSolver(alphas, 50)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              rescale_betas_zero_snr=True, prediction_type="v_prediction",
                              timestep_spacing="trailing", set_alpha_to_one=False,
                              clip_sample=False)
    scheduler.set_timesteps(50)
    g = torch.Generator().manual_seed(0)
    for index in (49, 30, 1, 0):  # 49: t = 999, alpha_bar = 0 (zero terminal SNR)
        x, v = torch.randn(2, 1, 4, 4, 4, generator=g), torch.randn(2, 1, 4, 4, 4, generator=g)
        t = int(solver.timesteps[index])
        idx = torch.full((1,), index)
        x0, eps = lcd.x0_and_eps(v, torch.full((1,), t), x, alphas)
        ours = solver.step(x0, eps, idx)
        theirs = scheduler.step(v, t, x, eta=0.0).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_teacher_step_and_target_match_reference(distill_config):
    """The distiller's LCD step (PT-Gen: guidance contrasts the placement latent) against the
    float64 reimplementation, with known affine networks as teacher and target."""
    distiller = Distiller(distill_config("lcd.num_ddim_timesteps=50"), show_progress=False)
    teacher_w, target_w = (0.6, (-0.3, 0.2)), (0.4, (0.1, -0.25))
    distiller.teacher = ToyUNet(*teacher_w)
    distiller.target = ToyUNet(*target_w)
    cond = _fixed_inputs(distiller)
    uncond = distiller.unconditional(cond)
    # the pipeline's unconditional PT-Gen branch: pt_condition(..., placement_latent=None)
    slots = pt_condition(*(torch.zeros(1, 4, 1, 4, 6),) * 2, torch.ones(1, 4, 1, 4, 6), 4)
    assert slots.sum() == 4 * 4 * 6 and torch.equal(uncond.condition, cond.condition * (1 - slots))
    g = torch.Generator().manual_seed(1)
    index = torch.tensor([49, 7])
    noise = torch.randn(cond.latents.shape, generator=g)
    start, end = distiller.solver.start_and_end(index)
    x_start = distiller.solver.add_noise(cond.latents, noise, start)
    x_prev = distiller.teacher_step(x_start, index, cond, uncond)
    target = distiller.consistency(distiller.target, x_prev, end, cond)

    ab = zero_snr_alphas().double().numpy()
    np_ = lambda tensor: tensor.double().numpy()  # noqa: E731
    t0, t1 = np.array([999, 159]), np.array([979, 139])
    assert start.tolist() == t0.tolist() and end.tolist() == t1.tolist()
    x0, eps, context = np_(cond.latents), np_(noise), np_(cond.context)
    x_t = ref_bcast(np.sqrt(ab[t0])) * x0 + ref_bcast(np.sqrt(1 - ab[t0])) * eps
    np.testing.assert_allclose(np_(x_start), x_t, atol=1e-5)
    v_c = ToyUNet.numpy(*teacher_w, x_t, np_(cond.condition), t0, context)
    v_u = ToyUNet.numpy(*teacher_w, x_t, np_(uncond.condition), t0, context)
    v_g = ref_rescale(v_u + 7.5 * (v_c - v_u), v_c, 0.7)
    x0_hat, eps_hat = ref_x0_eps(v_g, x_t, ab[t0])
    ref_prev = ref_bcast(np.sqrt(ab[t1])) * x0_hat + ref_bcast(np.sqrt(1 - ab[t1])) * eps_hat
    np.testing.assert_allclose(np_(x_prev), ref_prev, rtol=1e-4, atol=1e-4)
    v_target = ToyUNet.numpy(*target_w, ref_prev, np_(cond.condition), t1, context)
    c_skip, c_out = ref_scalings(t1)
    ref_target = ref_bcast(c_skip) * ref_prev + ref_bcast(c_out) * ref_x0_eps(
        v_target, ref_prev, ab[t1])[0]
    np.testing.assert_allclose(np_(target), ref_target, rtol=1e-4, atol=1e-4)


def test_unconditional_inputs_are_the_pipelines(distill_config, teacher_folder):
    pipe = Mask2IVPipeline.from_pretrained(teacher_folder)
    text = Distiller(distill_config("stage=trajectory_text"), show_progress=False)
    batch = next(text._batches())
    cond, uncond = text.stage_inputs(batch)
    assert text.guided and torch.equal(uncond.condition, cond.condition)
    torch.testing.assert_close(uncond.context, pipe.encode_context([""] * len(batch["prompt"])))
    torch.testing.assert_close(cond.context, pipe.encode_context(list(batch["prompt"])))
    assert not torch.equal(cond.context, uncond.context)
    # stage 2 samples on the empty prompt: nothing to contrast without the image branch
    video = Distiller(distill_config("stage=video"), show_progress=False)
    cond, uncond = video.stage_inputs(next(video._batches()))
    assert uncond is None and not video.guided
    torch.testing.assert_close(cond.context, pipe.encode_context([""] * cond.context.shape[0]))
    prompted = Distiller(distill_config("stage=video", "lcd.video_prompt=prompt"),
                         show_progress=False)
    cond, uncond = prompted.stage_inputs(next(prompted._batches()))
    assert prompted.guided and torch.equal(uncond.condition, cond.condition)
    torch.testing.assert_close(uncond.context, pipe.encode_context([""] * cond.context.shape[0]))


# ---------------------------------------------------------------------- the loop

def test_steps_on_a_fixed_batch_reduce_the_loss(distill_config):
    distiller = Distiller(distill_config("optim.lr=1e-3", "lcd.num_ddim_timesteps=10"),
                          show_progress=False)
    batch = next(distiller._batches())
    noise_state, host_state = distiller.generator.get_state(), distiller.host_rng.bit_generator.state

    def fixed_draws():
        torch.manual_seed(0)  # the student's dropout (DynamiCrafter's temporal convs)
        distiller.generator.set_state(noise_state)
        distiller.host_rng.bit_generator.state = host_state
        return batch

    with torch.no_grad():
        fixed_draws()
        initial = float(distiller._loss(batch))
    teacher_before = {k: v.clone() for k, v in distiller.teacher.state_dict().items()}
    losses = []
    for _ in range(8):
        fixed_draws()
        loss, _ = distiller.train_step(iter([batch]))
        losses.append(float(loss))
    fixed_draws()
    with torch.no_grad():
        final = float(distiller._loss(batch))
    assert losses[0] == pytest.approx(initial, rel=1e-5)
    assert final < 0.5 * initial, (initial, losses, final)
    assert all(torch.equal(v, distiller.teacher.state_dict()[k]) for k, v in teacher_before.items())
    # the target network trails the student (EMA 0.95), it is neither the student nor the teacher
    student = distiller.unwrapped_student.state_dict()
    target = distiller.target.state_dict()
    key = "input_blocks.0.0.weight"
    assert not torch.equal(target[key], student[key])
    assert not torch.equal(target[key], teacher_before[key])


def test_resume_after_kill_is_exact(distill_config):
    overrides = ("max_steps=4", "checkpoint_every=2", "export_at_end=false", "ema.enabled=true",
                 "stage=video", "lcd.video_prompt=prompt")
    straight = Distiller(distill_config(*overrides, output="straight"), show_progress=False)
    straight_losses = straight.train()
    config = distill_config(*overrides, output="killed")
    killed = Distiller(config, show_progress=False)
    killed.train(stop_after=3)  # "killed" after step 3: the newest checkpoint is step 2
    assert [s for s, _ in ckpt.list_checkpoints(killed.checkpoint_root)] == [2]
    saved = load_file(str(ckpt.latest_checkpoint(killed.checkpoint_root) / "model.safetensors"))
    assert {k.split(".")[0] for k in saved} == {"student", "target"}
    resumed = Distiller(config, resume=True, show_progress=False)
    assert resumed.global_step == 2
    resumed.train()
    rows = read_metrics(resumed.output_dir / "metrics.csv")
    assert [row["step"] for row in rows] == [1, 2, 3, 4]
    assert [row["loss"] for row in rows] == straight_losses  # bitwise on CPU
    for a, b in ((straight.unwrapped_student, resumed.unwrapped_student),
                 (straight.target, resumed.target)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert all(torch.equal(straight.ema.shadow[k], resumed.ema.shadow[k])
               for k in straight.ema.shadow)


# ---------------------------------------------------------------------- export and sampling

def _unet_calls(pipe: Mask2IVPipeline, steps: int, **kwargs) -> tuple[list[int], np.ndarray]:
    timesteps = []
    image = np.full((32, 48, 3), 90, np.uint8)
    mask = np.zeros((32, 48), bool)
    mask[8:18, 10:22] = True
    out = pipe(image, mask, placement_mask=np.roll(mask, 16, axis=1), num_inference_steps=steps,
               guidance_scale=1.0, seed=3, trajectory_only=True,
               callback_on_step_end=lambda _, info: timesteps.append(info.timestep), **kwargs)
    return timesteps, out.mask_trajectory


def test_export_is_an_lcm_pipeline_sampling_in_2_and_4_steps(distill_config, teacher_folder,
                                                              tmp_path, capsys):
    config = distill_config("max_steps=2")
    path = tmp_path / "distill.yaml"
    path.write_text(config.to_yaml())
    assert main(["--config", str(path), "--no-progress"]) == 0
    assert "LCM pipeline in" in capsys.readouterr().out
    folder = tmp_path / "lcm"
    pipe = Mask2IVPipeline.from_pretrained(folder)
    assert isinstance(pipe.scheduler, LCMScheduler)
    sched = pipe.scheduler.config
    assert (sched.original_inference_steps, sched.timestep_scaling, sched.prediction_type,
            sched.rescale_betas_zero_snr) == (50, 10.0, "v_prediction", True)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["components"]["scheduler"] == "LCMScheduler"
    if "sampling" in index["config"]:  # the recorded sampling defaults (pipeline_config.py)
        sampling = index["config"]["sampling"]
        assert (sampling["num_inference_steps"], sampling["guidance_scale"], sampling["eta"],
                sampling["scheduler"], sampling["dynamic_rescale"]) == (4, 1.0, 0.0,
                                                                        "LCMScheduler", None)
    else:
        assert index["config"]["eta"] == 0.0
    # the student: the teacher UNet's config unchanged, its weights = the target network
    component = "trajectory_unet_position"
    teacher_cfg = json.loads((teacher_folder / component / "config.json").read_text())
    assert json.loads((folder / component / "config.json").read_text()) == teacher_cfg
    info = json.loads((folder / component / "distillation.json").read_text())
    assert (info["steps"], info["weights"], info["guidance_scale"]) == (2, "target", 7.5)
    teacher = Mask2IVPipeline.from_pretrained(teacher_folder)
    student, original = pipe.trajectory_unet_position.state_dict(), \
        teacher.trajectory_unet_position.state_dict()
    assert any(not torch.equal(student[k], original[k]) for k in student)
    for name in ("trajectory_unet_text", "video_unet", "vae"):  # not distilled: the teacher's
        a, b = getattr(pipe, name).state_dict(), getattr(teacher, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    # LCMScheduler's multistep schedule on the 50-step grid
    calls4, traj4 = _unet_calls(pipe, 4)
    calls2, traj2 = _unet_calls(pipe, 2)
    assert calls4 == [999, 759, 499, 259] and calls2 == [999, 499]
    assert traj4.shape == (4, 32, 48, 3) and not np.array_equal(traj2, traj4)
    assert np.array_equal(_unet_calls(pipe, 4)[1], traj4)  # seeded


def test_sampling_loop_is_lcm_multistep_sampling(teacher_folder):
    """pipeline.sampling.denoise with an LCMScheduler = LCM's multistep sampler written out
    (consistency function, then re-noising to the next timestep with the generator's noise)."""
    pipe = Mask2IVPipeline.from_pretrained(teacher_folder)
    unet = pipe.trajectory_unet_position
    scheduler = LCMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                             rescale_betas_zero_snr=True, prediction_type="v_prediction",
                             original_inference_steps=50)
    g = torch.Generator().manual_seed(0)
    condition = torch.randn(1, 8, 4, 4, 6, generator=g)
    context = pipe.encode_context([""])
    ours = denoise(unet, scheduler, condition, context, num_inference_steps=3, guidance_scale=1.0,
                   generator=torch.Generator().manual_seed(5), fs=4)
    ab = zero_snr_alphas().double()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 4, 4, 6, generator=g, dtype=torch.float32)
    timesteps = [999, 679, 339]  # floor(linspace(0, 50, 3, endpoint=False)) on 999, 979, ..., 19
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            v = unet(model_input(x, condition), torch.tensor([t]), context, torch.tensor([4]))
            x0 = math.sqrt(ab[t]) * x.double() - math.sqrt(1 - ab[t]) * v.double()
            c_skip, c_out = (float(c[0]) for c in ref_scalings(np.array([t])))
            denoised = c_skip * x.double() + c_out * x0
            if i + 1 < len(timesteps):
                nxt = timesteps[i + 1]
                z = torch.randn(x.shape, generator=g, dtype=torch.float32).double()
                x = (math.sqrt(ab[nxt]) * denoised + math.sqrt(1 - ab[nxt]) * z).float()
            else:
                x = denoised.float()
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- errors

def _with_dynamic_rescale(config):
    if hasattr(config, "sampling"):
        return dataclasses.replace(config, sampling=dataclasses.replace(config.sampling,
                                                                        dynamic_rescale=0.7))
    return dataclasses.replace(config, dynamic_rescale=0.7)


def test_teachers_it_cannot_distil_and_bad_configs(distill_config, tmp_path):
    pipe = build_tiny_pipeline(seed=1)
    pipe.config = _with_dynamic_rescale(pipe.config)
    pipe.save_pretrained(tmp_path / "rescaled")
    with pytest.raises(ValueError, match="dynamic rescale"):
        Distiller(distill_config(f"teacher={tmp_path / 'rescaled'}"), show_progress=False)
    no_text = build_tiny_pipeline(seed=1, modes=("position",))
    no_text.save_pretrained(tmp_path / "position_only")
    with pytest.raises(ValueError, match="has no trajectory_unet_text"):
        Distiller(distill_config(f"teacher={tmp_path / 'position_only'}",
                                 "stage=trajectory_text"), show_progress=False)
    with pytest.raises(ConfigError, match="lcd.export_steps"):
        distill_config("lcd.export_steps=20", "lcd.num_ddim_timesteps=10")
    with pytest.raises(ConfigError, match="lcd.loss"):
        distill_config("lcd.loss=l1")
    with pytest.raises(ConfigError, match="lcd.export_weights"):
        distill_config("lcd.export_weights=ema")


def test_exports_of_other_stages_join_the_folder(distill_config, tmp_path):
    Distiller(distill_config("max_steps=1"), show_progress=False).train()
    Distiller(distill_config("max_steps=1", "stage=video", output="video"),
              show_progress=False).train()
    folder = tmp_path / "lcm"
    assert sorted(p.parent.name for p in folder.glob("*/distillation.json")) == [
        "trajectory_unet_position", "video_unet"]
    with pytest.raises(ValueError, match="grid of 50"):
        Distiller(distill_config("max_steps=1", "stage=trajectory_text", "lcd.export_steps=2",
                                 "lcd.num_ddim_timesteps=20", output="text"),
                  show_progress=False).train()
    assert list(itertools.islice(folder.glob("trajectory_unet_text/distillation.json"), 1)) == []
    with pytest.raises(ValueError, match="already a distilled"):
        Distiller(distill_config(f"teacher={folder}"), show_progress=False)


def test_shipped_configs_load_and_share_one_grid():
    configs = {name: load_distill_config(REPO / "training" / "distill" / f"{name}.yaml")
               for name in ("tiny_distill", "embedded_distill", "paper_distill_stage1",
                            "paper_distill_stage2")}
    stage1, stage2 = configs["paper_distill_stage1"], configs["paper_distill_stage2"]
    assert (stage1.stage, stage2.stage) == ("trajectory_position", "video")
    # both stages export into one LCM folder, which has one scheduler (one grid)
    assert stage1.resolved_export_dir == stage2.resolved_export_dir
    assert stage1.lcd.num_ddim_timesteps == stage2.lcd.num_ddim_timesteps == 50
    assert stage1.gradient_checkpointing and stage1.lcd.export_steps == 4
    assert configs["embedded_distill"].teacher == "mask2iv_ros/assets/default_model"
