"""Load-test `hf-attn serve` on 127.0.0.1: K clients for T seconds vs one-at-a-time serving and offline batches.

Thin entry point over research.benchmark.load_test; the references run in the same run, so ratios hold
even on a busy machine, but absolute numbers want an idle one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from hf_attn.serving.cli import default_engine_threads  # noqa: E402
from research.benchmark.load_test import load_test  # noqa: E402


def _threads_and_parallel(setting: str) -> tuple[int, int]:
    threads, _, parallel = setting.partition(":")
    try:
        return int(threads), int(parallel or 1)
    except ValueError:
        raise SystemExit(f"error: --batching takes THREADS:PARALLEL pairs such as 1:2, got {setting!r}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", help="a model folder (or a ctranslate2 export with --engine ctranslate2)")
    parser.add_argument("--engine", choices=("torch", "ctranslate2"), default="ctranslate2")
    parser.add_argument(
        "--sentences", help="file of source sentences, one per line (default: the bundled corpus's test split)"
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=20000, help="request budget per setting")
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument(
        "--batching",
        help="comma-separated THREADS:PARALLEL settings of the batching server (serve's --threads and "
        "--parallel-batches), one row each (default: serve's defaults for the engine)",
    )
    parser.add_argument(
        "--reference-threads",
        default="0",
        help="comma-separated thread counts for the one-at-a-time server and offline batches; the best is the "
        "reference (default: 0, the engine's choice)",
    )
    args = parser.parse_args()
    if args.sentences:
        with open(args.sentences, encoding="utf-8") as stream:
            sentences = [line.strip() for line in stream if line.strip()]
    else:
        from hf_attn.data import load_bible_corpus

        sentences = [text.strip() for text in load_bible_corpus()["test"]["source"] if text.strip()]
    rows = load_test(
        args.model,
        args.engine,
        sentences,
        clients=args.clients,
        seconds=args.seconds,
        max_requests=args.max_requests,
        num_beams=args.num_beams,
        batching=(
            tuple(_threads_and_parallel(setting) for setting in args.batching.split(","))
            if args.batching
            else (default_engine_threads(args.engine, None, None),)
        ),
        reference_threads=tuple(int(value) for value in args.reference_threads.split(",")),
    )
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
