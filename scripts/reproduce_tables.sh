#!/usr/bin/env bash
# Regenerates docs/results (Table 1 / Table 2 at small scale) on CPU, about 1 hour on 2 cores:
# every stage-2 variant 200 steps, the shared PT-Gen stage 1 600 steps (the embedded default's
# config), evaluated on 8 held-out synthetic clips with 20 DDIM steps per stage.
# (This session ran the stage-2 trainings as two parallel streams with
# scripts/train_table_variants.sh, reused the embedded PT-Gen run as stage 1, then ran the
# command below with --reuse; the overrides are identical.)
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
mask2iv-tables --data runs/embedded_train --out runs/tables --steps 200 --stage1-steps 600 \
  --stage1-config training/embedded_stage1_position.yaml --stage2-config training/embedded_stage2.yaml \
  --max-clips 8 --sample-steps 20 "$@"
mkdir -p docs/results
cp runs/tables/table1.md runs/tables/table2.md runs/tables/table1.png runs/tables/table2.png \
  runs/tables/stage1_trajectories.md runs/tables/results.json docs/results/
