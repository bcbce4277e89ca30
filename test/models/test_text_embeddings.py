"""Precomputed prompt embeddings (models/text_embeddings.py): exactly the encoder's outputs, the
encoder's own config, a clear error for a prompt that was not precomputed (a run trained on them:
test/training/test_train.py)."""

import json

import pytest
import torch

from mask2iv_ros.models.text_embeddings import (PrecomputedTextEncoder, main,
                                                precompute_text_embeddings)
from mask2iv_ros.models.text_encoder import CLIPTextEncoder, MiniLMTextEncoder, load_text_encoder

PROMPTS = ["", "push the red block to the left", ""]


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder.from_path(None, max_length=8)


@torch.no_grad()
def test_lookup_returns_the_encoders_outputs(minilm, tmp_path):
    path = precompute_text_embeddings(minilm, PROMPTS, tmp_path / "emb.safetensors")
    cached = PrecomputedTextEncoder(path)
    assert cached.prompts == PROMPTS[:2] and (cached.max_length, cached.embed_dim) == (8, 384)
    tokens, mask = cached.encode(["push the red block to the left", "", ""])
    expected, expected_mask = minilm.encode(["push the red block to the left", "", ""])
    assert torch.equal(tokens, expected) and torch.equal(mask, expected_mask)
    assert torch.equal(cached.unconditional(2)[0], minilm.unconditional(2)[0])
    assert cached.to_config() == minilm.to_config()
    cached.save_pretrained(tmp_path / "text_encoder")  # the package reference, as minilm writes it
    assert json.loads((tmp_path / "text_encoder" / "config.json").read_text()) == minilm.to_config()
    assert isinstance(load_text_encoder(tmp_path / "text_encoder"), MiniLMTextEncoder)


def test_errors(minilm, tmp_path):
    cached = PrecomputedTextEncoder(precompute_text_embeddings(minilm, [""], tmp_path / "e.safetensors"))
    with pytest.raises(ValueError, match="'pull the mug' is not among the 1 prompts precomputed"):
        cached.encode(["", "pull the mug"])
    with pytest.raises(FileNotFoundError, match="model.text_encoder.path: expected a precomputed"):
        PrecomputedTextEncoder(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file
    save_file({"tokens": torch.zeros(1, 2, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a precomputed text embeddings file"):
        PrecomputedTextEncoder(tmp_path / "other.safetensors")
    # an encoder whose weights live in no package cannot be written back from its outputs alone
    clip = CLIPTextEncoder.tiny(hidden_size=32, max_length=8, seed=0)
    cached = PrecomputedTextEncoder(precompute_text_embeddings(clip, [""], tmp_path / "c.safetensors"))
    with pytest.raises(ValueError, match="not in an installed package"):
        cached.save_pretrained(tmp_path / "clip_out")


def test_cli_writes_the_empty_prompt_by_default(minilm, tmp_path, capsys):
    minilm.save_pretrained(tmp_path / "text_encoder")
    assert main([str(tmp_path / "text_encoder"), str(tmp_path / "out.safetensors")]) == 0
    assert PrecomputedTextEncoder(tmp_path / "out.safetensors").prompts == [""]
    assert "wrote 1 prompt embeddings" in capsys.readouterr().out
