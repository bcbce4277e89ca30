import shutil

import numpy as np
import pytest

from mask2iv_ros.data.annotate import (Detection, GroundingDinoDetector, Sam2VideoSegmenter, annotate_clip,
                                       annotate_trajectories, object_phrases_from_instruction)
from mask2iv_ros.data.bridge import MASK_FILE, read_mask_annotation
from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode


def _box(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


class FakeModels:
    """Detector + segmenter standing in for GroundingDINO / SAM2 on a scene whose tracks are known."""

    def __init__(self, actor, tracks_by_phrase):
        self.actor = actor
        self.tracks = [(p, t) for p, ts in tracks_by_phrase.items() for t in ts]
        self.detect_calls = []

    def detect(self, image, phrases):
        self.detect_calls.append(list(phrases))
        dets = [Detection(_box(self.actor[0]), 0.9, phrases[0])]
        dets += [Detection(_box(t[0]), 0.8, p) for p, t in self.tracks if p in phrases]
        return dets

    def segment(self, frames, boxes):
        out = []
        for b in boxes:
            if np.allclose(b, _box(self.actor[0])):
                out.append(self.actor)
            else:
                out.append(next(t for _, t in self.tracks if np.allclose(b, _box(t[0]))))
        return np.stack(out)


def test_phrases_from_instructions():
    assert object_phrases_from_instruction("put the spoon in the pot") == ["spoon", "pot"]
    assert object_phrases_from_instruction("pick up the blue cylinder") == ["blue cylinder"]
    assert object_phrases_from_instruction("push the red block to the left") == ["red block"]
    assert object_phrases_from_instruction("put the red block to the left of the green disc") == [
        "red block", "green disc"]
    assert object_phrases_from_instruction("") == ["object"]


def test_selection_picks_the_moved_object_on_a_synthetic_scene():
    cfg = SyntheticConfig(height=64, width=96, num_frames=10, actions=("put",))
    clip = generate_episode(8, 0, cfg)
    ref = clip.metadata["reference_object"]
    target = clip.metadata["object"]
    static = np.repeat(np.roll(clip.object_masks[:1], 30, axis=2), clip.num_frames, 0)
    fake = FakeModels(clip.actor_masks | clip.object_masks, {ref: [static], target: [clip.object_masks]})
    result = annotate_clip(clip.frames, clip.prompt, fake.detect, fake.segment)
    assert fake.detect_calls == [["robot arm", target, ref]]
    assert result.object_phrase == target
    np.testing.assert_array_equal(result.object_masks, clip.object_masks)
    # the arm track covered the object too; the object wins, leaving the visible arm
    np.testing.assert_array_equal(result.actor_masks, clip.actor_masks)
    assert result.candidate_mious[0] == 1.0 and result.candidate_mious[1] < 0.9


def test_nothing_detected_is_reported():
    clip = generate_episode(8, 1, SyntheticConfig(height=48, width=64, num_frames=6))
    with pytest.raises(LookupError, match="robot arm"):
        annotate_clip(clip.frames, clip.prompt, lambda img, p: [], lambda f, b: None)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from tiny_annotators import save_tiny_grounding_dino, save_tiny_sam2_video

    root = tmp_path_factory.mktemp("tiny_models")
    return save_tiny_grounding_dino(root / "grounding_dino"), save_tiny_sam2_video(root / "sam2")


def test_pipeline_runs_end_to_end_with_tiny_models_and_resumes(tiny_models, raw_dataset, tmp_path):
    gd_path, sam_path = tiny_models
    _, paths = raw_dataset
    trajs = []
    for k, src in enumerate(paths[:2]):  # copies without their ground-truth masks
        dst = tmp_path / "2024-01-01_00-00-00" / "raw" / "traj_group0" / f"traj{k}"
        shutil.copytree(src, dst)
        (dst / MASK_FILE).unlink()
        trajs.append(dst)
    detector = GroundingDinoDetector.from_pretrained(gd_path, box_threshold=0.0)
    segmenter = Sam2VideoSegmenter.from_pretrained(sam_path)
    counts = annotate_trajectories(trajs, detector, segmenter, progress=False)
    assert counts == {"annotated": 2, "skipped": 0, "failed": 0}
    for traj in trajs:
        actor, obj, info = read_mask_annotation(traj)
        assert actor.shape == obj.shape == (10, 64, 96) and actor.dtype == bool
        assert not (actor & obj).any()
        assert info["annotator"] == "groundingdino+sam2" and info["object_phrase"]
    stamp = (trajs[0] / MASK_FILE).stat().st_mtime_ns
    (trajs[1] / MASK_FILE).unlink()  # as if the run had stopped before the second one
    counts = annotate_trajectories(trajs, detector, segmenter, progress=False)
    assert counts == {"annotated": 1, "skipped": 1, "failed": 0}
    assert (trajs[0] / MASK_FILE).stat().st_mtime_ns == stamp
    assert not list(trajs[0].glob(".*.tmp")), "atomic writes leave no temporary files"


def test_model_folders_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="grounding_dino"):
        GroundingDinoDetector.from_pretrained(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="sam2"):
        Sam2VideoSegmenter.from_pretrained(tmp_path / "none")
