#!/usr/bin/env python
"""Benchmark hf_attn's models against MarianMTModel and Joey NMT 2.3, side by side in one run.

Prints the results, writes them as JSON, and with --write-docs regenerates docs/benchmarks.md,
docs/benchmarks.json and the scaling plot. See research/benchmark/run.py for the method.

    python scripts/benchmark.py                       # full CPU run (~15 minutes on 2 cores)
    python scripts/benchmark.py --quick --no-joey     # smoke test
    python scripts/benchmark.py --size base --device cuda --dtype bf16
    python scripts/benchmark.py --benchmarks fast_paths --write-docs   # eager/compiled vs Marian, 1 and 2 threads
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from _clone import REPO_ROOT

from research.benchmark.report import format_report, write_docs, write_json
from research.benchmark.run import BenchmarkRun, shell_command
from research.benchmark.settings import ATTN_IMPLEMENTATIONS, BENCHMARKS, SIZES, BenchmarkSettings

DOCS_DIR = REPO_ROOT / "docs"
# --quick: small enough for a minute or two; any flag given explicitly still wins.
QUICK = {
    "repeats": 2,
    "train_batches": 2,
    "generation_sentences": 32,
    "generation_batch_size": 32,
    "generation_repeats": 2,
    "max_new_tokens": 16,
    "scaling_lengths": (16, 64),
    "scaling_tokens": 512,
    "scaling_repeats": 1,
    "joey_cli_steps": 0,
}


def build_parser() -> argparse.ArgumentParser:
    defaults = BenchmarkSettings()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default=defaults.size,
        help="model dimensions: " + "; ".join(f"{k}: {v}" for k, v in SIZES.items()),
    )
    parser.add_argument(
        "--benchmarks",
        nargs="+",
        choices=BENCHMARKS,
        default=list(BENCHMARKS),
        help="which benchmarks to run (efficiency comes with transformer)",
    )
    parser.add_argument(
        "--attn",
        nargs="+",
        choices=ATTN_IMPLEMENTATIONS,
        default=list(ATTN_IMPLEMENTATIONS),
        dest="attn_implementations",
        help="attention implementations of the Transformers",
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke-test sizes of the run: {QUICK}")
    parser.add_argument("--repeats", type=int, help=f"measured rounds (default {defaults.repeats})")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="unmeasured rounds first")
    parser.add_argument("--train-batches", type=int, help=f"real batches per pass (default {defaults.train_batches})")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=defaults.max_tokens,
        help="padded tokens per training batch (rows x longest side)",
    )
    parser.add_argument(
        "--generation-sentences", type=int, help=f"test verses to translate (default {defaults.generation_sentences})"
    )
    parser.add_argument("--generation-batch-size", type=int, help=f"default {defaults.generation_batch_size}")
    parser.add_argument(
        "--max-new-tokens", type=int, help=f"tokens generated per sentence (default {defaults.max_new_tokens})"
    )
    parser.add_argument(
        "--generation-repeats", type=int, help=f"measured generation rounds (default {defaults.generation_repeats})"
    )
    parser.add_argument("--beams", type=int, nargs="+", default=list(defaults.beams), help="beam sizes (1 = greedy)")
    parser.add_argument(
        "--scaling-lengths",
        type=int,
        nargs="+",
        help=f"sentence lengths of the scaling benchmark (default {list(defaults.scaling_lengths)})",
    )
    parser.add_argument(
        "--scaling-tokens", type=int, help=f"tokens per synthetic batch (default {defaults.scaling_tokens})"
    )
    parser.add_argument(
        "--scaling-repeats", type=int, help=f"measured rounds per length (default {defaults.scaling_repeats})"
    )
    parser.add_argument("--matmul-size", type=int, default=defaults.matmul_size, help="n of the n x n matmul ceiling")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=defaults.device)
    parser.add_argument(
        "--dtype",
        choices=("fp32", "bf16"),
        default=defaults.dtype,
        help="bf16 = autocast over fp32 weights, as mixed-precision training",
    )
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads of every system")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="run every worker with glibc keeping freed memory (no page faults for large temporaries)",
    )
    parser.add_argument("--max-train-examples", type=int, help="use only this many training pairs (tests)")
    parser.add_argument(
        "--fast-path-threads",
        type=int,
        nargs="+",
        help=f"fast_paths: thread counts, one process each (default {list(defaults.fast_path_threads)})",
    )
    parser.add_argument(
        "--fast-path-sentences",
        type=int,
        help=f"fast_paths: sentences per batch (default {defaults.fast_path_sentences})",
    )
    parser.add_argument(
        "--fast-path-length",
        type=int,
        help=f"fast_paths: source and target tokens per sentence (default {defaults.fast_path_length})",
    )
    parser.add_argument(
        "--no-fast-path-compile",
        dest="fast_path_compile",
        action="store_false",
        default=None,
        help="fast_paths: eager cases only (no torch.compile, so no C++ compiler needed)",
    )
    parser.add_argument("--no-joey", dest="joey", action="store_false", help="skip Joey NMT")
    parser.add_argument(
        "--joey-venv",
        default=defaults.joey_venv,
        help="venv with joeynmt 2.3, created there on first use ($XDG_CACHE_HOME or ~/.cache)",
    )
    parser.add_argument(
        "--joey-cli-steps",
        type=int,
        help=f"steps of Joey's own trainer as a cross-check, 0 = skip (default {defaults.joey_cli_steps})",
    )
    parser.add_argument("--work-dir", default=defaults.work_dir, help="prepared batches, worker specs and logs")
    parser.add_argument("--output-json", default=None, help="results file (default WORK_DIR/benchmarks.json)")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="also write docs/benchmarks.md, docs/benchmarks.json and docs/benchmark_scaling.png",
    )
    parser.add_argument("--docs-dir", default=str(DOCS_DIR), help="where --write-docs writes")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: print (and with --write-docs, render) the results saved in PATH",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> BenchmarkSettings:
    """Explicit flags first, then --quick's values, then the defaults."""
    fields = set(BenchmarkSettings.__dataclass_fields__)
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.quick:
        given = {**QUICK, **given}
    return BenchmarkSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        print(format_report(results))
        if args.write_docs:
            for path in write_docs(results, args.docs_dir):
                print(f"Wrote {path}")
        return 0
    settings = settings_from_args(args)
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[benchmark {time.perf_counter() - started:6.1f} s] {message}", flush=True)

    results = BenchmarkRun(settings, progress=progress).run(command=shell_command(argv))
    print(format_report(results))
    output = write_json(results, args.output_json or Path(settings.work_dir) / "benchmarks.json")
    print(f"Wrote {output}")
    if args.write_docs:
        for path in write_docs(results, args.docs_dir):
            print(f"Wrote {path}")
    for error in results["errors"]:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
