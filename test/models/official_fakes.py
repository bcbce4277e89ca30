"""Tiny fakes of the released Mask2IV / DynamiCrafter checkpoints, in their exact key layout.

Where the names come from (outside references, not this project's converters):
- UNet ``model.diffusion_model.*``: the project's VideoUNet, whose state dict matches
  DynamiCrafter's UNetModel key for key (test_dynamicrafter_compat.py checks all 1,516 names).
- VAE ``first_stage_model.*``: the key list of DynamiCrafter's own AutoencoderKL
  (test/fixtures/dynamicrafter/first_stage_model_512_state_dict_shapes.json, made by running its
  code), with every channel width divided by 16.
- Text tower ``cond_stage_model.model.*``: OpenCLIP's text names (``token_embedding``,
  ``positional_embedding``, ``transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj,
  ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_final``, ``text_projection``, ``logit_scale``).
- Image tower ``embedder.model.*``: the OpenCLIP VisionTransformer golden of
  test/fixtures/dynamicrafter (made with open_clip's code), with its text-side leftover.
- Resampler ``image_proj_model.*``: the project's Resampler (DynamiCrafter's names, checked by
  test_dynamicrafter_compat.py).
- Noise-schedule buffers: LDM's formulas (make_beta_schedule "linear", rescale_zero_terminal_snr,
  scale_arr of use_dynamic_rescale), written out below.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mask2iv_ros.models import UNetConfig, VideoUNet
from mask2iv_ros.models.resampler import Resampler, ResamplerConfig
from mask2iv_ros.models.text_encoder import byte_level_tokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dynamicrafter"
FRAMES, TEXT_LEN, WIDTH = 4, 8, 32
IMAGE_TOKENS = 4
TEXT_LAYERS, TEXT_HEADS = 3, 2
VAE_CHANNEL_DIVISOR = 16
TINY_VAE = {"in_channels": 3, "out_channels": 3, "down_block_types": ["DownEncoderBlock2D"] * 4,
            "up_block_types": ["UpDecoderBlock2D"] * 4, "block_out_channels": [8, 16, 32, 32],
            "layers_per_block": 2, "latent_channels": 4, "norm_num_groups": 8,
            "sample_size": 64, "scaling_factor": 0.18215}
TINY_RESAMPLER = ResamplerConfig(dim=32, depth=1, dim_head=16, heads=2, num_queries=IMAGE_TOKENS,
                                 embedding_dim=WIDTH, output_dim=WIDTH, ff_mult=2,
                                 video_length=FRAMES)
# Extra stage-2 modules of the release that the project cannot place (names as they might be)
STAGE2_EXTRA = ("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.extra_mask_attn.to_q.weight",
                "obj_cond_stage_model.model.blocks.0.attn.qkv.weight",
                "object_proj_model.net.0.weight")


def tiny_unet_config(in_channels: int = 12) -> UNetConfig:
    return UNetConfig.tiny(in_channels=in_channels, context_dim=WIDTH, text_context_len=TEXT_LEN,
                           temporal_length=FRAMES, image_cross_attention=True,
                           image_tokens_per_frame=IMAGE_TOKENS)


def model_config_json(path: Path, in_channels: int = 12) -> Path:
    """The --model-config of the tiny fakes."""
    unet = tiny_unet_config(in_channels).to_dict()
    unet.pop("in_channels")
    path.write_text(json.dumps({"unet": unet, "vae": TINY_VAE,
                                "image_projection": TINY_RESAMPLER.to_dict(),
                                "text_head_width": WIDTH // TEXT_HEADS, "image_head_width": 16}))
    return path


def _random_(module: torch.nn.Module, generator: torch.Generator, std: float = 0.05) -> torch.nn.Module:
    """Every tensor random (the zero-initialised output layers too), norms around 1."""
    with torch.no_grad():
        for name, value in module.state_dict().items():
            noise = torch.randn(value.shape, generator=generator) * std
            is_norm = value.dim() == 1 and (name.endswith("weight") and "norm" in name)
            value.copy_(noise + 1.0 if is_norm else noise)
    return module.eval()


def fake_unet(seed: int, in_channels: int = 12) -> VideoUNet:
    return _random_(VideoUNet(tiny_unet_config(in_channels)), torch.Generator().manual_seed(seed))


def fake_resampler(seed: int) -> Resampler:
    return _random_(Resampler(TINY_RESAMPLER), torch.Generator().manual_seed(seed))


def tokenizer():
    return byte_level_tokenizer(TEXT_LEN)


def fake_text_tower(seed: int) -> dict[str, torch.Tensor]:
    """OpenCLIP text weights (keys after ``cond_stage_model.model.``)."""
    g = torch.Generator().manual_seed(seed)
    vocab = len(tokenizer())

    def rand(*shape, scale=0.1, offset=0.0):
        return torch.randn(*shape, generator=g) * scale + offset

    state = {"token_embedding.weight": rand(vocab, WIDTH, scale=0.5),
             "positional_embedding": rand(TEXT_LEN, WIDTH, scale=0.2),
             "ln_final.weight": rand(WIDTH, offset=1.0), "ln_final.bias": rand(WIDTH),
             "text_projection": rand(WIDTH, 24), "logit_scale": torch.tensor(math.log(1 / 0.07))}
    for i in range(TEXT_LAYERS):
        p = f"transformer.resblocks.{i}."
        state.update({
            p + "ln_1.weight": rand(WIDTH, offset=1.0), p + "ln_1.bias": rand(WIDTH),
            p + "attn.in_proj_weight": rand(3 * WIDTH, WIDTH, scale=0.2),
            p + "attn.in_proj_bias": rand(3 * WIDTH),
            p + "attn.out_proj.weight": rand(WIDTH, WIDTH, scale=0.2),
            p + "attn.out_proj.bias": rand(WIDTH),
            p + "ln_2.weight": rand(WIDTH, offset=1.0), p + "ln_2.bias": rand(WIDTH),
            p + "mlp.c_fc.weight": rand(4 * WIDTH, WIDTH, scale=0.2), p + "mlp.c_fc.bias": rand(4 * WIDTH),
            p + "mlp.c_proj.weight": rand(WIDTH, 4 * WIDTH, scale=0.1), p + "mlp.c_proj.bias": rand(WIDTH),
        })
    return state


def openclip_text_reference(text_state: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """DynamiCrafter's FrozenOpenCLIPEmbedder(layer="penultimate").encode_with_transformer,
    written out from the raw OpenCLIP tensors (nn.MultiheadAttention math, causal mask, exact
    GELU): every block but the last, then ln_final."""
    import torch.nn.functional as F

    s = text_state
    x = s["token_embedding.weight"][ids] + s["positional_embedding"][: ids.shape[1]]
    length = ids.shape[1]
    causal = torch.full((length, length), float("-inf")).triu(1)
    heads = TEXT_HEADS
    for i in range(TEXT_LAYERS - 1):
        p = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (WIDTH,), s[p + "ln_1.weight"], s[p + "ln_1.bias"], 1e-5)
        q, k, v = F.linear(h, s[p + "attn.in_proj_weight"], s[p + "attn.in_proj_bias"]).chunk(3, -1)
        q, k, v = (t.reshape(t.shape[0], length, heads, -1).transpose(1, 2) for t in (q, k, v))
        weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + causal).softmax(-1)
        attn = (weights @ v).transpose(1, 2).reshape(x.shape)
        x = x + F.linear(attn, s[p + "attn.out_proj.weight"], s[p + "attn.out_proj.bias"])
        h = F.layer_norm(x, (WIDTH,), s[p + "ln_2.weight"], s[p + "ln_2.bias"], 1e-5)
        h = F.gelu(F.linear(h, s[p + "mlp.c_fc.weight"], s[p + "mlp.c_fc.bias"]))
        x = x + F.linear(h, s[p + "mlp.c_proj.weight"], s[p + "mlp.c_proj.bias"])
    return F.layer_norm(x, (WIDTH,), s["ln_final.weight"], s["ln_final.bias"], 1e-5)


def fake_ldm_vae(seed: int) -> dict[str, torch.Tensor]:
    """DynamiCrafter's first_stage_model key names with channels / 16 (keys after the prefix)."""
    reference = json.loads((FIXTURES / "first_stage_model_512_state_dict_shapes.json").read_text())
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference["state_dict"]:
        small = [d // VAE_CHANNEL_DIVISOR if d >= 128 else d for d in shape]
        value = torch.randn(*small, generator=g) * 0.05
        if key.endswith(".weight") and "norm" in key.split(".")[-2]:
            value += 1.0  # GroupNorm gains around 1
        state[key] = value
    return state


def fake_embedder() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """(``embedder.*`` weights of the OpenCLIP golden, its pixel_values, its tokens)."""
    with safe_open(str(FIXTURES / "openclip_vision_tiny_golden.safetensors"), "pt") as handle:
        weights = {k: handle.get_tensor(k) for k in handle.keys() if k.startswith("embedder.")}
        pixels, tokens = handle.get_tensor("pixel_values"), handle.get_tensor("tokens")
    return weights, pixels, tokens


def schedule_buffers(base_scale: float | None = 0.7) -> dict[str, torch.Tensor]:
    """LatentDiffusion's registered schedule buffers (ldm make_beta_schedule "linear" + zero-SNR
    rescale, lvdm ddpm3d.register_schedule) and ``scale_arr``."""
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    alphas_bar_sqrt = np.sqrt(np.cumprod(1.0 - betas))
    first, last = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt ** 2
    alphas = np.concatenate([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    betas = 1 - alphas
    alphas_cumprod = np.cumprod(1.0 - betas)
    prev = np.append(1.0, alphas_cumprod[:-1])
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    with np.errstate(divide="ignore"):
        buffers = {"betas": f32(betas), "alphas_cumprod": f32(alphas_cumprod),
                   "alphas_cumprod_prev": f32(prev), "sqrt_alphas_cumprod": f32(np.sqrt(alphas_cumprod)),
                   "sqrt_one_minus_alphas_cumprod": f32(np.sqrt(1 - alphas_cumprod)),
                   "log_one_minus_alphas_cumprod": f32(np.log(1 - alphas_cumprod)),
                   "sqrt_recip_alphas_cumprod": torch.zeros(1000),
                   "sqrt_recipm1_alphas_cumprod": torch.zeros(1000),
                   "posterior_variance": f32(betas * (1 - prev) / (1 - alphas_cumprod)),
                   "posterior_mean_coef1": f32(betas * np.sqrt(prev) / (1 - alphas_cumprod)),
                   "posterior_mean_coef2": f32((1 - prev) * np.sqrt(1 - betas) / (1 - alphas_cumprod))}
    buffers["posterior_log_variance_clipped"] = torch.log(buffers["posterior_variance"].clamp_min(1e-20))
    if base_scale is not None:
        buffers["scale_arr"] = f32(np.concatenate([np.linspace(1.0, base_scale, 400),
                                                   np.full(1000, base_scale)]))
    return buffers


def fake_checkpoint(seed: int, in_channels: int = 12, extra: bool = False,
                    resampler_seed: int = 100) -> tuple[dict[str, torch.Tensor], dict]:
    """(full state dict in the release's layout, the parts it was built from)."""
    unet, resampler = fake_unet(seed, in_channels), fake_resampler(resampler_seed)
    text, vae = fake_text_tower(7), fake_ldm_vae(8)
    embedder, pixels, tokens = fake_embedder()
    state = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"first_stage_model.{k}": v for k, v in vae.items()})
    state.update({f"cond_stage_model.model.{k}": v for k, v in text.items()})
    state.update(embedder)
    state.update({f"image_proj_model.{k}": v for k, v in resampler.state_dict().items()})
    state.update(schedule_buffers())
    if extra:
        g = torch.Generator().manual_seed(seed + 1)
        state.update({k: torch.randn(4, 4, generator=g) for k in STAGE2_EXTRA})
    parts = {"unet": unet, "resampler": resampler, "text": text, "vae": vae,
             "pixels": pixels, "tokens": tokens}
    return {k: v.contiguous() for k, v in state.items()}, parts


def save_lightning(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save({"state_dict": state, "epoch": 3, "global_step": 1000}, path)
    return path


def save_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    save_file(state, str(path))
    return path
