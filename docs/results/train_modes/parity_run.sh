#!/bin/bash
cd /work/main
export PYTHONPATH=/work/main
B=/work/ci/.venv/bin
common="--train-data ../shared/data/Rain100L_train --train-subset 1-180 --val-data ../shared/data/Rain100L_train --val-subset 181-200 --preset small --patch-size 64 --batch-size 8 --iterations 600 --constant-fraction 0 --lr 3e-4 --log-every 10 --val-every 200 --ckpt-every 200 --num-workers 0 --no-progress --no-tensorboard"
for mode in procs fp32; do
  if [ $mode = procs ]; then extra="--procs 2"; else extra="--procs 1"; fi
  start=$(date +%s)
  $B/padm train $common $extra --out-dir /work/parity/$mode > /work/parity/$mode.log 2>&1
  echo "$mode rc=$? wall=$(( $(date +%s) - start ))s" >> /work/parity/done.txt
done
