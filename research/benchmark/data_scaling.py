"""Data-preparation scale benchmark: synthetic English->Spanish corpora of N pairs through `hf-attn train`'s stages.

The corpus recombines the bundled verses two at a time and gives every pair an invented
name on both sides, drawn from a pool that grows with N, so the vocabulary (and the BPE
tokenizer's work) keeps growing as a real corpus would. :func:`measure_stages` then builds
a training run's pieces with the same functions ``TrainingRun`` calls, in its order, and
records the wall time and the process's peak RSS after each stage; the last stage is the
first optimizer update. It runs in a fresh process per measurement (``python -m
research.benchmark.data_scaling``), so peak RSS belongs to one run, and only uses names the
plugin had before this benchmark existed, so the same driver measures an older checkout.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path

SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "zar", "vel", "on", "dri", "sa", "quo", "bel", "nim", "ga", "fer", "yu")


def invented_name(rng: random.Random, syllables: int = 3) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def write_synthetic_corpus(path: Path, pairs: int, seed: int = 0) -> Path:
    """``pairs`` lines of ``english<TAB>spanish``: two recombined bundled verses and an invented name."""
    from hf_attn.data import load_bible_corpus

    train = load_bible_corpus()["train"]
    english, spanish = list(train["source"]), list(train["target"])
    rng = random.Random(seed)
    names = [invented_name(rng) for _ in range(max(16, pairs // 20))]
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(pairs):
            first, second = rng.randrange(len(english)), rng.randrange(len(english))
            name = rng.choice(names)
            handle.write(
                f"{name} said: {english[first]} {english[second]}\t{name} dijo: {spanish[first]} {spanish[second]}\n"
            )
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_stages(data: Path, output_dir: Path, vocab_size: int = 8000) -> list[dict[str, float | str]]:
    """Wall time and peak RSS after each preparation stage of a tiny-model run on ``data``, up to one update."""
    import torch
    from accelerate import Accelerator
    from transformers import DataCollatorForSeq2Seq

    from hf_attn.batching import TokenBatchSampler
    from hf_attn.training.config import load_training_config

    try:
        from hf_attn.training import builders
    except ImportError:  # a checkout from before training/setup.py became builders.py (measured with --plugin)
        from hf_attn.training import setup as builders
    build_model, example_lengths, load_corpus = builders.build_model, builders.example_lengths, builders.load_corpus
    prepare_tokenizer, tokenize_split = builders.prepare_tokenizer, builders.tokenize_split

    config = load_training_config(
        "transformer_small",
        [
            f"data={data}",
            f"output_dir={output_dir}",
            f"vocab_size={vocab_size}",
            "model.d_model=32",
            "model.encoder_layers=1",
            "model.decoder_layers=1",
            "model.encoder_ffn_dim=64",
            "model.decoder_ffn_dim=64",
        ],
    )
    accelerator = Accelerator(cpu=True)
    stages: list[dict[str, float | str]] = []
    state: dict[str, object] = {}

    def stage(name: str, work: Callable[[], object]) -> None:
        start = time.perf_counter()
        state[name] = work()
        stages.append(
            {"stage": name, "seconds": round(time.perf_counter() - start, 2), "peak_rss_mb": round(peak_rss_mb())}
        )
        print(json.dumps(stages[-1]), flush=True)

    limits = (config.max_source_tokens, config.max_target_tokens)
    stage("read", lambda: load_corpus(config))
    corpus = state["read"]
    stage("tokenizer", lambda: prepare_tokenizer(config, corpus, accelerator))
    tokenizer = state["tokenizer"]
    stage("tokenize", lambda: tokenize_split(corpus["train"], tokenizer, *limits))
    stage("lengths", lambda: example_lengths(state["tokenize"]))
    stage("plan", lambda: len(TokenBatchSampler(state["lengths"], config.max_tokens, seed=config.seed)))

    def first_update() -> float:
        sampler = TokenBatchSampler(state["lengths"], config.max_tokens, seed=config.seed)
        train = state["tokenize"]
        if "length" in train.column_names:
            train = train.remove_columns("length")
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
        batch = collator([train[i] for i in next(iter(sampler))])
        model = build_model(config, tokenizer)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    stage("first update", first_update)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description="One measurement: prepare a training run on DATA up to one update.")
    parser.add_argument("data", type=Path)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()
    stages = measure_stages(args.data, args.output_dir, args.vocab_size)
    total = sum(float(s["seconds"]) for s in stages)
    print(
        json.dumps({"stage": "total", "seconds": round(total, 2), "peak_rss_mb": max(s["peak_rss_mb"] for s in stages)})
    )


if __name__ == "__main__":
    main()
