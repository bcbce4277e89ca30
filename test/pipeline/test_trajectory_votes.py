"""Trajectory votes: one hypothesis' trajectory as the pixelwise majority of K stage-1 samples from
its seed's stream (pipeline/hypotheses.py majority_vote / vote_labels, the pipeline's
``trajectory_votes`` and ``config.sampling.trajectory_votes``)."""

import dataclasses

import numpy as np
import pytest
import torch

import mask2iv_ros.pipeline.pipeline as pipeline_module
from mask2iv_ros.masks import ACTOR, BACKGROUND, OBJECT, labels_to_rgb
from mask2iv_ros.pipeline.hypotheses import majority_vote, rank_hypotheses, vote_labels
from mask2iv_ros.pipeline.pipeline_config import SamplingDefaults
from mask2iv_ros.pipeline.validation import Mask2IVInputError

STEPS = 3


def _position_call(pipe, inputs, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    return pipe(inputs["image"], inputs["object_mask"], actor_mask=inputs["actor_mask"],
                placement_mask=inputs["placement_mask"], **kwargs)


# ---------------------------------------------------------------- the vote on hand-made labels
def test_majority_vote_takes_the_most_given_category_and_ties_go_to_the_tie_breaker():
    values = np.array([[0, 1, 2, 1],
                       [0, 1, 1, 2],
                       [2, 0, 1, 0],
                       [2, 0, 0, 0]])
    # columns: 0/0/2/2 tie, 1/1/0/0 tie, 2/1/1/0 majority 1, 1/2/0/0 majority 0
    np.testing.assert_array_equal(majority_vote(values, tie_break=0), [0, 1, 1, 0])
    np.testing.assert_array_equal(majority_vote(values, tie_break=3), [2, 0, 1, 0])
    # a tie the tie-breaker's category is not in (2 x 5, 2 x 7, the tie-breaker's 9 once) goes
    # to the smallest tied category
    np.testing.assert_array_equal(majority_vote(np.array([[5], [7], [7], [5], [9]]), 4), [5])
    np.testing.assert_array_equal(majority_vote(values[:1], 0), values[0])
    with pytest.raises(ValueError, match=r"tie_break: expected a sample index in \[0, 4\)"):
        majority_vote(values, 4)
    with pytest.raises(ValueError, match="values: expected"):
        majority_vote(np.zeros((0, 3)), 0)


def test_vote_labels_groups_consecutive_votes_and_ties_go_to_each_groups_medoid():
    rng = np.random.default_rng(0)
    base = np.zeros((2, 12, 12), np.uint8)
    base[:, 3:7, 3:7] = OBJECT
    base[:, 0:2, :] = ACTOR
    labels = []
    for _ in range(2):                        # two hypotheses of four votes each
        for _ in range(4):
            noisy = base.copy()
            flip = rng.random(base.shape) < 0.2
            noisy[flip] = rng.choice([BACKGROUND, ACTOR, OBJECT], size=int(flip.sum()))
            labels.append(noisy)
    labels = np.stack(labels)
    voted, medoids = vote_labels(labels, votes=4, object_label=OBJECT)
    assert voted.shape == (2, 2, 12, 12) and len(medoids) == 2
    for i in range(2):
        group = labels[4 * i:4 * i + 4]
        medoid = rank_hypotheses(group == OBJECT).order[0]
        assert medoids[i] == 4 * i + medoid
        np.testing.assert_array_equal(voted[i], majority_vote(group, medoid))
        # the majority is closer to the clean labels than any single vote
        assert (voted[i] != base).mean() < min((vote != base).mean() for vote in group)
    with pytest.raises(ValueError, match="expected a multiple of trajectory_votes 3"):
        vote_labels(labels, votes=3, object_label=OBJECT)


# ---------------------------------------------------------------- the pipeline
class _LabelSpy:
    """Records the snapped labels of the stage-1 samples (before any vote)."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = pipeline_module.palette_labels

        def spy(*args, **kwargs):
            labels = original(*args, **kwargs)
            self.calls.append(labels.copy())
            return labels

        monkeypatch.setattr(pipeline_module, "palette_labels", spy)


def test_the_trajectory_is_the_majority_of_the_votes_and_stage_2_sees_it(tiny_pipe, inputs,
                                                                          monkeypatch):
    spy = _LabelSpy(monkeypatch)
    stage2_inputs = []
    original_stage2 = tiny_pipe._stage2_masks

    def stage2_spy(*args, **kwargs):
        masks = original_stage2(*args, **kwargs)
        stage2_inputs.append(masks.clone())
        return masks

    monkeypatch.setattr(tiny_pipe, "_stage2_masks", stage2_spy)
    monkeypatch.setattr(tiny_pipe.config, "sampling",
                        dataclasses.replace(tiny_pipe.config.sampling, stage2_masks="palette"))
    out = _position_call(tiny_pipe, inputs, seed=4, trajectory_votes=3, eta=1.0)
    samples = spy.calls[-1]
    assert samples.shape[0] == 3                      # three stage-1 samples for one hypothesis
    assert out.trajectory_votes == 3 and len(out.hypotheses) == 1
    # the votes differ (else the test shows nothing) and the output is their majority
    assert any((samples[0] != s).any() for s in samples[1:])
    medoid = rank_hypotheses(samples == OBJECT).order[0]
    voted = majority_vote(samples, medoid)
    box = out.input_region
    visible = voted[:, box[1]:box[1] + box[3], box[0]:box[0] + box[2]]
    np.testing.assert_array_equal(out.object_masks, visible == OBJECT)
    np.testing.assert_array_equal(out.actor_masks, visible == ACTOR)
    # stage 2 is conditioned on the voted trajectory in the palette
    expected = pipeline_module._to_tensor(labels_to_rgb(voted[None], tiny_pipe.palette), "cpu")
    torch.testing.assert_close(stage2_inputs[-1], expected, rtol=0, atol=0)
    assert out.video is not None and out.video.std() > 0


def test_channel_sign_stage_2_masks_are_the_per_channel_majority(tiny_pipe):
    decoded = torch.tensor([[0.5, -0.2], [-0.1, 0.3], [0.2, -0.4]]).reshape(3, 1, 2, 1, 1)
    decoded = decoded.expand(3, 3, 2, 1, 1).contiguous()
    sampling = tiny_pipe.config.sampling
    try:
        tiny_pipe.config.sampling = dataclasses.replace(sampling, stage2_masks="channel_sign")
        masks = tiny_pipe._stage2_masks(decoded, np.zeros((1, 2, 1, 1), np.uint8), [0], 3, [1])
    finally:
        tiny_pipe.config.sampling = sampling
    # frame 0: signs +, -, + -> +; frame 1: -, +, - -> -
    assert masks.shape == (1, 3, 2, 1, 1)
    assert masks[0, :, 0].flatten().tolist() == [1.0] * 3
    assert masks[0, :, 1].flatten().tolist() == [-1.0] * 3


def test_hypothesis_i_of_a_voted_batch_is_the_one_sample_call_with_seed_plus_i(tiny_pipe, inputs):
    batched = _position_call(tiny_pipe, inputs, seed=8, num_samples=2, trajectory_votes=3,
                             trajectory_only=True)
    assert sorted(h.seed for h in batched.hypotheses) == [8, 9]
    for hypothesis in batched.hypotheses:
        single = _position_call(tiny_pipe, inputs, seed=hypothesis.seed, trajectory_votes=3,
                                trajectory_only=True)
        # float batching may flip a palette-boundary pixel (test_hypotheses.py)
        assert (single.mask_trajectory != hypothesis.mask_trajectory).any(axis=-1).mean() <= 0.002


def test_one_vote_is_the_call_it_always_was_and_the_recorded_default_applies(tiny_pipe, inputs,
                                                                             monkeypatch):
    plain = _position_call(tiny_pipe, inputs, seed=2)
    one = _position_call(tiny_pipe, inputs, seed=2, trajectory_votes=1)
    np.testing.assert_array_equal(plain.mask_trajectory, one.mask_trajectory)
    np.testing.assert_array_equal(plain.video, one.video)
    assert plain.trajectory_votes == 1
    spy = _LabelSpy(monkeypatch)
    monkeypatch.setattr(tiny_pipe.config, "sampling",
                        dataclasses.replace(tiny_pipe.config.sampling, trajectory_votes=3))
    recorded = _position_call(tiny_pipe, inputs, seed=2, trajectory_only=True)
    assert recorded.trajectory_votes == 3 and spy.calls[-1].shape[0] == 3
    explicit = _position_call(tiny_pipe, inputs, seed=2, trajectory_only=True, trajectory_votes=1)
    assert explicit.trajectory_votes == 1
    np.testing.assert_array_equal(explicit.mask_trajectory, plain.mask_trajectory)


def test_votes_are_checked_in_calls_and_in_the_recorded_config(tiny_pipe, inputs):
    for bad in (0, 17, 2.0, True):
        with pytest.raises(Mask2IVInputError, match=r"trajectory_votes: expected an int in \[1, 16\]"):
            _position_call(tiny_pipe, inputs, trajectory_votes=bad, trajectory_only=True)
    with pytest.raises(ValueError, match=r"sampling.trajectory_votes: expected an int in \[1, 16\]"):
        SamplingDefaults(trajectory_votes=0)
    assert SamplingDefaults.from_dict({"trajectory_votes": 4}).trajectory_votes == 4


def test_recorded_votes_survive_save_and_load_and_one_vote_is_not_written(tmp_path):
    from mask2iv_ros.pipeline import Mask2IVPipeline, build_tiny_pipeline

    pipe = build_tiny_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "one")
    assert "trajectory_votes" not in (tmp_path / "one" / "model_index.json").read_text()
    pipe.config.sampling = dataclasses.replace(pipe.config.sampling, trajectory_votes=4)
    pipe.save_pretrained(tmp_path / "four")
    assert Mask2IVPipeline.from_pretrained(tmp_path / "four").config.sampling.trajectory_votes == 4
