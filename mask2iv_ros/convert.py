"""``mask2iv-convert``: released Mask2IV / DynamiCrafter checkpoints -> project folders.

Released Mask2IV (one Lightning ``.ckpt`` per stage) -> a pipeline folder that
``Mask2IVPipeline.from_pretrained`` loads and ``imagine_node`` serves::

    mask2iv-convert --stage1 first_stage/bdv2_model.ckpt --stage2 second_stage/bdv2_model.ckpt \\
        --out models/mask2iv_bdv2                      # PT-Gen (bdv2) + video
    mask2iv-convert --stage1 first_stage/hoi4d_model.ckpt --mode text --out models/mask2iv_tt
                                                       # TT-Gen only: a trajectory-only pipeline

DynamiCrafter ``model.ckpt`` -> the start of Mask2IV fine-tuning (``model.init_from``)::

    mask2iv-convert --dynamicrafter dynamicrafter_512/model.ckpt --out models/dc512_init

Checkpoint tensors the project cannot place (the release's stage-2 ``extra_mask_attn`` and
DINOv2 object modules, anything unknown) make it refuse with exit code 2 unless
``--allow-missing-modules``; what was left out is written into ``MODEL_CARD.md`` /
``model_card.json`` of the folder either way.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .models import dynamicrafter, official
from .models.openclip_text import (VIT_H_14_TEXT_HEAD_WIDTH, convert_openclip_text_tower,
                                   load_openclip_tokenizer)
from .models.resampler import Resampler, ResamplerConfig
from .models.unet_config import UNetConfig
from .models.weights import module_from_state_dict

logger = logging.getLogger("mask2iv_ros.convert")
MODES = {"position": "trajectory_unet_position", "text": "trajectory_unet_text"}
# Which stage-1 slot a released checkpoint fills, from its file/folder name
_MODE_HINTS = {"bdv2": "position", "bridge": "position", "hoi4d": "text"}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CARD_JSON, CARD_MD = "model_card.json", "MODEL_CARD.md"
INIT_YAML = "training_model.yaml"


class ConversionRefused(RuntimeError):
    """Tensors that cannot be placed, without ``allow_missing_modules`` (exit code 2)."""


@dataclass
class ComponentConfigs:
    """Sizes that are not visible in checkpoint shapes; defaults = the release / DynamiCrafter 512.

    Read from ``--model-config`` JSON: ``{"unet": {UNetConfig fields}, "vae": {diffusers
    AutoencoderKL config}, "image_projection": {ResamplerConfig fields}, "text_head_width": 64,
    "image_head_width": 80}`` (every key optional; tests use it for tiny fakes).
    """

    unet: dict[str, Any] = field(default_factory=dict)
    vae: dict[str, Any] = field(default_factory=lambda: dict(dynamicrafter.DYNAMICRAFTER_VAE_CONFIG))
    image_projection: dict[str, Any] = field(default_factory=dict)
    text_head_width: int = VIT_H_14_TEXT_HEAD_WIDTH
    image_head_width: int = dynamicrafter.VIT_H_14_HEAD_WIDTH

    @classmethod
    def from_json(cls, path: str | Path | None) -> "ComponentConfigs":
        if path is None:
            return cls()
        data = json.loads(Path(path).read_text())
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"--model-config: unknown keys {unknown}; expected {sorted(known)}")
        return cls(**data)

    def unet_config(self, stage: str | None) -> UNetConfig:
        if stage is None:  # DynamiCrafter's own UNet, widened for Mask2IV's extra latent
            return UNetConfig.dynamicrafter_512(in_channels=official.MASK2IV_IN_CHANNELS).replace(
                **self.unet)
        return official.release_unet_config(stage).replace(**self.unet)

    def resampler_config(self) -> ResamplerConfig:
        base = ResamplerConfig.dynamicrafter_512().to_dict()
        base.update(self.image_projection)
        return ResamplerConfig.from_dict(base)


# ------------------------------------------------------------------------------ components
def _subset(state: Mapping[str, torch.Tensor], prefix: str, strip: bool = True) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` (read now; other keys are never touched)."""
    return {(k[len(prefix):] if strip else k): state[k] for k in state if k.startswith(prefix)}


def build_vae(state: Mapping[str, torch.Tensor], configs: ComponentConfigs):
    from diffusers import AutoencoderKL

    from .models.vae import VideoVAE

    vae_state = _subset(state, dynamicrafter.VAE_PREFIX)
    if not vae_state:
        raise ValueError(f"checkpoint: no {dynamicrafter.VAE_PREFIX!r} keys (no VAE)")
    converted = dynamicrafter.convert_vae_state_dict(vae_state, configs.vae)
    autoencoder = module_from_state_dict(lambda: AutoencoderKL(**configs.vae), converted)
    return VideoVAE(autoencoder), sorted(dynamicrafter.VAE_PREFIX + k for k in vae_state)


def build_text_encoder(state: Mapping[str, torch.Tensor], tokenizer: Any, configs: ComponentConfigs):
    prefix = dynamicrafter.TEXT_ENCODER_PREFIX + "model."
    text_state = _subset(state, prefix)
    if not text_state:
        raise ValueError(f"checkpoint: no {prefix!r} keys (no OpenCLIP text tower)")
    max_length = int(text_state["positional_embedding"].shape[0])
    return convert_openclip_text_tower(text_state, tokenizer, configs.text_head_width, max_length)


def build_image_branch(state: Mapping[str, torch.Tensor], configs: ComponentConfigs):
    embedder = _subset(state, dynamicrafter.IMAGE_ENCODER_PREFIX, strip=False)
    image_encoder = dynamicrafter.load_dynamicrafter_image_encoder(
        embedder, head_width=configs.image_head_width)
    resampler_state = _subset(state, dynamicrafter.IMAGE_PROJ_PREFIX)
    if not resampler_state:
        raise ValueError(f"checkpoint: no {dynamicrafter.IMAGE_PROJ_PREFIX!r} keys (no Resampler)")
    config = configs.resampler_config()
    resampler = module_from_state_dict(lambda: Resampler(config), resampler_state)
    return image_encoder, resampler


def _same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in a if k.startswith(prefix)]
    if sorted(keys) != sorted(k for k in b if k.startswith(prefix)):
        return False
    return all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in keys)


# ------------------------------------------------------------------------------- model card
def _group(keys: Sequence[str], depth: int = 3) -> dict[str, dict[str, Any]]:
    """Keys grouped by their first ``depth`` dotted parts (count + two examples)."""
    groups: dict[str, dict[str, Any]] = {}
    for key in keys:
        head = ".".join(key.split(".")[:depth])
        entry = groups.setdefault(head, {"count": 0, "examples": []})
        entry["count"] += 1
        if len(entry["examples"]) < 2:
            entry["examples"].append(key)
    return groups


def _file_info(path: Path) -> dict[str, Any]:
    return {"file": str(path), "name": path.name, "bytes": path.stat().st_size}


def write_model_card(folder: Path, card: dict[str, Any]) -> None:
    (folder / CARD_JSON).write_text(json.dumps(card, indent=2))
    lines = [f"# {card['title']}", "", card["summary"], "", "## Sources", ""]
    for role, info in card["sources"].items():
        lines.append(f"- {role}: `{info['name']}` ({info['bytes']:,} bytes)")
    if card.get("components"):
        lines += ["", "## Components", ""]
        lines += [f"- `{name}`: {what}" for name, what in card["components"].items()]
    if card.get("sampling"):
        lines += ["", "## Sampling defaults (from the release)", ""]
        lines += [f"- {k}: {v}" for k, v in card["sampling"].items()]
    lines += ["", "## Left out", ""]
    left_out = card["left_out"]
    if not any(left_out.values()):
        lines.append("Nothing: every tensor of the source checkpoints was placed or is unused by "
                     "design (below).")
    for source, groups in left_out.items():
        if not groups:
            continue
        lines.append(f"**{source}** - tensors the project cannot place (not loaded; the result "
                     "differs from the release):")
        lines += [f"- `{head}.*`: {g['count']} tensors, e.g. `{g['examples'][0]}`"
                  for head, g in groups.items()]
    lines += ["", "## Unused by design", ""]
    for source, reasons in card["unused_by_design"].items():
        for reason, count in reasons.items():
            lines.append(f"- {source}: {count} tensors - {reason}")
    if card.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in card["notes"]]
    (folder / CARD_MD).write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- pipeline config
def pipeline_config(resolution: tuple[int, int], num_frames: int, fps: float, fs: int | None,
                    model_id: str, dynamic_rescale: float | None):
    """A ``PipelineConfig`` recording the release's sampling defaults.

    With ``PipelineConfig.sampling`` (the sampler-defaults schema of ``model_index.json``) they go
    there with ``condition_dropout``; a ``PipelineConfig`` without that schema gets the keys it
    knows (``guidance_rescale``, ``eta``, ``dynamic_rescale``).
    """
    from .pipeline.pipeline import PipelineConfig

    sampling = dict(official.RELEASE_SAMPLING, dynamic_rescale=dynamic_rescale)
    base = dict(resolution=list(resolution), num_frames=num_frames, fps=fps, fs=fs,
                model_id=model_id)
    fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    if "sampling" in fields:
        return PipelineConfig.from_dict(dict(
            base, sampling=sampling,
            training={"condition_dropout": official.RELEASE_CONDITION_DROPOUT}))
    legacy = {k: sampling[k] for k in ("guidance_rescale", "eta", "dynamic_rescale") if k in fields}
    return PipelineConfig.from_dict(dict(base, **legacy))


# -------------------------------------------------------------------------------- conversion
def _stage_mode(path: Path, mode: str | None) -> str:
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"--mode: expected one of {sorted(MODES)}, got {mode!r}")
        return mode
    lowered = str(path).lower()
    hits = {m for hint, m in _MODE_HINTS.items() if hint in lowered}
    if len(hits) != 1:
        raise ValueError(f"--mode: cannot tell from {path.name!r} whether the stage-1 checkpoint "
                         "is PT-Gen (position, e.g. bdv2) or TT-Gen (text, e.g. hoi4d); pass "
                         "--mode position|text")
    return hits.pop()


def _refuse_or_record(source: str, unplaced: list[str], allow: bool) -> None:
    if unplaced and not allow:
        raise ConversionRefused(official._unplaced_message(source, unplaced,
                                                           "--allow-missing-modules"))
    if unplaced:
        logger.warning("%s: leaving out %d tensors the project cannot place (see %s)", source,
                       len(unplaced), CARD_MD)


def convert_release(stage1: str | Path, out: str | Path, stage2: str | Path | None = None,
                    mode: str | None = None, tokenizer: str | Path | None = None,
                    allow_missing_modules: bool = False, configs: ComponentConfigs | None = None,
                    resolution: tuple[int, int] = official.RELEASE_RESOLUTION,
                    num_frames: int = official.RELEASE_NUM_FRAMES, fps: float = official.RELEASE_FPS,
                    fs: int | None = official.RELEASE_FS, dtype: torch.dtype | None = None,
                    model_id: str | None = None) -> dict[str, Any]:
    """Released stage checkpoint(s) -> a pipeline folder at ``out``; returns the model card.

    Stage 1 fills the ``mode`` slot (``position``: PT-Gen, ``text``: TT-Gen); without ``stage2``
    the pipeline is trajectory-only. The VAE, text and image encoders (frozen in the release's
    training) come from stage 1. Raises :class:`ConversionRefused` for tensors the project
    cannot place unless ``allow_missing_modules``.
    """
    from .pipeline.pipeline import STAGE_PROJECTION, Mask2IVPipeline
    from .pipeline.sampling import dynamicrafter_scheduler

    configs = configs or ComponentConfigs()
    stage1, out = Path(stage1), Path(out)
    mode = _stage_mode(stage1, mode)
    state1 = official.LazyCheckpoint(stage1)
    scheduler = dynamicrafter_scheduler()
    official.check_noise_schedule(state1, scheduler, f"--stage1 {stage1.name}")
    rescale = official.dynamic_rescale_base(state1, f"--stage1 {stage1.name}")

    logger.info("converting the shared components of %s", stage1.name)
    tok = load_openclip_tokenizer(tokenizer)
    text = build_text_encoder(state1, tok, configs)
    vae, _ = build_vae(state1, configs)
    image_encoder, resampler = build_image_branch(state1, configs)

    sources = {"stage1": stage1}
    unets: dict[str, Any] = {}
    left_out: dict[str, dict] = {}
    unused: dict[str, dict] = {}
    notes: list[str] = []
    stage_states = [("stage1", stage1, state1, "trajectory")]
    stage_projections: dict[str, Any] = {}  # <component>/image_projection/ where it differs
    if stage2 is not None:
        stage2 = Path(stage2)
        sources["stage2"] = stage2
        state2 = official.LazyCheckpoint(stage2)
        official.check_noise_schedule(state2, scheduler, f"--stage2 {stage2.name}")
        rescale2 = official.dynamic_rescale_base(state2, f"--stage2 {stage2.name}")
        if rescale2 != rescale:
            notes.append(f"dynamic rescale base_scale differs between the stages ({rescale} / "
                         f"{rescale2}); the pipeline records stage 1's")
        stage_states.append(("stage2", stage2, state2, "video"))

    for role, path, state, stage in stage_states:
        config = configs.unet_config(stage)
        account = official.account_keys(state, config, text.used, text.unused)
        unplaced = list(account.unplaced)
        if role == "stage2":
            # one VAE / text / image encoder serve both stages in the pipeline; each stage keeps
            # the Resampler it was trained with (the release trains image_proj_model per stage)
            if not _same_tensors(state1, state, dynamicrafter.IMAGE_PROJ_PREFIX):
                stage_projections["video_unet"] = build_image_branch(state, configs)[1]
                notes.append(f"stage 2's Resampler ({dynamicrafter.IMAGE_PROJ_PREFIX}*) differs from "
                             f"stage 1's; video_unet uses its own (video_unet/{STAGE_PROJECTION}/)")
            for prefix, what in ((dynamicrafter.VAE_PREFIX, "VAE"),
                                 (dynamicrafter.TEXT_ENCODER_PREFIX, "text encoder"),
                                 (dynamicrafter.IMAGE_ENCODER_PREFIX, "image encoder")):
                if not _same_tensors(state1, state, prefix):
                    unplaced += sorted(k for k in state if k.startswith(prefix))
                    notes.append(f"stage 2's {what} ({prefix}*) differs from stage 1's; the "
                                 f"pipeline has one {what}, stage 1's, used by both stages")
        unplaced = sorted(set(unplaced))
        _refuse_or_record(f"--{role} {path.name}", unplaced, allow_missing_modules)
        left_out[role] = _group(unplaced)
        unused[role] = account.summary()["unused_by_design"]
        unet_state = official.strip_prefix(state, dynamicrafter.UNET_PREFIX)
        placed, _ = official.place_unet_state(unet_state, config, f"--{role} {path.name}")
        name = MODES[mode] if stage == "trajectory" else "video_unet"
        unets[name] = official.CheckpointUNet(config, placed, dtype)

    config = pipeline_config(resolution, num_frames, fps, fs,
                             model_id or f"mask2iv-release-{stage1.stem}", rescale)
    pipe = Mask2IVPipeline.from_components(
        vae=vae, text_encoder=text.encoder, scheduler=scheduler, config=config,
        image_encoder=image_encoder, image_projection=resampler,
        stage_projections={n: p for n, p in stage_projections.items() if n in unets}, **unets)
    logger.info("writing %s", out)
    pipe.save_pretrained(out)

    notes += [
        "UNet input channels are fed in the release's order: stage 1 [noise, mask slot, image "
        "latent], stage 2 [noise, image latent repeated, trajectory latent].",
        f"fs {fs}: the release's inference feeds fps 15 as the UNet's frame-rate condition "
        "(its BridgeData loader reports 5 fps in training); fps is the playback rate its "
        "scripts write videos at.",
        "The release's HOI4D inference resizes the short side to 1.2x the target before the "
        "centre crop; its BridgeData inference to 1.0x.",
    ]
    card = {
        "title": f"Mask2IV release converted ({', '.join(p.name for p in sources.values())})",
        "summary": (f"Converted by mask2iv-convert from the released Mask2IV checkpoints: stage 1 "
                    f"-> {MODES[mode]} ({'PT-Gen' if mode == 'position' else 'TT-Gen'})"
                    + (", stage 2 -> video_unet." if stage2 is not None
                       else "; no stage 2: a trajectory-only pipeline.")),
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sources": {role: _file_info(path) for role, path in sources.items()},
        "mode": mode,
        "components": {
            "vae": "first_stage_model.* -> diffusers AutoencoderKL (convert_ldm_vae_checkpoint)",
            "text_encoder": "cond_stage_model.model.* -> CLIPTextModel, penultimate-layer tokens "
                            "(convert_open_clip_checkpoint; last block dropped)",
            "image_encoder": "embedder.model.visual.* -> CLIPVisionModel (all last-layer tokens)",
            "image_projection": "stage 1's image_proj_model.* -> Resampler",
            **{name: "model.diffusion_model.* (strict)" for name in unets},
        },
        "sampling": dict(official.RELEASE_SAMPLING, dynamic_rescale=rescale),
        "training": {"condition_dropout": official.RELEASE_CONDITION_DROPOUT},
        "resolution": list(resolution), "num_frames": num_frames, "fps": fps, "fs": fs,
        "allow_missing_modules": allow_missing_modules,
        "left_out": left_out,
        "unused_by_design": unused,
        "notes": notes,
    }
    write_model_card(out, card)
    return card


def convert_dynamicrafter(checkpoint: str | Path, out: str | Path, tokenizer: str | Path | None = None,
                          allow_missing_modules: bool = False,
                          configs: ComponentConfigs | None = None,
                          dtype: torch.dtype | None = None) -> dict[str, Any]:
    """A DynamiCrafter checkpoint -> the start of Mask2IV fine-tuning at ``out``.

    ``out`` is a UNet folder (``config.json`` + ``model.safetensors``: DynamiCrafter's UNet with
    ``in_channels`` 12, input channels 8..11 zero) usable as ``model.init_from``, with the frozen
    parts beside it (``vae/``, ``text_encoder/``, ``image_encoder/``, ``image_projection/``) and
    ``training_model.yaml``, the ``model:`` section that uses them all.
    """
    configs = configs or ComponentConfigs()
    checkpoint, out = Path(checkpoint), Path(out)
    state = official.LazyCheckpoint(checkpoint)
    source = f"--dynamicrafter {checkpoint.name}"
    from .pipeline.sampling import dynamicrafter_scheduler

    official.check_noise_schedule(state, dynamicrafter_scheduler(), source)
    rescale = official.dynamic_rescale_base(state, source)
    config = configs.unet_config(None)
    tok = load_openclip_tokenizer(tokenizer)
    text = build_text_encoder(state, tok, configs)
    # the account needs the UNet as the checkpoint has it (8 input channels)
    narrow = config.replace(in_channels=dynamicrafter.DYNAMICRAFTER_IN_CHANNELS)
    account = official.account_keys(state, narrow, text.used, text.unused)
    _refuse_or_record(source, account.unplaced, allow_missing_modules)
    vae, _ = build_vae(state, configs)
    image_encoder, resampler = build_image_branch(state, configs)
    unet_state = official.strip_prefix(state, dynamicrafter.UNET_PREFIX)
    placed, _ = official.place_unet_state(unet_state, narrow, source)
    widened = dynamicrafter.expand_input_channels(placed, config.in_channels)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    official.CheckpointUNet(config, widened, dtype).save_pretrained(tmp)
    vae.save_pretrained(tmp / "vae")
    text.encoder.save_pretrained(tmp / "text_encoder")
    image_encoder.save_pretrained(tmp / "image_encoder")
    resampler.save_pretrained(tmp / "image_projection")
    root = out.resolve()
    model_section = {"model": {
        "unet_preset": "dynamicrafter_512",
        "init_from": str(root),
        "vae": {"path": str(root / "vae")},
        "text_encoder": {"type": "folder", "path": str(root / "text_encoder")},
        "image_encoder": {"type": "folder", "path": str(root / "image_encoder")},
        "image_projection": {"path": str(root / "image_projection")},
    }}
    import yaml

    (tmp / INIT_YAML).write_text(
        "# model: section of a mask2iv-train config starting from this DynamiCrafter checkpoint\n"
        + yaml.safe_dump(model_section, sort_keys=False))
    card = {
        "title": f"DynamiCrafter {checkpoint.name} as the start of Mask2IV fine-tuning",
        "summary": ("UNet widened to in_channels 12: DynamiCrafter's input_blocks.0.0.weight "
                    "[:, :8] copied, channels 8..11 zero (the widened UNet computes "
                    "DynamiCrafter's function until they are trained). Use this folder as "
                    f"model.init_from, or {INIT_YAML} as the model: section."),
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sources": {"dynamicrafter": _file_info(checkpoint)},
        "components": {".": "model.diffusion_model.* (strict) -> VideoUNet folder",
                       "vae": "first_stage_model.* -> diffusers AutoencoderKL",
                       "text_encoder": "cond_stage_model.model.* -> CLIPTextModel (penultimate)",
                       "image_encoder": "embedder.model.visual.* -> CLIPVisionModel",
                       "image_projection": "image_proj_model.* -> Resampler"},
        "training": {"dynamic_rescale": rescale},
        "left_out": {"dynamicrafter": _group(account.unplaced)},
        "unused_by_design": {"dynamicrafter": account.summary()["unused_by_design"]},
        "notes": [],
    }
    write_model_card(tmp, card)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return card


# ------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mask2iv-convert", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 done, 2 bad arguments or tensors that cannot be placed (see "
               "--allow-missing-modules), 1 other errors.")
    source = parser.add_argument_group("sources (local files: .ckpt or .safetensors)")
    source.add_argument("--stage1", type=Path, help="released stage-1 (mask trajectory) checkpoint")
    source.add_argument("--stage2", type=Path, help="released stage-2 (video) checkpoint")
    source.add_argument("--dynamicrafter", type=Path,
                        help="DynamiCrafter checkpoint: write the start of fine-tuning instead")
    parser.add_argument("--out", type=Path, required=True, help="folder to write")
    parser.add_argument("--mode", choices=sorted(MODES),
                        help="stage-1 slot: position (PT-Gen, bdv2) or text (TT-Gen, hoi4d); "
                             "default: from the file name")
    parser.add_argument("--tokenizer", type=Path,
                        help="OpenCLIP bpe_simple_vocab_16e6.txt.gz, an open_clip_torch wheel, or "
                             "a CLIP tokenizer folder (default: the installed open_clip's)")
    parser.add_argument("--allow-missing-modules", action="store_true",
                        help="convert even if some checkpoint tensors cannot be placed (they are "
                             "listed in the model card)")
    parser.add_argument("--dtype", choices=sorted(DTYPES),
                        help="store the UNet weights in this dtype (default: as in the checkpoint)")
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"),
                        default=list(official.RELEASE_RESOLUTION))
    parser.add_argument("--num-frames", type=int, default=official.RELEASE_NUM_FRAMES)
    parser.add_argument("--fps", type=float, default=official.RELEASE_FPS,
                        help="playback rate of the generated frames")
    parser.add_argument("--fs", type=int, default=official.RELEASE_FS,
                        help="the UNets' frame-rate condition (the release's inference: 15)")
    parser.add_argument("--model-config", type=Path,
                        help="JSON with component sizes for non-release checkpoints (see "
                             "ComponentConfigs)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if (args.dynamicrafter is None) == (args.stage1 is None):
        parser.error("give either --stage1 (released Mask2IV, optionally with --stage2) or "
                     "--dynamicrafter")
    if args.dynamicrafter is not None and (args.stage2 is not None or args.mode is not None):
        parser.error("--stage2/--mode belong to released Mask2IV checkpoints, not --dynamicrafter")
    if args.out.exists() and not args.overwrite:
        parser.error(f"--out: {args.out} exists; pass --overwrite to replace it")
    try:
        configs = ComponentConfigs.from_json(args.model_config)
        dtype = DTYPES[args.dtype] if args.dtype else None
        if args.dynamicrafter is not None:
            card = convert_dynamicrafter(args.dynamicrafter, args.out, args.tokenizer,
                                         args.allow_missing_modules, configs, dtype)
        else:
            card = convert_release(args.stage1, args.out, args.stage2, args.mode, args.tokenizer,
                                   args.allow_missing_modules, configs, tuple(args.resolution),
                                   args.num_frames, args.fps, args.fs, dtype)
    except ConversionRefused as error:
        print(f"mask2iv-convert: refused: {error}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:
        print(f"mask2iv-convert: error: {error}", file=sys.stderr)
        return 2
    left = sum(g["count"] for groups in card["left_out"].values() for g in groups.values())
    print(f"wrote {args.out}" + (f" ({left} tensors left out, see {args.out / CARD_MD})"
                                 if left else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
