#!/usr/bin/env bash
# Embedded default, stage-1 fine-tune for the recorded sampler (issue 14): the shipped PT-Gen and
# TT-Gen UNets continued only at the timesteps the embedded default samples at (trailing DDIM 2:
# t = 999 and 499, +- JITTER; diffusion.train_timesteps), so every step of a CPU budget trains
# what inference uses. Released stage-1 recipe (foreground weight 5), the first-frame actor
# dropped from the condition for a share DROP of the samples, paraphrased prompts, the text
# encoder reading 24 tokens. The two runs go side by side with one thread each for MINUTES
# minutes (the LR schedule ends with the budget) and checkpoint every 100 steps; run the script
# again to resume them exactly where they stopped.
#
#   MINUTES=50 scripts/train_embedded_v4.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/v4}
MINUTES=${MINUTES:-50}
LR=${LR:-1e-4}
JITTER=${JITTER:-25}
DROP=${DROP:-0.2}
# the model these runs continue: the embedded default before them (git revision of this script's
# first run; override with BASE=<pipeline folder>)
BASE=${BASE:-$OUT/base}
if [ ! -f "$BASE/model_index.json" ]; then
  mkdir -p "$BASE"
  git archive "${BASE_REV:-HEAD}" mask2iv_ros/assets/default_model | tar -x -C "$BASE" --strip-components=3
fi
DATA=${DATA:-$OUT/train}
[ -d "$DATA" ] || mask2iv-make-synthetic "$DATA" --episodes 400 --seed 2026 --height 64 \
  --width 64 --frames 16 --fps 4 --prompt-variety --quiet

declare -A component=([stage1_position]=trajectory_unet_position [stage1_text]=trajectory_unet_text)
for part in stage1_position stage1_text; do
  run="$OUT/v4_$part"
  if compgen -G "$run/checkpoints/*" > /dev/null; then
    args=(--config "$run/config.yaml" --resume)
  else
    args=(--config "training/embedded_$part.yaml"
      --override "output_dir=$run" --override "model.init_from=$BASE/${component[$part]}"
      --override "model.vae.path=$BASE/vae" --override model.text_encoder.type=folder
      --override "model.text_encoder.path=$BASE/text_encoder" --override "data.root=$DATA"
      --override "diffusion.train_timesteps=[999,499]" --override "diffusion.train_timestep_jitter=$JITTER"
      --override "stage1.actor_condition_drop_prob=$DROP"
      --override max_steps=100000 --override "time_budget_minutes=$MINUTES"
      --override time_budget_probe_steps=20 --override optim.batch_size=4
      --override "optim.lr=$LR" --override optim.warmup_steps=0 --override ema.decay=0.99
      --override data.num_workers=0 --override checkpoint_every=100 --override log_every=10
      --override plot_every=100 --override export_at_end=false --override "export_dir=$OUT/pipeline")
  fi
  OMP_NUM_THREADS=1 mask2iv-train "${args[@]}" --no-progress >> "$run.log" 2>&1 &
done
wait
rm -rf "$OUT/pipeline" && cp -r "$BASE" "$OUT/pipeline"
rm -rf "$OUT/pipeline/training" "$OUT/pipeline/MODEL_CARD.md" "$OUT/pipeline/model_card.json"
for part in stage1_position stage1_text; do
  mask2iv-train --config "$OUT/v4_$part/config.yaml" --export
done
echo "exported $OUT/pipeline; compare: python benchmarks/eval_embedded_quality.py --pipeline $BASE $OUT/pipeline"
