"""stage2.control=controlnet: the branch trains with the UNet, resumes exactly, exports, evaluates."""

import numpy as np
import torch
from safetensors.torch import load_file

from mask2iv_ros.eval.generation import (Trajectory, VideoControl, generate_video,
                                         load_controlnet)
from mask2iv_ros.models.controlnet import ControlledVideoUNet, VideoControlNet
from mask2iv_ros.pipeline import Mask2IVPipeline
from mask2iv_ros.training import checkpoint as ckpt
from mask2iv_ros.training.plots import read_metrics
from mask2iv_ros.training.train import Trainer

CONTROLNET = ("stage2.control=controlnet", "stage2.trajectory_content=actor_only",
              "stage2.random_dilate_erode=false")


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _zero_initialised(controlnet: VideoControlNet) -> list[torch.nn.Module]:
    return [*controlnet.zero_convs, controlnet.middle_block_out, controlnet.input_hint_block[-1]]


def test_trajectory_goes_to_the_hint_not_the_concat_channels(tiny_config):
    controlled = Trainer(tiny_config("tiny_stage2", *CONTROLNET), show_progress=False)
    concat = Trainer(tiny_config("tiny_stage2", "stage2.trajectory_content=actor_only",
                                 "stage2.random_dilate_erode=false", output="concat"),
                     show_progress=False)
    batch = next(controlled._batches())
    c = controlled.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    k = concat.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    # released stage-2 order: concat = [image latent, trajectory latents]
    assert torch.count_nonzero(c.condition[:, 4:]) == 0
    assert torch.equal(c.condition[:, :4], k.condition[:, :4])           # image latent
    assert c.control_hint is not None and k.control_hint is None
    assert torch.equal(c.control_hint, k.condition[:, 4:])               # actor-only trajectory
    # The optimizer trains UNet and branch together; the branch starts as the UNet's encoder.
    assert isinstance(controlled.model, ControlledVideoUNet)
    optimized = {id(p) for g in controlled.optimizer.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in controlled.model.parameters()}
    unet, branch = controlled.unet.state_dict(), controlled.controlnet.state_dict()
    assert torch.equal(unet["input_blocks.1.0.in_layers.2.weight"],
                       branch["input_blocks.1.0.in_layers.2.weight"])
    assert controlled.controlnet.hint_channels == controlled.vae.latent_channels


def test_two_steps_train_the_branch(tiny_config):
    trainer = Trainer(tiny_config("tiny_stage2", *CONTROLNET, "export_at_end=false"),
                      show_progress=False)
    controlnet = trainer.controlnet
    assert all(torch.count_nonzero(m.weight) == 0 for m in _zero_initialised(controlnet))
    unet_before, branch_before = _state(trainer.unet), _state(controlnet)
    losses = trainer.train()
    assert len(losses) == 2 and all(np.isfinite(losses))
    # Weight decay alone keeps zeros at zero: non-zero output convs mean gradients reached them
    # (step 1 trains only the UNet's zero-initialised out conv; from step 2 on the residuals
    # matter, from step 3 on the hint conv behind them).
    residual_convs = [*controlnet.zero_convs, controlnet.middle_block_out]
    assert all(torch.count_nonzero(m.weight) > 0 for m in residual_convs)
    branch_after = _state(controlnet)
    changed = [k for k in branch_before if not torch.equal(branch_before[k], branch_after[k])]
    assert len(changed) > len(branch_before) // 2
    unet_after = _state(trainer.unet)
    assert sum(not torch.equal(unet_before[k], unet_after[k]) for k in unet_before) > \
        len(unet_before) // 2
    assert set(trainer.ema.shadow) == {n for n, p in trainer.model.named_parameters()
                                       if p.requires_grad}
    assert any(name.startswith("controlnet.") for name in trainer.ema.shadow)


def test_resume_after_kill_is_exact(tiny_config):
    overrides = (*CONTROLNET, "max_steps=3", "checkpoint_every=2", "export_at_end=false")
    straight = Trainer(tiny_config("tiny_stage2", *overrides, output="straight"),
                       show_progress=False)
    straight_losses = straight.train()

    config = tiny_config("tiny_stage2", *overrides, output="killed")
    killed = Trainer(config, show_progress=False)
    killed.train(stop_after=3)  # killed after step 3: newest checkpoint is step 2
    folder = ckpt.latest_checkpoint(killed.checkpoint_root)
    saved = load_file(str(folder / "model.safetensors"))
    assert any(k.startswith("controlnet.") for k in saved) and any(k.startswith("unet.") for k in saved)
    resumed = Trainer(config, resume=True, show_progress=False)
    assert resumed.global_step == 2
    resumed.train()
    assert [row["loss"] for row in read_metrics(resumed.output_dir / "metrics.csv")] == \
        straight_losses  # bitwise on CPU
    a, b = _state(straight.model), _state(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(straight.ema.shadow[k], resumed.ema.shadow[k])
               for k in straight.ema.shadow)


def test_export_and_evaluation_use_the_branch(tiny_config, tmp_path):
    # 3 steps: the hint conv gets its first gradient at step 3 (see test_two_steps_...).
    trainer = Trainer(tiny_config("tiny_stage2", *CONTROLNET, "max_steps=3", output="s2"),
                      show_progress=False)
    trainer.train()
    folder = tmp_path / "pipeline"
    assert (folder / "video_unet" / "config.json").is_file()
    exported = VideoControlNet.from_pretrained(folder / "video_controlnet")
    ema = trainer.ema.shadow  # tiny_stage2 exports the EMA weights
    for name, value in exported.named_parameters():
        assert torch.equal(value, ema[f"controlnet.{name}"]), name
    # A stage-1 export rewrites the folder as a pipeline and keeps the stage-2 branch.
    Trainer(tiny_config("tiny_stage1_text", "max_steps=1", output="s1"),
            show_progress=False).train()
    pipe = Mask2IVPipeline.from_pretrained(folder)
    controlnet = load_controlnet(folder, pipe.device)
    assert all(torch.equal(a, b) for a, b in zip(controlnet.state_dict().values(),
                                                  exported.state_dict().values()))

    image = np.full((32, 48, 3), 90, np.uint8)
    actor = np.zeros((4, 32, 48), bool)
    actor[:, 4:12, 6:14] = True
    obj = np.zeros_like(actor)
    obj[:, 18:26, 20:30] = True
    video = generate_video(pipe, image, Trajectory(actor, obj), "push the red block",
                           VideoControl("controlnet", "actor_only"), controlnet,
                           num_inference_steps=2)
    assert video.dtype == np.uint8 and video.shape == (4, 32, 48, 3)
    # The trained branch makes the prediction depend on the hint (it started as a no-op).
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 12, 4, 4, 6, generator=generator)
    hints = torch.randn(2, 1, 4, 4, 4, 6, generator=generator)
    context = pipe.encode_context(["push the red block"], unet=pipe.video_unet)
    controlled = ControlledVideoUNet(pipe.video_unet, controlnet)
    with torch.no_grad():
        a, b = (controlled(x, 500, context, 5, control_hint=hint) for hint in hints)
    assert not torch.equal(a, b)

    # A later stage-2 run without the branch removes the stale one.
    Trainer(tiny_config("tiny_stage2", "max_steps=1", output="s2_concat"),
            show_progress=False).train()
    assert not (folder / "video_controlnet").exists()
    assert Mask2IVPipeline.from_pretrained(folder).video_unet is not None
