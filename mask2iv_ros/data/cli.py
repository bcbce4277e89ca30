"""Console entry points of the data package.

* ``mask2iv-make-synthetic`` -- :func:`make_synthetic_main`: write procedural episodes in
  BridgeData V2 raw layout (+ ground-truth masks) and an optional contact-sheet preview.
* ``mask2iv-curate`` -- :func:`curate_main`: for a BridgeData raw folder, annotate trajectories
  without masks (GroundingDINO + SAM2 from local folders; cached, resumable), then score motion
  and drop clips below the ``--percentile`` (5th) of the motion scores. For a HOI4D folder the
  masks come with the dataset and only the motion filter runs. The result,
  ``<root>/mask2iv_curation.json``, lists kept/dropped episode ids with their scores;
  :class:`mask2iv_ros.data.dataset.Mask2IVDataset` reads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm


def _make_synthetic_parser() -> argparse.ArgumentParser:
    from .synthetic import ACTIONS

    p = argparse.ArgumentParser(prog="mask2iv-make-synthetic",
                                description="Generate synthetic tabletop manipulation episodes "
                                            "in BridgeData V2 raw layout with ground-truth masks.")
    p.add_argument("output", type=Path, help="dataset root folder to write into")
    p.add_argument("--episodes", type=int, default=100, help="number of episodes (default 100)")
    p.add_argument("--frames", type=int, default=24, help="frames per episode (default 24)")
    p.add_argument("--fps", type=float, default=5.0, help="recording rate in the timestamps (default 5, as BridgeData)")
    p.add_argument("--height", type=int, default=480, help="image height (default 480, as BridgeData)")
    p.add_argument("--width", type=int, default=640, help="image width (default 640, as BridgeData)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (episode i uses [seed, i])")
    p.add_argument("--min-objects", type=int, default=2)
    p.add_argument("--max-objects", type=int, default=4)
    p.add_argument("--actions", nargs="+", default=list(ACTIONS), choices=list(ACTIONS), metavar="ACTION",
                   help=f"actions to draw from (default: all of {', '.join(ACTIONS)}); quote 'pick up'")
    p.add_argument("--prompt-variety", action="store_true",
                   help="paraphrased instructions (verbs, directions, object names) instead of one "
                        "template per action; the scenes stay those of the seed")
    p.add_argument("--preview", type=Path, default=None,
                   help="also write a contact-sheet PNG of the first --preview-episodes episodes")
    p.add_argument("--preview-episodes", type=int, default=4)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def make_synthetic_main(argv: Optional[List[str]] = None) -> int:
    from .bridge import load_bridge_trajectory
    from .preview import save_contact_sheet
    from .synthetic import SyntheticConfig, write_synthetic_dataset

    args = _make_synthetic_parser().parse_args(argv)
    try:
        cfg = SyntheticConfig(height=args.height, width=args.width, num_frames=args.frames, fps=args.fps,
                              min_objects=args.min_objects, max_objects=args.max_objects, actions=tuple(args.actions),
                              prompt_variety=args.prompt_variety)
        paths = write_synthetic_dataset(args.output, args.episodes, seed=args.seed, config=cfg,
                                        progress=not args.quiet)
    except ValueError as e:
        print(f"mask2iv-make-synthetic: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} episodes under {args.output}")
    if args.preview is not None:
        clips = [load_bridge_trajectory(p) for p in paths[: max(1, args.preview_episodes)]]
        save_contact_sheet(clips, args.preview)
        print(f"preview: {args.preview}")
    return 0


def _curate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mask2iv-curate",
                                description="Annotate (GroundingDINO + SAM2) and motion-filter a BridgeData "
                                            "raw folder, or motion-filter a HOI4D folder.")
    p.add_argument("root", type=Path, help="BridgeData raw root (or HOI4D root)")
    p.add_argument("--grounding-dino", type=Path, default=None,
                   help="local GroundingDINO folder (transformers format); needed to annotate")
    p.add_argument("--sam2", type=Path, default=None, help="local SAM2 video folder (transformers format)")
    p.add_argument("--device", default="cpu", help="torch device for the annotation models (default cpu)")
    p.add_argument("--box-threshold", type=float, default=0.3, help="GroundingDINO phrase score threshold")
    p.add_argument("--overwrite", action="store_true", help="re-annotate trajectories that have masks")
    p.add_argument("--percentile", type=float, default=5.0,
                   help="drop clips whose motion score is below this percentile (default 5)")
    p.add_argument("--hoi4d-short-side", type=int, default=256,
                   help="HOI4D: downscale frames to this short side while scoring (default 256)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _write_json_atomic(path: Path, data: dict) -> None:
    from .bridge import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())


def curate_main(argv: Optional[List[str]] = None) -> int:
    from .annotate import GroundingDinoDetector, Sam2VideoSegmenter, annotate_trajectories
    from .bridge import detect_layout, find_trajectories, read_mask_annotation, trajectory_id
    from .curation import motion_keep_mask, motion_score
    from .dataset import CURATION_FILE

    args = _curate_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    root: Path = args.root
    if not root.is_dir():
        print(f"mask2iv-curate: error: root: folder {root} does not exist", file=sys.stderr)
        return 2
    if (args.grounding_dino is None) != (args.sam2 is None):
        print("mask2iv-curate: error: --grounding-dino and --sam2 must be given together", file=sys.stderr)
        return 2

    scores = {}
    unannotated: List[str] = []
    if detect_layout(root) == "hoi4d":  # HOI4D: masks ship with the dataset
        from .hoi4d import list_hoi4d_clips, load_hoi4d_clip

        for ref in tqdm(list_hoi4d_clips(root), desc="motion scores", disable=args.quiet):
            clip = load_hoi4d_clip(ref, args.hoi4d_short_side)
            if clip.has_masks:
                scores[ref.episode_id] = motion_score(clip.actor_masks, clip.object_masks)
            else:
                unannotated.append(ref.episode_id)
    else:
        trajs = find_trajectories(root)
        if args.grounding_dino is not None:
            detector = GroundingDinoDetector.from_pretrained(args.grounding_dino, device=args.device,
                                                             box_threshold=args.box_threshold)
            segmenter = Sam2VideoSegmenter.from_pretrained(args.sam2, device=args.device)
            counts = annotate_trajectories(trajs, detector, segmenter, overwrite=args.overwrite,
                                           progress=not args.quiet)
            print(f"annotation: {counts}")
        for traj in tqdm(trajs, desc="motion scores", disable=args.quiet):
            ann = read_mask_annotation(traj)
            if ann is None:
                unannotated.append(trajectory_id(traj))
                continue
            scores[trajectory_id(traj)] = motion_score(ann[0], ann[1])
    if not scores:
        print("mask2iv-curate: error: no annotated clips to score (give --grounding-dino and --sam2 "
              "to annotate BridgeData)", file=sys.stderr)
        return 1
    ids = sorted(scores)
    keep, threshold = motion_keep_mask([scores[i] for i in ids], args.percentile)
    result = {
        "percentile": args.percentile,
        "threshold": threshold,
        "scores": scores,
        "kept": [i for i, k in zip(ids, keep) if k],
        "dropped": [i for i, k in zip(ids, keep) if not k],
        "unannotated": sorted(unannotated),
    }
    _write_json_atomic(root / CURATION_FILE, result)
    print(f"kept {len(result['kept'])}, dropped {len(result['dropped'])} below motion score "
          f"{threshold:.4f} (percentile {args.percentile}), unannotated {len(unannotated)} -> "
          f"{root / CURATION_FILE}")
    return 0
