#!/usr/bin/env python
"""Train PADM: the same command as ``padm train`` (options, config file, resume), runnable by torchrun.

    python scripts/train.py --config run.yaml
    torchrun --nproc_per_node 4 scripts/train.py --config run.yaml
"""

from padm.engine.cli import train

if __name__ == "__main__":
    train(prog_name="scripts/train.py")
