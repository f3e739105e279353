#!/usr/bin/env python
"""Issue 23's measurement: distil the reference Transformer into transformer_student and rnn_small.

    hf-attn train transformer_reference --output-dir runs/transformer_reference   # the teacher (~46 min idle)
    python scripts/distill_experiment.py runs/transformer_reference/averaged \\
        --output-dir runs/distill_experiment --cards-dir model_cards

Each student is trained on the teacher's translations and on the references with the same updates
(the presets' budgets), exported, and scored with the teacher on the test split; see
research/distillation_experiment.py. Writes OUTPUT_DIR/results.json and results.md (the README table).
Re-running with the same arguments resumes every run where it stopped.
"""

from __future__ import annotations

import argparse
import logging

from _clone import REPO_ROOT  # noqa: F401 - puts the clone first on sys.path

from hf_attn.cli import add_overrides_option, positive_int
from research.distillation_experiment import STUDENTS, ExperimentSettings, format_results, run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("teacher", help="the teacher folder (transformer_reference's averaged/)")
    parser.add_argument("--output-dir", default="runs/distill_experiment")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), help="student presets")
    parser.add_argument("--data", help="user data (TSV/JSONL/saved dataset); default: the bundled Bible corpus")
    add_overrides_option(parser, "override a config value of every student, as in hf-attn train")
    parser.add_argument("--steps", type=positive_int, help="updates of every student (default: the presets')")
    parser.add_argument("--train-examples", type=positive_int, help="distil only the first N training pairs")
    parser.add_argument("--test-examples", type=positive_int, help="score on the first N test verses only")
    parser.add_argument("--num-beams", type=positive_int, default=4)
    parser.add_argument("--threads", type=positive_int, default=2, help="torch threads")
    parser.add_argument("--cards-dir", help="copy the distilled students' cards here (e.g. model_cards)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = ExperimentSettings(
        teacher=args.teacher,
        output_dir=args.output_dir,
        students=tuple(args.students),
        data=args.data,
        steps=args.steps,
        extra_overrides=tuple(args.overrides),
        train_examples=args.train_examples,
        test_examples=args.test_examples,
        num_beams=args.num_beams,
        threads=args.threads,
        cards_dir=args.cards_dir,
    )
    print(format_results(run_experiment(settings)))


if __name__ == "__main__":
    main()
