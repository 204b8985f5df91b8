#!/usr/bin/env bash
# Train `inception` from scratch on pins105-dev on a CUDA GPU (~5 minutes on one H100),
# then evaluate on the val rows; prints epoch times and accuracy.
#   bash benchmarks/train_inception_gpu.sh            (DATA, OUT, EPOCHS, SIZE, WORKERS override)
# Resumable: rerun with the same OUT continues from the last finished epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/pins105-dev}
OUT=${OUT:-runs/inception_gpu}
EPOCHS=${EPOCHS:-25}
SIZE=${SIZE:-224}
WORKERS=${WORKERS:-$(( $(nproc) > 12 ? 12 : $(nproc) ))}

"$PY" -c "import sys, torch; torch.cuda.is_available() or sys.exit('no CUDA GPU'); \
print('GPU:', torch.cuda.get_device_name(0))"
start=$(date +%s)
"$PY" -m celebface.cli.main train "$DATA" --model inception --out "$OUT" --device cuda \
  --pretrained none --input-size "$SIZE" --epochs "$EPOCHS" --batch-size 128 --lr 1e-3 \
  --lr-decay 0.95 --patience 5 --label-smoothing 0.1 --workers "$WORKERS"
"$PY" -m celebface.cli.main evaluate "$OUT" "$DATA" --split val --out "$OUT/report" \
  --device cuda --batch-size 256
"$PY" - "$OUT" <<'PY'
import json, sys
h = json.load(open(f"{sys.argv[1]}/history.json"))
for r in h["epochs"]:
    print(f"epoch {r['epoch']:3d}  {r['time_s']:6.1f}s  train_loss {r['train_loss']:.3f}  "
          f"val_accuracy {r.get('val_accuracy', float('nan')):.4f}")
t = [r["time_s"] for r in h["epochs"]]
print(f"mean epoch time {sum(t) / len(t):.1f}s; best val_accuracy {h['best']:.4f} "
      f"(epoch {h['best_epoch']})")
m = json.load(open(f"{sys.argv[1]}/report/metrics.json"))
print(f"val accuracy {m['accuracy']:.4f}  top-5 {m['top5_accuracy']:.4f}  "
      f"weighted P/R/F1 {m['precision_weighted']:.3f}/{m['recall_weighted']:.3f}/"
      f"{m['f1_weighted']:.3f}")
PY
echo "total $(( $(date +%s) - start ))s; report in $OUT/report"
