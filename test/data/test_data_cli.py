import json

import cv2
import pytest

from mask2iv_ros.data.cli import curate_main, make_synthetic_main
from mask2iv_ros.data.dataset import CURATION_FILE, Mask2IVDataset
from mask2iv_ros.data.preview import save_contact_sheet
from mask2iv_ros.data.synthetic import generate_episode


def test_make_synthetic_then_curate(tmp_path, capsys):
    root = tmp_path / "synthetic"
    preview = tmp_path / "preview.png"
    assert make_synthetic_main([str(root), "--episodes", "5", "--frames", "8", "--height", "48", "--width", "64",
                                "--seed", "1", "--preview", str(preview), "--preview-episodes", "2", "--quiet"]) == 0
    assert preview.exists()
    assert curate_main([str(root), "--quiet", "--percentile", "30"]) == 0
    result = json.loads((root / CURATION_FILE).read_text())
    assert len(result["scores"]) == 5 and len(result["kept"]) + len(result["dropped"]) == 5
    assert len(result["dropped"]) == 2  # scores below the 30th percentile of 5 values
    assert all(result["scores"][d] < result["threshold"] <= min(result["scores"][k] for k in result["kept"])
               for d in result["dropped"])
    ds = Mask2IVDataset(root, num_frames=4, resolution=(32, 32), split="all")
    assert sorted(ds.episode_ids) == sorted(result["kept"])
    assert "kept 3, dropped 2" in capsys.readouterr().out


def test_cli_errors_are_reported(tmp_path, capsys):
    assert make_synthetic_main([str(tmp_path / "x"), "--episodes", "0", "--quiet"]) == 2
    assert "num_episodes" in capsys.readouterr().err
    assert curate_main([str(tmp_path / "missing")]) == 2
    assert curate_main([str(tmp_path), "--sam2", str(tmp_path)]) == 2
    assert "--grounding-dino and --sam2" in capsys.readouterr().err


def test_contact_sheet(tmp_path, small_cfg):
    clips = [generate_episode(0, i, small_cfg) for i in range(2)]
    path = save_contact_sheet(clips, tmp_path / "sheet.png", max_frames=5, tile_width=64)
    img = cv2.imread(str(path))
    tile_h = round(64 * 64 / 96)
    # per clip: a 22 px title line, a frame row and an overlay row, then 4 px spacing
    assert img.shape == (2 * (22 + 2 * tile_h + 4), 5 * 64, 3)
    with pytest.raises(ValueError, match="clip"):
        save_contact_sheet([], tmp_path / "empty.png")


def test_curate_hoi4d_folder(tmp_path):
    from test_hoi4d import EVENTS, _write_sequence

    _write_sequence(tmp_path, EVENTS)
    assert curate_main([str(tmp_path), "--quiet", "--hoi4d-short-side", "24"]) == 0
    result = json.loads((tmp_path / CURATION_FILE).read_text())
    # the 5-frame "putdown" segment is shorter than the 8-frame minimum of a clip
    assert list(result["scores"]) == ["hoi4d/ZY20210800001/H1/C2/N01/S1/s01/T1#1"]
    assert all(s > 0 for s in result["scores"].values())  # hand and mug move one pixel per frame
