"""CLIP image embedders (DynamiCrafter's ``embedder``) and the OpenCLIP -> transformers conversion."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig

from mask2iv_ros.models.dynamicrafter import (convert_openclip_vision_state_dict,
                                              load_dynamicrafter_image_encoder,
                                              openclip_vision_config)
from mask2iv_ros.models.image_encoder import (CLIP_MEAN, CLIP_STD, CLIPVisionEncoder,
                                              OpenCLIPImageEncoder, load_image_encoder)

DYNAMICRAFTER_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dynamicrafter"


@pytest.fixture(scope="module")
def tiny_encoder():
    return CLIPVisionEncoder.tiny(seed=0)


def test_tokens_shape_and_preprocessing(tiny_encoder):
    images = torch.rand(2, 3, 40, 60) * 2 - 1  # not the encoder's 32x32 input
    tokens = tiny_encoder(images)
    assert tokens.shape == (2, (32 // 8) ** 2 + 1, 32) == (2, tiny_encoder.num_tokens, 32)
    # a constant image stays constant under the resize: (c + 1) / 2 normalised with CLIP mean/std
    pixels = tiny_encoder.preprocess(torch.full((1, 3, 40, 60), 0.5))
    expected = (torch.full((3,), 0.75) - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert pixels.shape == (1, 3, 32, 32)
    torch.testing.assert_close(pixels[0, :, 5, 7], expected)
    # bicubic antialiased resize of the [-1, 1] image, as DynamiCrafter (kornia) does
    resized = F.interpolate(images, (32, 32), mode="bicubic", align_corners=True, antialias=True)
    torch.testing.assert_close(tiny_encoder.preprocess(images) * torch.tensor(CLIP_STD)[:, None, None]
                               + torch.tensor(CLIP_MEAN)[:, None, None], (resized + 1) / 2)


def test_batch_rows_are_independent(tiny_encoder):
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    together = tiny_encoder(images)
    alone = torch.cat([tiny_encoder(images[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_unconditional_is_the_zero_image_at_any_size(tiny_encoder):
    torch.testing.assert_close(tiny_encoder.unconditional(2),
                               tiny_encoder(torch.zeros(2, 3, 48, 80)))


def test_real_clip_geometry_gives_257_tokens():
    # ViT-H-14 geometry (224 px, patch 14) at a tiny width: 16 x 16 patches + class token
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                              num_attention_heads=2, image_size=224, patch_size=14)
    encoder = CLIPVisionEncoder.from_config(config)
    assert encoder(torch.zeros(1, 3, 320, 512)).shape == (1, 257, 32)


def test_bad_images_name_the_argument(tiny_encoder):
    with pytest.raises(ValueError, match=r"images: expected a float tensor \[B, 3, H, W\]"):
        tiny_encoder(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="images"):
        tiny_encoder(torch.zeros(1, 4, 32, 32))


def test_save_load_round_trip_is_exact(tiny_encoder, tmp_path):
    tiny_encoder.save_pretrained(tmp_path / "image_encoder")
    loaded = load_image_encoder(tmp_path / "image_encoder")
    assert isinstance(loaded, CLIPVisionEncoder) and loaded.to_config() == tiny_encoder.to_config()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded(images), tiny_encoder(images))
    (tmp_path / "image_encoder" / "config.json").write_text('{"type": "bogus"}')
    with pytest.raises(ValueError, match="unknown image encoder type 'bogus'"):
        load_image_encoder(tmp_path / "image_encoder")


def _openclip_layout(vision_state: dict) -> dict:
    """transformers CLIP vision keys -> OpenCLIP ``visual.*`` keys (the inverse mapping, by hand)."""
    renames = {"embeddings.patch_embedding.weight": "conv1.weight",
               "embeddings.class_embedding": "class_embedding",
               "embeddings.position_embedding.weight": "positional_embedding",
               "pre_layrnorm.weight": "ln_pre.weight", "pre_layrnorm.bias": "ln_pre.bias",
               "post_layernorm.weight": "ln_post.weight", "post_layernorm.bias": "ln_post.bias"}
    block = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    out = {}
    layers = {int(k.split(".")[2]) for k in vision_state if k.startswith("encoder.layers.")}
    for key, value in vision_state.items():
        if key in renames:
            out[renames[key]] = value
        elif key.startswith("encoder.layers.") and ".self_attn.q_proj." not in key \
                and ".self_attn.k_proj." not in key and ".self_attn.v_proj." not in key:
            layer, rest = key.split(".")[2], ".".join(key.split(".")[3:])
            name, kind = rest.rsplit(".", 1)
            out[f"transformer.resblocks.{layer}.{block[name]}.{kind}"] = value
    for layer in layers:
        prefix = f"encoder.layers.{layer}.self_attn."
        for kind in ("weight", "bias"):
            out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
                [vision_state[f"{prefix}{p}_proj.{kind}"] for p in ("q", "k", "v")])
    out["proj"] = torch.randn(vision_state["pre_layrnorm.weight"].shape[0], 24)
    return out


def test_conversion_round_trips_transformers_keys(tiny_encoder):
    own = {k: v for k, v in tiny_encoder.model.state_dict().items() if not k.endswith("position_ids")}
    converted = convert_openclip_vision_state_dict(_openclip_layout(own))
    assert sorted(converted) == sorted(own)
    assert all(torch.equal(converted[k], own[k]) for k in own)
    config = openclip_vision_config(_openclip_layout(own), head_width=16)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads,
            config.image_size, config.patch_size, config.intermediate_size) == (32, 2, 2, 32, 8, 64)
    with pytest.raises(ValueError, match="no CLIPVisionModel counterpart"):
        convert_openclip_vision_state_dict({**_openclip_layout(own),
                                            "transformer.resblocks.0.ls_1.gamma": torch.ones(32)})


def test_dynamicrafter_embedder_matches_openclip_golden():
    """Tokens of OpenCLIP's own VisionTransformer run as DynamiCrafter's embedder (fixture README)."""
    from safetensors import safe_open

    with safe_open(str(DYNAMICRAFTER_FIXTURES / "openclip_vision_tiny_golden.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        head_width = int(f.metadata()["head_width"])
    checkpoint = {k: v for k, v in tensors.items() if k.startswith("embedder.")}
    encoder = load_dynamicrafter_image_encoder(checkpoint, head_width=head_width)
    with torch.no_grad():
        tokens = encoder.encode_pixels(tensors["pixel_values"])
    torch.testing.assert_close(tokens, tensors["tokens"], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="embedder.model.visual."):
        load_dynamicrafter_image_encoder({"model.diffusion_model.x": torch.zeros(1)})


@pytest.mark.skipif(importlib.util.find_spec("open_clip") is not None,
                    reason="open_clip is installed: the missing-package error cannot happen")
def test_openclip_encoder_without_open_clip_says_what_is_missing():
    with pytest.raises(ImportError, match="optional 'open_clip' package"):
        OpenCLIPImageEncoder()
