"""DynamiCrafter's OpenCLIP text tower (``cond_stage_model.*``) as a transformers ``CLIPTextModel``.

DynamiCrafter's ``FrozenOpenCLIPEmbedder(layer="penultimate")`` tokenizes with
``open_clip.tokenize`` (77 tokens, zero padding), adds the positional embedding, runs every
transformer block *but the last* under the causal mask, then ``ln_final``. As in diffusers'
Stable Diffusion 2 conversion (``convert_open_clip_checkpoint``, whose key map is used here),
the converted ``CLIPTextModel`` has one layer fewer than the OpenCLIP tower and its
``last_hidden_state`` (final layer norm applied) is exactly those tokens; it is wrapped as
:class:`~.text_encoder.CLIPTextEncoder` with ``layer="last"``.

The weights that DynamiCrafter never uses are left out by design and reported as such: the last
block, ``text_projection`` (pooled embedding) and ``logit_scale`` (contrastive temperature).

The tokenizer is OpenCLIP's byte-level BPE (the OpenAI CLIP vocabulary, 49,408 ids) as a
transformers ``CLIPTokenizer``, built from OpenCLIP's own ``bpe_simple_vocab_16e6.txt.gz``
(from a local file, an ``open_clip_torch`` wheel, or an installed ``open_clip``), or a local
CLIP tokenizer folder. Padding is id 0 (``"!"``) as in ``open_clip.tokenize``.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from .text_encoder import CLIPTextEncoder

OPENCLIP_TEXT_PREFIX = "model."           # inside ``cond_stage_model.``
VIT_H_14_TEXT_HEAD_WIDTH = 64             # ViT-H-14 text: width 1024, 16 heads
OPENCLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
_OPENCLIP_BPE_IN_WHEEL = "open_clip/" + OPENCLIP_BPE_FILE
# Top-level keys of the text tower and whether DynamiCrafter's penultimate-layer embedder uses them.
_TOP_LEVEL_USED = ("token_embedding.weight", "positional_embedding", "ln_final.weight",
                   "ln_final.bias")
_TOP_LEVEL_UNUSED = {
    "text_projection": "pooled-embedding projection; DynamiCrafter uses the token states",
    "logit_scale": "contrastive temperature; not part of the text encoder",
}
_BLOCK_KEY = re.compile(r"^transformer\.resblocks\.(\d+)\."
                        r"(ln_1|ln_2|attn\.in_proj|attn\.out_proj|mlp\.c_fc|mlp\.c_proj)"
                        r"(\.weight|\.bias|_weight|_bias)$")
_DIFFUSERS_PREFIX = "cond_stage_model.model."  # what diffusers' helper expects


class OpenCLIPTextConversion:
    """The result of :func:`convert_openclip_text_tower`: the encoder and the key accounting."""

    def __init__(self, encoder: CLIPTextEncoder, used: list[str], unused: dict[str, str]):
        self.encoder = encoder
        self.used = used          # OpenCLIP keys (after ``model.``) placed into the encoder
        self.unused = unused      # OpenCLIP key -> why DynamiCrafter never reads it


def _split_text_keys(text_state: Mapping[str, torch.Tensor]) -> tuple[int, dict[str, str], list[str]]:
    """``(number of blocks, {unused key: reason}, [unknown keys])`` of OpenCLIP text weights."""
    blocks, unknown = set(), []
    for key in text_state:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks.add(int(match.group(1)))
        elif key not in _TOP_LEVEL_USED and key not in _TOP_LEVEL_UNUSED:
            unknown.append(key)
    missing = [k for k in _TOP_LEVEL_USED if k not in text_state]
    if missing:
        raise ValueError(f"cond_stage_model: missing OpenCLIP text keys {missing} (expected "
                         f"{OPENCLIP_TEXT_PREFIX}token_embedding.weight, positional_embedding, "
                         "ln_final.*, transformer.resblocks.N.*)")
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise ValueError(f"cond_stage_model: expected transformer.resblocks.0..N-1, got blocks "
                         f"{sorted(blocks)}")
    last = len(blocks) - 1
    unused = {k: _TOP_LEVEL_UNUSED[k] for k in text_state if k in _TOP_LEVEL_UNUSED}
    unused.update({k: "last transformer block; DynamiCrafter takes the penultimate layer"
                   for k in text_state if k.startswith(f"transformer.resblocks.{last}.")})
    return len(blocks), unused, sorted(unknown)


def openclip_text_config(text_state: Mapping[str, torch.Tensor], num_layers: int,
                         head_width: int = VIT_H_14_TEXT_HEAD_WIDTH, tokenizer: Any = None) -> Any:
    """``CLIPTextConfig`` of OpenCLIP text weights: sizes from the shapes, ``num_layers`` layers,
    heads from ``head_width`` (not visible in the shapes), exact GELU, LayerNorm eps 1e-5."""
    from transformers import CLIPTextConfig

    vocab, hidden = text_state["token_embedding.weight"].shape
    if hidden % head_width:
        raise ValueError(f"head_width: {head_width} does not divide the text width {hidden}")
    ids = {}
    if tokenizer is not None:
        ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    projection = text_state.get("text_projection")
    return CLIPTextConfig(
        vocab_size=int(vocab), hidden_size=int(hidden),
        intermediate_size=int(text_state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        num_hidden_layers=num_layers, num_attention_heads=int(hidden) // head_width,
        max_position_embeddings=int(text_state["positional_embedding"].shape[0]),
        hidden_act="gelu", layer_norm_eps=1e-5,
        projection_dim=int(projection.shape[1]) if projection is not None else int(hidden), **ids)


def convert_openclip_text_tower(text_state: Mapping[str, torch.Tensor], tokenizer: Any,
                                head_width: int = VIT_H_14_TEXT_HEAD_WIDTH,
                                max_length: int = 77) -> OpenCLIPTextConversion:
    """OpenCLIP text weights (keys after ``cond_stage_model.model.``) -> a frozen
    :class:`CLIPTextEncoder` computing DynamiCrafter's penultimate-layer tokens.

    Keys are mapped with diffusers' ``convert_open_clip_checkpoint`` (the SD2 OpenCLIP map: fused
    ``in_proj`` split into q/k/v, ``c_fc``/``c_proj`` -> ``fc1``/``fc2``); the last block,
    ``text_projection`` and ``logit_scale`` are reported as unused; any other key raises.
    """
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextModel

    num_blocks, unused, unknown = _split_text_keys(text_state)
    if unknown:
        raise ValueError(f"cond_stage_model: OpenCLIP text keys with no CLIPTextModel counterpart: "
                         f"{unknown[:8]}{' ...' if len(unknown) > 8 else ''}")
    if len(tokenizer) > text_state["token_embedding.weight"].shape[0]:
        raise ValueError(f"tokenizer: {len(tokenizer)} ids, but the text tower embeds only "
                         f"{text_state['token_embedding.weight'].shape[0]}: not its tokenizer")
    config = openclip_text_config(text_state, num_blocks - 1, head_width, tokenizer)
    with torch.device("meta"):
        model = CLIPTextModel(config)
    kept = {_DIFFUSERS_PREFIX + k: v for k, v in text_state.items() if k not in unused}
    converted = convert_open_clip_checkpoint(model, kept, prefix=_DIFFUSERS_PREFIX)
    # diffusers names keys for transformers < 5 (``text_model.`` nesting); 5.x has no such level
    nested = hasattr(model, "text_model")
    converted = {(k if nested or not k.startswith("text_model.") else k[len("text_model."):]): v
                 for k, v in converted.items()}
    own = model.state_dict()
    for name in own:  # buffers (position ids) are not weights of the checkpoint
        if name.endswith("position_ids"):
            converted[name] = torch.arange(config.max_position_embeddings)[None]
    model = CLIPTextModel(config)  # real storage; weights copied in below (strict)
    model.load_state_dict(converted, strict=True)
    encoder = CLIPTextEncoder(model, tokenizer, max_length=max_length, layer="last")
    used = sorted(k for k in text_state if k not in unused)
    return OpenCLIPTextConversion(encoder, used, unused)


# ------------------------------------------------------------------------------------ tokenizer
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table (the first 256 vocab entries)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def tokenizer_from_openclip_bpe(bpe_text: str, max_length: int = 77) -> Any:
    """A transformers ``CLIPTokenizer`` equal to ``open_clip.tokenize`` from the text of
    OpenCLIP's ``bpe_simple_vocab_16e6.txt`` (its merges; the vocabulary is derived from them
    exactly as OpenCLIP's ``SimpleTokenizer`` does)."""
    from transformers import CLIPTokenizer

    lines = bpe_text.split("\n")
    # SimpleTokenizer: skip the version line, keep 49152 - 256 - 2 merges
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1] if line.strip()]
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(vocab_list)}
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=max_length)


def _installed_openclip_bpe() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / OPENCLIP_BPE_FILE
    return candidate if candidate.is_file() else None


def load_openclip_tokenizer(source: str | os.PathLike | None = None, max_length: int = 77) -> Any:
    """OpenCLIP's tokenizer from local files only.

    ``source``: a CLIP tokenizer folder (``tokenizer.json`` or ``vocab.json`` + ``merges.txt``,
    e.g. Stable Diffusion 2's ``tokenizer/``), OpenCLIP's ``bpe_simple_vocab_16e6.txt.gz``, or an
    ``open_clip_torch`` wheel (``.whl``) holding it; None = the file of an installed ``open_clip``.
    """
    if source is None:
        found = _installed_openclip_bpe()
        if found is None:
            raise FileNotFoundError(
                "tokenizer: no OpenCLIP tokenizer given and open_clip is not installed; pass "
                "--tokenizer with OpenCLIP's bpe_simple_vocab_16e6.txt.gz, an open_clip_torch "
                "wheel (pip download open_clip_torch --no-deps) or a CLIP tokenizer folder")
        source = found
    path = Path(source)
    if path.is_dir():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        tokenizer.model_max_length = max_length
        return tokenizer
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer: no file or folder at {path}")
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            if _OPENCLIP_BPE_IN_WHEEL not in wheel.namelist():
                raise ValueError(f"tokenizer: {path.name} has no {_OPENCLIP_BPE_IN_WHEEL} "
                                 "(expected an open_clip_torch wheel)")
            data = wheel.read(_OPENCLIP_BPE_IN_WHEEL)
    elif path.name.endswith(".txt.gz"):
        data = path.read_bytes()
    else:
        raise ValueError(f"tokenizer: expected a CLIP tokenizer folder, a {OPENCLIP_BPE_FILE} "
                         f"file or an open_clip_torch .whl, got {path.name}")
    return tokenizer_from_openclip_bpe(gzip.decompress(data).decode("utf-8"), max_length)
