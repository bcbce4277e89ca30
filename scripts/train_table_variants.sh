#!/usr/bin/env bash
# Trains stage-2 variants of mask2iv-tables (Table 1 / Table 2) one after another, with exactly
# the overrides mask2iv-tables uses (those of scripts/reproduce_tables.sh), so that
# `scripts/reproduce_tables.sh --reuse` then only evaluates them. Stage-2 training does not
# need the stage-1 model, so this can run while mask2iv-tables trains stage 1: two streams with
# one torch thread each use both cores of a small machine. A variant's pipeline folder starts as
# a copy of the stage-1 pipeline when that exists, else holds the stage-2 model alone (all
# the evaluation loads from it).
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
if pipeline.exists():
    shutil.rmtree(pipeline)
if (out / "pipelines" / "stage1" / "model_index.json").is_file():
    shutil.copytree(out / "pipelines" / "stage1", pipeline)
overrides = [*tables.run_overrides("runs/embedded_train", out / "runs" / variant, pipeline, steps),
             *tables.override_args(tables.STAGE2_VARIANTS[variant]),
             "model.vae.path=mask2iv_ros/assets/default_model/vae"]  # as scripts/reproduce_tables.sh
tables.default_train("training/embedded_stage2.yaml", overrides)
PY
done
