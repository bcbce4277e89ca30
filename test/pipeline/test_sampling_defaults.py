"""Sampler defaults recorded in the pipeline folder (model_index.json config.sampling/.training)."""

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import DDIMScheduler

from mask2iv_ros.pipeline import (Mask2IVPipeline, PipelineConfig, SamplingDefaults,
                                  build_tiny_pipeline)

REPO = Path(__file__).resolve().parents[2]
EMBEDDED = REPO / "mask2iv_ros" / "assets" / "default_model"
# model_index.json "config" as the embedded default was written before config.sampling existed
LEGACY_CONFIG = {"resolution": [64, 64], "num_frames": 8, "fps": 2.0, "fs": 2,
                 "palette": {"background": [0, 0, 0], "object": [255, 0, 0], "actor": [0, 255, 0]},
                 "model_id": "mask2iv", "guidance_rescale": 0.7, "eta": 0.0, "dynamic_rescale": None}


def _call(pipe, inputs, **kwargs):
    return pipe(inputs["image"], inputs["object_mask"], prompt="push the red block",
                actor_mask=inputs["actor_mask"], **kwargs)


class UNetSpy:
    """Records the batch size and context of each forward call of a UNet."""

    def __init__(self, unet):
        self.unet, self.calls = unet, []

    def __enter__(self):
        original = self.unet.forward

        def forward(x, timesteps, context=None, fs=None):
            self.calls.append((x.shape[0], None if context is None else context.clone()))
            return original(x, timesteps, context, fs)
        self.unet.forward = forward
        return self

    def __exit__(self, *exc):
        del self.unet.forward


def test_defaults_are_the_released_inference_settings():
    # jes-bro/Mask2IV scripts/run_bdv2_2stage.sh: DDIM 50 steps, ddim_eta 1.0, guidance 1.0,
    # guidance_rescale 0.7; DynamiCrafter 512 base_scale 0.7; inference_bdv2_2stage.py
    # binarises the decoded stage-1 video per channel, where(sample >= 0, 1, -1)
    assert SamplingDefaults() == SamplingDefaults(num_inference_steps=50, guidance_scale=1.0,
                                                  eta=1.0, guidance_rescale=0.7,
                                                  dynamic_rescale=0.7,
                                                  scheduler="SafeDDIMScheduler",
                                                  stage2_masks="channel_sign")


def test_config_json_schema_round_trip():
    config = PipelineConfig(sampling=SamplingDefaults(num_inference_steps=30, eta=0.5),
                            condition_dropout=0.0)
    data = json.loads(json.dumps(config.to_dict()))
    assert data["sampling"] == {"num_inference_steps": 30, "guidance_scale": 1.0, "eta": 0.5,
                                "guidance_rescale": 0.7, "dynamic_rescale": 0.7,
                                "scheduler": "SafeDDIMScheduler", "video_background": "imagined",
                                "stage2_masks": "channel_sign"}
    assert data["training"] == {"condition_dropout": 0.0}
    assert not {"eta", "guidance_rescale", "dynamic_rescale", "condition_dropout"} & set(data)
    assert PipelineConfig.from_dict(data) == config
    assert PipelineConfig().condition_dropout is None     # unknown unless recorded


def test_legacy_config_loads_with_the_settings_it_was_sampled_with():
    config = PipelineConfig.from_dict(LEGACY_CONFIG, scheduler="DDIMScheduler")
    assert config.sampling == SamplingDefaults(num_inference_steps=50, guidance_scale=7.5,
                                               eta=0.0, guidance_rescale=0.7,
                                               dynamic_rescale=None, scheduler="DDIMScheduler",
                                               stage2_masks="palette")
    assert config.condition_dropout is None and config.resolution == (64, 64)


@pytest.mark.parametrize("change,message", [
    ({"sampling": {"eta": 1.0}, "eta": 0.0}, r"\['eta'\] belong in config.sampling"),
    ({"sampling": {"steps": 10}}, r"config.sampling: unknown keys \['steps'\]"),
    ({"sampling": {"eta": 2.0}}, r"sampling.eta: expected a finite number in \[0.0, 1.0\]"),
    ({"sampling": {"num_inference_steps": 0}}, r"sampling.num_inference_steps: expected an int"),
    ({"training": {"condition_dropout": -0.1}}, r"training.condition_dropout: expected"),
    ({"sampling": {"video_background": "camera"}}, r"sampling.video_background: expected 'imagined' or 'input'"),
    ({"sampling": {"stage2_masks": "sign"}}, r"sampling.stage2_masks: expected 'channel_sign' or 'palette'"),
    ({"sampling": {}, "palette": {"object": [200, 0, 0]}},
     r"sampling.stage2_masks: 'channel_sign' needs palette colours made of 0 and 255"),
    ({"training": {"uncond_prob": 0.0}}, r"config.training: expected"),
])
def test_bad_sampling_config_names_the_field(change, message):
    data = {k: v for k, v in LEGACY_CONFIG.items() if k not in ("eta", "guidance_rescale",
                                                               "dynamic_rescale")}
    with pytest.raises(ValueError, match=message):
        PipelineConfig.from_dict({**data, **change})


def test_save_writes_the_schema_and_legacy_folders_load(tiny_pipe, tmp_path):
    folder = tmp_path / "ckpt"
    tiny_pipe.save_pretrained(folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["config"]["sampling"]["scheduler"] == index["components"]["scheduler"] == \
        "SafeDDIMScheduler"
    assert index["config"]["training"] == {"condition_dropout": None}
    # rewrite it as a folder from before this schema (and before SafeDDIMScheduler)
    index["config"] = {**{k: v for k, v in index["config"].items()
                          if k not in ("sampling", "training")},
                       "guidance_rescale": 0.5, "eta": 0.0, "dynamic_rescale": None}
    index["components"]["scheduler"] = "DDIMScheduler"
    (folder / "model_index.json").write_text(json.dumps(index))
    scheduler_json = folder / "scheduler" / "scheduler_config.json"
    scheduler_json.write_text(scheduler_json.read_text().replace("SafeDDIMScheduler", "DDIMScheduler"))
    loaded = Mask2IVPipeline.from_pretrained(folder)
    assert type(loaded.scheduler) is DDIMScheduler
    assert loaded.config.sampling == SamplingDefaults(50, 7.5, 0.0, 0.5, None, "DDIMScheduler",
                                                      stage2_masks="palette")
    assert loaded.scheduler.config.prediction_type == "v_prediction"


def test_recorded_scheduler_is_the_one_sampled_with(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "ckpt")
    index_path = tmp_path / "ckpt" / "model_index.json"
    index = json.loads(index_path.read_text())
    index["config"]["sampling"]["scheduler"] = "DDIMScheduler"
    index_path.write_text(json.dumps(index))
    assert type(Mask2IVPipeline.from_pretrained(tmp_path / "ckpt").scheduler) is DDIMScheduler
    index["config"]["sampling"]["scheduler"] = "NoSuchScheduler"
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match="config.sampling.scheduler: expected a diffusers"):
        Mask2IVPipeline.from_pretrained(tmp_path / "ckpt")


def test_call_arguments_default_to_the_recorded_values(inputs):
    pipe = build_tiny_pipeline(seed=0, modes=("text",))
    pipe.config.sampling = SamplingDefaults(num_inference_steps=3, guidance_scale=1.0, eta=1.0,
                                            guidance_rescale=0.0, dynamic_rescale=None)
    steps = []
    with UNetSpy(pipe.trajectory_unet_text) as spy:
        recorded = _call(pipe, inputs, callback_on_step_end=lambda p, i: steps.append(i))
    assert [(i.stage, i.total_steps) for i in steps] == [("trajectory", 3)] * 3 + [("video", 3)] * 3
    assert [batch for batch, _ in spy.calls] == [1, 1, 1]   # recorded guidance 1: no CFG batch
    explicit = _call(pipe, inputs, num_inference_steps=3, guidance_scale=1.0, eta=1.0,
                     guidance_rescale=0.0)
    assert (recorded.video == explicit.video).all()          # None = the recorded value
    assert not (_call(pipe, inputs, eta=0.0).video == recorded.video).all()  # eta is used
    with UNetSpy(pipe.trajectory_unet_text) as spy:
        _call(pipe, inputs, guidance_scale=7.5, trajectory_only=True)
    assert [batch for batch, _ in spy.calls] == [2, 2, 2]
    assert pipe.sampling_settings() == dict(num_inference_steps=3, guidance_scale=1.0, eta=1.0,
                                            guidance_rescale=0.0, dynamic_rescale=None)
    with pytest.raises(ValueError, match=r"eta: expected a finite number in \[0.0, 1.0\]"):
        _call(pipe, inputs, eta=1.5)


def test_video_stage_samples_with_its_own_recorded_steps(inputs, tmp_path):
    # a checkpoint whose trajectory UNets were fine-tuned for DDIM 3 and video UNet for DDIM 2
    pipe = build_tiny_pipeline(seed=0, modes=("text",))
    pipe.config.sampling = SamplingDefaults(num_inference_steps=3, guidance_scale=1.0, eta=0.0,
                                            guidance_rescale=0.0, dynamic_rescale=None,
                                            video_num_inference_steps=2)
    steps = []
    recorded = _call(pipe, inputs, callback_on_step_end=lambda p, i: steps.append(i))
    assert [(i.stage, i.total_steps) for i in steps] == [("trajectory", 3)] * 3 + [("video", 2)] * 2
    steps.clear()
    explicit = _call(pipe, inputs, num_inference_steps=4,
                     callback_on_step_end=lambda p, i: steps.append(i))  # a call's steps: both
    assert [(i.stage, i.total_steps) for i in steps] == [("trajectory", 4)] * 4 + [("video", 4)] * 4
    assert not (explicit.video == recorded.video).all()
    # written to model_index.json when set, and read back; absent when None (folders unchanged)
    pipe.save_pretrained(tmp_path / "ckpt")
    sampling = json.loads((tmp_path / "ckpt" / "model_index.json").read_text())["config"]["sampling"]
    assert sampling["num_inference_steps"] == 3 and sampling["video_num_inference_steps"] == 2
    loaded = Mask2IVPipeline.from_pretrained(tmp_path / "ckpt")
    assert loaded.config.sampling.video_num_inference_steps == 2
    assert (_call(loaded, inputs).video == recorded.video).all()
    assert "video_num_inference_steps" not in PipelineConfig().to_dict()["sampling"]
    with pytest.raises(ValueError, match=r"sampling.video_num_inference_steps: expected an int in "
                                         r"\[1, \d+\], got 0"):
        SamplingDefaults(video_num_inference_steps=0)


def test_guidance_without_condition_dropout_warns_once(inputs, caplog):
    pipe = build_tiny_pipeline(seed=0, modes=("text",), with_video=False)
    caplog.set_level(logging.WARNING, logger="mask2iv_ros.pipeline.pipeline")
    kwargs = dict(num_inference_steps=1, trajectory_only=True)
    _call(pipe, inputs, guidance_scale=7.5, **kwargs)        # unknown dropout: no warning
    pipe.config.condition_dropout = 0.0
    _call(pipe, inputs, guidance_scale=1.0, **kwargs)        # no guidance: no warning
    assert not caplog.records
    _call(pipe, inputs, guidance_scale=7.5, **kwargs)
    _call(pipe, inputs, guidance_scale=3.0, **kwargs)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "guidance_scale 7.5" in message and "without condition dropout" in message
    assert "use guidance_scale 1.0" in message
    other = build_tiny_pipeline(seed=0, modes=("text",), with_video=False)
    other.config.condition_dropout = 0.1                      # trained for guidance
    _call(other, inputs, guidance_scale=7.5, **kwargs)
    assert len(caplog.records) == 1


def test_video_stage_is_conditioned_on_the_empty_prompt(tiny_pipe, inputs):
    with UNetSpy(tiny_pipe.trajectory_unet_text) as trajectory, \
            UNetSpy(tiny_pipe.video_unet) as video:
        _call(tiny_pipe, inputs, num_inference_steps=2, guidance_scale=7.5)
    empty, _ = tiny_pipe.text_encoder.encode([""])
    prompt, _ = tiny_pipe.text_encoder.encode(["push the red block"])
    assert torch.equal(trajectory.calls[0][1][0], prompt[0])  # stage 1 sees the prompt
    # stage 2: the empty prompt; without image tokens both CFG branches would be equal -> one
    assert [batch for batch, _ in video.calls] == [1, 1]
    assert all(torch.equal(context[0], empty[0]) for _, context in video.calls)


def test_image_branch_video_stage_guides_on_the_image_only(inputs):
    pipe = build_tiny_pipeline(seed=0, image_cross_attention=True)
    with UNetSpy(pipe.video_unet) as video:
        _call(pipe, inputs, num_inference_steps=1, guidance_scale=7.5)
    (batch, context), = video.calls
    empty, _ = pipe.text_encoder.encode([""])
    text_len = empty.shape[1]
    assert batch == 2 and torch.equal(context[0, :text_len], empty[0])
    assert torch.equal(context[1, :text_len], empty[0])                     # empty both
    assert not torch.equal(context[0, text_len:], context[1, text_len:])    # image vs zero image


def test_embedded_default_records_how_it_was_trained():
    index = json.loads((EMBEDDED / "model_index.json").read_text())
    config = PipelineConfig.from_dict(index["config"], scheduler=index["components"]["scheduler"])
    dropouts = {yaml.safe_load(path.read_text())["diffusion"]["condition_dropout_prob"]
                for path in (EMBEDDED / "training").glob("*_config.yaml")}
    assert dropouts == {config.condition_dropout} == {0.1}   # guidance > 1 is legitimate
    card = json.loads((EMBEDDED / "model_card.json").read_text())
    # the sampling sweep's choice (docs/results/sampling): DDIM 2 steps, eta 0; the guidance the
    # card says make demo runs at (1.5 since step 12, measured on two unseen seeds)
    assert config.sampling == SamplingDefaults(
        num_inference_steps=card["demo_num_inference_steps"],
        guidance_scale=card.get("demo_guidance_scale", 1.0), eta=0.0,
        guidance_rescale=0.7, dynamic_rescale=None, scheduler="SafeDDIMScheduler",
        video_background="input",   # the card's v2 second step: the camera's pixels are kept
        stage2_masks="palette",     # stage 2 sees the snapped masks the snap weights were tuned on
        trajectory_votes=card.get("demo_trajectory_votes", 1))
    assert config.sampling.num_inference_steps == 2
    # snap weights calibrated on the training seed (eval.calibrate_snap, the card's step 6): the
    # decoder spreads objects over their blurred edges, so the object's colour distance counts more
    background, obj, actor = config.palette.snap_weights
    assert background == actor == 1.0 and obj > 1.0
    vote = config.palette.vote_kernel
    weights = f"({background:g}, {obj:g}, {actor:g})" + (f" and a {vote}x{vote} majority vote" if vote > 1 else "")
    assert weights in card["continuations"][-1]["description"]
    # a recorded guidance scale or vote count is named by the step that recorded it
    descriptions = " ".join(step["description"] for step in card["continuations"])
    if config.sampling.guidance_scale != 1.0:
        assert f"classifier-free guidance {config.sampling.guidance_scale:g} recorded" in descriptions
    if config.sampling.trajectory_votes != 1:
        assert f"{config.sampling.trajectory_votes} trajectory votes recorded" in descriptions
    scheduler_config = json.loads((EMBEDDED / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler_config["_class_name"] == index["components"]["scheduler"] == "SafeDDIMScheduler"


def test_export_records_condition_dropout_and_matching_guidance(tmp_path):
    from mask2iv_ros.training.config import load_config
    from mask2iv_ros.training.export import export_unet

    pipe = build_tiny_pipeline(seed=0)

    def export(name, component, dropout):
        config = load_config(REPO / "training" / f"{name}.yaml", [
            f"export_dir={tmp_path / 'pipeline'}", f"diffusion.condition_dropout_prob={dropout}"])
        export_unet(config, getattr(pipe, component), pipe.vae, pipe.text_encoder)
        index = json.loads((tmp_path / "pipeline" / "model_index.json").read_text())
        assert index["components"]["scheduler"] == "SafeDDIMScheduler"
        return PipelineConfig.from_dict(index["config"])

    first = export("tiny_stage1_text", "trajectory_unet_text", 0.1)
    assert first.condition_dropout == 0.1 and first.sampling.guidance_scale == 7.5
    assert (first.sampling.eta, first.sampling.num_inference_steps) == (1.0, 50)
    # the tiny configs train with DynamiCrafter's x0 * s(t); the sampler must undo the same scale
    assert first.sampling.dynamic_rescale == 0.7 and first.sampling.scheduler == "SafeDDIMScheduler"
    # a component trained without dropout joins: guidance is off for the folder
    second = export("tiny_stage1_position", "trajectory_unet_position", 0.0)
    assert second.condition_dropout == 0.0 and second.sampling.guidance_scale == 1.0
    third = export("tiny_stage1_text", "trajectory_unet_text", 0.1)
    assert third.condition_dropout == 0.0


def test_embedded_model_build_records_the_demo_sampling(tmp_path):
    from mask2iv_ros.assets.build import build_default_model

    pipe = build_tiny_pipeline(seed=0, modes=("position",), with_video=False)
    pipe.config.sampling = SamplingDefaults(guidance_scale=7.5, dynamic_rescale=None)
    pipe.config.condition_dropout = 0.1
    pipe.save_pretrained(tmp_path / "exported")
    build_default_model(tmp_path / "exported", destination=tmp_path / "default", demo_steps=25)
    config = Mask2IVPipeline.from_pretrained(tmp_path / "default").config
    assert config.sampling == SamplingDefaults(num_inference_steps=25, guidance_scale=7.5, eta=0.0,
                                               dynamic_rescale=None)
    assert config.condition_dropout == 0.1
    assert json.loads((tmp_path / "default" / "model_card.json").read_text())[
        "demo_num_inference_steps"] == 25
    assert "`make demo` runs 25 DDIM steps per stage at guidance 7.5" in \
        (tmp_path / "default" / "MODEL_CARD.md").read_text()
    card = json.loads((tmp_path / "default" / "model_card.json").read_text())
    assert card["demo_guidance_scale"] == 7.5
    assert card["demo_trajectory_votes"] == 1 and "stage-1 samples" not in \
        (tmp_path / "default" / "MODEL_CARD.md").read_text()
    # a continued card keeps the base's sampling sweep and a later step's note on its guidance
    card.update(sampling_sweep="the sweep chose guidance 1.0", guidance_note="step 12 records 1.5")
    (tmp_path / "default" / "model_card.json").write_text(json.dumps(card))
    build_default_model(tmp_path / "exported", destination=tmp_path / "continued", demo_steps=25,
                        base_model=tmp_path / "default")
    assert ("`make demo` runs 25 DDIM steps per stage at guidance 7.5 (`model_index.json` "
            "`config.sampling`): the sweep chose guidance 1.0; step 12 records 1.5.") in \
        (tmp_path / "continued" / "MODEL_CARD.md").read_text()
    # trajectory UNets fine-tuned for DDIM 3, the video UNet kept at its DDIM 2
    build_default_model(tmp_path / "exported", destination=tmp_path / "three", demo_steps=3,
                        demo_video_steps=2)
    sampling = Mask2IVPipeline.from_pretrained(tmp_path / "three").config.sampling
    assert (sampling.num_inference_steps, sampling.video_num_inference_steps) == (3, 2)
    assert json.loads((tmp_path / "three" / "model_card.json").read_text())[
        "demo_video_num_inference_steps"] == 2
    assert "`make demo` runs 3 DDIM steps for the mask trajectory and 2 for the video" in \
        (tmp_path / "three" / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="sampling.video_num_inference_steps: expected an int"):
        build_default_model(tmp_path / "exported", destination=tmp_path / "bad", demo_steps=3,
                            demo_video_steps=0)
    # an exported folder that records trajectory votes keeps them, and the card says so
    index_path = tmp_path / "exported" / "model_index.json"
    index = json.loads(index_path.read_text())
    index["config"]["sampling"]["trajectory_votes"] = 4
    index_path.write_text(json.dumps(index))
    build_default_model(tmp_path / "exported", destination=tmp_path / "voted", demo_steps=2)
    assert Mask2IVPipeline.from_pretrained(tmp_path / "voted").config.sampling.trajectory_votes == 4
    assert ("`make demo` runs 2 DDIM steps per stage at guidance 7.5, each mask trajectory the "
            "majority of 4 stage-1 samples (`model_index.json`") in (tmp_path / "voted" / "MODEL_CARD.md").read_text()


def test_embedded_model_build_continues_a_base_model_card(tmp_path):
    """--base-model keeps the previous model's training files and runs; --card-json adds the
    continuation step, the latent-grid numbers and the quality table to MODEL_CARD.md."""
    from mask2iv_ros.assets.build import build_default_model

    pipe = build_tiny_pipeline(seed=0, modes=("position",), with_video=False)
    pipe.save_pretrained(tmp_path / "exported")
    base = build_default_model(tmp_path / "exported", destination=tmp_path / "v1", demo_steps=2)
    (base / "training" / "ft_stage2_metrics.csv").write_text("step,loss\n1,0.5\n")
    card = json.loads((base / "model_card.json").read_text())
    card["runs"]["ft_stage2"] = {"steps": 760, "final_loss_mean_last_50": 1.6}
    (base / "model_card.json").write_text(json.dumps(card))
    run = tmp_path / "v2_stage2"
    run.mkdir()
    (run / "metrics.csv").write_text("step,loss\n10,0.9\n20,0.7\n")
    grid = {"episodes": 24, "seed": 7777, "RGB L1": 0.08, "RGB PSNR (dB)": 25.0, "mask L1": 0.01,
            "mask PSNR (dB)": 25.0, "decoded actor IoU": 0.82, "decoded object IoU": 0.75,
            "s per clip pair (CPU)": 0.7}
    quality = {"episodes": 24, "seed": 7777, "steps": "DDIM 2 steps", "machine": "2 CPU cores",
               "rows": {"v1": {"PT actor IoU": 0.42, "TT direction agreement": 0.765},
                        "v2": {"PT actor IoU": 0.5}}}
    extra = {"continuation": {"script": "scripts/train_embedded_v2.sh",
                              "description": "Each UNet continued for 50 minutes."},
             "grid": grid, "quality": quality, "actor_mask": "The actor mask is optional."}
    built = build_default_model(tmp_path / "exported", destination=tmp_path / "v2", runs=(run,),
                                demo_steps=2, base_model=base, card_extra=extra)
    assert (built / "training" / "ft_stage2_metrics.csv").is_file()  # kept from the base
    assert (built / "training" / "v2_stage2_metrics.csv").is_file()
    card = json.loads((built / "model_card.json").read_text())
    assert card["runs"]["ft_stage2"]["steps"] == 760 and card["runs"]["v2_stage2"]["steps"] == 20
    text = (built / "MODEL_CARD.md").read_text()
    assert "then `scripts/train_embedded_v2.sh`" in text
    assert "4. Each UNet continued for 50 minutes." in text
    assert "actor IoU 0.820, object IoU 0.750" in text and "## Latent grid" in text
    assert "| v1 | 0.420 |" in text and "| 0.765 |" in text  # missing cells stay empty
    assert "| issue 14 target | >= 0.45 |" in text
    assert "- The actor mask is optional." in text
    assert "| ft_stage2 | 760 | 1.6 |" in text
    # several continuation steps, numbered from 4, each script named once in the header
    extra["continuations"] = [extra.pop("continuation"),
                              {"script": "scripts/train_embedded_v3.sh", "description": "The decoder."}]
    text = (build_default_model(tmp_path / "exported", destination=tmp_path / "v3", base_model=base,
                                demo_steps=2, card_extra=extra) / "MODEL_CARD.md").read_text()
    assert "then `scripts/train_embedded_v2.sh`, then `scripts/train_embedded_v3.sh`" in text
    assert "4. Each UNet continued for 50 minutes.\n5. The decoder." in text
    assert "the most a model that sampled the true latents" not in text   # no ceiling given
    extra["grid"] = dict(grid, ceiling={"episodes": 24, "seed": 9001, "snap_weights": [1, 32, 1],
                                        "actor": 0.834, "object": 0.841, "placement": 0.852})
    text = (build_default_model(tmp_path / "exported", destination=tmp_path / "v4", base_model=base,
                                demo_steps=2, card_extra=extra) / "MODEL_CARD.md").read_text()
    assert ("With this model's snap weights (1, 32, 1), the same round trip on 24 unseen episodes "
            "of seed 9001 scores actor / object IoU 0.834 / 0.841 over frames 1..7 and final "
            "placement IoU 0.852") in text


def test_card_ceiling_names_the_majority_vote_it_was_snapped_with():
    from mask2iv_ros.assets.build import _ceiling

    ceiling = {"episodes": 24, "seed": 7777, "snap_weights": [1.0, 32.0, 1.0], "actor": 0.8,
               "object": 0.84, "placement": 0.86}
    assert "snap weights (1, 32, 1), the same round trip" in _ceiling({"ceiling": ceiling})
    voted = _ceiling({"ceiling": dict(ceiling, vote_kernel=3)})
    assert "snap weights (1, 32, 1) and its 3x3 majority vote, the same round trip" in voted
