#!/usr/bin/env bash
# `inception` (the reference head) on an ImageNet MobileNetV2 trunk, pins105-dev, one CUDA GPU
# with AMP (mixed precision is on by default on CUDA), then evaluation on the val rows.
# Target: >= 85% top-1 (reference InceptionV3: 80%). Untested: no GPU in the session that
# wrote it.   bash benchmarks/train_mobilenet_gpu.sh   (DATA, OUT, EPOCHS, SIZE, WORKERS override)
# Resumable: rerun with the same OUT continues from the last finished epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/pins105-dev}
OUT=${OUT:-runs/mobilenet_gpu}
EPOCHS=${EPOCHS:-30}
SIZE=${SIZE:-224}
WORKERS=${WORKERS:-$(( $(nproc) > 12 ? 12 : $(nproc) ))}

"$PY" -c "import sys, torch; torch.cuda.is_available() or sys.exit('no CUDA GPU'); \
print('GPU:', torch.cuda.get_device_name(0))"
start=$(date +%s)
"$PY" -m celebface.cli.main train "$DATA" --model inception --backbone mobilenet_v2 \
  --pretrained imagenet --out "$OUT" --device cuda --input-size "$SIZE" --epochs "$EPOCHS" \
  --batch-size 128 --lr 3e-4 --lr-decay 0.95 --patience 5 --label-smoothing 0.1 \
  --workers "$WORKERS"
"$PY" -m celebface.cli.main evaluate "$OUT" "$DATA" --split val --out "$OUT/report" \
  --device cuda --batch-size 256
"$PY" -c "import json, sys; h = json.load(open(sys.argv[1])); \
[print(f\"epoch {r['epoch']:3d} {r['time_s']:6.1f}s val_accuracy {r['val_accuracy']:.4f}\") \
for r in h['epochs']]; print('best', h['best'], 'epoch', h['best_epoch'])" "$OUT/history.json"
echo "total $(( $(date +%s) - start ))s; report in $OUT/report"
