"""Tiny end-to-end training runs of the three stages, exact resume and pipeline export."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mask2iv_ros.models.text_embeddings import precompute_text_embeddings
from mask2iv_ros.models.text_encoder import MiniLMTextEncoder
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.pipeline import Mask2IVPipeline
from mask2iv_ros.training import checkpoint as ckpt
from mask2iv_ros.training.data_order import DataPosition
from mask2iv_ros.training.plots import read_metrics
from mask2iv_ros.training.train import Trainer, main


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    return {k: v.detach().clone() for k, v in unet.state_dict().items()}


def _optimized_ids(trainer: Trainer) -> set[int]:
    return {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}


@pytest.mark.parametrize("name, accumulation", [("tiny_stage1_text", 1),
                                                ("tiny_stage1_position", 2)])
def test_stage1_trains_everything_but_temporal_attention(tiny_config, name, accumulation):
    trainer = Trainer(tiny_config(name, f"optim.gradient_accumulation_steps={accumulation}"),
                      show_progress=False)
    unet = trainer.accelerator.unwrap_model(trainer.unet)
    frozen = unet.temporal_attention_parameters()
    assert frozen and trainer.frozen_names == sorted(frozen)
    assert all(not p.requires_grad for p in frozen.values())
    assert not _optimized_ids(trainer) & {id(p) for p in frozen.values()}
    assert _optimized_ids(trainer) == {id(p) for p in unet.parameters() if p.requires_grad}
    before = _weights(trainer)
    losses = trainer.train()
    after = _weights(trainer)
    assert len(losses) == 2 and all(np.isfinite(losses))
    for name_ in frozen:
        assert torch.equal(before[name_], after[name_]), name_
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "input_blocks.0.0.weight" in changed  # includes the mask-latent input channels
    assert after["input_blocks.0.0.weight"][:, 8:].abs().sum() > 0
    assert (trainer.output_dir / "loss.png").stat().st_size > 0
    expected = DataPosition()
    for _ in range(2 * accumulation):  # every micro-batch consumed exactly once
        expected = trainer.sampler.advance(expected)
    assert trainer.position == expected


def test_stage1_foreground_weights_from_the_target_mask_video(tiny_config):
    trainer = Trainer(tiny_config("tiny_stage1_text"), show_progress=False)
    batch = next(trainer._batches())
    inputs = trainer.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert trainer.config.stage1.fg_weight == 5.0
    assert inputs.loss_form == "squared_error"
    assert inputs.loss_weights.shape == (2, 1, *inputs.latents.shape[2:])
    # released: (actor or object) of the target mask video, nearest 1/8 -> 5, background 1
    foreground = (torch.as_tensor(batch["mask_video"]) > 0).any(1)[:, None, :, ::8, ::8]
    assert foreground.any() and not foreground.all()
    assert torch.equal(inputs.loss_weights, foreground.float() * 4 + 1)
    off = Trainer(tiny_config("tiny_stage1_text", "stage1.fg_weight=1.0", output="off"),
                  show_progress=False)
    assert off.stage_inputs(batch, np.random.default_rng(0), torch.Generator()).loss_weights is None


def test_stage1_last_frame_weight_multiplies_the_last_latent_frame(tiny_config):
    base = Trainer(tiny_config("tiny_stage1_position"), show_progress=False)
    batch = next(base._batches())
    released = base.stage_inputs(batch, np.random.default_rng(0), torch.Generator()).loss_weights
    heavy = Trainer(tiny_config("tiny_stage1_position", "stage1.last_frame_weight=3.0", output="heavy"),
                    show_progress=False)
    weights = heavy.stage_inputs(batch, np.random.default_rng(0), torch.Generator()).loss_weights
    assert torch.equal(weights[:, :, :-1], released[:, :, :-1])
    assert torch.equal(weights[:, :, -1], released[:, :, -1] * 3)
    # without the foreground weight: ones, the last frame 3
    plain = Trainer(tiny_config("tiny_stage1_position", "stage1.fg_weight=1.0",
                                "stage1.last_frame_weight=3.0", output="plain"), show_progress=False)
    inputs = plain.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert inputs.loss_weights.shape == (2, 1, *inputs.latents.shape[2:])
    assert inputs.loss_weights[:, :, :-1].eq(1).all() and inputs.loss_weights[:, :, -1].eq(3).all()
    with pytest.raises(ValueError, match="stage1.last_frame_weight"):
        tiny_config("tiny_stage1_position", "stage1.last_frame_weight=0.5")


def test_dynamic_rescale_noises_x0_times_s_t(tiny_config):
    """diffusion.dynamic_rescale: the UNet sees add_noise(x0 * s(t), noise, t) and the v target
    is formed from x0 * s(t) (DynamiCrafter's LatentDiffusion.forward)."""
    import copy

    from mask2iv_ros.pipeline.sampling import dynamic_rescale_schedule
    from mask2iv_ros.training import train as train_module

    trainer = Trainer(tiny_config("tiny_stage1_position", "stage1.fg_weight=1.0"),
                      show_progress=False)
    assert trainer.config.diffusion.dynamic_rescale == 0.7
    batch = next(trainer._batches())
    seen = {}

    def record_input(module, args):
        seen["x"] = args[0].detach().clone()

    trainer.denoiser.register_forward_pre_hook(record_input)
    captured = {}
    real_loss = train_module.weighted_diffusion_loss

    def capturing_loss(prediction, target, *rest):
        captured["target"] = target
        return real_loss(prediction, target, *rest)

    train_module.weighted_diffusion_loss = capturing_loss
    host, state = copy.deepcopy(trainer.host_rng), trainer.generator.get_state()
    try:
        trainer._loss(batch)
    finally:
        train_module.weighted_diffusion_loss = real_loss
    # replay the same draws: stage inputs, noise, timesteps
    generator = torch.Generator().set_state(state)
    inputs = trainer.stage_inputs(batch, host, generator)
    noise = torch.randn(inputs.latents.shape, generator=generator)
    t = torch.randint(0, 1000, (inputs.latents.shape[0],), generator=generator)
    s = dynamic_rescale_schedule(0.7).float()[t].view(-1, 1, 1, 1, 1)
    x0 = inputs.latents * s
    scheduler = trainer.noise_scheduler
    torch.testing.assert_close(seen["x"][:, :4], scheduler.add_noise(x0, noise, t))
    torch.testing.assert_close(captured["target"], scheduler.get_velocity(x0, noise, t))
    assert not torch.allclose(seen["x"][:, :4], scheduler.add_noise(inputs.latents, noise, t))


@pytest.mark.parametrize("overrides, allowed", [
    (["diffusion.train_timesteps=[999,499]"], {999, 499}),
    (["diffusion.train_timesteps=[999,499]", "diffusion.train_timestep_jitter=3"],
     set(range(996, 1000)) | set(range(496, 503))),
])
def test_train_timesteps_restrict_what_the_unet_sees(tiny_config, overrides, allowed):
    """diffusion.train_timesteps: the denoiser is only trained at those timesteps (+- jitter,
    clipped to the schedule); by default every timestep of the schedule can come."""
    seen = []
    for config in (tiny_config("tiny_stage1_text", "optim.batch_size=4", *overrides, output="on"),
                   tiny_config("tiny_stage1_text", "optim.batch_size=4", output="off")):
        trainer = Trainer(config, show_progress=False)
        timesteps = []
        trainer.denoiser.register_forward_pre_hook(lambda m, args: timesteps.extend(args[1].tolist()))
        batches = trainer._batches()
        for _ in range(6):
            trainer._loss(next(batches))
        seen.append(set(timesteps))
    focused, everywhere = seen
    assert focused <= allowed and len(focused) > 1
    assert not everywhere <= allowed and len(everywhere) > 8


def test_stage2_trains_with_contact_weights(tiny_config):
    trainer = Trainer(tiny_config("tiny_stage2"), show_progress=False)
    assert not trainer.frozen_names  # stage 2 trains temporal attention too (config)
    batch = next(trainer._batches())
    inputs = trainer.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert inputs.condition.shape[1] == 8 and inputs.latents.shape[1] == 4
    assert inputs.loss_weights is not None
    assert set(inputs.loss_weights.unique().tolist()) <= {1.0, 5.0}
    assert inputs.loss_weights.shape == (2, 1, *inputs.latents.shape[2:])
    before = _weights(trainer)
    losses = trainer.train()
    after = _weights(trainer)
    assert all(np.isfinite(losses))
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2


def test_stage2_ablation_switches(tiny_config):
    config = tiny_config("tiny_stage2", "stage2.contact_loss_lambda=1.0", "stage2.control=none",
                         "stage2.random_dilate_erode=false")
    trainer = Trainer(config, show_progress=False)
    batch = next(trainer._batches())
    inputs = trainer.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert inputs.loss_weights is None
    assert torch.count_nonzero(inputs.condition[:, 4:]) == 0  # no trajectory latents
    actor_only = Trainer(tiny_config("tiny_stage2", "stage2.trajectory_content=actor_only",
                                     "stage2.random_dilate_erode=false", output="actor_only"),
                         show_progress=False)
    full = Trainer(tiny_config("tiny_stage2", "stage2.random_dilate_erode=false",
                               output="full"), show_progress=False)
    a = actor_only.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    f = full.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert torch.equal(a.latents, f.latents)
    assert not torch.allclose(a.condition[:, 4:], f.condition[:, 4:])  # object colour missing
    assert torch.equal(a.condition[:, :4], f.condition[:, :4])  # same image latent


def test_resume_after_kill_is_exact(tiny_config):
    overrides = ("max_steps=4", "checkpoint_every=2", "export_at_end=false")
    straight = Trainer(tiny_config("tiny_stage2", *overrides, output="straight"),
                       show_progress=False)
    straight_losses = straight.train()

    config = tiny_config("tiny_stage2", *overrides, output="killed")
    killed = Trainer(config, show_progress=False)
    killed.train(stop_after=3)  # "killed" after step 3: newest checkpoint is step 2
    assert [s for s, _ in ckpt.list_checkpoints(killed.checkpoint_root)] == [2]
    resumed = Trainer(config, resume=True, show_progress=False)
    assert resumed.global_step == 2
    resumed.train()
    logged = [row["loss"] for row in read_metrics(resumed.output_dir / "metrics.csv")]
    assert [row["step"] for row in read_metrics(resumed.output_dir / "metrics.csv")] == [1, 2, 3, 4]
    assert logged == straight_losses  # bitwise on CPU
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(straight.ema.shadow[k], resumed.ema.shadow[k])
               for k in straight.ema.shadow)


def test_export_fills_one_pipeline_folder(tiny_config, tmp_path):
    # a stage-2 export alone is not a loadable pipeline; it waits for a trajectory model
    Trainer(tiny_config("tiny_stage2", "max_steps=1", output="s2"), show_progress=False).train()
    assert (tmp_path / "pipeline" / "video_unet" / "config.json").is_file()
    assert not (tmp_path / "pipeline" / "model_index.json").exists()
    Trainer(tiny_config("tiny_stage1_text", "max_steps=1", output="s1"),
            show_progress=False).train()
    pipe = Mask2IVPipeline.from_pretrained(tmp_path / "pipeline")
    assert pipe.modes == ("text",) and pipe.video_unet is not None
    image = np.zeros((32, 48, 3), np.uint8)
    mask = np.zeros((32, 48), bool)
    mask[8:20, 10:24] = True
    out = pipe(image, mask, prompt="push the red block", num_inference_steps=2)
    assert out.video.shape == (4, 32, 48, 3)


def test_cli_export_and_errors(tiny_config, tmp_path, capsys):
    config = tiny_config("tiny_stage1_position", "max_steps=1", "export_at_end=false")
    config_path = tmp_path / "run.yaml"
    config_path.write_text(config.to_yaml())
    assert main(["--config", str(config_path), "--no-progress"]) == 0
    assert not (tmp_path / "pipeline" / "model_index.json").exists()
    assert main(["--config", str(config_path), "--export"]) == 0
    assert Mask2IVPipeline.from_pretrained(tmp_path / "pipeline").modes == ("position",)
    assert main(["--config", str(config_path), "--override", "optim.lrr=1"]) == 2
    assert "optim.lrr: unknown config key" in capsys.readouterr().err


def test_init_from_an_exported_unet_folder_continues_training(tiny_config, tmp_path):
    """model.init_from also takes a Mask2IV UNet folder (continue a run elsewhere, e.g. a GPU
    run fine-tuned further on CPU): the new run starts from exactly those weights."""
    first = Trainer(tiny_config("tiny_stage2", "max_steps=2", output="first"), show_progress=False)
    first.train()
    folder = tmp_path / "pipeline" / "video_unet"
    saved = VideoUNet.from_pretrained(folder).state_dict()
    second = Trainer(tiny_config("tiny_stage2", f"model.init_from={folder}", output="second"),
                     show_progress=False)
    start = _weights(second)
    assert all(torch.equal(start[k], saved[k]) for k in saved)
    bad = tiny_config("tiny_stage1_text", f"model.init_from={tmp_path}")  # no model.safetensors
    with pytest.raises(FileNotFoundError, match="model.init_from"):
        Trainer(bad, show_progress=False)


def test_resume_refuses_checkpoints_from_before_the_released_order(tmp_path):
    from mask2iv_ros.training.train import _check_checkpoint_concat_order

    folder = tmp_path / "step_00000002"
    folder.mkdir()
    (folder / "trainer_state.json").write_text('{"global_step": 2, "concat_order": "release"}')
    _check_checkpoint_concat_order(folder)  # written by this version: fine
    (folder / "trainer_state.json").write_text('{"global_step": 2}')
    with pytest.raises(ValueError, match="--resume: .* old concat order"):
        _check_checkpoint_concat_order(folder)


def test_resume_without_checkpoint_is_one_line_and_exit_2(tmp_path, tiny_data_root, capsys):
    config_path = Path(__file__).resolve().parents[2] / "training" / "tiny_stage1_position.yaml"
    code = main(["--config", str(config_path), "--resume", "--override", f"output_dir={tmp_path / 'empty'}",
                 "--override", f"data.root={tiny_data_root}", "--override", "data.synthetic_episodes=6"])
    assert code == 2
    assert "mask2iv-train: --resume: no complete checkpoint under" in capsys.readouterr().err


def test_pt_gen_trains_and_exports_the_same_with_precomputed_embeddings(tiny_config, tmp_path):
    """PT-Gen reads only the empty prompt: a run on the precomputed file matches a run on the
    encoder step for step, and its export records the encoder (loadable for inference)."""
    minilm = MiniLMTextEncoder.from_path(None, max_length=8)
    minilm.save_pretrained(tmp_path / "text_encoder")
    path = precompute_text_embeddings(minilm, [""], tmp_path / "empty.safetensors")
    losses = {}
    for name, encoder in (("encoder", ["model.text_encoder.type=folder",
                                       f"model.text_encoder.path={tmp_path / 'text_encoder'}"]),
                          ("precomputed", ["model.text_encoder.type=precomputed",
                                           f"model.text_encoder.path={path}"])):
        trainer = Trainer(tiny_config("tiny_stage1_position", *encoder, "max_steps=1",
                                      "export_at_end=false", output=name), show_progress=False)
        torch.manual_seed(0)
        losses[name] = float(trainer._loss(next(trainer._batches())).detach())
    assert losses["precomputed"] == pytest.approx(losses["encoder"], rel=1e-6)
    trainer.export()
    written = json.loads((tmp_path / "pipeline" / "text_encoder" / "config.json").read_text())
    assert written == minilm.to_config()
