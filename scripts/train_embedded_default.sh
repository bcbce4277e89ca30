#!/usr/bin/env bash
# Rebuilds the embedded default model (mask2iv_ros/assets/default_model) and the demo bag from
# nothing, on CPU, with the project's own commands. About an hour on 2 CPU cores.
#   scripts/train_embedded_default.sh [STEPS_STAGE1] [STEPS_STAGE2]
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
S1=${1:-1000}
S2=${2:-1000}
mask2iv-make-synthetic runs/embedded_train --episodes 400 --seed 2026 \
  --height 64 --width 64 --frames 16 --fps 4
mask2iv-train-vae --data runs/embedded_train --output runs/embedded_vae --steps 1500 --batch-size 8 \
  --lr 2e-3 --block-out-channels 16 32 32
rm -rf runs/embedded_pipeline
mask2iv-train --config training/embedded_stage1_position.yaml --override max_steps=$S1
mask2iv-train --config training/embedded_stage1_text.yaml --override max_steps=$S1
mask2iv-train --config training/embedded_stage2.yaml --override max_steps=$S2
python -m mask2iv_ros.assets.build --pipeline runs/embedded_pipeline --vae runs/embedded_vae
