"""Which way a prompt asks the object to move, in image coordinates.

Explicit direction words win ("push the block to the left" -> left); otherwise the verb decides
(push -> forward, pull -> backward, pick up/lift -> up, put down/drop -> down). Placement
relative to another object ("put the block to the left of the disc") names no motion direction.

Image axes: +x right, +y down. On a tabletop camera facing away from the robot (BridgeData V2
and our synthetic scenes), "forward" (away from the robot) moves the object up in the image and
"backward" moves it down; pass ``forward=(0, 1)`` for a camera facing the robot.
"""

from __future__ import annotations

import re
from typing import Optional

import numpy as np

DIRECTIONS = ("left", "right", "forward", "backward", "up", "down")

# Explicit direction phrases, matched first. A bare "left"/"right" counts only where it ends a
# clause ("move the block left", "... left and up"), not as an adjective ("the right block").
_BARE_END = r"(?=\s*$|\s*[,.;!]|\s+(?:and|then|side|by|until|a bit|slightly)\b)"
_DIRECTION_PHRASES = [
    (r"\bto the left\b(?! of)|\bleftwards?\b|\bleft" + _BARE_END, "left"),
    (r"\bto the right\b(?! of)|\brightwards?\b|\bright" + _BARE_END, "right"),
    (r"\bforwards?\b|\baway from\b", "forward"),
    (r"\bbackwards?\b|\btowards? (?:the )?(?:robot|camera|me)\b", "backward"),
]
_VERB_PHRASES = [
    (r"\bpick(?:s|ed|ing)? (?:\w+ )*?up\b|\blift(?:s|ed|ing)?\b|\braise[sd]?\b|\braising\b", "up"),
    (r"\bput(?:s|ting)? (?:\w+ )*?down\b|\bdrop(?:s|ped|ping)?\b|\blower(?:s|ed|ing)?\b", "down"),
    (r"\bpush(?:es|ed|ing)?\b", "forward"),
    (r"\bpull(?:s|ed|ing)?\b", "backward"),
]


def parse_prompt_direction(prompt: str) -> Optional[str]:
    """Direction name (one of :data:`DIRECTIONS`) the prompt asks for, or None if it names none."""
    if not isinstance(prompt, str):
        raise ValueError(f"prompt: expected a string, got {type(prompt).__name__}")
    text = prompt.lower()
    for pattern, direction in _DIRECTION_PHRASES:
        if re.search(pattern, text):
            return direction
    for pattern, direction in _VERB_PHRASES:
        if re.search(pattern, text):
            return direction
    return None


def direction_vector(direction: str, forward: tuple[float, float] = (0.0, -1.0)) -> np.ndarray:
    """Unit vector (dx, dy) in image coordinates for a direction name."""
    fwd = np.asarray(forward, dtype=np.float64)
    if fwd.shape != (2,) or not np.linalg.norm(fwd) > 0:
        raise ValueError(f"forward: expected a non-zero (dx, dy) pair, got {forward!r}")
    fwd = fwd / np.linalg.norm(fwd)
    vectors = {"left": np.array([-1.0, 0.0]), "right": np.array([1.0, 0.0]),
               "up": np.array([0.0, -1.0]), "down": np.array([0.0, 1.0]),
               "forward": fwd, "backward": -fwd}
    if direction not in vectors:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    return vectors[direction]
