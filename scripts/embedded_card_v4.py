"""Model-card entries of scripts/train_embedded_v4.sh's model, from its measurements (stdout: JSON
for `python -m mask2iv_ros.assets.build --card-json`).

    python scripts/embedded_card_v4.py runs/v4 --ship stage1|snap [--run v4] [--step "v2, third step"]
        [--previous "steps 1-5"] [--data "the 400 synthetic training episodes of seed 2026"]

Reads OUT/base/model_card.json (the previous default's card: its steps, grid and notes are kept),
OUT/eval.json and OUT/eval_paraphrased.json (benchmarks/eval_embedded_quality.py on the previous
default, its copy with calibrated snap weights and the fine-tuned model), OUT/eval_9001.json (the
last two on the episodes of seed 9001), OUT/calibration_*.json
(python -m mask2iv_ros.eval.calibrate_snap) and the runs' metrics.csv (PT-Gen's, and TT-Gen's
unless the script ran with PARTS=stage1_position).
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import yaml

FIRST = "PT first-frame PSNR (dB)"
VIDEO = "PT video PSNR (dB)"
OWN_FIRST = "PT first-frame PSNR, model's background (dB)"
OWN_VIDEO = "PT video PSNR, model's background (dB)"
TARGETS = (("PT actor IoU", 0.45), ("PT object IoU", 0.55), ("PT placement IoU", 0.80),
           ("TT object IoU", 0.45), ("TT direction agreement", 0.80), (VIDEO, 22.0), (FIRST, 28.0),
           (OWN_VIDEO, 22.0), (OWN_FIRST, 28.0), ("PT object IoU no-actor / with-actor", 0.9))


def _run(folder: Path) -> dict:
    rows = list(csv.DictReader((folder / "metrics.csv").open()))
    config = yaml.safe_load((folder / "config.yaml").read_text())
    return {"steps": int(rows[-1]["step"]), "minutes": config.get("time_budget_minutes"),
            "lr": config["optim"]["lr"], "ema": config["ema"]["decay"],
            # train_embedded_v4.sh's batch 4 and no warm-up where a run's config does not say
            "batch": config["optim"].get("batch_size", 4), "warmup": config["optim"].get("warmup_steps", 0),
            "timesteps": config["diffusion"]["train_timesteps"],
            "jitter": config["diffusion"]["train_timestep_jitter"],
            "drop": config["stage1"]["actor_condition_drop_prob"]}


def _listed(values) -> str:
    """[999, 666, 332] -> "999, 666 and 332"."""
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _sampling(out: Path, name: str) -> dict:
    return json.loads((out / name / "model_index.json").read_text())["config"]["sampling"]


def _votes(out: Path, name: str) -> int:
    """The trajectory votes a table row's pipeline folder records (1 where it records none)."""
    return _sampling(out, name).get("trajectory_votes", 1)


def _recorded(out: Path, names, key: str, default, unit: str) -> str:
    """What each table row's pipeline folder records under ``config.sampling[key]``, e.g.
    "2 steps" or "2 steps (the previous default) / 3 steps (the fine-tune)"."""
    values = {name: _sampling(out, name).get(key, default) for name in names}
    if len(set(values.values())) == 1:
        return f"{next(iter(values.values())):g}{unit}"
    by_value: dict[float, list[str]] = {}
    for name, value in values.items():
        by_value.setdefault(value, []).append(_LABEL_NAMES[name])
    return " / ".join(f"{value:g}{unit} ({', '.join(who)})" for value, who in by_value.items())


def _recorded_steps(out: Path, names) -> str:
    """The DDIM steps each table row's pipeline folder records, e.g. "DDIM 2 steps" or
    "DDIM 2 steps (the previous default) / 3 steps (the fine-tune)"."""
    return "DDIM " + _recorded(out, names, "num_inference_steps", None, " steps")


def _recorded_guidance(out: Path, names) -> str:
    """e.g. "guidance 1.0" or "guidance 1 (the previous default) / 1.5 (the previous UNets' copy,
    the fine-tune)"."""
    text = _recorded(out, names, "guidance_scale", 1.0, "")
    return "guidance " + ("1.0" if text == "1" else text)


def _recorded_votes(out: Path, names) -> str:
    """", 4 trajectory votes" (or per folder where they differ); "" when every folder has one."""
    text = _recorded(out, names, "trajectory_votes", 1, "")
    return "" if text == "1" else f", trajectory votes {text}"


_LABEL_NAMES = {"base": "the previous default", "previous": "the previous UNets' copy",
                "pipeline": "the fine-tune"}


def _weights(calibration: dict) -> tuple[float, float, int]:
    best = calibration["rows"][0]
    return best["object weight"], best["actor weight"], int(best.get("vote kernel", 1))


def _scores(row: dict) -> str:
    return (f"PT actor / object / placement IoU {row['PT actor IoU']:.3f} / {row['PT object IoU']:.3f} / "
            f"{row['PT placement IoU']:.3f}, TT object IoU {row['TT object IoU']:.3f}, direction "
            f"agreement {row['TT direction agreement']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--ship", choices=("stage1", "snap"), required=True,
                        help="stage1: the fine-tuned stage-1 UNets with their weights; snap: the "
                             "previous UNets with theirs")
    parser.add_argument("--run", default="v4", help="name prefix of the two training runs")
    parser.add_argument("--step", default="v2, third step", help="how the card names this step")
    parser.add_argument("--previous", default="steps 1-5", help="how the card names the model before")
    parser.add_argument("--data", default="the 400 synthetic training episodes of seed 2026",
                        help="what the runs trained on (the script's EPISODES / DATA_SEED)")
    parser.add_argument("--script", default="scripts/train_embedded_v4.sh",
                        help="the training script the card names for this step")
    parser.add_argument("--hardware", default=None,
                        help="a PT-only fine-tune trained elsewhere than on one CPU thread, e.g. "
                             "'one H200 GPU, bf16' (scripts/train_embedded_gpu_step.sh)")
    parser.add_argument("--extra", default="",
                        help="a clause added to the step's entry after the fine-tune, e.g. what the "
                             "runs trained beside it scored (they were not shipped)")
    parser.add_argument("--video-run", type=Path, default=None,
                        help="a stage-2 run whose video_unet the new folder holds (its steps and "
                             "settings are named in the step's entry)")
    args = parser.parse_args()
    out = args.out
    base_card = json.loads((out / "base" / "model_card.json").read_text())
    evaluation = json.loads((out / "eval.json").read_text())
    paraphrased = json.loads((out / "eval_paraphrased.json").read_text())
    other = json.loads((out / "eval_9001.json").read_text())
    keys = {name: str(out / name) for name in ("base", "previous", "pipeline")}
    rows = {name: evaluation["pipeline"][key] for name, key in keys.items()}
    varied = {name: paraphrased["pipeline"][key] for name, key in keys.items()}
    elsewhere = {name: other["pipeline"][keys[name]] for name in ("previous", "pipeline")}
    weights = {name: _weights(json.loads((out / f"calibration_{name}.json").read_text()))
               for name in ("previous", "pipeline")}
    position = _run(out / f"{args.run}_stage1_position")
    # PARTS=stage1_position: TT-Gen was not trained and stays the previous model's
    text = _run(out / f"{args.run}_stage1_text") if (out / f"{args.run}_stage1_text").is_dir() else None
    shipped = "pipeline" if args.ship == "stage1" else "previous"

    def weight_text(name: str) -> str:
        object_weight, actor_weight, kernel = weights[name]
        vote = f" and a {kernel}x{kernel} majority vote" if kernel > 1 else ""
        return f"(1, {object_weight:g}, {actor_weight:g}){vote}"

    # where the weights were calibrated is what calibrate_snap recorded, not a second copy of the
    # training script's --seed / --episodes
    calibrated = json.loads((out / "calibration_pipeline.json").read_text())
    trained_on = " (steps 1-7's training seed)" if calibrated["seed"] == 2026 else ""
    snap = (f"the palette snap weights (background, object, actor) calibrated on {calibrated['episodes']} generated "
            f"episodes of seed {calibrated['seed']}{trained_on} (`python -m mask2iv_ros.eval.calibrate_snap --write`; "
            "`config.palette.snap_weights`): the VAE decoder spreads an object over its blurred "
            "edges, and plain nearest-colour snapping gave objects about a third too much area")
    kernels = sorted({int(row.get("vote kernel", 1)) for row in calibrated["rows"]})
    if len(kernels) > 1:  # VOTE_KERNELS: the calibration chose the majority vote too
        snap += (", together with the majority vote after the snap (windows "
                 f"{_listed([f'{k}x{k}' if k > 1 else '1 (none)' for k in kernels])}, `--vote-kernels`; "
                 "`config.palette.vote_kernel`), which straightens the decoder's ragged edge pixels")
    # the fine-tune's timesteps against the DDIM steps the new folder records: the same sampler,
    # or (e.g. trained at DDIM 3's timesteps, sampled with DDIM 2) said so
    trained = len(position["timesteps"])
    recorded = json.loads((out / "pipeline" / "model_index.json").read_text())["config"]["sampling"]
    points = f"t = {_listed(position['timesteps'])}, +-{position['jitter']}; `diffusion.train_timesteps`"
    sampler_text = (f"only at the timesteps the recorded sampler uses (trailing DDIM {trained}: {points})"
                    if recorded["num_inference_steps"] == trained else
                    f"only at the timesteps of trailing DDIM {trained} ({points}), sampled with the "
                    f"recorded DDIM {recorded['num_inference_steps']}")
    if text is not None:
        finetune = (f"the PT-Gen and TT-Gen UNets continued side by side on 2 CPU cores (one thread "
                    f"each, {position['steps']} / {text['steps']} steps in a {position['minutes']:g}-minute "
                    f"budget, batch 4, AdamW lr {position['lr']:g} cosine, EMA {position['ema']:g}; the "
                    f"`{args.run}_*` runs below) {sampler_text}, stage-1 foreground weight 5, the first-frame actor "
                    f"dropped for {position['drop']:.0%} of the samples, paraphrased prompts, on {args.data}")
    else:
        # PT-Gen alone: on one CPU thread (train_embedded_v4.sh PARTS=stage1_position) or on the
        # machine --hardware names (train_embedded_gpu_step.sh)
        warmup = f" with {position['warmup']} warm-up steps" if position["warmup"] else ""
        finetune = (f"the PT-Gen UNet continued on {args.hardware or 'one CPU thread'} "
                    f"({position['steps']} steps in a {position['minutes']:g}-minute budget, batch "
                    f"{position['batch']}, AdamW lr {position['lr']:g}{warmup} cosine, EMA "
                    f"{position['ema']:g}; the `{args.run}_stage1_position` run below) {sampler_text}, "
                    f"stage-1 foreground weight 5, the first-frame actor dropped for "
                    f"{position['drop']:.0%} of the samples, on {args.data}; TT-Gen kept as it was")
    if args.extra:
        finetune += f"; {args.extra}"
    if args.video_run is not None:
        video = _run(args.video_run)
        finetune += (f"; beside it the stage-2 UNet ({video['steps']} steps, batch {video['batch']}, "
                     f"lr {video['lr']:g}, at t = {_listed(video['timesteps'])}, +-{video['jitter']}, the "
                     f"timesteps of its recorded DDIM 2; released contact weight 5; the "
                     f"`{args.video_run.name}` run below), whose `video_unet` this step ships too")
    # a recorded guidance scale other than the previous default's (the script's GUIDANCE) is
    # given to the previous UNets' copy too, so that copy and the fine-tune differ in UNets only
    guidance, base_guidance = (_sampling(out, name).get("guidance_scale", 1.0) for name in ("pipeline", "base"))
    guided = ("" if guidance == base_guidance else
              f"; classifier-free guidance {guidance:g} recorded (`config.sampling.guidance_scale`, "
              f"{base_guidance:g} before; the previous UNets' copy is measured with it too)")
    # likewise trajectory votes (the script's VOTES)
    votes, base_votes = _votes(out, "pipeline"), _votes(out, "base")
    if votes != base_votes:
        guided += (f"; {votes} trajectory votes recorded (`config.sampling.trajectory_votes`: each mask "
                   f"trajectory is the pixelwise majority of {votes} stage-1 samples from its seed, ties "
                   f"to their medoid, about {votes}x the stage-1 work; {base_votes} before; the previous "
                   "UNets' copy is measured with them too)")
    if args.ship == "stage1":
        description = (f"{args.step} (issue 14, `{args.script}`): {finetune}; then "
                       f"{snap}, {weight_text('pipeline')} for these UNets{guided}. On the 24 unseen episodes of seed {evaluation['seed']}: "
                       f"{_scores(rows['base'])} before; {_scores(rows['previous'])} with the "
                       f"previous UNets and their calibrated weights {weight_text('previous')}; "
                       f"{_scores(rows['pipeline'])} with this model. On the 24 episodes of seed "
                       f"{other['seed']}: {_scores(elsewhere['previous'])} with the previous UNets, "
                       f"{_scores(elsewhere['pipeline'])} with this model.")
    else:
        description = (f"{args.step} (issue 14, `{args.script}`): no UNet "
                       f"retrained; {snap}, {weight_text('previous')}{guided}. On the 24 unseen episodes of seed {evaluation['seed']}: "
                       f"{_scores(rows['base'])} before, {_scores(rows['previous'])} after. A "
                       f"fine-tune of the stage-1 UNets was measured and not shipped ({finetune}; "
                       f"with its own weights {weight_text('pipeline')}: {_scores(rows['pipeline'])}; "
                       f"on seed {other['seed']}: {_scores(elsewhere['pipeline'])} against "
                       f"{_scores(elsewhere['previous'])}).")
    continuations = list(base_card.get("continuations") or [base_card["continuation"]])
    continuations.append({"script": args.script, "description": description})

    grid = dict(base_card["grid"])
    if "snap weights" not in grid["conclusion"]:  # the first calibrated model says it once
        grid["conclusion"] = grid["conclusion"].replace(
            "(the placement target is 0.80)",
            "with plain nearest-colour snapping (the placement target is 0.80); the calibrated snap "
            f"weights raised the pipeline's final placement IoU from {rows['base']['PT placement IoU']:.3f} "
            f"to {rows['previous']['PT placement IoU']:.3f}")

    # the ceiling of the mask scores with the weights the VAE row was snapped with (the script
    # snaps it with the new model's; the row of the previous model's card is replaced)
    if evaluation.get("vae"):
        vae = next(iter(evaluation["vae"].values()))
        grid["ceiling"] = {"episodes": evaluation["episodes"], "seed": evaluation["seed"],
                           "snap_weights": evaluation.get("vae_snap_weights", [1.0, 1.0, 1.0]),
                           "vote_kernel": evaluation.get("vae_vote_kernel", 1),
                           "actor": vae["decoded actor IoU"], "object": vae["decoded object IoU"],
                           "placement": vae["decoded placement IoU"]}

    new = rows[shipped]
    missed = [key for key, target in TARGETS if not new[key] >= target]
    def voted(name: str) -> str:
        count = _votes(out, name)
        return "" if count == 1 else f", {count} trajectory votes"

    labels = {"base": f"previous default ({args.previous})",
              "previous": f"{args.previous} with snap weights {weight_text('previous')}{voted('previous')}",
              "pipeline": f"stage-1 fine-tune ({args.run}) with snap weights {weight_text('pipeline')}{voted('pipeline')}"}
    labels[shipped] = f"**this model** ({labels[shipped]})"
    # the previous model's recalibrated copy is only a row of its own when it scores differently
    untimed = lambda row: {key: value for key, value in row.items() if "s per" not in key and key != "seconds"}
    names = ["base", "pipeline"] if untimed(rows["previous"]) == untimed(rows["base"]) \
        and shipped != "previous" else ["base", "previous", "pipeline"]
    table = {labels[name]: rows[name] for name in names}
    table.update({f"{labels[name]}, paraphrased prompts": varied[name] for name in names})
    table.update({f"{labels[name]}, seed {other['seed']}": elsewhere[name]
                  for name in ("previous", "pipeline")})
    rival = "previous" if shipped == "pipeline" else "pipeline"
    sign = lambda a, b: (a > b) - (a < b)
    compared = ("PT actor IoU", "PT object IoU", "PT placement IoU", "TT object IoU",
                "TT direction agreement")
    swapped = [key for key in compared if sign(rows[shipped][key], rows[rival][key])
               * sign(elsewhere[shipped][key], elsewhere[rival][key]) < 0]
    agreement = (f"the two stage-1 models swap places between the seeds on {', '.join(swapped)}"
                 if swapped else "the two stage-1 models keep their order on both seeds for every "
                 "mask score they differ on")
    quality = {
        "episodes": evaluation["episodes"], "seed": evaluation["seed"],
        "steps": ("each model's recorded sampling: " + _recorded_steps(out, names) + ", "
                  + _recorded_guidance(out, names) + _recorded_votes(out, names)),
        "machine": "2 CPU cores, two evaluations side by side, so the seconds are rough",
        "note": ("The video PSNR and first-frame PSNR columns are what the pipeline returns by "
                 "default (composited onto the input image); the two columns after them are the "
                 "same imaginations with the model's own pixels everywhere. The last two rows are "
                 f"the same evaluation on other unseen episodes (seed {other['seed']}): 24 episodes "
                 f"are few; {agreement}. On seed {evaluation['seed']} this model misses the "
                 "issue's targets for: " + ", ".join(missed) + "."),
        "rows": table}
    actor = (
        "The stage-1 UNets were trained mostly with the first frame's actor mask in the condition, "
        "but without it (the node's default `use_actor_mask: false`) the PT-Gen object IoU is "
        f"{new['PT object IoU, no actor mask']:.3f}, {new['PT object IoU no-actor / with-actor']:.2f}x "
        f"the {new['PT object IoU']:.3f} with it (table above): the default launch works; give "
        "the actor mask when the robot knows it.")
    card = {"continuations": continuations, "grid": grid, "quality": quality, "actor_mask": actor,
            "output_limit": base_card["output_limit"]}
    if guidance != base_guidance:  # the build's line on `make demo`'s sampling says where the scale came from
        card["guidance_note"] = (f"{args.step} records guidance {guidance:g} (its entry under "
                                 "\"How it was trained\" gives the measurements)")
    if "concat_order_note" in base_card:
        card["concat_order_note"] = base_card["concat_order_note"]
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
