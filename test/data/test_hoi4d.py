import json

import cv2
import numpy as np
import pytest

from mask2iv_ros.data.hoi4d import (hoi4d_prompt, list_hoi4d_clips, load_hoi4d_clip, read_action_events,
                                    verb_to_ing, voc_color_map)

H, W, N = 24, 32, 20
SEQ = "ZY20210800001/H1/C2/N01/S1/s01/T1"  # C2 = Mug


def _hand_and_object(t):
    obj = np.zeros((H, W), bool)
    obj[10:16, 4 + t:10 + t] = True  # the mug slides right one pixel per frame
    hand = np.zeros((H, W), bool)
    hand[2:9, 6 + t:14 + t] = True
    hand &= ~obj
    return hand, obj


def _write_sequence(root, events, info_key="duration", marks=False):
    seq = root / SEQ
    (seq / "align_rgb").mkdir(parents=True)
    (seq / "2Dseg" / "mask").mkdir(parents=True)
    (seq / "action").mkdir(parents=True)
    colors = voc_color_map(4)
    rng = np.random.default_rng(0)
    for t in range(N):
        hand, obj = _hand_and_object(t)
        img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        cv2.imwrite(str(seq / "align_rgb" / f"{t:05d}.jpg"), img)
        label = np.zeros((H, W, 3), np.uint8)
        label[obj] = colors[1]  # label 1: the mug
        label[hand] = colors[2]  # label 2: right hand
        cv2.imwrite(str(seq / "2Dseg" / "mask" / f"{t:05d}.png"), cv2.cvtColor(label, cv2.COLOR_RGB2BGR))
    if marks:
        data = {"info": {"Duration": 2.0}, "markResult": {"marks": [
            {"event": e, "hdTimeStart": s, "hdTimeEnd": f} for e, s, f in events]}}
    else:
        data = {"info": {info_key: 2.0}, "events": [
            {"id": k, "event": e, "startTime": s, "endTime": f} for k, (e, s, f) in enumerate(events)]}
    (seq / "action" / "color.json").write_text(json.dumps(data))
    return seq


EVENTS = [("Reachout", 0.0, 0.5), ("Pickup", 0.5, 1.5), ("putdown", 1.5, 2.0)]


@pytest.mark.parametrize("marks", [False, True])
def test_action_segments_become_clips(tmp_path, marks):
    _write_sequence(tmp_path, EVENTS, marks=marks)
    events, duration = read_action_events(tmp_path / SEQ / "action" / "color.json")
    assert duration == 2.0 and [e.label for e in events] == ["Reachout", "Pickup", "putdown"]
    refs = list_hoi4d_clips(tmp_path, min_frames=4)
    # 20 frames over 2 s -> 10 fps; "Reachout" has no object interaction and is skipped
    assert [(r.event, r.start_frame, r.end_frame) for r in refs] == [("Pickup", 5, 15), ("putdown", 15, 20)]
    assert refs[0].prompt == "a hand picking up a mug"
    assert refs[1].prompt == "a hand putting down a mug"
    clip = load_hoi4d_clip(refs[0])
    assert clip.frames.shape == (10, H, W, 3) and clip.fps == pytest.approx(10.0)
    assert clip.source == "hoi4d" and clip.episode_id == f"hoi4d/{SEQ}#1"
    for k, t in enumerate(range(5, 15)):
        hand, obj = _hand_and_object(t)
        np.testing.assert_array_equal(clip.actor_masks[k], hand)
        np.testing.assert_array_equal(clip.object_masks[k], obj)
    np.testing.assert_array_equal(clip.placement_mask, _hand_and_object(14)[1])


def test_min_frames_and_downscaling(tmp_path):
    _write_sequence(tmp_path, EVENTS)
    assert [r.event for r in list_hoi4d_clips(tmp_path, min_frames=8)] == ["Pickup"]
    clip = load_hoi4d_clip(list_hoi4d_clips(tmp_path)[0], short_side=12)
    assert clip.frames.shape == (10, 12, 16, 3) and clip.object_masks.shape == (10, 12, 16)


def test_verb_conversion_and_prompt_template():
    cases = {"Pickup": "picking up", "putdown": "putting down", "open": "opening", "close": "closing",
             "push": "pushing", "pull": "pulling", "cut": "cutting", "carry": "carrying", "dump": "dumping",
             "Bind paper": "binding paper", "tie": "tying", "put": "putting"}
    for verb, ing in cases.items():
        assert verb_to_ing(verb) == ing
    assert hoi4d_prompt("open", "laptop") == "a hand opening a laptop"
    assert hoi4d_prompt("pull", "object") == "a hand pulling an object"


def test_voc_color_map_matches_the_release_colors():
    np.testing.assert_array_equal(voc_color_map(4), [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]])


def test_broken_annotation_is_a_clear_error(tmp_path):
    p = tmp_path / "color.json"
    p.write_text(json.dumps({"info": {}, "something": []}))
    with pytest.raises(ValueError, match="events"):
        read_action_events(p)
