"""Released Mask2IV / DynamiCrafter checkpoints -> project modules and folders (mask2iv-convert).

The fakes (official_fakes.py) have the release's exact key layout with tiny sizes; converted
modules must compute what the fake's own weights compute (UNet, Resampler), what OpenCLIP's text
tower computes written out from the raw tensors, and the OpenCLIP image golden's tokens.
"""

import json
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import official_fakes as fakes
from mask2iv_ros.convert import main
from mask2iv_ros.models import UNetConfig, VideoUNet, load_mask2iv_unet
from mask2iv_ros.models.openclip_text import convert_openclip_text_tower, load_openclip_tokenizer
from mask2iv_ros.models.text_encoder import load_text_encoder

OPEN_CLIP_WHEEL = Path("/opt/pypi/files/open_clip_torch-3.3.0-py3-none-any.whl")
PROMPTS = ["push the red block", "", "pick up the cup and move it"]


def unet_inputs(seed=0, in_channels=12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, in_channels, fakes.FRAMES, 8, 8, generator=g)
    context = torch.randn(1, fakes.TEXT_LEN + fakes.FRAMES * fakes.IMAGE_TOKENS, fakes.WIDTH, generator=g)
    return x, torch.tensor([500]), context, torch.tensor([15])


def assert_same_function(a: VideoUNet, b: VideoUNet, in_channels=12):
    x, t, context, fs = unet_inputs(in_channels=in_channels)
    with torch.no_grad():
        torch.testing.assert_close(a(x, t, context, fs=fs), b(x, t, context, fs=fs), rtol=0, atol=0)


def tokenizer_folder(root: Path) -> Path:
    folder = root / "tokenizer"
    if not folder.exists():
        fakes.tokenizer().save_pretrained(folder)
    return folder


def convert(tmp: Path, *args: str) -> int:
    config = fakes.model_config_json(tmp / "tiny_model.json")
    return main([*args, "--tokenizer", str(tokenizer_folder(tmp)), "--model-config", str(config),
                 "--resolution", "32", "48", "--num-frames", str(fakes.FRAMES)])


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Stage 1 as a Lightning .ckpt, stage 2 as safetensors, converted into one pipeline."""
    root = tmp_path_factory.mktemp("release")
    state1, parts1 = fakes.fake_checkpoint(1)
    state2, parts2 = fakes.fake_checkpoint(2)
    (root / "first_stage").mkdir()
    (root / "second_stage").mkdir()
    stage1 = fakes.save_lightning(state1, root / "first_stage" / "bdv2_model.ckpt")
    stage2 = fakes.save_safetensors(state2, root / "second_stage" / "bdv2_model.safetensors")
    out = root / "mask2iv_bdv2"
    assert convert(root, "--stage1", str(stage1), "--stage2", str(stage2), "--out", str(out)) == 0
    return types.SimpleNamespace(root=root, stage1=stage1, stage2=stage2, out=out, state1=state1,
                                 state2=state2, parts1=parts1, parts2=parts2)


# ---------------------------------------------------------------------------- load_mask2iv_unet
@pytest.mark.parametrize("form", ["ckpt", "safetensors", "lightning_dict", "flat_dict"])
def test_load_mask2iv_unet_gives_the_checkpoint_function(release, form):
    source = {"ckpt": release.stage1, "safetensors": None, "lightning_dict": {"state_dict": release.state1},
              "flat_dict": release.state1}[form]
    if form == "safetensors":
        source = fakes.save_safetensors(release.state1, release.root / "stage1.safetensors")
    unet = load_mask2iv_unet(source, fakes.tiny_unet_config(), stage="trajectory")
    expected = release.parts1["unet"].state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in unet.state_dict().items())
    assert_same_function(unet, release.parts1["unet"])


def test_load_mask2iv_unet_refuses_tensors_it_cannot_place(release):
    state = dict(release.state2, **{fakes.STAGE2_EXTRA[0]: torch.zeros(4, 4)})
    with pytest.raises(ValueError, match="extra_mask_attn.*allow_missing_modules=True"):
        load_mask2iv_unet(state, fakes.tiny_unet_config(), stage="video")
    unet = load_mask2iv_unet(state, fakes.tiny_unet_config(), stage="video", allow_missing_modules=True)
    assert_same_function(unet, release.parts2["unet"])
    missing = {k: v for k, v in release.state2.items() if not k.endswith("out.2.bias")}
    with pytest.raises(ValueError, match="missing.*out.2.bias"):
        load_mask2iv_unet(missing, fakes.tiny_unet_config(), stage="video")
    with pytest.raises(ValueError, match="stage: expected one of"):
        load_mask2iv_unet(release.state2, fakes.tiny_unet_config(), stage="stage2")
    with pytest.raises(ValueError, match="in_channels"):  # an 8-channel DynamiCrafter UNet
        load_mask2iv_unet(release.state2, fakes.tiny_unet_config(8))


def test_release_unet_config_is_dynamicrafter_512_with_12_channels():
    from mask2iv_ros.models.official import release_unet_config

    config = release_unet_config("video")
    assert config.in_channels == 12
    assert config.replace(in_channels=8, default_fs=24) == UNetConfig.dynamicrafter_512()


# ----------------------------------------------------------------------------------- text tower
def test_openclip_text_tower_gives_dynamicrafter_penultimate_tokens(tmp_path):
    text = fakes.fake_text_tower(3)
    tokenizer = fakes.tokenizer()
    conversion = convert_openclip_text_tower(text, tokenizer, head_width=16, max_length=fakes.TEXT_LEN)
    last = f"transformer.resblocks.{fakes.TEXT_LAYERS - 1}."
    assert set(conversion.unused) == {"text_projection", "logit_scale"} | {k for k in text if k.startswith(last)}
    ids = tokenizer(PROMPTS, padding="max_length", truncation=True, max_length=fakes.TEXT_LEN,
                    return_tensors="pt")["input_ids"]
    expected = fakes.openclip_text_reference(text, ids)
    with torch.no_grad():
        tokens, mask = conversion.encoder.encode(PROMPTS)
        assert mask is None and tokens.shape == (3, fakes.TEXT_LEN, fakes.WIDTH)
        torch.testing.assert_close(tokens, expected, rtol=1e-4, atol=1e-5)
        conversion.encoder.save_pretrained(tmp_path / "text_encoder")
        reloaded = load_text_encoder(tmp_path / "text_encoder")
        assert reloaded.layer == "last"
        torch.testing.assert_close(reloaded.encode(PROMPTS)[0], tokens, rtol=0, atol=0)


def test_openclip_text_tower_rejects_unknown_keys_and_a_foreign_tokenizer():
    text = dict(fakes.fake_text_tower(3), **{"transformer.resblocks.0.ls_1.gamma": torch.ones(32)})
    with pytest.raises(ValueError, match="ls_1.gamma"):
        convert_openclip_text_tower(text, fakes.tokenizer(), head_width=16)
    small = {k: (v[:100] if k == "token_embedding.weight" else v) for k, v in fakes.fake_text_tower(3).items()}
    with pytest.raises(ValueError, match="not its tokenizer"):
        convert_openclip_text_tower(small, fakes.tokenizer(), head_width=16)


@pytest.mark.skipif(not OPEN_CLIP_WHEEL.is_file(), reason="no open_clip_torch wheel on this machine")
def test_tokenizer_from_openclip_wheel_gives_openclip_ids(tmp_path):
    # ids of the OpenAI CLIP vocabulary (open_clip.tokenize / transformers' CLIP examples)
    tokenizer = load_openclip_tokenizer(OPEN_CLIP_WHEEL)
    ids = tokenizer(["a photo of a cat", ""], padding="max_length", truncation=True, max_length=77)["input_ids"]
    assert ids[0][:8] == [49406, 320, 1125, 539, 320, 2368, 49407, 0] and len(ids[0]) == 77
    assert ids[1][:3] == [49406, 49407, 0] and set(ids[1][2:]) == {0}
    long = tokenizer(["cat " * 100], padding="max_length", truncation=True, max_length=77)["input_ids"][0]
    assert len(long) == 77 and long[-1] == 49407 and long[-2] == 2368  # EOT kept, as open_clip does
    with zipfile.ZipFile(OPEN_CLIP_WHEEL) as wheel:
        (tmp_path / "bpe_simple_vocab_16e6.txt.gz").write_bytes(
            wheel.read("open_clip/bpe_simple_vocab_16e6.txt.gz"))
    same = load_openclip_tokenizer(tmp_path / "bpe_simple_vocab_16e6.txt.gz")
    assert same(["a photo of a cat"])["input_ids"] == [ids[0][:7]]


# --------------------------------------------------------------------------- release pipeline
def test_converted_release_pipeline_computes_the_checkpoints_functions(release):
    from mask2iv_ros.pipeline import Mask2IVPipeline

    pipe = Mask2IVPipeline.from_pretrained(release.out)
    assert pipe.modes == ("position",) and pipe.trajectory_unet_text is None
    assert_same_function(pipe.trajectory_unet_position, release.parts1["unet"])
    assert_same_function(pipe.video_unet, release.parts2["unet"])
    # image tower: the tokens OpenCLIP's own code gave for the golden's pixels
    with torch.no_grad():
        torch.testing.assert_close(pipe.image_encoder.encode_pixels(release.parts1["pixels"]),
                                   release.parts1["tokens"], rtol=1e-4, atol=1e-5)
        embeds = torch.randn(2, 17, fakes.WIDTH, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(pipe.image_projection(embeds), release.parts1["resampler"](embeds),
                                   rtol=0, atol=0)
        ids = pipe.text_encoder.tokenizer(PROMPTS, padding="max_length", truncation=True,
                                          max_length=fakes.TEXT_LEN, return_tensors="pt")["input_ids"]
        torch.testing.assert_close(pipe.text_encoder.encode(PROMPTS)[0],
                                   fakes.openclip_text_reference(release.parts1["text"], ids),
                                   rtol=1e-4, atol=1e-5)


def test_converted_vae_holds_the_ldm_weights_where_diffusers_expects_them(release):
    from mask2iv_ros.models.vae import VideoVAE

    vae = VideoVAE.from_pretrained(release.out / "vae").autoencoder.state_dict()
    ldm = release.parts1["vae"]
    assert len(vae) == len(ldm)  # nothing dropped, nothing invented
    # LDM -> diffusers renames (the decoder's up levels run in reverse order in diffusers)
    pairs = {"encoder.conv_in.weight": "encoder.conv_in.weight",
             "encoder.down.1.downsample.conv.weight": "encoder.down_blocks.1.downsamplers.0.conv.weight",
             "encoder.down.1.block.0.nin_shortcut.weight": "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
             "decoder.up.3.block.0.conv1.weight": "decoder.up_blocks.0.resnets.0.conv1.weight",
             "decoder.mid.attn_1.q.weight": "decoder.mid_block.attentions.0.to_q.weight",
             "quant_conv.weight": "quant_conv.weight"}
    for theirs, ours in pairs.items():
        assert torch.equal(vae[ours].flatten(), ldm[theirs].flatten()), (theirs, ours)
    remaining = [v.flatten() for v in ldm.values()]
    for name, value in vae.items():  # every tensor is one of the checkpoint's, exactly
        assert any(v.shape == value.flatten().shape and torch.equal(v, value.flatten()) for v in remaining), name


def test_converted_folder_records_the_release_sampling_and_what_was_left_out(release):
    index = json.loads((release.out / "model_index.json").read_text())["config"]
    assert index["fs"] == 15 and index["resolution"] == [32, 48] and index["num_frames"] == 4
    if "sampling" in index:  # the sampler-defaults schema (contracts.md)
        assert index["sampling"] == {**index["sampling"], "num_inference_steps": 50, "guidance_scale": 1.0,
                                     "eta": 1.0, "guidance_rescale": 0.7, "dynamic_rescale": 0.7}
        assert index.get("condition_dropout", index.get("training", {}).get("condition_dropout")) == 0.0
    else:  # a PipelineConfig before that schema: the keys it knows
        assert (index["eta"], index["guidance_rescale"], index["dynamic_rescale"]) == (1.0, 0.7, 0.7)
    card = json.loads((release.out / "model_card.json").read_text())
    assert card["left_out"] == {"stage1": {}, "stage2": {}}
    assert card["sampling"]["guidance_scale"] == 1.0 and card["training"]["condition_dropout"] == 0.0
    reasons = card["unused_by_design"]["stage1"]
    assert reasons["last transformer block; DynamiCrafter takes the penultimate layer"] == 12
    assert reasons["noise-schedule buffer; recomputed (and checked) by the scheduler"] == 12
    assert "Nothing" in (release.out / "MODEL_CARD.md").read_text()


def test_converted_pipeline_generates(release):
    from mask2iv_ros.pipeline import Mask2IVPipeline

    pipe = Mask2IVPipeline.from_pretrained(release.out)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask, placement = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
    mask[10:20, 10:20], placement[20:30, 40:50] = True, True
    out = pipe(image, mask, placement_mask=placement, num_inference_steps=2, guidance_scale=1.0, seed=0)
    # outputs cover the imagined region on the model grid; masks map back to the input frame
    x, y, w, h = out.input_region
    assert out.input_size == (48, 64) and out.video.shape[0] == fakes.FRAMES
    assert out.video.shape[1:3] == out.object_masks.shape[1:3]
    assert out.masks_in_input_frame().object_masks.shape == (fakes.FRAMES, 48, 64)
    assert np.isfinite(out.video.astype(np.float32)).all()


# ------------------------------------------------------------------- refusing and recording
def test_unplaceable_stage2_modules_are_refused_then_recorded(release, tmp_path, capsys):
    state2, _ = fakes.fake_checkpoint(2, extra=True)
    stage2 = fakes.save_lightning(state2, tmp_path / "second_stage_bdv2_model.ckpt")
    out = tmp_path / "out"
    args = ["--stage1", str(release.stage1), "--stage2", str(stage2), "--out", str(out)]
    assert convert(tmp_path, *args) == 2
    error = capsys.readouterr().err
    assert "refused" in error and "3 tensors" in error and "extra_mask_attn" in error
    assert "--allow-missing-modules" in error and not out.exists()

    assert convert(tmp_path, *args, "--allow-missing-modules") == 0
    card = json.loads((out / "model_card.json").read_text())
    left = card["left_out"]["stage2"]
    assert sum(g["count"] for g in left.values()) == 3 and card["left_out"]["stage1"] == {}
    examples = {e for g in left.values() for e in g["examples"]}
    assert examples == set(fakes.STAGE2_EXTRA)
    text = (out / "MODEL_CARD.md").read_text()
    assert "obj_cond_stage_model" in text and "object_proj_model" in text and "extra_mask_attn" in text


def test_stage2_with_its_own_resampler_makes_its_image_tokens_with_it(release, tmp_path):
    """The release trains image_proj_model per stage: stage 2's (differing) Resampler is
    converted and used for video_unet's image tokens; stage 1 keeps its own."""
    from mask2iv_ros.models.resampler import Resampler
    from mask2iv_ros.pipeline import Mask2IVPipeline

    state2, _ = fakes.fake_checkpoint(2, resampler_seed=101)  # trained with stage 2
    stage2 = fakes.save_safetensors(state2, tmp_path / "stage2_bdv2.safetensors")
    out = tmp_path / "out"
    assert convert(tmp_path, "--stage1", str(release.stage1), "--stage2", str(stage2), "--out", str(out)) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["left_out"]["stage2"] == {}
    assert any("video_unet uses its own" in note for note in card["notes"])
    kept = Resampler.from_pretrained(out / "video_unet" / "image_projection")
    pipe = Mask2IVPipeline.from_pretrained(out)
    embeds = torch.randn(1, 17, fakes.WIDTH)
    with torch.no_grad():
        torch.testing.assert_close(kept(embeds), fakes.fake_resampler(101)(embeds), rtol=0, atol=0)
        assert pipe.projection_for(pipe.video_unet) is pipe.stage_projections["video_unet"]
        torch.testing.assert_close(pipe.projection_for(pipe.video_unet)(embeds),
                                   fakes.fake_resampler(101)(embeds), rtol=0, atol=0)
        stage1_unet = pipe.trajectory_unet_position or pipe.trajectory_unet_text
        torch.testing.assert_close(pipe.projection_for(stage1_unet)(embeds),
                                   release.parts1["resampler"](embeds), rtol=0, atol=0)


def test_stage1_alone_gives_a_trajectory_only_text_pipeline_and_unknown_keys_refuse(release, tmp_path, capsys):
    from mask2iv_ros.pipeline import Mask2IVPipeline

    out = tmp_path / "tt"
    assert convert(tmp_path, "--stage1", str(release.stage1), "--mode", "text", "--out", str(out)) == 0
    pipe = Mask2IVPipeline.from_pretrained(out)
    assert pipe.modes == ("text",) and pipe.video_unet is None
    assert_same_function(pipe.trajectory_unet_text, release.parts1["unet"])

    odd = fakes.save_lightning(dict(release.state1, **{"model_ema.decay": torch.tensor(0.99)}),
                               tmp_path / "stage1_hoi4d.ckpt")
    assert convert(tmp_path, "--stage1", str(odd), "--out", str(tmp_path / "odd")) == 2
    assert "model_ema.decay" in capsys.readouterr().err


def test_bad_arguments_exit_2_with_a_clear_message(release, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "x")])
    assert exit_info.value.code == 2 and "--stage1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--stage1", str(release.stage1), "--out", str(release.out)])
    assert "--overwrite" in capsys.readouterr().err
    unnamed = fakes.save_lightning(release.state1, tmp_path / "model.ckpt")
    assert convert(tmp_path, "--stage1", str(unnamed), "--out", str(tmp_path / "y")) == 2
    assert "--mode position|text" in capsys.readouterr().err
    wrong = dict(release.state1, alphas_cumprod=torch.linspace(1, 0.01, 1000))
    wrong_path = fakes.save_lightning(wrong, tmp_path / "bdv2_wrong_schedule.ckpt")
    assert convert(tmp_path, "--stage1", str(wrong_path), "--out", str(tmp_path / "z")) == 2
    assert "noise schedule" in capsys.readouterr().err


# ------------------------------------------------------------------------------ DynamiCrafter
def test_dynamicrafter_checkpoint_becomes_the_start_of_fine_tuning(tmp_path):
    import yaml

    from mask2iv_ros.training import components
    from mask2iv_ros.training.config import TrainConfig

    state, parts = fakes.fake_checkpoint(5, in_channels=8)
    ckpt = fakes.save_lightning(state, tmp_path / "model.ckpt")
    out = tmp_path / "dc_init"
    assert convert(tmp_path, "--dynamicrafter", str(ckpt), "--out", str(out)) == 0

    unet = VideoUNet.from_pretrained(out)
    weight = unet.input_blocks[0][0].weight
    assert weight.shape[1] == 12 and torch.count_nonzero(weight[:, 8:]) == 0
    assert torch.equal(weight[:, :8], parts["unet"].input_blocks[0][0].weight)
    x, t, context, fs = unet_inputs(in_channels=8)
    extra = torch.randn(1, 4, *x.shape[2:])
    with torch.no_grad():  # DynamiCrafter's function, whatever the new channels hold
        torch.testing.assert_close(unet(torch.cat([x, extra], 1), t, context, fs=fs),
                                   parts["unet"](x, t, context, fs=fs), rtol=0, atol=0)

    # the written model: section builds a training run's networks through the trainer's loaders
    model = yaml.safe_load((out / "training_model.yaml").read_text())["model"]
    assert model["init_from"] == str(out.resolve())
    model.update(unet_preset="tiny", unet={"image_cross_attention": True})
    model["image_projection"].update(dim=32, depth=1, dim_head=16, heads=2, ff_mult=2)
    cfg = TrainConfig.from_dict({"stage": "trajectory_position", "model": model,
                                 "data": {"num_frames": fakes.FRAMES, "height": 32, "width": 48}})
    text_encoder = components.build_text_encoder(cfg.model.text_encoder)
    built = components.build_unet(cfg.model, text_encoder, fakes.FRAMES)
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in built.state_dict().items())
    image_encoder = components.build_image_encoder(cfg.model)
    resampler = components.build_image_projection(cfg.model, built.config, image_encoder, fakes.FRAMES)
    embeds = torch.randn(1, 17, fakes.WIDTH)
    with torch.no_grad():
        torch.testing.assert_close(resampler(embeds), parts["resampler"](embeds), rtol=0, atol=0)
    assert components.build_vae(cfg.model.vae).latent_channels == 4
    card = json.loads((out / "model_card.json").read_text())
    assert card["left_out"] == {"dynamicrafter": {}} and card["training"]["dynamic_rescale"] == 0.7
