#!/usr/bin/env python
"""Data-preparation scale benchmark: `hf-attn train`'s stages on synthetic English->Spanish corpora of N pairs.

    python scripts/benchmark_data.py --pairs 300000 3000000 --work-dir /tmp/data_bench [--num-proc 2]

For each N it writes the corpus (once), then measures a cold run (empty datasets cache) and a
second run on the same data (cache reused), each in a fresh process, printing wall time and
peak RSS per stage. See research/benchmark/data_scaling.py for the method.

    python scripts/benchmark_data.py --streaming --pairs 300000 3000000 --work-dir /tmp/data_bench

measures `data.streaming: true` instead (one run per N from a fresh output folder: time to the
first update, then five more pools streamed, and peak RSS, which should not grow with N nor as the
stream advances), evaluating on a 500-pair dev file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _clone import REPO_ROOT

from research.benchmark.data_scaling import write_synthetic_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, nargs="+", default=[300_000])
    parser.add_argument("--work-dir", type=Path, help="where corpora and caches go (default: a temporary folder)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--num-proc", type=int, help="processes that tokenize the training split (default: one)")
    parser.add_argument(
        "--plugin", type=Path, default=REPO_ROOT, help="the hf_attn checkout to measure (e.g. an older one)"
    )
    parser.add_argument("--streaming", action="store_true", help="measure data.streaming: true (one run per N)")
    parser.add_argument("--tokenizer", type=Path, help="with --streaming: this tokenizer, not a new BPE")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="hf_attn_data_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    driver = REPO_ROOT / "research" / "benchmark" / "data_scaling.py"
    if args.streaming:
        validation = work / "dev_500.tsv"
        if not validation.exists():
            write_synthetic_corpus(validation, 500, seed=1)
    for pairs in args.pairs:
        corpus = work / f"pairs_{pairs}.tsv"
        if not corpus.exists():
            write_synthetic_corpus(corpus, pairs)
        # Per setting, so a run with another --num-proc or --plugin starts cold (cache and tokenizer).
        label = f"{pairs}_{args.plugin.name}" + (f"_np{args.num_proc}" if args.num_proc else "")
        cache = work / f"cache_{label}"
        environment = {
            **os.environ,
            "PYTHONPATH": str(args.plugin.resolve()),
            "HF_DATASETS_CACHE": str(cache),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        }
        if args.streaming:
            print(f"## {pairs} pairs, streaming", flush=True)
            output_dir = work / f"stream_{pairs}_{args.plugin.name}"
            shutil.rmtree(output_dir, ignore_errors=True)  # its tokenizer would be reused
            command = [sys.executable, str(driver), str(corpus), str(output_dir), "--streaming", str(validation)]
            command += ["--tokenizer", str(args.tokenizer.resolve())] if args.tokenizer else []
            subprocess.run([*command, "--vocab-size", str(args.vocab_size)], check=True, env=environment, cwd=work)
            continue
        for attempt in ("cold", "cache reused"):
            print(f"## {pairs} pairs, {attempt}", flush=True)
            if attempt == "cold":  # a --work-dir used before holds this setting's cache and tokenizer
                shutil.rmtree(cache, ignore_errors=True)
                shutil.rmtree(work / f"run_{label}", ignore_errors=True)
            # Run by path from the work folder, so `hf_attn` comes from --plugin, not from this clone.
            command = [sys.executable, str(driver), str(corpus), str(work / f"run_{label}")]
            command += ["--vocab-size", str(args.vocab_size)]
            command += ["--num-proc", str(args.num_proc)] if args.num_proc else []
            subprocess.run(command, check=True, env=environment, cwd=work)


if __name__ == "__main__":
    main()
