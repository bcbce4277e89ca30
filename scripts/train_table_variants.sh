#!/usr/bin/env bash
# Trains stage-2 variants of mask2iv-tables (Table 1 / Table 2) one after another, with exactly
# the overrides scripts/reproduce_tables.sh gives mask2iv-tables (tables.EMBEDDED_OVERRIDES), so
# that `mask2iv-tables --reuse` then only evaluates them. Two of these side by side (one torch
# thread each) use both cores of a small machine. A variant already trained to STEPS and
# exported is skipped (rerun after an interrupted evaluation). OUT/pipelines/stage1 must exist (the shared
# stage-1 pipeline: each variant's folder starts as a copy of it, and the export checks that
# VAE and text encoder match).
#   scripts/train_table_variants.sh OUT STEPS VARIANT [VARIANT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
OUT=$1; STEPS=$2; shift 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HUB_OFFLINE=1
for VARIANT in "$@"; do
  python - "$OUT" "$STEPS" "$VARIANT" <<'PY'
import shutil, sys
from pathlib import Path
from mask2iv_ros.eval import tables
out, steps, variant = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pipeline = out / "pipelines" / variant
if (out / "runs" / variant / "checkpoints" / f"step_{steps:08d}").is_dir() and (pipeline / "video_unet").is_dir():
    print(f"{variant}: trained to step {steps} and exported already; skipped")
    sys.exit(0)
if pipeline.exists():
    shutil.rmtree(pipeline)
# the stage-1 pipeline without its video model: what lands there is this variant's
shutil.copytree(out / "pipelines" / "stage1", pipeline,
                ignore=shutil.ignore_patterns("video_unet", "video_controlnet"))
overrides = [*tables.run_overrides("runs/embedded_train", out / "runs" / variant, pipeline, steps),
             *tables.override_args(tables.STAGE2_VARIANTS[variant]), *tables.EMBEDDED_OVERRIDES]
tables.default_train("training/embedded_stage2.yaml", overrides)
PY
done
