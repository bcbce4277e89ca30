#!/usr/bin/env bash
# Regenerates docs/results (Table 1 / Table 2 at small scale) on CPU, about 1 hour on 2 idle cores:
# every stage-2 variant trained 200 steps (two streams side by side, one torch thread each,
# scripts/train_table_variants.sh), then evaluated on 8 held-out synthetic clips with 20 DDIM
# steps per stage by mask2iv-tables --reuse.
# The shared stage 1 (the PT-Gen whose trajectories feed every Table 1 row, "the same pseudo
# control signals" of the paper) is the embedded default's; its VAE and text encoder are the
# ones every variant trains with. The data (400 episodes, 64x64) is generated on the first run.
# Extra arguments go to mask2iv-tables (e.g. --max-clips 16).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/tables}
DEFAULT=mask2iv_ros/assets/default_model
mkdir -p "$OUT/pipelines"
[ -f "$OUT/pipelines/stage1/model_index.json" ] || cp -r "$DEFAULT" "$OUT/pipelines/stage1"
python - <<'PY'  # the data, once, as mask2iv-train generates it (before two streams race for it)
from types import SimpleNamespace
from mask2iv_ros.training.config import load_config
from mask2iv_ros.training.dataset import ensure_synthetic_data
config = load_config("training/embedded_stage2.yaml", ["data.root=runs/embedded_train"])
ensure_synthetic_data(config, SimpleNamespace(is_main_process=True, wait_for_everyone=lambda: None))
PY
scripts/train_table_variants.sh "$OUT" 200 no_control actor_concat actor_controlnet > "$OUT/stream_a.log" 2>&1 &
scripts/train_table_variants.sh "$OUT" 200 actor_object_concat actor_object_concat_de mask2iv > "$OUT/stream_b.log" 2>&1 &
wait %1 && wait %2
# one torch thread: on a busy machine a 2-thread OpenMP team thrashes (20x slower seen here)
OMP_NUM_THREADS=1 mask2iv-tables --data runs/embedded_train --out "$OUT" --steps 200 --reuse \
  --stage1-config training/embedded_stage1_position.yaml --stage2-config training/embedded_stage2.yaml \
  $(python -c "from mask2iv_ros.eval.tables import EMBEDDED_OVERRIDES as o; print(' '.join('--override ' + x for x in o))") \
  --max-clips 8 --sample-steps 20 "$@"
mkdir -p docs/results
cp "$OUT"/table1.md "$OUT"/table2.md "$OUT"/table1.png "$OUT"/table2.png \
  "$OUT"/stage1_trajectories.md "$OUT"/results.json docs/results/
