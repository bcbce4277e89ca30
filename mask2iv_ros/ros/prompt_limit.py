"""The text encoder's token limit, checked on the prompt before a request is queued.

A text encoder reads at most `max_length` tokens (start/end tokens included: 16 for the embedded
default's MiniLM, 77 for CLIP/OpenCLIP checkpoints) and silently drops the rest. The node counts a
prompt's tokens with the checkpoint's own tokenizer, so it can refuse an over-long prompt or say
in the result which part the model read.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class PromptFit:
    tokens: int  # the prompt's tokens, start/end tokens included
    max_tokens: int
    read_text: str  # the part of the prompt the text encoder reads (the whole prompt when it fits)

    @property
    def truncated(self) -> bool:
        return self.tokens > self.max_tokens


class PromptLimit:
    """Token counting with a private copy of a Hugging Face tokenizer.

    A private copy, used under a lock: a fast tokenizer's padding/truncation settings are state
    that the model thread's own calls change, so sharing it across threads is not safe.
    """

    def __init__(self, tokenizer: Any, max_tokens: int):
        self._tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self._lock = threading.Lock()
        with self._lock:
            self._special_tokens = len(self._ids("", special=True))

    @classmethod
    def of(cls, text_encoder: Any) -> Optional["PromptLimit"]:
        """The limit of a pipeline's text encoder; None when it has no HF tokenizer to count with."""
        tokenizer = getattr(text_encoder, "tokenizer", None)
        max_tokens = getattr(text_encoder, "max_length", None)
        if tokenizer is None or max_tokens is None or not callable(tokenizer) or not hasattr(tokenizer, "decode"):
            return None  # e.g. OpenCLIP's tokenize function: not checked here
        return cls(copy.deepcopy(tokenizer), max_tokens)

    def _ids(self, text: str, special: bool) -> list[int]:
        encoded = self._tokenizer(text, add_special_tokens=special, truncation=False, padding=False, verbose=False)
        return list(encoded["input_ids"])

    def check(self, prompt: str) -> PromptFit:
        with self._lock:
            tokens = len(self._ids(prompt, special=True))
            if tokens <= self.max_tokens:
                return PromptFit(tokens, self.max_tokens, prompt)
            content = self._ids(prompt, special=False)[: max(self.max_tokens - self._special_tokens, 0)]
            read = self._tokenizer.decode(content, skip_special_tokens=True)
        return PromptFit(tokens, self.max_tokens, read.strip())
