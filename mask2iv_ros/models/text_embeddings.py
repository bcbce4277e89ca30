"""Precomputed prompt embeddings: a text encoder's outputs for a fixed list of prompts, saved
as one safetensors file, so that a run can train where the encoder's weights cannot go.

Why: the embedded default's MiniLM weights (88 MB) do not fit the 64 MiB transfer to a lent GPU
machine beside the repository, and PT-Gen and stage 2 only ever read the empty prompt. The file
holds exactly what the encoder returned (``tokens [N, L, D]``, ``mask [N, L]``) and the encoder's
own ``to_config()``, which :class:`PrecomputedTextEncoder` reports as its config, so an exported
pipeline records the real encoder (a package reference) and loads it for inference.

    python -m mask2iv_ros.models.text_embeddings ENCODER_FOLDER OUT.safetensors [--prompt P ...]

(``ENCODER_FOLDER``: a pipeline's ``text_encoder/``; the default prompt list is the empty prompt.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .text_encoder import CONFIG_NAME, TextEncoder, _check_prompts, load_text_encoder

FORMAT = "mask2iv_text_embeddings"


@torch.no_grad()
def precompute_text_embeddings(encoder: TextEncoder, prompts: Sequence[str],
                               path: str | os.PathLike) -> Path:
    """Encode ``prompts`` (duplicates kept once) and write them with the encoder's config."""
    from safetensors.torch import save_file

    unique = list(dict.fromkeys(_check_prompts(prompts)))
    if not unique:
        raise ValueError("prompts: expected at least one prompt, got none")
    tokens, mask = encoder.encode(unique)
    if mask is None:
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"tokens": tokens.float().cpu().contiguous(),
               "mask": mask.to(torch.uint8).cpu().contiguous()}, str(path),
              metadata={"format": FORMAT, "prompts": json.dumps(unique),
                        "encoder": json.dumps(encoder.to_config())})
    return path


class PrecomputedTextEncoder(TextEncoder):
    """Looks prompts up in a file written by :func:`precompute_text_embeddings`; a prompt not in
    it is an error naming the file (nothing is approximated)."""

    type_name = "precomputed"

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        from safetensors import safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"model.text_encoder.path: expected a precomputed embeddings "
                                    f"file (.safetensors), got {os.fspath(path)!r}")
        with safe_open(str(self.path), framework="pt") as handle:
            meta = handle.metadata() or {}
            if meta.get("format") != FORMAT or "tokens" not in handle.keys():
                raise ValueError(f"{self.path}: not a precomputed text embeddings file (expected "
                                 f"metadata format {FORMAT!r} and a 'tokens' tensor)")
            tokens, mask = handle.get_tensor("tokens"), handle.get_tensor("mask").bool()
        self.prompts: list[str] = json.loads(meta["prompts"])
        self.source_config: dict[str, Any] = json.loads(meta["encoder"])
        self._index = {prompt: i for i, prompt in enumerate(self.prompts)}
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.max_length, self.embed_dim = int(tokens.shape[1]), int(tokens.shape[2])

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        prompts = _check_prompts(prompts)
        missing = [p for p in prompts if p not in self._index]
        if missing:
            raise ValueError(f"prompts: {missing[0]!r} is not among the {len(self.prompts)} "
                             f"prompts precomputed in {self.path}; add it with python -m "
                             "mask2iv_ros.models.text_embeddings ... --prompt")
        rows = torch.tensor([self._index[p] for p in prompts], device=self.tokens.device)
        return self.tokens[rows], self.mask[rows]

    def to_config(self) -> dict[str, Any]:
        # The encoder the embeddings came from: what an exported pipeline must load.
        return dict(self.source_config)

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        if "package" not in self.source_config:
            raise ValueError(f"{self.path}: its encoder's weights are not in an installed package "
                             "and are not in this file; export with the encoder itself")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(json.dumps(self.to_config(), indent=2))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mask2iv_ros.models.text_embeddings",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("encoder", type=Path, help="a text-encoder component folder")
    parser.add_argument("output", type=Path, help="the .safetensors file to write")
    parser.add_argument("--prompt", action="append", default=None,
                        help="a prompt to precompute (repeat; default: the empty prompt only)")
    args = parser.parse_args(argv)
    prompts = [""] if args.prompt is None else args.prompt
    path = precompute_text_embeddings(load_text_encoder(args.encoder), prompts, args.output)
    print(f"wrote {len(dict.fromkeys(prompts))} prompt embeddings to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
