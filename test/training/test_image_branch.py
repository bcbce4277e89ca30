"""DynamiCrafter's image cross-attention branch in training: the Resampler trains with the UNet,
the CLIP image encoder stays frozen, dropout mirrors DynamiCrafter, resume is exact, the export
runs in Mask2IVPipeline, and model.init_from loads a DynamiCrafter layout strictly."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mask2iv_ros.models.resampler import Resampler
from mask2iv_ros.models.unet import VideoUNet
from mask2iv_ros.pipeline import Mask2IVPipeline
from mask2iv_ros.pipeline.context import image_tokens, text_tokens
from mask2iv_ros.training import checkpoint as ckpt
from mask2iv_ros.training.components import (CheckpointReader, build_image_encoder,
                                             build_image_projection, build_text_encoder,
                                             build_unet, resampler_config, unet_config)
from mask2iv_ros.training.config import load_config
from mask2iv_ros.training.image_context import ImageContextModel
from mask2iv_ros.training.plots import read_metrics
from mask2iv_ros.training.train import Trainer

REPO = Path(__file__).resolve().parents[2]
OPENCLIP_GOLDEN = REPO / "test" / "fixtures" / "dynamicrafter" / "openclip_vision_tiny_golden.safetensors"
# clip_tiny: 17 tokens of width 32; Resampler: 4 queries per frame (the tiny UNet's
# image_tokens_per_frame) for the 4 frames of the tiny configs.
IMAGE_BRANCH = ("model.unet.image_cross_attention=true", "model.image_encoder.type=clip_tiny",
                "model.image_projection.dim=32", "model.image_projection.depth=1",
                "model.image_projection.dim_head=16", "model.image_projection.heads=2",
                "model.image_projection.ff_mult=2")
TEXT_LEN, FRAMES, TOKENS_PER_FRAME, WIDTH = 16, 4, 4, 32


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _optimized_ids(trainer: Trainer) -> set[int]:
    return {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}


def _pretrained_like(unet: torch.nn.Module) -> None:
    """Give the zero-initialised layers (output convs, transformer proj_out) small random
    values, as a DynamiCrafter initialisation has: from scratch, gradients only reach the image
    cross-attention and the Resampler behind them from step 3 on."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in unet.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)


def test_stage1_trains_the_resampler_and_freezes_the_image_encoder(tiny_config):
    # no weight decay: a changed weight means a gradient reached it
    trainer = Trainer(tiny_config("tiny_stage1_text", *IMAGE_BRANCH, "optim.weight_decay=0",
                                  "export_at_end=false"), show_progress=False)
    _pretrained_like(trainer.unet)
    model, encoder, projection = trainer.model, trainer.image_encoder, trainer.image_projection
    assert isinstance(model, ImageContextModel) and projection is model.image_projection
    encoder_ids = {id(p) for p in encoder.parameters()}
    assert all(not p.requires_grad for p in encoder.parameters())
    assert not encoder_ids & _optimized_ids(trainer)
    assert {id(p) for p in projection.parameters()} <= _optimized_ids(trainer)
    # the encoder is neither checkpointed nor averaged; the Resampler is both
    assert {k.split(".")[0] for k in model.state_dict()} == {"denoiser", "image_projection"}
    assert any(name.startswith("image_projection.") for name in trainer.ema.shadow)

    batch = next(trainer._batches())
    inputs = trainer.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert inputs.context.shape == (2, TEXT_LEN, WIDTH)
    assert inputs.images.shape == (2, 3, 32, 48) and inputs.drop_image.dtype == torch.bool
    with torch.no_grad():
        context = model.full_context(inputs.context, inputs.images, inputs.drop_image)
    assert context.shape == (2, TEXT_LEN + FRAMES * TOKENS_PER_FRAME, WIDTH)

    encoder_before, projection_before = _state(encoder), _state(projection)
    unet_before = _state(trainer.unet)
    losses = trainer.train()
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in encoder_before.items())
    after = projection.state_dict()
    assert all(not torch.equal(v, after[k]) for k, v in projection_before.items())
    unet_after = trainer.unet.state_dict()
    to_k_ip = [k for k in unet_before if k.endswith("to_k_ip.weight")]
    assert to_k_ip and all(not torch.equal(unet_before[k], unet_after[k]) for k in to_k_ip)


def test_training_context_is_the_pipelines_with_dynamicrafter_dropout(tiny_config):
    """The drop bands of DynamiCrafter's LatentVisualDiffusion.get_batch_input, and dropped rows
    get exactly the pipeline's unconditional tokens (empty prompt, zero image)."""
    p = 0.3
    trainer = Trainer(tiny_config("tiny_stage1_text", *IMAGE_BRANCH,
                                  f"diffusion.condition_dropout_prob={p}"), show_progress=False)
    r = np.random.default_rng(7).random(10_000)
    drop_prompt, drop_image = trainer.stage_inputs._drops(10_000, np.random.default_rng(7))
    assert np.array_equal(drop_prompt, r < 2 * p)
    assert np.array_equal(drop_image, (r >= p) & (r < 3 * p))
    assert abs((drop_prompt & drop_image).mean() - p) < 0.02  # both: one band of width p

    pipe = Mask2IVPipeline.from_components(
        vae=trainer.vae, text_encoder=trainer.text_encoder,
        trajectory_unet_text=trainer.unet, image_encoder=trainer.image_encoder,
        image_projection=trainer.image_projection)
    batch = next(trainer._batches())
    prompts, frames = list(batch["prompt"]), batch["first_frame"]
    seen = set()
    with torch.no_grad():
        empty = text_tokens(trainer.text_encoder, [""])[0]
        zero_image = image_tokens(trainer.image_encoder, trainer.image_projection,
                                  torch.zeros(1, 3, 8, 8))[0]
        for seed in range(6):
            inputs = trainer.stage_inputs(batch, np.random.default_rng(seed), torch.Generator())
            rows_prompt, rows_image = trainer.stage_inputs._drops(2, np.random.default_rng(seed))
            assert torch.equal(inputs.drop_image, torch.as_tensor(rows_image))
            context = trainer.model.full_context(inputs.context, inputs.images, inputs.drop_image)
            sampling = pipe.encode_context(prompts, frames, unet="trajectory_unet_text",
                                           drop_prompt=rows_prompt, drop_image=rows_image)
            torch.testing.assert_close(context, sampling, rtol=1e-5, atol=1e-6)
            for row in range(2):
                seen.add((bool(rows_prompt[row]), bool(rows_image[row])))
                text, image = context[row, :TEXT_LEN], context[row, TEXT_LEN:]
                assert torch.allclose(text, empty, atol=1e-6) == bool(rows_prompt[row])
                assert torch.allclose(image, zero_image, atol=1e-6) == bool(rows_image[row])
    assert len(seen) >= 3  # several bands exercised


def test_stage2_export_runs_in_the_pipeline(tiny_config, tmp_path):
    stage1 = Trainer(tiny_config("tiny_stage1_text", *IMAGE_BRANCH, "max_steps=1", output="s1"),
                     show_progress=False)
    stage1.train()
    stage2 = Trainer(tiny_config("tiny_stage2", *IMAGE_BRANCH, output="s2"), show_progress=False)
    assert isinstance(stage2.model, ImageContextModel)
    losses = stage2.train()
    assert len(losses) == 2 and all(np.isfinite(losses))

    folder = tmp_path / "pipeline"
    pipe = Mask2IVPipeline.from_pretrained(folder)
    assert pipe.modes == ("text",) and pipe.video_unet.config.image_cross_attention
    # shared Resampler = stage 2's EMA weights (ema.export_ema); each UNet keeps its own
    ema = {k[len("image_projection."):]: v for k, v in stage2.ema.shadow.items()
           if k.startswith("image_projection.")}
    exported = pipe.image_projection.state_dict()
    assert ema and all(torch.equal(exported[k], v) for k, v in ema.items())
    own = Resampler.from_pretrained(folder / "trajectory_unet_text" / "image_projection")
    stage1_ema = {k[len("image_projection."):]: v for k, v in stage1.ema.shadow.items()
                  if k.startswith("image_projection.")}
    assert all(torch.equal(own.state_dict()[k], v) for k, v in stage1_ema.items())
    assert (folder / "video_unet" / "image_projection" / "model.safetensors").is_file()
    # each UNet makes its image tokens with the Resampler it was trained with
    assert pipe.projection_for(pipe.trajectory_unet_text) is pipe.stage_projections["trajectory_unet_text"]
    frames = torch.rand(1, 3, 32, 48) * 2 - 1
    for unet, weights in ((pipe.trajectory_unet_text, stage1_ema), (pipe.video_unet, ema)):
        context = pipe.encode_context(["push"], frames, unet=unet)
        trained = Resampler(pipe.image_projection.config)
        trained.load_state_dict(weights)
        expected = image_tokens(pipe.image_encoder, trained.eval(), frames)
        torch.testing.assert_close(context[:, TEXT_LEN:], expected)
    encoder = pipe.image_encoder.state_dict()
    assert all(torch.equal(encoder[k], v) for k, v in stage2.image_encoder.state_dict().items())

    image = np.zeros((32, 48, 3), np.uint8)
    image[:, 24:] = (200, 180, 40)
    mask = np.zeros((32, 48), bool)
    mask[8:20, 10:24] = True
    out = pipe(image, mask, prompt="push the red block", num_inference_steps=2)
    assert out.video.shape == (4, 32, 48, 3) and out.mask_trajectory.shape == (4, 32, 48, 3)


def test_resume_after_kill_is_exact_with_the_image_branch(tiny_config):
    overrides = (*IMAGE_BRANCH, "max_steps=4", "checkpoint_every=2", "export_at_end=false")
    straight = Trainer(tiny_config("tiny_stage1_position", *overrides, output="straight"),
                       show_progress=False)
    straight_losses = straight.train()
    config = tiny_config("tiny_stage1_position", *overrides, output="killed")
    Trainer(config, show_progress=False).train(stop_after=3)
    resumed = Trainer(config, resume=True, show_progress=False)
    assert resumed.global_step == 2
    resumed.train()
    logged = [row["loss"] for row in read_metrics(resumed.output_dir / "metrics.csv")]
    assert logged == straight_losses  # bitwise on CPU
    a, b = _state(straight.model), _state(resumed.model)
    assert any(k.startswith("image_projection.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(straight.ema.shadow[k], resumed.ema.shadow[k])
               for k in straight.ema.shadow)
    saved = ckpt.latest_checkpoint(resumed.checkpoint_root)
    with safe_open(str(saved / "model.safetensors"), "pt") as f:
        assert not any(k.startswith("image_encoder") for k in f.keys())


# ---------------------------------------------------------------------- model.init_from


@pytest.fixture
def image_model_config():
    config = load_config(REPO / "training" / "tiny_stage1_text.yaml",
                         [*IMAGE_BRANCH, "model.image_encoder.head_width=16"])
    return config.model


def _fake_dynamicrafter(tmp_path, model_config, edit=None):
    """A DynamiCrafter-layout checkpoint: our 8-channel UNet with to_k_ip/to_v_ip and our
    Resampler under DynamiCrafter's prefixes, plus a real OpenCLIP visual tower under
    ``embedder.model.visual.*`` (the fixture written by OpenCLIP itself, see its README)."""
    text_encoder = build_text_encoder(model_config.text_encoder)
    torch.manual_seed(3)
    unet = VideoUNet(unet_config(model_config, text_encoder, FRAMES).replace(in_channels=8))
    with safe_open(str(OPENCLIP_GOLDEN), "pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys() if k.startswith("embedder.")}
        golden = {k: f.get_tensor(k) for k in ("pixel_values", "tokens")}

    class Encoder:  # the golden tower's width, without building it
        embed_dim = 32

    resampler = Resampler(resampler_config(model_config, unet.config, Encoder(), FRAMES))
    state.update({f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()})
    state.update({f"image_proj_model.{k}": v for k, v in resampler.state_dict().items()})
    state["first_stage_model.quant_conv.weight"] = torch.zeros(8, 8, 1, 1)
    state["cond_stage_model.model.token_embedding.weight"] = torch.zeros(10, 4)
    if edit:
        edit(state)
    path = tmp_path / "dynamicrafter.safetensors"
    save_file(state, str(path))
    return path, unet, resampler, text_encoder, golden


def _build(model_config, text_encoder, init_from):
    # DynamiCrafter's embedder.* of init_from, converted to a CLIPVisionModel
    model_config.init_from, model_config.image_encoder.type = str(init_from), "clip_vision"
    reader = CheckpointReader()
    encoder = build_image_encoder(model_config, reader)
    unet = build_unet(model_config, text_encoder, FRAMES, checkpoints=reader)
    projection = build_image_projection(model_config, unet.config, encoder, FRAMES, reader)
    return encoder, unet, projection


def test_init_from_dynamicrafter_loads_the_image_branch_strictly(tmp_path, image_model_config):
    path, reference, resampler, text_encoder, golden = _fake_dynamicrafter(tmp_path,
                                                                           image_model_config)
    encoder, unet, projection = _build(image_model_config, text_encoder, path)
    ours, theirs = unet.state_dict(), reference.state_dict()
    assert any(k.endswith("to_k_ip.weight") for k in ours)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs if k != "input_blocks.0.0.weight")
    assert torch.count_nonzero(ours["input_blocks.0.0.weight"][:, 8:]) == 0
    assert all(torch.equal(projection.state_dict()[k], v)
               for k, v in resampler.state_dict().items())
    assert all(p.requires_grad for p in projection.parameters())  # trained, as in DynamiCrafter
    with torch.no_grad():  # embedder.* converted: OpenCLIP's own tokens
        tokens = encoder.encode_pixels(golden["pixel_values"])
    torch.testing.assert_close(tokens, golden["tokens"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop(next(k for k in s if k.endswith("attn2.to_v_ip.weight"))),
     r"model.init_from: .* 1 tensors missing \(e.g. \['input_blocks.*to_v_ip.weight'\]"),
    (lambda s: s.update({"model.diffusion_model.input_blocks.1.1.extra.weight": torch.zeros(1)}),
     r"model.init_from: .* 1 unexpected \(e.g. \['input_blocks.1.1.extra.weight'\]"),
    (lambda s: s.update({"image_proj_model.latents": torch.zeros(1, 8, 32)}),
     r"model.init_from: latents has shape \(1, 8, 32\) in .*expects \(1, 16, 32\)"),
    (lambda s: [s.pop(k) for k in [k for k in s if k.startswith("embedder.")]],
     r"model.init_from: .*embedder.*no 'embedder.model.visual.' keys"),
])
def test_init_from_mismatch_names_the_problem(tmp_path, image_model_config, edit, message):
    path, *_, text_encoder, _ = _fake_dynamicrafter(tmp_path, image_model_config, edit)
    with pytest.raises(ValueError, match=message):
        _build(image_model_config, text_encoder, path)


def test_image_branch_config_errors(image_model_config):
    text_encoder = build_text_encoder(image_model_config.text_encoder)
    image_model_config.image_encoder.type = "none"
    with pytest.raises(ValueError, match="model.image_encoder.type: expected an image encoder"):
        build_unet(image_model_config, text_encoder, FRAMES)
    image_model_config.image_encoder.type = "clip_tiny"
    image_model_config.unet = {"image_cross_attention": False}
    with pytest.raises(ValueError, match="model.image_encoder.type: expected 'none'"):
        build_unet(image_model_config, text_encoder, FRAMES)
    with pytest.raises(ValueError, match="model.image_encoder.path: expected a CLIPVisionModel"):
        load_config(REPO / "training" / "tiny_stage1_text.yaml",
                    ["model.image_encoder.type=clip_vision"])


def test_paper_configs_enable_dynamicrafters_image_branch():
    class OpenCLIPSized:  # the paper's encoders' sizes, without loading them
        embed_dim, max_length = 1024, 77

    class ViTH14:
        embed_dim = 1280

    for name in ("paper_stage1_text", "paper_stage1_position", "paper_stage2"):
        config = load_config(REPO / "training" / f"{name}.yaml")
        model = config.model
        unet = unet_config(model, OpenCLIPSized(), config.data.num_frames)
        assert unet.image_cross_attention and unet.image_tokens_per_frame == 16
        assert model.image_encoder.type == "clip_vision" and model.image_encoder.path is None
        assert model.init_from and model.image_projection.path is None  # both from init_from
        assert model.image_projection.trainable
        resampler = resampler_config(model, unet, ViTH14(), config.data.num_frames)
        assert resampler == resampler.dynamicrafter_512()
