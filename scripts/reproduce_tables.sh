#!/usr/bin/env bash
# Regenerates docs/results (Table 1 / Table 2 at small scale) on CPU, about 1 hour on 2 cores:
# every stage-2 variant 200 steps, the shared PT-Gen stage 1 600 steps (the embedded default's
# config), evaluated on 8 held-out synthetic clips with 20 DDIM steps per stage.
# The VAE is the embedded default's (trained on the same synthetic tabletop data); the data
# (400 episodes, 64x64) is generated on the first run. Extra arguments go to mask2iv-tables
# (e.g. --reuse to evaluate runs already trained, or --override KEY=VALUE).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
mask2iv-tables --data runs/embedded_train --out runs/tables --steps 200 --stage1-steps 600 \
  --stage1-config training/embedded_stage1_position.yaml --stage2-config training/embedded_stage2.yaml \
  --override model.vae.path=mask2iv_ros/assets/default_model/vae \
  --max-clips 8 --sample-steps 20 "$@"
mkdir -p docs/results
cp runs/tables/table1.md runs/tables/table2.md runs/tables/table1.png runs/tables/table2.png \
  runs/tables/stage1_trajectories.md runs/tables/results.json docs/results/
