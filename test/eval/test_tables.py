import json
from pathlib import Path

import pytest

from mask2iv_ros.eval.evaluate import MetricSuite
from mask2iv_ros.models.controlnet import VideoControlNet
from mask2iv_ros.eval.tables import (STAGE2_VARIANTS, TABLE1, TABLE2, check_overrides, markdown_table,
                                     override_args, reproduce_tables, run_overrides)

REPO = Path(__file__).resolve().parents[2]
STAGE2_CONFIG = str(REPO / "training" / "tiny_stage2.yaml")
STAGE1_CONFIG = str(REPO / "training" / "tiny_stage1_position.yaml")


def test_every_table_row_names_a_variant():
    assert {row.variant for row in (*TABLE1, *TABLE2)} == set(STAGE2_VARIANTS)
    # Table 1's Mask2IV row and Table 2's last row are the same full model.
    assert TABLE1[-1].variant == TABLE2[-1].variant == "mask2iv"


def test_variants_map_onto_the_training_config(tmp_path):
    from mask2iv_ros.training.config import load_config

    for name, overrides in STAGE2_VARIANTS.items():
        args = [*run_overrides(str(tmp_path / "data"), tmp_path / "run", tmp_path / "pipe", 7), *override_args(overrides)]
        assert check_overrides(STAGE2_CONFIG, args) is None, name
        config = load_config(STAGE2_CONFIG, args)
        assert config.max_steps == 7 and config.stage == "video"
        for key, value in overrides.items():
            assert getattr(config.stage2, key.split(".")[1]) == value, (name, key)


def test_markdown_table_format():
    rows = [("A", {"fvd_pixelstats": 2.0, "psnr": 20.0}), ("B", {"fvd_pixelstats": 1.0, "psnr": 21.5}), ("C", {})]
    text = markdown_table(rows, ("fvd", "psnr", "ssim"), {"fvd": "fvd_pixelstats", "psnr": "psnr"}, "Table X")
    lines = text.splitlines()
    assert lines[0] == "| Method | FVD↓ | PSNR↑ | SSIM↑ |"
    assert lines[2] == "| A | 2.00 | 20.00 | n/a |"
    assert lines[3] == "| B | **1.00** | **21.50** | n/a |"
    assert lines[4] == "| C | n/a | n/a | n/a |"
    assert "fvd_pixelstats" in text and "not comparable" in text


def test_reproduce_tables_with_stub_training(tmp_path, synthetic_root, tiny_pipe):
    """Orchestration end to end; the training runs are replaced by writing tiny models."""
    import torch

    calls = []

    def stub_train(config_path, overrides):
        values = dict(item.split("=", 1) for item in overrides)
        calls.append((Path(config_path).name, values))
        export = Path(values["export_dir"])
        if "stage1" in config_path:
            tiny_pipe.save_pretrained(export)
        else:  # stage 2 exports only its video_unet next to the copied stage-1 pipeline
            assert (export / "model_index.json").is_file()
            torch.manual_seed(len(calls))
            torch.nn.init.normal_(tiny_pipe.video_unet.out[-1].weight, std=0.05)
            tiny_pipe.save_pretrained(export)
            if values["stage2.control"] == "controlnet":  # the branch mask2iv-train exports
                VideoControlNet.from_unet(tiny_pipe.video_unet).save_pretrained(export / "video_controlnet")

    out = tmp_path / "tables"
    results = reproduce_tables(synthetic_root, out, steps=3, stage1_config=STAGE1_CONFIG,
                               stage2_config=STAGE2_CONFIG, max_clips=2, sample_steps=1,
                               suite=MetricSuite(), train_fn=stub_train, example_images=False,
                               progress=False)
    trained = [values["export_dir"].split("/")[-1] for _, values in calls]
    assert trained[0] == "stage1"
    assert sorted(trained[1:]) == sorted(set(trained[1:]))            # each variant trained once
    assert all(values["max_steps"] == "3" for _, values in calls)      # same budget
    assert not results["skipped"]
    assert set(trained[1:]) == set(STAGE2_VARIANTS)
    for name in ("table1.md", "table2.md", "table1.png", "table2.png", "stage1_trajectories.md", "results.json"):
        assert (out / name).stat().st_size > 0, name
    table1 = (out / "table1.md").read_text()
    assert "| Mask2IV (Ours) |" in table1 and "| DynamiCrafter-ft |" in table1
    stored = json.loads((out / "results.json").read_text())
    assert stored["tables"]["table2"]["+ contact loss"]["num_clips"] == 2.0
    assert 0.0 <= stored["stage1_trajectories"]["object_iou"] <= 1.0
    assert (out / "eval" / "table1" / "mask2iv" / "metrics.json").is_file()
    assert stored["settings"]["stage1_steps"] == 3 and "reused" not in stored["settings"]["stage1_model"]
    # --reuse: nothing is trained again, and a stage 1 not trained by this run says so
    calls.clear()
    again = reproduce_tables(synthetic_root, out, steps=3, stage1_config=STAGE1_CONFIG,
                             stage2_config=STAGE2_CONFIG, max_clips=2, sample_steps=1,
                             suite=MetricSuite(), train_fn=stub_train, example_images=False,
                             progress=False, reuse=True)
    assert calls == []
    assert again["settings"]["stage1_steps"] is None
    assert f"reused: {tiny_pipe.config.model_id}" in again["settings"]["stage1_model"]
    with pytest.raises(ValueError, match="steps"):
        reproduce_tables(synthetic_root, out, steps=0, train_fn=stub_train)
