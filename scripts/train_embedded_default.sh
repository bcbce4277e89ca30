#!/usr/bin/env bash
# Rebuilds the embedded default model (mask2iv_ros/assets/default_model) and the demo bag from
# nothing, on CPU, with the project's own commands: what produced the committed model
# (about 90 minutes on 2 CPU cores; the two stage-1 runs and stage 2 can run side by side with
# OMP_NUM_THREADS=1 each).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
mask2iv-make-synthetic runs/embedded_train --episodes 400 --seed 2026 --height 64 --width 64 --frames 16 --fps 4
# VAE in two phases: plain reconstruction, then with object/mask pixels weighted up (see train_vae.py).
mask2iv-train-vae --data runs/embedded_train --output runs/embedded_vae_stage_a --steps 2500 --batch-size 8 \
  --lr 1e-3 --block-out-channels 32 64 64 --salient-boost 0
mask2iv-train-vae --data runs/embedded_train --output runs/embedded_vae --steps 1500 --batch-size 8 \
  --lr 5e-4 --init-from runs/embedded_vae_stage_a
rm -rf runs/embedded_pipeline
mask2iv-train --config training/embedded_stage1_position.yaml --override max_steps=600
mask2iv-train --config training/embedded_stage1_text.yaml --override max_steps=600
mask2iv-train --config training/embedded_stage2.yaml --override max_steps=600
# PT-Gen and stage 2 were then continued to 1200 steps (a warm restart of the cosine schedule):
mask2iv-train --config training/embedded_stage1_position.yaml --resume --override max_steps=1200
mask2iv-train --config training/embedded_stage2.yaml --resume --override max_steps=1200
python -m mask2iv_ros.assets.build --pipeline runs/embedded_pipeline --vae-run runs/embedded_vae --demo-steps 25 \
  --runs runs/embedded_stage1_position runs/embedded_stage1_text runs/embedded_stage2
