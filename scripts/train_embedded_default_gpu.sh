#!/usr/bin/env bash
# Trains the embedded default model (VAE, PT-Gen, TT-Gen, stage 2) on one CUDA GPU within a
# wall-clock budget, with the project's own trainers: what produced the committed model.
#
#   scripts/train_embedded_default_gpu.sh [RUNS_DIR]      (default: runs)
#   env: PYTHON (python3), SHARDS (10 x 400 episodes), VAE_MINUTES (2), UNET_MINUTES (5),
#        VAE_BATCH (64), UNET_OVERRIDES (extra KEY=VALUE overrides, e.g. for a CPU smoke run)
#
# Data: SHARDS x 400 synthetic episodes (64x64, 16 frames at 4 fps); shard k uses seed 2026+k,
# so shard 0 is the 400-episode set of the CPU recipe (scripts/train_embedded_default.sh).
# The three UNets train side by side on the one GPU (each with its own DataLoader workers) and
# are exported into RUNS_DIR/embedded_pipeline one after the other at the end. The VAE must come
# first: the UNets learn its latents. Then build the assets with
#   python -m mask2iv_ros.assets.build --pipeline RUNS_DIR/embedded_pipeline --vae-run RUNS_DIR/embedded_vae ...
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs}
PY=${PYTHON:-python3}
SHARDS=${SHARDS:-10}
VAE_MINUTES=${VAE_MINUTES:-2}
UNET_MINUTES=${UNET_MINUTES:-5}
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$RUNS"

. scripts/entry.sh  # entry MODULE FUNCTION ARGS...

echo "== data: $SHARDS x 400 episodes ($(date +%T))"
for k in $(seq 0 $((SHARDS - 1))); do
  [ -d "$RUNS/embedded_train/shard$k" ] || entry mask2iv_ros.data.cli make_synthetic_main \
    "$RUNS/embedded_train/shard$k" --episodes 400 --seed $((2026 + k)) --height 64 --width 64 \
    --frames 16 --fps 4 --quiet &
done
wait

echo "== vae ($(date +%T))"
entry mask2iv_ros.training.train_vae main --data "$RUNS/embedded_train" --output "$RUNS/embedded_vae" \
  --steps 100000 --batch-size "${VAE_BATCH:-64}" --lr 1e-3 --block-out-channels 48 96 96 --num-workers 8 \
  --time-budget-minutes "$VAE_MINUTES" --no-progress || { echo "vae FAILED"; exit 1; }

echo "== unets ($(date +%T))"
common=(--no-progress --override "time_budget_minutes=$UNET_MINUTES" --override max_steps=100000
        --override optim.batch_size=32 --override optim.lr=8e-4 --override optim.warmup_steps=200
        --override data.num_workers=5 --override ema.decay=0.999 --override log_every=25
        --override checkpoint_every=2000 --override plot_every=500 --override export_at_end=false
        --override "data.root=$RUNS/embedded_train" --override "model.vae.path=$RUNS/embedded_vae"
        --override "export_dir=$RUNS/embedded_pipeline")
for extra in ${UNET_OVERRIDES:-}; do common+=(--override "$extra"); done
for part in stage1_position stage1_text stage2; do
  entry mask2iv_ros.training.train main --config "training/embedded_$part.yaml" "${common[@]}" \
    --override "output_dir=$RUNS/embedded_$part" > "$RUNS/embedded_$part.log" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
tail -n 3 "$RUNS"/embedded_stage*.log

echo "== export ($(date +%T))"
for part in stage1_position stage1_text stage2; do
  entry mask2iv_ros.training.train main --config "$RUNS/embedded_$part/config.yaml" --export || status=1
done
echo "== done ($(date +%T)), status $status"
exit $status
