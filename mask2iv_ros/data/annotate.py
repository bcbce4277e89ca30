"""Actor / object mask annotation of BridgeData trajectories (GroundingDINO + SAM2).

Following the paper's benchmark construction: GroundingDINO detects the robot arm and the object
phrases of the instruction on the first frame, SAM2 tracks every detection through the video,
and among the object candidates the one with the lowest temporal mIoU (it moves / changes
shape) is the manipulated object (:func:`mask2iv_ros.data.curation.select_manipulated_object`).
Where the arm and object tracks overlap the object wins, so masks are disjoint like the
synthetic ground truth.

Models come from *local* folders only (``from_pretrained(..., local_files_only=True)``):
``transformers`` ``GroundingDinoForObjectDetection`` + ``GroundingDinoProcessor`` and
``Sam2VideoModel``. SAM2 inputs are prepared here with the same recipe as transformers'
``Sam2VideoProcessor`` (bilinear resize to ``config.image_size`` squared, rescale 1/255,
ImageNet mean/std, box corners as point labels 2/3 in model-input coordinates, logits upsampled
to the frame size and thresholded at 0) because that processor needs torchvision, which
this package does not depend on.

Results are cached per trajectory in :data:`mask2iv_ros.data.bridge.MASK_FILE` (atomic write);
:func:`annotate_trajectories` skips trajectories that already have one, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .bridge import MASK_FILE, read_images, read_language, write_mask_annotation
from .curation import select_manipulated_object

logger = logging.getLogger(__name__)

ACTOR_PHRASE = "robot arm"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# words of BridgeData instructions that are not object names (verbs, prepositions, places)
_NON_OBJECT_WORDS = set(
    """a an the and then it its to of on in into onto from at by with over under near next top
    bottom side left right forward backward front behind middle center corner edge upper lower
    towards toward away around inside outside out up down off back across between
    put pick push pull move take place open close turn flip fold unfold wipe stack sweep knock lift
    grab drop set remove slide rotate reach lay hang insert twist pour get bring""".split()
)


@dataclass
class Detection:
    box: np.ndarray  # float [x0, y0, x1, y1] in pixels
    score: float
    phrase: str


def object_phrases_from_instruction(instruction: str) -> List[str]:
    """Noun phrases of an instruction: "put the spoon in the pot" -> ["spoon", "pot"]."""
    words = re.findall(r"[a-z0-9]+", instruction.lower())
    phrases, run = [], []
    for w in words + ["the"]:
        if w in _NON_OBJECT_WORDS:
            if run:
                phrases.append(" ".join(run))
            run = []
        else:
            run.append(w)
    unique = list(dict.fromkeys(phrases))
    return unique or ["object"]


def _autocast(device: str):
    """bf16 (or fp16 where bf16 is unsupported) autocast on CUDA; a no-op context on CPU."""
    cuda = str(device).startswith("cuda")
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype, enabled=cuda)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class GroundingDinoDetector:
    """Open-vocabulary boxes for phrases on one image.

    A query's score for a phrase is the max sigmoid logit over the phrase's tokens (text
    ``"phrase one. phrase two."`` as GroundingDINO expects); per phrase the queries above
    ``box_threshold`` are kept after non-maximum suppression, at most ``max_per_phrase``.
    """

    def __init__(self, model, processor, box_threshold: float = 0.3, max_per_phrase: int = 3,
                 nms_iou: float = 0.5, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.processor = processor
        self.box_threshold, self.max_per_phrase, self.nms_iou = box_threshold, max_per_phrase, nms_iou
        self.device = device

    @classmethod
    def from_pretrained(cls, path, device: str = "cpu", **kwargs) -> "GroundingDinoDetector":
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"grounding_dino: expected a local model folder, {path} does not exist")
        model = GroundingDinoForObjectDetection.from_pretrained(path, local_files_only=True)
        processor = GroundingDinoProcessor.from_pretrained(path, local_files_only=True)
        return cls(model, processor, device=device, **kwargs)

    def _phrase_spans(self, phrases: Sequence[str]) -> List[slice]:
        tok = self.processor.tokenizer
        spans, start = [], 1  # after [CLS]
        for p in phrases:
            n = len(tok.tokenize(p))
            spans.append(slice(start, start + n))
            start += n + 1  # the "." separator
        return spans

    @torch.inference_mode()
    def __call__(self, image: np.ndarray, phrases: Sequence[str]) -> List[Detection]:
        phrases = [p.strip().lower() for p in phrases if p.strip()]
        if not phrases:
            raise ValueError("phrases: expected at least one non-empty phrase")
        text = ". ".join(phrases) + "."
        inputs = self.processor(images=image, text=text, return_tensors="pt").to(self.device)
        with _autocast(self.device):
            outputs = self.model(**inputs)
        probs = outputs.logits[0].sigmoid().float().cpu()  # [queries, text tokens]
        boxes = outputs.pred_boxes[0].float().cpu().numpy()  # cx, cy, w, h relative to the image
        h, w = image.shape[:2]
        xyxy = np.stack([(boxes[:, 0] - boxes[:, 2] / 2) * w, (boxes[:, 1] - boxes[:, 3] / 2) * h,
                         (boxes[:, 0] + boxes[:, 2] / 2) * w, (boxes[:, 1] + boxes[:, 3] / 2) * h], 1)
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        detections: List[Detection] = []
        for phrase, span in zip(phrases, self._phrase_spans(phrases)):
            if span.stop > probs.shape[1]:
                logger.warning("phrase %r was cut by the text length limit", phrase)
                continue
            scores = probs[:, span].max(dim=1).values.numpy()
            kept: List[Detection] = []
            for q in np.argsort(-scores):
                if scores[q] < self.box_threshold or len(kept) >= self.max_per_phrase:
                    break
                if all(_box_iou(xyxy[q], d.box) < self.nms_iou for d in kept):
                    kept.append(Detection(xyxy[q].copy(), float(scores[q]), phrase))
            detections.extend(kept)
        return detections


class Sam2VideoSegmenter:
    """Box-prompted video segmentation with transformers' ``Sam2VideoModel``.

    ``__call__(frames, boxes)`` -> bool ``[num_boxes, T, H, W]``: each box (on frame 0) is one
    tracked object.
    """

    def __init__(self, model, image_mean=_IMAGENET_MEAN, image_std=_IMAGENET_STD, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.device = device
        self.size = int(model.config.image_size if np.isscalar(model.config.image_size)
                        else model.config.image_size[0])
        self.mean = np.asarray(image_mean, np.float32)
        self.std = np.asarray(image_std, np.float32)

    @classmethod
    def from_pretrained(cls, path, device: str = "cpu") -> "Sam2VideoSegmenter":
        from transformers import Sam2VideoModel

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"sam2: expected a local model folder, {path} does not exist")
        model = Sam2VideoModel.from_pretrained(path, local_files_only=True)
        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
        for name in ("video_preprocessor_config.json", "preprocessor_config.json", "processor_config.json"):
            cfg_path = path / name
            if cfg_path.exists():
                cfg = json.loads(cfg_path.read_text())
                cfg = cfg.get("video_processor", cfg)
                mean, std = cfg.get("image_mean", mean), cfg.get("image_std", std)
                break
        return cls(model, mean, std, device)

    def _pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        resized = np.stack([cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_LINEAR) for f in frames])
        x = (resized.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

    @torch.inference_mode()
    def __call__(self, frames: np.ndarray, boxes: Sequence[np.ndarray]) -> np.ndarray:
        from transformers import Sam2VideoInferenceSession

        T, H, W = frames.shape[:3]
        if len(boxes) == 0:
            return np.zeros((0, T, H, W), bool)
        dtype = next(self.model.parameters()).dtype
        session = Sam2VideoInferenceSession(
            video=self._pixel_values(frames), video_height=H, video_width=W,
            inference_device=self.device, inference_state_device=self.device,
            video_storage_device=self.device, dtype=dtype,
        )
        scale = torch.tensor([self.size / W, self.size / H], dtype=torch.float32)
        obj_ids = list(range(1, len(boxes) + 1))
        for obj_id, box in zip(obj_ids, boxes):
            obj_idx = session.obj_id_to_idx(obj_id)
            corners = torch.tensor(np.asarray(box, np.float32).reshape(2, 2)) * scale
            # a box prompt is its two corners with point labels 2 (top-left) and 3 (bottom-right)
            session.add_point_inputs(obj_idx, 0, {"point_coords": corners.view(1, 1, 2, 2),
                                                  "point_labels": torch.tensor([[[2, 3]]], dtype=torch.int32)})
            session.remove_mask_inputs(obj_idx, 0)
        session.obj_with_new_inputs = list(obj_ids)
        with _autocast(self.device):
            self.model(inference_session=session, frame_idx=0)
            outputs = list(self.model.propagate_in_video_iterator(session, start_frame_idx=0))
        masks = np.zeros((len(boxes), T, H, W), bool)
        for out in outputs:
            # as Sam2VideoVideoProcessor.post_process_masks: to the model input size, then the frame's
            logits = F.interpolate(out.pred_masks.float(), size=(self.size, self.size), mode="bilinear",
                                   align_corners=False)
            logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
            masks[:, out.frame_idx] = (logits[:, 0] > 0).cpu().numpy()
        return masks


Detector = Callable[[np.ndarray, Sequence[str]], List[Detection]]
Segmenter = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]


@dataclass
class AnnotationResult:
    actor_masks: np.ndarray
    object_masks: np.ndarray
    object_phrase: str
    candidate_mious: List[float] = field(default_factory=list)


def annotate_clip(frames: np.ndarray, instruction: str, detector: Detector, segmenter: Segmenter,
                  actor_phrase: str = ACTOR_PHRASE, max_candidates: int = 6) -> AnnotationResult:
    """Detect on frame 0, track with the segmenter, pick the manipulated object (lowest mIoU)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    object_phrases = [p for p in object_phrases_from_instruction(instruction) if p != actor_phrase]
    detections = detector(frames[0], [actor_phrase] + object_phrases)
    actors = sorted((d for d in detections if d.phrase == actor_phrase), key=lambda d: -d.score)
    candidates = sorted((d for d in detections if d.phrase != actor_phrase), key=lambda d: -d.score)
    candidates = candidates[:max_candidates]
    if not actors:
        raise LookupError(f"no '{actor_phrase}' detected in the first frame")
    if not candidates:
        raise LookupError(f"none of the object phrases {object_phrases} detected in the first frame")
    tracks = segmenter(frames, [actors[0].box] + [c.box for c in candidates])
    best, mious = select_manipulated_object(list(tracks[1:]))
    object_masks = tracks[1 + best].astype(bool)
    actor_masks = tracks[0].astype(bool) & ~object_masks  # the object wins where both overlap
    return AnnotationResult(actor_masks, object_masks, candidates[best].phrase, mious)


def annotate_trajectories(traj_dirs: Sequence, detector: Detector, segmenter: Segmenter,
                          overwrite: bool = False, progress: bool = True,
                          actor_phrase: str = ACTOR_PHRASE, annotator: str = "groundingdino+sam2"
                          ) -> Dict[str, int]:
    """Annotate every trajectory without a cached :data:`MASK_FILE` (resumable).

    Returns counts ``{"annotated", "skipped", "failed"}``; failures (nothing detected, unreadable
    images) are logged and left unannotated so a later run retries them.
    """
    counts = {"annotated": 0, "skipped": 0, "failed": 0}
    bar = tqdm(list(traj_dirs), desc="annotating", disable=not progress)
    for traj in bar:
        traj = Path(traj)
        if (traj / MASK_FILE).exists() and not overwrite:
            counts["skipped"] += 1
            continue
        try:
            frames = read_images(traj)
            result = annotate_clip(frames, read_language(traj), detector, segmenter, actor_phrase)
        except (LookupError, ValueError, FileNotFoundError) as e:
            logger.warning("%s: not annotated: %s", traj, e)
            counts["failed"] += 1
            continue
        write_mask_annotation(traj, result.actor_masks, result.object_masks, annotator=annotator,
                              object_phrase=result.object_phrase)
        counts["annotated"] += 1
        bar.set_postfix(counts)
    return counts
