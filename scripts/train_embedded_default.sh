#!/usr/bin/env bash
# Rebuilds the embedded default model (mask2iv_ros/assets/default_model) and the demo bag with the
# project's own commands: what produced the committed model.
#
# 1. scripts/train_embedded_default_gpu.sh on one GPU (an H100 was used): 4000 synthetic
#    episodes, the VAE (2 min) and the three UNets side by side (5 min each, batch 32).
#    It runs on CPU too, only far slower (set VAE_MINUTES / UNET_MINUTES accordingly).
# 2. Each UNet continued on 2 CPU cores for 45 minutes (batch 4, lr 2e-4, the three side by
#    side with one thread each) from the exported weights (model.init_from = the UNet folder),
#    on the 400 episodes of shard 0.
# 3. The VAE decoder fine-tuned on CPU for 12 minutes on latents perturbed by noise (std up to
#    0.5 in the UNets' units), encoder frozen so the UNets' latents stay valid: sampled latents
#    are slightly off, and the GPU VAE's decoder turned that into speckled masks.
# 4. Export into one pipeline folder, put the fine-tuned decoder in, build the assets and demo bag.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
GPU_RUNS=${GPU_RUNS:-runs/gpu}
[ -f "$GPU_RUNS/embedded_pipeline/video_unet/model.safetensors" ] || PYTHON=python scripts/train_embedded_default_gpu.sh "$GPU_RUNS"
declare -A component=([stage1_position]=trajectory_unet_position [stage1_text]=trajectory_unet_text [stage2]=video_unet)
for part in stage1_position stage1_text stage2; do
  OMP_NUM_THREADS=1 mask2iv-train --config "$GPU_RUNS/embedded_$part/config.yaml" --no-progress \
    --override "output_dir=runs/ft_$part" --override "model.init_from=$GPU_RUNS/embedded_pipeline/${component[$part]}" \
    --override "model.vae.path=$GPU_RUNS/embedded_vae" --override "data.root=$GPU_RUNS/embedded_train/shard0" \
    --override max_steps=100000 --override time_budget_minutes=45 --override time_budget_probe_steps=10 \
    --override optim.batch_size=4 --override optim.lr=2e-4 --override optim.warmup_steps=0 \
    --override data.num_workers=0 --override checkpoint_every=200 --override log_every=10 \
    --override plot_every=100 --override export_at_end=false --override export_dir=runs/ft_pipeline \
    > "runs/ft_$part.log" 2>&1 &
done
wait
mask2iv-train-vae --data "$GPU_RUNS/embedded_train/shard0" --output runs/embedded_vae_dec --init-from "$GPU_RUNS/embedded_vae" \
  --decoder-only --latent-noise 0.5 --steps 100000 --time-budget-minutes 12 --batch-size 16 --lr 2e-4 \
  --block-out-channels 48 96 96 --no-progress
for part in stage1_position stage1_text stage2; do
  mask2iv-train --config "runs/ft_$part/config.yaml" --export
done
cp runs/embedded_vae_dec/config.json runs/embedded_vae_dec/diffusion_pytorch_model.safetensors runs/ft_pipeline/vae/
python -m mask2iv_ros.assets.build --pipeline runs/ft_pipeline --vae-run runs/embedded_vae_dec --vae-base-run "$GPU_RUNS/embedded_vae" --demo-steps 25 \
  --runs "$GPU_RUNS/embedded_stage1_position" "$GPU_RUNS/embedded_stage1_text" "$GPU_RUNS/embedded_stage2" \
  runs/ft_stage1_position runs/ft_stage1_text runs/ft_stage2
