"""Paraphrased instructions for the synthetic episodes (``SyntheticConfig.prompt_variety``).

The generator's own prompts follow one template per action ("push the red block to the
left"), so a text-conditioned model can learn them as a handful of fixed strings. A paraphrase
keeps the meaning (action, direction, target and reference object) and varies the words: verb
synonyms, direction phrases, object names (colour + shape, with or without an article), an
optional lead-in ("the robot should ..."). Every phrase is chosen so that
:func:`mask2iv_ros.eval.prompt_direction.parse_prompt_direction` reads the same direction from it
as from the template prompt (none for ``put``, whose side names a place, not a motion).

Words are tokenised independently by MiniLM's WordPiece tokenizer, so the longest paraphrase in
tokens takes the longest choice of each slot of its form (:func:`slot_choices`).
"""

from __future__ import annotations

import numpy as np

LEAD_INS = ("", "the robot should ", "please ")
VERBS = {
    "push": ("push", "shove", "slide", "move"),
    "pull": ("pull", "drag"),
    "put": ("put", "place", "set", "move"),
}
# "{verb} {object}" or "{verb} {object} up"; each reads as "up" to the direction parser
PICK_UP = (("pick up", ""), ("pick", " up"), ("lift", ""), ("grab and lift", ""), ("lift up", ""))
MOTIONS = {
    "left": ("to the left", "leftwards", "left"),
    "right": ("to the right", "rightwards", "right"),
    "forward": ("forward", "forwards", "away from the camera"),
    "backward": ("backward", "backwards", "towards the camera"),
}
# put: the side of the reference object (a place, so no motion direction)
PUT_SIDES = {
    "left": ("to the left of", "left of", "on the left of"),
    "right": ("to the right of", "right of", "on the right of"),
    "forward": ("behind", "on the far side of"),
    "backward": ("in front of", "on the near side of"),
}
SHAPE_NAMES = {
    "block": ("block", "cube"),
    "bar": ("bar", "long block", "rectangular bar"),
    "cylinder": ("cylinder", "round can"),
    "disc": ("disc", "disk", "puck"),
    "triangle": ("triangle", "triangular block", "prism"),
}
ARTICLES = ("the ", "")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def object_phrase(rng: np.random.Generator, colour: str, shape: str) -> str:
    """"the red cube", "blue cylinder", ..."""
    if shape not in SHAPE_NAMES:
        raise ValueError(f"shape: expected one of {tuple(SHAPE_NAMES)}, got {shape!r}")
    return f"{_pick(rng, ARTICLES)}{colour} {_pick(rng, SHAPE_NAMES[shape])}"


def paraphrase(rng: np.random.Generator, action: str, direction: str, target: tuple[str, str],
               reference: tuple[str, str] | None = None) -> str:
    """One instruction for ``action`` on ``target`` (colour, shape): ``direction`` is the motion
    (push / pull) or the side of ``reference`` (put); pick up needs neither."""
    lead = _pick(rng, LEAD_INS)
    obj = object_phrase(rng, *target)
    if action == "pick up":
        verb, tail = _pick(rng, PICK_UP)
        return f"{lead}{verb} {obj}{tail}"
    if action in ("push", "pull"):
        return f"{lead}{_pick(rng, VERBS[action])} {obj} {_pick(rng, MOTIONS[direction])}"
    if action == "put":
        if reference is None:
            raise ValueError("reference: put needs the reference object's (colour, shape)")
        side = _pick(rng, PUT_SIDES[direction])
        return f"{lead}{_pick(rng, VERBS['put'])} {obj} {side} {object_phrase(rng, *reference)}"
    raise ValueError(f"action: expected pick up, push, pull or put, got {action!r}")


def slot_choices(colours) -> dict[str, list[list[str]]]:
    """Per action, the word slots of its paraphrases in order, each with all its choices (the
    pick-up tail " up" counted with its verb). Paraphrases are every combination of one choice
    per slot, so the longest in tokens takes the longest choice of each slot."""
    objects = [f"{article}{colour} {name}" for article in ARTICLES for colour in colours
               for names in SHAPE_NAMES.values() for name in names]
    leads = list(LEAD_INS)
    motions = [p for phrases in MOTIONS.values() for p in phrases]
    return {
        "pick up": [leads, [f"{verb}{tail}" for verb, tail in PICK_UP], objects],
        "push": [leads, list(VERBS["push"]), objects, motions],
        "pull": [leads, list(VERBS["pull"]), objects, motions],
        "put": [leads, list(VERBS["put"]), objects,
                [p for phrases in PUT_SIDES.values() for p in phrases], objects],
    }
