"""Procedural tabletop robot-manipulation episodes with exact actor/object masks.

A seeded generator draws (numpy + OpenCV only) a table with a wood-grain, checker or noise
texture under a brightness gradient, 2-4 objects (block, bar, cylinder, disc, triangle in named
colors, each with a shaded side and a soft shadow) and a two-link robot arm with a two-finger
gripper whose base sits outside one image border. The arm reaches the target object, makes
contact and performs one of:

* ``pick up``  -- grasp and lift: the object rises in the image and grows a little while its
  shadow stays on the table, shrinking and fading;
* ``put``      -- grasp, lift, carry next to another object and set down;
* ``push``     -- touch the object's far side with the closed fingertips and move it
  left / right / forward (away from the camera) / backward (towards the camera);
* ``pull``     -- grasp and drag it in one of the same four directions;

then releases and retreats (except ``pick up``, which ends holding the object). Each episode has
one language instruction ("push the red block to the left", "pick up the blue cylinder", ...);
with ``SyntheticConfig.prompt_variety`` a paraphrase of it (:mod:`.prompt_variety`) drawn from a
random stream of its own, so an episode's scene is the same with and without it.
A little camera jitter, lighting variation and sensor noise are added.

Masks are taken from an id buffer filled in the same draw order as the image, so actor and
object masks are the *visible* regions and never overlap: the arm is above the objects except
the palm of a grasping gripper, which the held object covers (the object is in front there).
``placement_mask`` is the object mask in the last frame.

:func:`write_synthetic_dataset` writes episodes in BridgeData V2's raw layout (see
:mod:`mask2iv_ros.data.bridge`) plus the ground-truth masks as the project's mask annotation file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from .bridge import write_bridge_trajectory, write_collection_files, write_mask_annotation
from .prompt_variety import paraphrase
from .sample import InteractionClip

ACTIONS = ("pick up", "put", "push", "pull")
DIRECTIONS = ("left", "right", "forward", "backward")
SHAPES = ("block", "bar", "cylinder", "disc", "triangle")
COLORS = {
    "red": (205, 35, 35),
    "green": (45, 165, 65),
    "blue": (40, 75, 205),
    "yellow": (235, 205, 45),
    "orange": (240, 135, 30),
    "purple": (135, 60, 175),
    "white": (238, 238, 238),
    "pink": (238, 125, 175),
    "cyan": (45, 195, 205),
}
TEXTURES = ("wood", "checker", "noise")
# unit image-plane vectors; "forward" is away from the camera (up in the image)
_DIR_VECTORS = {
    "left": np.array([-1.0, 0.0]),
    "right": np.array([1.0, 0.0]),
    "forward": np.array([0.0, -1.0]),
    "backward": np.array([0.0, 1.0]),
}
_DIR_PHRASES = {"left": "to the left", "right": "to the right", "forward": "forward", "backward": "backward"}
# side of the reference object for "put": (unit vector, phrase)
_PUT_SIDES = {
    "left": (np.array([-1.0, 0.0]), "to the left of"),
    "right": (np.array([1.0, 0.0]), "to the right of"),
    "forward": (np.array([0.0, -1.0]), "behind"),
    "backward": (np.array([0.0, 1.0]), "in front of"),
}
_ACTOR_ID = 255


@dataclass
class SyntheticConfig:
    """Options of the generator. Sizes scale with the image; defaults match BridgeData's 480x640."""

    height: int = 480
    width: int = 640
    num_frames: int = 24
    min_objects: int = 2
    max_objects: int = 4
    actions: Sequence[str] = ACTIONS
    directions: Sequence[str] = DIRECTIONS
    jitter_px: float = 1.5  # camera jitter amplitude at 480 px height
    noise_std: float = 2.0  # sensor noise (uint8 levels)
    fps: float = 5.0  # BridgeData V2 records at 5 Hz
    # Paraphrased instructions (verbs, direction phrases, object names; prompt_variety.py)
    # instead of one template per action; off keeps every existing seed's prompts.
    prompt_variety: bool = False

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise ValueError(f"height/width: expected at least 32 pixels, got {(self.height, self.width)}")
        if self.num_frames < 6:
            raise ValueError(f"num_frames: expected at least 6 frames per episode, got {self.num_frames}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"min_objects/max_objects: expected 1 <= min <= max, got {self.min_objects}, {self.max_objects}"
            )
        bad = [a for a in self.actions if a not in ACTIONS]
        if bad or not self.actions:
            raise ValueError(f"actions: expected a non-empty subset of {ACTIONS}, got {list(self.actions)}")
        bad = [d for d in self.directions if d not in DIRECTIONS]
        if bad or not self.directions:
            raise ValueError(f"directions: expected a non-empty subset of {DIRECTIONS}, got {list(self.directions)}")


@dataclass
class _Object:
    shape: str
    color_name: str
    ground: np.ndarray  # [x, y] ground contact point (image coordinates)
    radius: float
    angle: float
    lift: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.color_name} {self.shape}"

    @property
    def rgb(self) -> Tuple[int, int, int]:
        return COLORS[self.color_name]


@dataclass
class _ArmPose:
    tip: np.ndarray  # point between the fingertips (image coordinates)
    opening: float  # distance between the fingers' inner edges


@dataclass
class _Episode:
    objects: List[_Object]
    target: int
    action: str
    direction: str
    prompt: str
    object_path: List[Tuple[np.ndarray, float]]  # per frame (ground point, lift) of the target
    arm_path: List[_ArmPose]
    grasped: List[bool]
    base: np.ndarray
    elbow_bend: float
    arm_color: Tuple[int, int, int]
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# table, lighting


def _table_texture(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, str]:
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "wood":
        base = np.array([rng.uniform(150, 200), rng.uniform(100, 140), rng.uniform(55, 90)], np.float32)
        warp = cv2.resize(rng.normal(0, 1, (max(2, h // 40), max(2, w // 40))).astype(np.float32), (w, h))
        period = rng.uniform(0.03, 0.07) * h
        theta = rng.uniform(-0.3, 0.3)
        coord = yy * math.cos(theta) + xx * math.sin(theta) + warp * period * 0.8
        grain = 0.5 + 0.5 * np.sin(2 * np.pi * coord / period)
        grain = 0.82 + 0.18 * grain**3
        img = base[None, None, :] * grain[..., None]
    elif kind == "checker":
        c1 = rng.uniform(60, 230, 3).astype(np.float32)
        c2 = np.clip(c1 * rng.uniform(0.6, 0.85), 0, 255)
        cell = rng.uniform(0.06, 0.14) * h
        board = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
        img = c1[None, None] * board[..., None] + c2[None, None] * (1 - board[..., None])
    else:
        base = rng.uniform(90, 210, 3).astype(np.float32)
        coarse = cv2.resize(rng.normal(0, 1, (max(2, h // 24), max(2, w // 24))).astype(np.float32), (w, h),
                            interpolation=cv2.INTER_CUBIC)
        fine = rng.normal(0, 1, (h, w)).astype(np.float32)
        img = base[None, None] * (1 + 0.08 * coarse[..., None] + 0.04 * fine[..., None])
    return np.clip(img, 0, 255).astype(np.float32), kind


def _lighting(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (xx / w - 0.5) * math.cos(theta) + (yy / h - 0.5) * math.sin(theta)
    gain = rng.uniform(0.8, 1.15) * (1 + rng.uniform(0.1, 0.35) * ramp)
    return gain.astype(np.float32)[..., None]


# --------------------------------------------------------------------------------------------
# geometry


def _perspective(y: float, h: float) -> float:
    """Things nearer the camera (lower in the image) look bigger."""
    return 0.8 + 0.4 * float(np.clip(y / h, 0, 1))


def _object_polygons(obj: _Object, h: int, ground: np.ndarray, lift: float, scale_boost: float = 1.0):
    """(side polygon, top polygon) of an extruded shape in image coordinates."""
    r = obj.radius * _perspective(ground[1], h) * scale_boost
    c, s = math.cos(obj.angle), math.sin(obj.angle)
    rot = np.array([[c, -s], [s, c]])
    if obj.shape == "block":
        top = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * r * 0.8
        height = 0.55 * r
    elif obj.shape == "bar":
        top = np.array([[-1.3, -0.45], [1.3, -0.45], [1.3, 0.45], [-1.3, 0.45]], float) * r * 0.8
        height = 0.4 * r
    elif obj.shape == "triangle":
        ang = np.deg2rad([90, 210, 330])
        top = np.stack([np.cos(ang), -np.sin(ang)], 1) * r
        height = 0.35 * r
    else:  # cylinder / disc: ellipses (rotation does not matter)
        ell = np.array(cv2.ellipse2Poly((0, 0), (1000, 620), 0, 0, 360, 8), float) / 1000.0 * r
        top, rot = ell, np.eye(2)
        height = 1.0 * r if obj.shape == "cylinder" else 0.18 * r
    top = top @ rot.T
    # the shape stands on ``ground``; its top face is ``height`` above it, lifted by ``lift``
    center_top = ground + np.array([0.0, -height - lift])
    top_pts = top + center_top
    bottom_pts = top + (ground + np.array([0.0, -lift]))
    side = cv2.convexHull(np.concatenate([top_pts, bottom_pts]).astype(np.float32))[:, 0, :]
    return side, top_pts, height


def _grasp_center(obj: _Object, h: int, ground: np.ndarray, lift: float) -> np.ndarray:
    _, top_pts, height = _object_polygons(obj, h, ground, lift)
    return top_pts.mean(0) + np.array([0.0, 0.5 * height])


def _projected_elbow(base: np.ndarray, wrist: np.ndarray, bend: float) -> np.ndarray:
    """Image position of the elbow of an arm seen from above and in front.

    The real elbow rises towards the camera, so in the image it projects close to the
    base-wrist line; ``bend`` (a fraction of the base-wrist distance) offsets it sideways.
    """
    d = wrist - base
    normal = np.array([-d[1], d[0]])
    return base + 0.48 * d + bend * normal


def _smooth(t: float) -> float:
    t = float(np.clip(t, 0, 1))
    return t * t * (3 - 2 * t)


# --------------------------------------------------------------------------------------------
# episode planning


def _place_objects(rng, cfg: SyntheticConfig, n: int) -> Optional[List[_Object]]:
    h, w = cfg.height, cfg.width
    names = [(s, c) for s in SHAPES for c in COLORS]
    picks = rng.choice(len(names), size=n, replace=False)
    objs: List[_Object] = []
    for k in picks:
        shape, color = names[int(k)]
        radius = rng.uniform(0.06, 0.085) * h
        for _ in range(60):
            p = np.array([rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.3 * h, 0.85 * h)])
            if all(np.linalg.norm(p - o.ground) > 2.4 * max(radius, o.radius) * 1.15 for o in objs):
                objs.append(_Object(shape, color, p, radius, rng.uniform(0, np.pi)))
                break
        else:
            return None
    return objs


def _path_is_free(objs: List[_Object], target: int, start: np.ndarray, end: np.ndarray, cfg) -> bool:
    h, w = cfg.height, cfg.width
    if not (0.1 * w < end[0] < 0.9 * w and 0.25 * h < end[1] < 0.9 * h):
        return False
    r_t = objs[target].radius
    for s in np.linspace(0, 1, 12):
        p = start + s * (end - start)
        for i, o in enumerate(objs):
            if i != target and np.linalg.norm(p - o.ground) < 2.3 * max(r_t, o.radius) * 1.2:
                return False
    return True


def _plan(rng: np.random.Generator, cfg: SyntheticConfig) -> Optional[_Episode]:
    h, w, T = cfg.height, cfg.width, cfg.num_frames
    n = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    objs = _place_objects(rng, cfg, n)
    if objs is None:
        return None
    target = int(rng.integers(n))
    tobj = objs[target]
    action = cfg.actions[int(rng.integers(len(cfg.actions)))]
    start = tobj.ground.copy()
    direction, extra = "", {}
    if action in ("push", "pull"):
        direction = cfg.directions[int(rng.integers(len(cfg.directions)))]
        span = w if direction in ("left", "right") else h
        end = start + _DIR_VECTORS[direction] * rng.uniform(0.15, 0.28) * span
        if not _path_is_free(objs, target, start, end, cfg):
            return None
        prompt = f"{action} the {tobj.name} {_DIR_PHRASES[direction]}"
    elif action == "put":
        others = [i for i in range(n) if i != target]
        if not others:
            return None
        ref = others[int(rng.integers(len(others)))]
        side = cfg.directions[int(rng.integers(len(cfg.directions)))]
        vec, phrase = _PUT_SIDES[side]
        end = objs[ref].ground + vec * (objs[ref].radius + tobj.radius) * 2.0
        if np.linalg.norm(end - start) < 0.12 * w:
            return None
        # lifted while carried, so only the final spot must be free
        if not (0.1 * w < end[0] < 0.9 * w and 0.25 * h < end[1] < 0.9 * h):
            return None
        if any(np.linalg.norm(end - o.ground) < 1.9 * max(tobj.radius, o.radius)
               for i, o in enumerate(objs) if i not in (target, ref)):
            return None
        direction = side
        extra = {"reference_object": objs[ref].name}
        prompt = f"put the {tobj.name} {phrase} the {objs[ref].name}"
    else:  # pick up
        end = start.copy()
        prompt = f"pick up the {tobj.name}"

    # arm base outside one border (mostly the far side, like BridgeData's WidowX)
    side = rng.choice(["top", "top", "left", "right"])
    if side == "top":
        base = np.array([rng.uniform(0.3, 0.7) * w, -0.08 * h])
    elif side == "left":
        base = np.array([-0.06 * w, rng.uniform(0.15, 0.45) * h])
    else:
        base = np.array([1.06 * w, rng.uniform(0.15, 0.45) * h])
    entry = base + (np.array([w / 2, h / 2]) - base) * 0.35  # first gripper point, near the border
    entry = np.clip(entry, [0.08 * w, 0.08 * h], [0.92 * w, 0.92 * h])

    # timing (frame indices)
    t_contact = max(2, int(round(0.4 * T)))
    t_grip = t_contact + 1
    lift_max = 0.09 * h
    move_end = T - 1 if action == "pick up" else max(t_grip + 2, int(round(0.82 * T)))

    grasp = action in ("pick up", "put", "pull")
    object_path: List[Tuple[np.ndarray, float]] = []
    for t in range(T):
        if t <= t_grip:
            object_path.append((start.copy(), 0.0))
            continue
        s = _smooth((t - t_grip) / max(1, move_end - t_grip))
        if action == "pick up":
            object_path.append((start.copy(), lift_max * s))
        elif action == "put":
            lift = lift_max * 0.7 * math.sin(math.pi * s)
            object_path.append((start + s * (end - start), lift))
        else:
            object_path.append((start + s * (end - start), 0.0))

    r_open = tobj.radius * 2.4
    r_closed = tobj.radius * 1.45
    arm_path: List[_ArmPose] = []
    grasped: List[bool] = []
    for t in range(T):
        ground, lift = object_path[t]
        center = _grasp_center(tobj, h, ground, lift)
        if grasp:
            tip_at_object = center
        else:  # push: fingertips touch the side opposite to the motion
            tip_at_object = center - _DIR_VECTORS[direction] * tobj.radius * _perspective(ground[1], h) * 1.25
        if t < t_contact:
            s = _smooth(t / t_contact)
            tip = entry + s * (tip_at_object - entry)
            opening = r_open if grasp else 0.35 * tobj.radius
        elif t <= move_end:
            tip = tip_at_object
            opening = (r_closed if t >= t_grip else r_open) if grasp else 0.35 * tobj.radius
        else:  # release and retreat towards the entry point
            s = _smooth((t - move_end) / max(1, T - 1 - move_end))
            release = arm_path[move_end].tip
            tip = release + s * 0.6 * (entry - release)
            opening = r_open if grasp else 0.35 * tobj.radius
        arm_path.append(_ArmPose(np.asarray(tip, float), float(opening)))
        grasped.append(grasp and t_grip <= t <= move_end)

    colors = [(45, 45, 50), (70, 72, 78), (30, 30, 30), (120, 122, 128)]
    arm_color = colors[int(rng.integers(len(colors)))]
    return _Episode(
        objects=objs, target=target, action=action, direction=direction, prompt=prompt,
        object_path=object_path, arm_path=arm_path, grasped=grasped, base=base,
        elbow_bend=float(rng.uniform(0.05, 0.14) * rng.choice([-1.0, 1.0])), arm_color=arm_color,
        extra=dict(extra, arm_side=str(side), t_contact=t_contact),
    )


# --------------------------------------------------------------------------------------------
# rendering


def _fill(img, ids, pts, color, obj_id, offset):
    p = np.round(pts + offset).astype(np.int32)
    cv2.fillPoly(img, [p], color, lineType=cv2.LINE_AA)
    cv2.fillPoly(ids, [p], int(obj_id))


def _shade(rgb, f):
    return tuple(int(np.clip(c * f, 0, 255)) for c in rgb)


def _draw_object(img, ids, obj: _Object, h, ground, lift, obj_id, offset, boost=1.0):
    side, top, _ = _object_polygons(obj, h, ground, lift, boost)
    _fill(img, ids, side, _shade(obj.rgb, 0.62), obj_id, offset)
    _fill(img, ids, top, obj.rgb, obj_id, offset)
    # a highlight line on the top face edge gives the shapes some volume
    p = np.round(top + offset).astype(np.int32)
    cv2.polylines(img, [p], True, _shade(obj.rgb, 1.2), max(1, int(h / 240)), cv2.LINE_AA)


def _rect(center, axis, length, width):
    n = np.array([-axis[1], axis[0]])
    a, b = axis * length / 2, n * width / 2
    return np.stack([center - a - b, center + a - b, center + a + b, center - a + b])


def _arm_parts(ep: _Episode, pose: _ArmPose, h: int):
    """Polygons of the arm: (links, palm, fingers) in image coordinates."""
    unit = h / 480.0
    axis = pose.tip - ep.base
    axis = axis / (np.linalg.norm(axis) + 1e-6)
    normal = np.array([-axis[1], axis[0]])
    finger_len, finger_w, palm_d = 44 * unit, 10 * unit, 18 * unit
    wrist = pose.tip - axis * (finger_len * 0.75 + palm_d)
    elbow = _projected_elbow(ep.base, wrist, ep.elbow_bend)
    links = [(ep.base, elbow, 34 * unit), (elbow, wrist, 26 * unit)]
    palm_center = wrist + axis * palm_d / 2
    palm = _rect(palm_center, axis, palm_d, pose.opening + 2 * finger_w + 6 * unit)
    fingers = []
    for sgn in (-1, 1):
        c = wrist + axis * (palm_d + finger_len / 2) + normal * sgn * (pose.opening / 2 + finger_w / 2)
        fingers.append(_rect(c, axis, finger_len, finger_w))
    return links, elbow, wrist, palm, fingers


def _draw_links(img, ids, links, elbow, wrist, color, unit, offset):
    light = _shade(color, 1.6) if max(color) < 100 else _shade(color, 1.25)
    for a, b, thick in links:
        pa, pb = np.round(a + offset).astype(int), np.round(b + offset).astype(int)
        cv2.line(img, tuple(pa), tuple(pb), color, int(thick), cv2.LINE_AA)
        cv2.line(ids, tuple(pa), tuple(pb), _ACTOR_ID, int(thick))
        cv2.line(img, tuple(pa), tuple(pb), light, max(1, int(thick * 0.18)), cv2.LINE_AA)
    for j, rad in ((elbow, 19 * unit), (wrist, 15 * unit)):
        pj = tuple(np.round(j + offset).astype(int))
        cv2.circle(img, pj, int(rad), _shade(color, 0.8), -1, cv2.LINE_AA)
        cv2.circle(ids, pj, int(rad), _ACTOR_ID, -1)
        cv2.circle(img, pj, int(rad * 0.45), light, -1, cv2.LINE_AA)


def _render_frame(ep: _Episode, t: int, table: np.ndarray, gain: np.ndarray, margin: int, cfg, rng):
    h = cfg.height
    unit = h / 480.0
    offset = np.array([margin, margin], float)
    img = table.copy()
    ids = np.zeros(img.shape[:2], np.uint8)

    # soft shadows on the table; a lifted object's shadow shrinks and fades
    shadow = np.zeros(img.shape[:2], np.float32)
    grounds = []
    for i, o in enumerate(ep.objects):
        g, lift = ep.object_path[t] if i == ep.target else (o.ground, 0.0)
        grounds.append((g, lift))
        f = 1.0 - 0.45 * lift / (0.09 * h)
        r = o.radius * _perspective(g[1], h) * 1.25 * f
        c = tuple(np.round(g + offset + np.array([0.25 * r, 0.1 * r])).astype(int))
        cv2.ellipse(shadow, c, (int(r), int(r * 0.55)), 0, 0, 360, 0.45 * f, -1, cv2.LINE_AA)
    pose = ep.arm_path[t]
    links, elbow, wrist, palm, fingers = _arm_parts(ep, pose, h)
    for a, b, thick in links:
        sa, sb = a + offset + 12 * unit, b + offset + 12 * unit
        cv2.line(shadow, tuple(np.round(sa).astype(int)), tuple(np.round(sb).astype(int)), 0.3, int(thick))
    k = int(9 * unit) * 2 + 1
    shadow = cv2.GaussianBlur(shadow, (k, k), 0)
    img *= (1 - shadow)[..., None]

    held = ep.grasped[t]
    order = sorted(range(len(ep.objects)), key=lambda i: grounds[i][0][1])
    if held or grounds[ep.target][1] > 0:  # the held / lifted object is above the others
        order = [i for i in order if i != ep.target] + [ep.target]
    for i in order:
        if held and i == ep.target:
            continue
        g, lift = grounds[i]
        boost = 1 + 0.15 * lift / (0.09 * h)
        _draw_object(img, ids, ep.objects[i], h, g, lift, i + 1, offset, boost)
    _draw_links(img, ids, links, elbow, wrist, ep.arm_color, unit, offset)
    _fill(img, ids, palm, _shade(ep.arm_color, 1.15), _ACTOR_ID, offset)
    if held:  # the held object is in front of the palm, between the fingers
        g, lift = grounds[ep.target]
        boost = 1 + 0.15 * lift / (0.09 * h)
        _draw_object(img, ids, ep.objects[ep.target], h, g, lift, ep.target + 1, offset, boost)
    for f in fingers:
        _fill(img, ids, f, _shade(ep.arm_color, 1.35), _ACTOR_ID, offset)

    img *= gain
    img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(cfg.noise_std)
    return np.clip(img, 0, 255).astype(np.uint8), ids


def episode_prompt_rng(seed: int, index: int) -> np.random.Generator:
    """The paraphrase stream of episode ``index`` of ``seed``: separate from the scene's
    (``default_rng([seed, index])``), so the scene does not depend on prompt_variety."""
    return np.random.default_rng([seed, index, 1])


def render_episode(rng: np.random.Generator, cfg: SyntheticConfig, max_tries: int = 200,
                   prompt_rng: Optional[np.random.Generator] = None):
    """Plan and render one episode. Returns ``(clip, states, actions)``.

    With ``cfg.prompt_variety`` the instruction is a paraphrase drawn from ``prompt_rng``
    (required then; :func:`episode_prompt_rng` gives an episode's own stream).

    ``states`` float32 ``[T, 7]`` (gripper tip x, y normalised to [0, 1], lift, 0, 0, yaw,
    gripper opening in [0, 1]) and ``actions`` float32 ``[T-1, 7]`` (deltas of the first six,
    absolute gripper) follow BridgeData's 7-D end-effector convention.
    """
    if cfg.prompt_variety and prompt_rng is None:
        raise ValueError("prompt_rng: expected a numpy Generator for the paraphrase because "
                         "config.prompt_variety is true, got None")
    for _ in range(max_tries):
        ep = _plan(rng, cfg)
        if ep is not None:
            break
    else:
        raise RuntimeError(
            f"could not place a valid episode in {max_tries} tries; use a larger image or fewer objects "
            f"(max_objects={cfg.max_objects})"
        )
    h, w, T = cfg.height, cfg.width, cfg.num_frames
    amp = cfg.jitter_px * h / 480.0
    margin = int(math.ceil(3 * amp)) + 2
    table, texture = _table_texture(rng, h + 2 * margin, w + 2 * margin)
    gain = _lighting(rng, h + 2 * margin, w + 2 * margin)
    jitter = np.cumsum(rng.normal(0, amp * 0.6, (T, 2)), 0)
    jitter = np.clip(jitter - jitter.mean(0), -2 * amp, 2 * amp)

    frames = np.empty((T, h, w, 3), np.uint8)
    actor = np.empty((T, h, w), bool)
    obj = np.empty((T, h, w), bool)
    for t in range(T):
        img, ids = _render_frame(ep, t, table, gain, margin, cfg, rng)
        dx, dy = np.round(jitter[t]).astype(int)
        y0, x0 = margin + dy, margin + dx
        frames[t] = img[y0:y0 + h, x0:x0 + w]
        crop = ids[y0:y0 + h, x0:x0 + w]
        actor[t] = crop == _ACTOR_ID
        obj[t] = crop == ep.target + 1

    tips = np.stack([p.tip for p in ep.arm_path])
    lifts = np.array([lift for _, lift in ep.object_path]) * np.array(ep.grasped, float)
    yaw = np.arctan2(tips[:, 1] - ep.base[1], tips[:, 0] - ep.base[0])
    opening = np.array([p.opening for p in ep.arm_path]) / (ep.objects[ep.target].radius * 2.4)
    states = np.stack([tips[:, 0] / w, tips[:, 1] / h, lifts / h, np.zeros(T), np.zeros(T), yaw,
                       np.clip(opening, 0, 1)], 1).astype(np.float32)
    actions = np.concatenate([np.diff(states[:, :6], axis=0), states[1:, 6:]], 1).astype(np.float32)
    metadata = dict(ep.extra, object=ep.objects[ep.target].name, texture=texture,
                    objects=[o.name for o in ep.objects])
    prompt = ep.prompt
    if cfg.prompt_variety:
        metadata["template_prompt"] = ep.prompt
        target = ep.objects[ep.target]
        reference = ep.extra.get("reference_object")
        prompt = paraphrase(prompt_rng, ep.action, ep.direction, (target.color_name, target.shape),
                            tuple(reference.split(" ", 1)) if reference else None)
    clip = InteractionClip(
        frames=frames, actor_masks=actor, object_masks=obj, prompt=prompt, source="synthetic",
        action=ep.action, direction=ep.direction, fps=cfg.fps, metadata=metadata,
    )
    return clip, states, actions


def generate_episode(seed: int, index: int = 0, config: Optional[SyntheticConfig] = None) -> InteractionClip:
    """Episode ``index`` of the dataset with ``seed``; independent of how many others are drawn."""
    cfg = config or SyntheticConfig()
    clip, _, _ = render_episode(np.random.default_rng([seed, index]), cfg,
                                prompt_rng=episode_prompt_rng(seed, index))
    clip.episode_id = f"synthetic-{seed}-{index:05d}"
    return clip


def task_folder_name(action: str, direction: str) -> str:
    """BridgeData groups trajectories by task folder; ours are e.g. ``push_left``, ``pick_up``."""
    name = action.replace(" ", "_")
    return f"{name}_{direction}" if direction and action != "put" else name


def write_synthetic_dataset(
    root,
    num_episodes: int,
    seed: int = 0,
    config: Optional[SyntheticConfig] = None,
    progress: bool = True,
) -> List[Path]:
    """Generate ``num_episodes`` episodes and write them in BridgeData V2's raw layout.

    Layout (depth 5, as ``bridgedata_raw_to_numpy.py --depth 5`` expects)::

        root/synthetic/tabletop/<task>/00/<YYYY-MM-DD_HH-MM-SS>/
            collection_metadata.json  config.json
            raw/traj_group0/traj<k>/
                images0/im_<t>.jpg  obs_dict.pkl  policy_out.pkl  agent_data.pkl  lang.txt
                mask2iv_masks.npz   (ground-truth actor/object masks, see bridge.MASK_FILE)

    Returns the trajectory folders in episode order.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes: expected a positive integer, got {num_episodes}")
    cfg = config or SyntheticConfig()
    root = Path(root)
    # one dated collection folder per task; dates after 2021-07-23 so the official converters
    # apply no camera-latency shift
    stamp = datetime(2024, 1, 1) + timedelta(minutes=int(seed) % 100000)
    counters: dict = {}
    paths: List[Path] = []
    for i in tqdm(range(num_episodes), desc="synthetic episodes", disable=not progress):
        clip, states, actions = render_episode(np.random.default_rng([seed, i]), cfg,
                                               prompt_rng=episode_prompt_rng(seed, i))
        task = task_folder_name(clip.action, clip.direction)
        dated = root / "synthetic" / "tabletop" / task / "00" / stamp.strftime("%Y-%m-%d_%H-%M-%S")
        if task not in counters:
            counters[task] = 0
            write_collection_files(dated, task=task, image_size=(cfg.height, cfg.width))
        k = counters[task]
        counters[task] += 1
        traj = dated / "raw" / f"traj_group{k // 1000}" / f"traj{k}"
        write_bridge_trajectory(traj, clip.frames, clip.prompt, states, actions, fps=cfg.fps)
        write_mask_annotation(traj, clip.actor_masks, clip.object_masks, annotator="synthetic-ground-truth",
                              object_phrase=clip.metadata["object"])
        paths.append(traj)
    return paths
