#!/usr/bin/env python
"""The seed experiment (RNN without/with attention vs Transformer): the same as `hf-attn experiment`.

`python scripts/seed_experiment.py` trains the four models (about 45 minutes on 2 idle CPU cores) and writes
docs/experiment.md; `--quick` is a few-minute smoke run; `--help` lists the budget options.
"""

import sys

from hf_attn.cli import main

if __name__ == "__main__":
    sys.exit(main(["experiment", *sys.argv[1:]]))
