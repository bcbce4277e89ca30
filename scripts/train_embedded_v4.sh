#!/usr/bin/env bash
# Embedded default, stage-1 fine-tune for the recorded sampler (issue 14): the shipped PT-Gen and
# TT-Gen UNets continued only at the timesteps the embedded default samples at (trailing DDIM 2:
# t = 999 and 499, +- JITTER; diffusion.train_timesteps), so every step of a CPU budget trains
# what inference uses. Released stage-1 recipe (foreground weight 5), the first-frame actor
# dropped from the condition for a share DROP of the samples, paraphrased prompts, the text
# encoder reading 24 tokens. The two runs go side by side with one thread each for MINUTES
# minutes (the LR schedule ends with the budget) and checkpoint every 100 steps; run the script
# again to resume them exactly where they stopped. Run nothing else on the machine during their
# first minute: the time-budget probe (20 steps) sizes the cosine schedule from the speed it sees
# (a fresh-clone `make test` beside it once cut a 40-minute run to 615 steps, about 22 minutes).
#
# Then the palette snap weights of the new model and of a copy of the previous one are calibrated
# on the training seed (python -m mask2iv_ros.eval.calibrate_snap), both are evaluated on the
# unseen seed 7777 (benchmarks/eval_embedded_quality.py) and SHIP says what is built into the
# embedded default: "stage1" (the new stage-1 UNets and their weights) or "snap" (the previous
# model with its calibrated weights only); SHIP=none stops after the evaluation.
#
#   MINUTES=50 SHIP=stage1 scripts/train_embedded_v4.sh          # step 6 of the model card
#   OUT=runs/v5 RUN=v5 STEP="v2, fourth step" PREVIOUS="steps 1-6" BASE_REV=d661027 \
#     MINUTES=35 scripts/train_embedded_v4.sh                      # step 7
#   OUT=runs/v6 RUN=v6 STEP="v2, fifth step" PREVIOUS="steps 1-7" BASE_REV=b1f87cc \
#     EPISODES=2000 DATA_SEED=2027 MINUTES=65 SHIP=none scripts/train_embedded_v4.sh   # step 8
#   (step 8's card and build were then run by hand: the script's last lines for SHIP=stage1, with a
#   longer --data text; its episodes were generated into runs/d2027/train and passed as DATA)
#   OUT=runs/v8 RUN=v8 STEP="v2, sixth step" PREVIOUS="steps 1-8" INIT=runs/v7/pipeline \
#     EPISODES=2000 DATA_SEED=2029 MINUTES=60 SHIP=none scripts/train_embedded_v4.sh      # step 9
#   (runs/v7/pipeline: RUN=v7 OUT=runs/v7 BASE_REV=<step 8> EPISODES=2000 DATA_SEED=2028 MINUTES=35,
#   step 8 continued and not shipped on its own; step 9's card and build were run by hand as step 8's,
#   the build given the v7 runs too)
#   OUT=runs/v10 RUN=v10 STEP="v2, seventh step" PREVIOUS="steps 1-9" INIT=runs/v9/pipeline \
#     EPISODES=2000 DATA_SEED=2031 MINUTES=90 SHIP=none scripts/train_embedded_v4.sh     # step 10
#   then, the numbers read, the same line with SHIP=stage1 (training and evaluations are found done),
#   INIT_RUNS="runs/v9/v9_stage1_position runs/v9/v9_stage1_text" and DATA_TEXT="the 2000 synthetic
#   training episodes of seed 2031 (fresh again), starting from the UNets of ..." (the card's step 10)
#   (runs/v9/pipeline: RUN=v9 OUT=runs/v9 EPISODES=2000 DATA_SEED=2030 MINUTES=40 from step 9)
#   OUT=runs/v12 RUN=v12 STEP="v2, eighth step" PREVIOUS="steps 1-10" INIT=runs/v11/pipeline_lastframe1 \
#     EPISODES=2000 DATA_SEED=2033 MINUTES=85 TIMESTEPS=999,666,332 STEPS=3 SHIP=none \
#     scripts/train_embedded_v4.sh         # the stage-1 UNets fine-tuned at DDIM 3's timesteps,
#   sampled with DDIM 3 and the video UNet kept at its DDIM 2 (VIDEO_STEPS,
#   config.sampling.video_num_inference_steps): lower than step 10 on both seeds. The same UNets
#   with STEPS=2 (the folder's recorded steps set back to 2, its calibration and evaluations
#   removed, the script run again) were ahead and shipped as step 11, with SHIP=stage1,
#   INIT_RUNS=runs/v11/v11_lastframe1_stage1_position (runs/v11/pipeline_lastframe1: step 10 with
#   PT-Gen continued 35 min on 2000 episodes of seed 2032, stage1.last_frame_weight 1) and DATA_TEXT
#   OUT=runs/v16 RUN=gpu13 STEP="v2, tenth step" PREVIOUS="steps 1-12" PARTS=stage1_position \
#     EXPORTED=runs/gpu13/export_pt_lr1e-4 VOTES=3 VOTE_KERNELS="1 3" SHIP=stage1 DATA_TEXT=... \
#     CARD_ARGS='--script scripts/train_embedded_gpu_step.sh --hardware "one H200 GPU ..."' \
#     scripts/train_embedded_v4.sh   # step 13: the GPU lease's lr-1e-4 PT-Gen run (train_embedded_gpu_step.sh,
#   RUNS=runs/gpu13; its tar unpacked there and its run folder copied to runs/v16/gpu13_stage1_position),
#   nothing trained here, 3 trajectory votes recorded in it and in the previous UNets' copy
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/v4}
MINUTES=${MINUTES:-50}
LR=${LR:-1e-4}
JITTER=${JITTER:-25}
# the timesteps trained (+- JITTER) and the DDIM steps recorded in the new pipeline folder: trailing
# DDIM 2 samples t = 999, 499; DDIM 3 samples 999, 666, 332 (TIMESTEPS=999,666,332 STEPS=3)
TIMESTEPS=${TIMESTEPS:-999,499}
STEPS=${STEPS:-2}
# the video UNet is not retrained here: it keeps the steps it was fine-tuned for
VIDEO_STEPS=${VIDEO_STEPS:-2}
# the guidance scale the new folder and the previous model's copy record (empty: BASE's); step 12: 1.5
GUIDANCE=${GUIDANCE:-}
# majority-vote windows the snap calibration tries (empty: each folder's own), e.g. "1 3"
VOTE_KERNELS=${VOTE_KERNELS:-}
# the trajectory votes the new folder and the previous model's copy record (empty: BASE's); step 13: 3
VOTES=${VOTES:-}
# UNets trained elsewhere (scripts/train_embedded_gpu_step.sh): a folder holding exported UNet
# folders (e.g. runs/gpu13/export_pt_lr1e-4 with trajectory_unet_position/); then nothing is
# trained here, the new folder is BASE with those UNets, and $OUT/${RUN}_<part> must hold the
# run's config.yaml and metrics.csv (the GPU script's tar) for the card and the build.
EXPORTED=${EXPORTED:-}
# further arguments of scripts/embedded_card_v4.py, e.g. "--script scripts/train_embedded_gpu_step.sh"
CARD_ARGS=${CARD_ARGS:-}
DROP=${DROP:-0.2}
SHIP=${SHIP:-stage1}
# run names (the model card keys runs by name: a later continuation needs its own, e.g. RUN=v5)
RUN=${RUN:-v4}
STEP=${STEP:-"v2, third step"}
PREVIOUS=${PREVIOUS:-"steps 1-5"}
# the model these runs continue: the embedded default at git revision BASE_REV (default HEAD),
# or BASE=<pipeline folder>
BASE=${BASE:-$OUT/base}
if [ ! -f "$BASE/model_index.json" ]; then
  mkdir -p "$BASE"
  git archive "${BASE_REV:-HEAD}" mask2iv_ros/assets/default_model | tar -x -C "$BASE" --strip-components=3
fi
# the stage-1 UNets the runs start from: BASE's, or INIT=<pipeline folder> (e.g. an unshipped
# continuation: step 9 started from runs/v7/pipeline); BASE stays what they are compared with
INIT=${INIT:-$BASE}
# training episodes: generated unless DATA exists (steps 6-7: 400 of seed 2026; step 8: 2000 of
# seed 2027, fresh episodes, since steps 6-7 gained on their training seed but little on unseen ones)
EPISODES=${EPISODES:-400}
DATA_SEED=${DATA_SEED:-2026}
DATA=${DATA:-$OUT/train}
# how the model card says what the runs trained on (and, with INIT, what they started from)
DATA_TEXT=${DATA_TEXT:-"the $EPISODES synthetic training episodes of seed $DATA_SEED"}
INIT_RUNS=${INIT_RUNS:-}
[ -n "$EXPORTED" ] || [ -d "$DATA" ] || mask2iv-make-synthetic "$DATA" --episodes "$EPISODES" --seed "$DATA_SEED" \
  --height 64 --width 64 --frames 16 --fps 4 --prompt-variety --quiet

declare -A component=([stage1_position]=trajectory_unet_position [stage1_text]=trajectory_unet_text)
# the stage-1 runs to train (PARTS=stage1_position: PT-Gen only; TT-Gen stays BASE's)
PARTS=${PARTS:-"stage1_position stage1_text"}
TRAINED_HERE=$PARTS
[ -z "$EXPORTED" ] || TRAINED_HERE=""  # UNets trained elsewhere: none here
for part in $TRAINED_HERE; do
  run="$OUT/${RUN}_$part"
  if compgen -G "$run/checkpoints/*" > /dev/null; then
    args=(--config "$run/config.yaml" --resume)
  else
    args=(--config "training/embedded_$part.yaml"
      --override "output_dir=$run" --override "model.init_from=$INIT/${component[$part]}"
      --override "model.vae.path=$BASE/vae" --override model.text_encoder.type=folder
      --override "model.text_encoder.path=$BASE/text_encoder" --override "data.root=$DATA"
      --override "diffusion.train_timesteps=[$TIMESTEPS]" --override "diffusion.train_timestep_jitter=$JITTER"
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
# record_sampling MODEL_INDEX [STEPS VIDEO_STEPS]: GUIDANCE and VOTES (where set) into a folder's
# config.sampling, and the DDIM steps where given (the video stage's own when they differ)
record_sampling() {
  python - "$1" "$GUIDANCE" "$VOTES" "${2:-}" "${3:-}" <<'PY'
import json, sys
path, guidance, votes, steps, video_steps = sys.argv[1:]
index = json.load(open(path))
sampling = index["config"]["sampling"]
if guidance:
    sampling["guidance_scale"] = float(guidance)
if votes:
    sampling["trajectory_votes"] = int(votes)
if steps:
    sampling["num_inference_steps"] = int(steps)
    sampling.pop("video_num_inference_steps", None)
    if int(video_steps) != int(steps):
        sampling["video_num_inference_steps"] = int(video_steps)
open(path, "w").write(json.dumps(index, indent=2) + "\n")
PY
}
if [ ! -f "$OUT/pipeline/model_index.json" ]; then
  rm -rf "$OUT/pipeline.tmp" && cp -r "$BASE" "$OUT/pipeline.tmp"
  rm -rf "$OUT/pipeline.tmp/training" "$OUT/pipeline.tmp/MODEL_CARD.md" "$OUT/pipeline.tmp/model_card.json"
  for part in $PARTS; do
    if [ -n "$EXPORTED" ]; then
      rm -rf "$OUT/pipeline.tmp/${component[$part]}"
      cp -r "$EXPORTED/${component[$part]}" "$OUT/pipeline.tmp/"
    else
      mask2iv-train --config "$OUT/${RUN}_$part/config.yaml" --export --override "export_dir=$OUT/pipeline.tmp"
    fi
  done
  # the export writes the released DDIM's last step (set_alpha_to_one false); keep the previous
  # model's sampler so that the comparison is of the UNets alone (and it scored slightly higher)
  cp "$BASE/scheduler/scheduler_config.json" "$OUT/pipeline.tmp/scheduler/"
  record_sampling "$OUT/pipeline.tmp/model_index.json" "$STEPS" "$VIDEO_STEPS"
  mv "$OUT/pipeline.tmp" "$OUT/pipeline"
fi
if [ ! -f "$OUT/previous/model_index.json" ]; then
  rm -rf "$OUT/previous" && cp -r "$BASE" "$OUT/previous"
  rm -rf "$OUT/previous/training" "$OUT/previous/MODEL_CARD.md" "$OUT/previous/model_card.json"
  # the previous UNets with the same recorded guidance and votes: previous vs pipeline compares the UNets
  record_sampling "$OUT/previous/model_index.json"
fi
# snap weights on the training seed, both folders side by side
for folder in previous pipeline; do
  [ -f "$OUT/calibration_$folder.json" ] || OMP_NUM_THREADS=1 python -m mask2iv_ros.eval.calibrate_snap \
    "$OUT/$folder" --seed 2026 --episodes 32 --object-weights 1 2 4 8 12 16 20 24 32 \
    ${VOTE_KERNELS:+--vote-kernels $VOTE_KERNELS} --write \
    --json "$OUT/calibration_$folder.json" > "$OUT/calibration_$folder.md" 2> "$OUT/calibration_$folder.log" &
done
wait
# each evaluation writes its JSON last, so a run of the script after SHIP=none (e.g. SHIP=stage1 once
# the numbers are read) goes straight to the card and the build
# the VAE row snaps with the new model's calibrated weights: what sampling the true latents would score
snap=$(python -c "import json, sys; p = json.load(open(sys.argv[1]))['config']['palette']; w = p['snap_weights']; print(w[1], w[2], '--vae-vote-kernel', p.get('vote_kernel', 1))" \
  "$OUT/pipeline/model_index.json")
[ -f "$OUT/eval.json" ] || OMP_NUM_THREADS=1 python benchmarks/eval_embedded_quality.py --vae "$BASE/vae" \
  --vae-snap-weights $snap --pipeline "$BASE" "$OUT/previous" "$OUT/pipeline" --json "$OUT/eval.json" > "$OUT/eval.md" &
[ -f "$OUT/eval_paraphrased.json" ] || OMP_NUM_THREADS=1 python benchmarks/eval_embedded_quality.py \
  --pipeline "$BASE" "$OUT/previous" "$OUT/pipeline" --prompt-variety \
  --json "$OUT/eval_paraphrased.json" > "$OUT/eval_paraphrased.md" &
wait
# 24 episodes are few (17 TT cases with a direction): the same on other unseen episodes
[ -f "$OUT/eval_9001.json" ] || OMP_NUM_THREADS=1 python benchmarks/eval_embedded_quality.py \
  --pipeline "$OUT/previous" "$OUT/pipeline" --seed 9001 --json "$OUT/eval_9001.json" > "$OUT/eval_9001.md"
[ "$SHIP" != none ] || exit 0
eval "card_args=($CARD_ARGS)"  # shell words: --hardware "one H200 GPU, bf16 autocast"
python scripts/embedded_card_v4.py "$OUT" --ship "$SHIP" --run "$RUN" --step "$STEP" \
  --previous "$PREVIOUS" --data "$DATA_TEXT" "${card_args[@]}" > "$OUT/card.json"
if [ "$SHIP" = stage1 ]; then
  # INIT_RUNS (e.g. "runs/v9/v9_stage1_position runs/v9/v9_stage1_text"): the runs INIT came from,
  # so the model's training/ folder and card keep every run its UNets went through
  python -m mask2iv_ros.assets.build --pipeline "$OUT/pipeline" --base-model "$BASE" \
    --runs $INIT_RUNS $(for part in $PARTS; do echo "$OUT/${RUN}_$part"; done) --demo-steps "$STEPS" --demo-video-steps "$VIDEO_STEPS" \
    --card-json "$OUT/card.json"
else
  python -m mask2iv_ros.assets.build --pipeline "$OUT/previous" --base-model "$BASE" \
    --demo-steps 2 --card-json "$OUT/card.json"
fi
