#!/usr/bin/env bash
# face-resnet fine-tuned END TO END (--freeze-levels 0: no trunk cache, flip/crop/colour
# augmentation every step) on pins105-dev, one CUDA GPU with AMP, CosFace head; then the
# held-out study is the CPU benchmark's (benchmarks/face_resnet.py). Target >= 98.8% top-1.
# Untested: no GPU in the session that wrote it.
#   bash benchmarks/face_resnet_gpu.sh   (DATA, OUT, EPOCHS, FREEZE, HEAD, WORKERS override)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/pins105-dev}
OUT=${OUT:-runs/face_resnet_gpu}
EPOCHS=${EPOCHS:-30}
FREEZE=${FREEZE:-0}
HEAD=${HEAD:-cosface}
WORKERS=${WORKERS:-$(( $(nproc) > 12 ? 12 : $(nproc) ))}

"$PY" -c "import sys, torch; torch.cuda.is_available() or sys.exit('no CUDA GPU'); \
print('GPU:', torch.cuda.get_device_name(0))"
start=$(date +%s)
"$PY" -m celebface.cli.main train "$DATA" --model face-resnet --freeze-levels "$FREEZE" \
  --head "$HEAD" --out "$OUT" --device cuda --epochs "$EPOCHS" --batch-size 128 \
  --lr 1e-3 --patience 5 --tta flip --workers "$WORKERS"
"$PY" -m celebface.cli.main evaluate "$OUT" "$DATA" --split val --out "$OUT/report" \
  --device cuda --batch-size 256
echo "total $(( $(date +%s) - start ))s; report in $OUT/report"
