#!/usr/bin/env bash
# Full-size multi-output benchmark for one CUDA GPU (budget about 5 minutes on an H100):
# all 105 pins105-dev identities composited at 256 px (train rows -> training, val rows ->
# evaluation), InceptionV3 multi-output from scratch at 224 px with AMP, early stopping, then
# evaluation and MTCNN on the same val composites. Results: benchmarks/results/multi_output_gpu.*
# Usage: bash benchmarks/multi_output_gpu.sh [extra flags for benchmarks/multi_output.py]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
THREADS=$(nproc)
exec "$PY" benchmarks/multi_output.py \
  --name multi_output_gpu \
  --identities 105 --per-identity 0 --copies 1 \
  --size 256 --input-size 224 \
  --epochs 18 --patience 4 --batch-size 128 --lr 1e-3 \
  --workers "$THREADS" --device cuda "$@"
