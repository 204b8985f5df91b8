#!/usr/bin/env bash
# The end-to-end demo: crop -> embed -> train -> evaluate -> enroll -> recognize.
set -euo pipefail
DATA=${DATA:-../shared/data/five_celeb}
OUT=${OUT:-runs/demo}
BIN=${BIN:-.venv/bin}
cf="$BIN/celebface"

echo "== crop $DATA -> $OUT/crops"
"$cf" crop "$DATA" "$OUT/crops" --preview 16
echo
echo "Demo done. Crops: $OUT/crops  (preview: $OUT/crops/preview.png)"
