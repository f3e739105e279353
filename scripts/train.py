#!/usr/bin/env python
"""Train an hf_attn model with accelerate: the same as `hf-attn train`.

Runs unchanged as `python scripts/train.py CONFIG`, `accelerate launch scripts/train.py CONFIG`
(one or many GPUs) and `torchrun --nproc_per_node N scripts/train.py CONFIG` (CPU processes).
"""

import sys

from hf_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
