#!/usr/bin/env python
"""Translation throughput: MarianMTModel and hf_attn under generate, CTranslate2 fp32/int8 and int8 PyTorch.

    python scripts/benchmark_translation.py runs/quickstart/transformer/best runs/quickstart/rnn/best

See research/benchmark/translation.py for the method. Prints a Markdown table; --json writes the run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _clone import REPO_ROOT  # noqa: F401 - puts the clone first on sys.path

from research.benchmark.translation import TranslationBenchmarkSettings, format_table, run_translation_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("transformer_dir", help="a trained transformer_seq2seq folder")
    parser.add_argument("rnn_dir", help="a trained rnn_seq2seq folder")
    parser.add_argument("--sentences", type=int, default=32, help="test verses translated per round")
    parser.add_argument("--new-tokens", type=int, default=40, help="tokens every hypothesis is forced to")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", help="where exports and worker logs go (default: a temporary folder)")
    parser.add_argument("--json", help="write the run's results here")
    args = parser.parse_args()
    settings = TranslationBenchmarkSettings(
        args.transformer_dir,
        args.rnn_dir,
        args.work_dir or tempfile.mkdtemp(prefix="hf_attn-translation-benchmark-"),
        sentences=args.sentences,
        new_tokens=args.new_tokens,
        rounds=args.rounds,
    )
    result = run_translation_benchmark(settings)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
