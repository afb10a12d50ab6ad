#!/bin/bash
# Parity of the default CPU mode (2 processes, fused kernels) with plain float32 (1 process, PyTorch's
# ops for the gated convolution): 600 steps of `small`, 64² x 8 crops of Rain100L 0001-0180, validated
# on 0181-0200.  Run from the repository root; the runs go to $OUT (default /work/parity2).
set -u
OUT=${OUT:-/work/parity2}
B=${B:-.venv/bin}
mkdir -p "$OUT"
common="--train-data ../shared/data/Rain100L_train --train-subset 1-180 --val-data ../shared/data/Rain100L_train --val-subset 181-200 --preset small --patch-size 64 --batch-size 8 --iterations 600 --constant-fraction 0 --lr 3e-4 --log-every 10 --val-every 200 --ckpt-every 200 --num-workers 0 --no-progress --no-tensorboard"
for mode in procs_fused fp32; do
  if [ $mode = procs_fused ]; then extra="--procs 2 --fused-train-ops"; else extra="--procs 1 --no-fused-train-ops"; fi
  start=$(date +%s)
  $B/padm train $common $extra --out-dir "$OUT/$mode" > "$OUT/$mode.log" 2>&1
  echo "$mode rc=$? wall=$(( $(date +%s) - start ))s" >> "$OUT/done.txt"
done
