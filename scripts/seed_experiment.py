#!/usr/bin/env python
"""The seed experiment: RNN without/with attention vs Transformer, with a generated report.

`python scripts/seed_experiment.py` trains the four models (about 45 minutes on 2 idle CPU cores) and writes
docs/experiment.md; `--quick` is a few-minute smoke run; `--help` lists the budget options. The experiment's code
is research/experiment/ (not part of the installed package), so it runs from a clone, not from `hf-attn`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from _clone import REPO_ROOT  # noqa: F401  (puts the clone on sys.path for `research`)

from hf_attn.cli import add_overrides_option, positive_float, positive_int
from research.experiment.run import make_settings, run_experiment

DESCRIPTION = (
    "Train four size-matched models (RNN without attention, RNN + Bahdanau, RNN + Luong general with input feeding, "
    "Transformer; presets hf_attn/configs/seed_*.yaml) on the bundled English->Spanish corpus under the same budget, "
    "then measure test BLEU/chrF by source length, alignment heatmaps, gradient norms by source position and "
    "training speed by sentence length, and write DOCS_DIR/experiment.md with its figures. A controlled part trains "
    "the same four at a quarter of the width on reversing random strings of 5-80 symbols and scores them by string "
    "length. Default budget 2,000 updates per model on the corpus (about 35 minutes in all on 2 idle CPU cores) plus "
    "the controlled part (about 8); --quick takes a few minutes. Re-running with the same --output-dir skips "
    "finished models and resumes interrupted ones."
)


def non_negative_int(text: str) -> int:
    """argparse type for --test-per-bucket, where 0 means the whole test split."""
    return 0 if text.strip() == "0" else positive_int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seed_experiment.py", description=DESCRIPTION)
    parser.add_argument("--output-dir", default="runs/seed_experiment", help="runs, results.json, figures")
    parser.add_argument(
        "--docs-dir", help="where experiment.md and experiment/ figures go (default: docs; with --quick: none)"
    )
    parser.add_argument("--quick", action="store_true", help="a few-minute smoke run (its numbers mean nothing)")
    parser.add_argument("--minutes-per-model", type=positive_float, help="wall-clock cap per model (default: none)")
    parser.add_argument(
        "--steps-per-model", type=positive_int, help="training updates of each model (default: presets, 2,000)"
    )
    parser.add_argument(
        "--test-per-bucket", type=non_negative_int, help="test verses per length bucket (0 = whole test split)"
    )
    parser.add_argument("--num-beams", type=positive_int, help="beam size of the test translations")
    parser.add_argument("--tokenizer", help="a saved tokenizer to share instead of training one")
    add_overrides_option(parser, "override a training config value of all four models, e.g. --set max_tokens=3000")
    parser.add_argument("--no-cards", action="store_true", help="do not write model cards")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the controlled part (string reversal)")
    parser.add_argument(
        "--synthetic-steps", type=positive_int, help="training updates of each model in the controlled part"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = make_settings(
            quick=args.quick,
            output_dir=args.output_dir,
            docs_dir=args.docs_dir,
            max_minutes=args.minutes_per_model,
            max_steps=args.steps_per_model,
            test_per_bucket=args.test_per_bucket,
            num_beams=args.num_beams,
            tokenizer=args.tokenizer,
            extra_overrides=tuple(args.overrides),
            write_cards=not args.no_cards,
            synthetic=not args.no_synthetic,
            synthetic_steps=args.synthetic_steps,
        )
        results = run_experiment(settings)
    except (OSError, ValueError) as error:  # bad input (a missing tokenizer, a bad --set value): no traceback
        print(f"seed_experiment.py: error: {error}", file=sys.stderr)
        return 2
    report = Path(settings.docs_dir or settings.output_dir) / "experiment.md"
    summary = {"report": str(report), "test_bleu": {n: m["test"]["bleu"] for n, m in results["models"].items()}}
    if results["synthetic"] is not None:
        models = results["synthetic"]["models"].items()
        summary["synthetic_token_accuracy"] = {n: m["test"]["token_accuracy"] for n, m in models}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
