#!/bin/bash
cd /work/main
export PYTHONPATH=/work/main
B=/work/ci/.venv/bin
common="--train-data ../shared/data/Rain100L_train --train-subset 1-180 --val-data ../shared/data/Rain100L_train --val-subset 181-200 --preset small --patch-size 64 --batch-size 8 --iterations 600 --constant-fraction 0 --lr 3e-4 --log-every 10 --val-every 200 --ckpt-every 200 --num-workers 0 --no-progress --no-tensorboard"
start=$(date +%s)
$B/padm train --resume /work/parity/procs --no-progress >> /work/parity/procs.log 2>&1
echo "procs(resumed from 400) rc=$? wall=$(( $(date +%s) - start ))s" >> /work/parity/done.txt
start=$(date +%s)
$B/padm train $common --procs 1 --out-dir /work/parity/fp32 > /work/parity/fp32.log 2>&1
echo "fp32 rc=$? wall=$(( $(date +%s) - start ))s" >> /work/parity/done.txt
