#!/usr/bin/env bash
# Embedded default v2 (issue 14): the v1 UNets of scripts/train_embedded_default.sh, fine-tuned on
# CPU under the released recipe (stage 1 foreground weight 5, stage 2 contact weight as a factor
# on the squared error with nearest downsampling, released concat order), the first-frame actor
# dropped from the stage-1 condition half of the time (stage1.actor_condition_drop_prob) and
# paraphrased prompts (mask2iv-make-synthetic --prompt-variety; the text encoder reads 24 tokens).
#
# The VAE is v1's (its decoder fine-tuned on noisy latents): spatial factor 4, 64x64 frames ->
# 16x16 latents (the model card says why this grid is kept). The three runs go side by side with
# one thread each for MINUTES minutes (time budget: the LR schedule ends with it) and checkpoint
# every 100 steps; run the script again to resume them exactly where they stopped.
#
#   V1=<v1 pipeline folder> MINUTES=50 scripts/train_embedded_v2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/v2}
MINUTES=${MINUTES:-50}
# v1 = the embedded default before this script replaced it (git revision a7e46e4).
V1=${V1:-$OUT/v1_model}
if [ ! -f "$V1/model_index.json" ]; then
  mkdir -p "$V1"
  git archive a7e46e4 mask2iv_ros/assets/default_model | tar -x -C "$V1" --strip-components=3
fi
[ -d "$OUT/train" ] || mask2iv-make-synthetic "$OUT/train" --episodes 400 --seed 2026 --height 64 \
  --width 64 --frames 16 --fps 4 --prompt-variety --quiet

declare -A component=([stage1_position]=trajectory_unet_position [stage1_text]=trajectory_unet_text [stage2]=video_unet)
for part in stage1_position stage1_text stage2; do
  run="$OUT/v2_$part"
  if compgen -G "$run/checkpoints/*" > /dev/null; then
    args=(--config "$run/config.yaml" --resume)
  else
    args=(--config "training/embedded_$part.yaml"
      --override "output_dir=$run" --override "model.init_from=$V1/${component[$part]}"
      --override "model.vae.path=$V1/vae" --override "data.root=$OUT/train"
      --override max_steps=100000 --override "time_budget_minutes=$MINUTES"
      --override time_budget_probe_steps=20 --override optim.batch_size=4
      --override optim.lr=2e-4 --override optim.warmup_steps=0 --override ema.decay=0.999
      --override data.num_workers=0 --override checkpoint_every=100 --override log_every=10
      --override plot_every=100 --override export_at_end=false --override "export_dir=$OUT/pipeline")
    [ "$part" = stage2 ] || args+=(--override stage1.actor_condition_drop_prob=0.5)
  fi
  OMP_NUM_THREADS=1 mask2iv-train "${args[@]}" --no-progress >> "$run.log" 2>&1 &
done
wait
for part in stage1_position stage1_text stage2; do
  mask2iv-train --config "$OUT/v2_$part/config.yaml" --export
done
cp "$V1/vae/config.json" "$V1/vae/diffusion_pytorch_model.safetensors" "$OUT/pipeline/vae/"
# Sampling defaults as v1's (mask2iv-bench-sampling's choice: DDIM 2 steps, guidance 1.0, eta 0),
# so eval_embedded_quality compares both at the same recorded steps.
python - "$V1/model_index.json" "$OUT/pipeline/model_index.json" <<'PY'
import json, sys
v1, v2 = (json.load(open(path)) for path in sys.argv[1:])
v2["config"]["sampling"] = v1["config"]["sampling"]
json.dump(v2, open(sys.argv[2], "w"), indent=2)
PY

# What was shipped (the model card's table): the fine-tuned stage-1 UNets scored lower than v1's,
# so the embedded default is v1 with this run's video_unet. v1's text encoder (16 tokens, what
# its TT-Gen was trained with) stays; stage 2 sees the empty prompt, its text_context_len follows.
rm -rf "$OUT/shipped" && cp -r "$V1" "$OUT/shipped"
rm -rf "$OUT/shipped/training" "$OUT/shipped/MODEL_CARD.md" "$OUT/shipped/model_card.json"
cp "$OUT/pipeline/video_unet/"* "$OUT/shipped/video_unet/"
python - "$OUT/shipped/video_unet/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["text_context_len"] = 16
json.dump(config, open(sys.argv[1], "w"), indent=2)
PY
# then: python benchmarks/eval_embedded_quality.py --pipeline "$V1" "$OUT/pipeline" "$OUT/shipped"
# and mask2iv_ros.assets.build.build_default_model("$OUT/shipped", base_model=<copy of $V1>,
# runs=<the three v2_* runs>, demo_steps=2, card_extra=<continuation, grid, quality>)
