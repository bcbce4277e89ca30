#!/usr/bin/env bash
# Embedded default, a GPU continuation (issue 14, step 12): the shipped PT-Gen UNet (two learning
# rates) and stage-2 UNet continued side by side on one CUDA GPU for MINUTES minutes, at batch 32
# on fresh synthetic episodes, under the recipe of the CPU steps (scripts/train_embedded_v4.sh):
# stage-1 foreground weight 5, the first-frame actor dropped for 20 % of the samples, only the
# timesteps the recorded sampler uses (+- 25). TT-Gen is not trained here: the MiniLM weights
# (88 MB) do not fit the transfer to a lent GPU machine, and PT-Gen and stage 2 read only the empty
# prompt, whose token states travel precomputed (python -m mask2iv_ros.models.text_embeddings).
#
#   scripts/train_embedded_gpu_step.sh RESULTS_DIR
#   DATA_SEED=2060 RUNS=runs/gpu13 MINUTES=7.2 TRAIN="pt_lr3e-4 pt_lr1e-4 pt_lr2e-4" \
#     scripts/train_embedded_gpu_step.sh RESULTS_DIR        # step 13: PT-Gen alone, 3 learning rates
#   env: PYTHON (python3), RUNS (runs/gpu12), MINUTES (6), SHARDS (16) x PER_SHARD (350) episodes of
#        seeds DATA_SEED (2040) + k, EMBEDDINGS (gpu_inputs/empty_prompt.safetensors), BATCH (32),
#        PROBE (200), TRAIN (the runs, below)
#
# Each run is exported when its budget ends (export_at_end, the EMA weights); a run still going a
# minute and a half past the budget is stopped and exported from its newest checkpoint. RESULTS_DIR
# gets one tar per run (its config, metrics, loss plot and exported UNet folder) and the logs; on
# this machine they are then evaluated like any step: train_embedded_v4.sh with EXPORTED= the run's
# export folder and the run's folder as $OUT/${RUN}_stage1_position (its header has step 13's line).
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=$(mkdir -p "${1:?usage: train_embedded_gpu_step.sh RESULTS_DIR}" && cd "$1" && pwd)
PY=${PYTHON:-python3}
RUNS=${RUNS:-runs/gpu12}
MINUTES=${MINUTES:-6}
SHARDS=${SHARDS:-16}
PER_SHARD=${PER_SHARD:-350}
DATA_SEED=${DATA_SEED:-2040}
BATCH=${BATCH:-32}
PROBE=${PROBE:-200}  # steps timed before the budget sizes the cosine schedule
EMBEDDINGS=${EMBEDDINGS:-gpu_inputs/empty_prompt.safetensors}
BASE=mask2iv_ros/assets/default_model
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$RUNS"

. scripts/entry.sh  # entry MODULE FUNCTION ARGS...

echo "== $(date +%T) $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1)"
"$PY" -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'diffusers', diffusers.__version__)" || exit 1
[ -f "$EMBEDDINGS" ] || { echo "missing $EMBEDDINGS"; exit 1; }

echo "== $(date +%T) data: $SHARDS x $PER_SHARD episodes, seeds $DATA_SEED.."
for k in $(seq 0 $((SHARDS - 1))); do
  [ -d "$RUNS/train/shard$k" ] || entry mask2iv_ros.data.cli make_synthetic_main "$RUNS/train/shard$k" \
    --episodes "$PER_SHARD" --seed $((DATA_SEED + k)) --height 64 --width 64 --frames 16 --fps 4 \
    --prompt-variety --quiet > /dev/null &
done
wait
du -sh "$RUNS/train"

common=(--no-progress --override "data.root=$RUNS/train" --override "model.vae.path=$BASE/vae"
        --override model.text_encoder.type=precomputed --override "model.text_encoder.path=$EMBEDDINGS"
        --override max_steps=1000000 --override "time_budget_minutes=$MINUTES"
        --override "time_budget_probe_steps=$PROBE" --override "optim.batch_size=$BATCH"
        --override optim.warmup_steps=100 --override ema.decay=0.999 --override data.num_workers=4
        --override diffusion.train_timestep_jitter=25 --override log_every=25
        --override checkpoint_every=500 --override plot_every=500 --override export_at_end=true)
# TRAIN names the runs: pt_lr<LR> continues the shipped PT-Gen UNet, s2_lr<LR> the stage-2 UNet, at
# learning rate LR (step 12 trained all three defaults; later steps give the GPU to PT-Gen alone).
TRAIN=${TRAIN:-pt_lr1e-4 pt_lr3e-4 s2_lr1e-4}
declare -A component=([stage1_position]=trajectory_unet_position [stage2]=video_unet)
pt="diffusion.train_timesteps=[999,666,332] stage1.actor_condition_drop_prob=0.2"  # step 11's recipe
declare -A part extra
for name in $TRAIN; do
  case $name in
    pt_lr*) part[$name]=stage1_position; extra[$name]="optim.lr=${name#pt_lr} $pt" ;;
    s2_lr*) part[$name]=stage2; extra[$name]="optim.lr=${name#s2_lr} diffusion.train_timesteps=[999,499]" ;;
    *) echo "TRAIN: '$name' is neither pt_lr<LR> nor s2_lr<LR>"; exit 2 ;;
  esac
done
echo "== $(date +%T) training ${!part[*]} for $MINUTES minutes"
declare -A pid
failed=0
for name in "${!part[@]}"; do
  p=${part[$name]}
  args=(--config "training/embedded_$p.yaml" "${common[@]}" --override "output_dir=$RUNS/$name"
        --override "export_dir=$RUNS/export_$name" --override "model.init_from=$BASE/${component[$p]}")
  for o in ${extra[$name]}; do args+=(--override "$o"); done
  timeout --signal=TERM "$(awk -v m="$MINUTES" 'BEGIN { print int(60 * m + 90) }')" \
    "$PY" -m mask2iv_ros.training.train "${args[@]}" > "$RUNS/$name.log" 2>&1 &
  pid[$name]=$!
done
sleep 60
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
for name in "${!part[@]}"; do echo "-- $name after 60 s:"; tail -n 2 "$RUNS/$name.log"; done
for name in "${!part[@]}"; do
  wait "${pid[$name]}"; status=$?
  p=${part[$name]}
  echo "== $(date +%T) $name exited $status"
  if [ ! -f "$RUNS/export_$name/${component[$p]}/config.json" ] && [ -f "$RUNS/$name/config.yaml" ]; then
    "$PY" -m mask2iv_ros.training.train --config "$RUNS/$name/config.yaml" --export >> "$RUNS/$name.log" 2>&1
  fi
  tail -n 4 "$RUNS/$name.log"
  [ -f "$RUNS/export_$name/${component[$p]}/config.json" ] || { echo "$name: no exported UNet"; failed=1; }
  (cd "$RUNS" && tar -cf "$RESULTS/$name.tar" --exclude=checkpoints "$name" "$name.log" \
     "export_$name/${component[$p]}" 2>&1) || echo "tar $name failed"
done
ls -la "$RESULTS"
echo "== $(date +%T) done"
exit $failed
