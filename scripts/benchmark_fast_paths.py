#!/usr/bin/env python
"""Eager and compiled hf_attn Transformer against eager and compiled MarianMTModel, in one process.

Same dimensions for both (small: d_model 256, 3+3 layers, 4 heads, FFN 1024, vocabulary 8000,
random weights and random token ids, so no data is needed). Rounds are interleaved (every system
once per round, compilation in an unmeasured warm-up round) and the medians are printed as
ratios: training steps (forward, backward, AdamW) eager/eager and compiled/compiled, beam-4
generate, and greedy decoding with a compiled static cache against our own eager decoding.

    python scripts/benchmark_fast_paths.py --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import torch
from transformers import MarianConfig, MarianMTModel

from hf_attn import TransformerSeq2SeqConfig, TransformerSeq2SeqForConditionalGeneration

DIMENSIONS = {
    "vocab_size": 8000,
    "d_model": 256,
    "encoder_layers": 3,
    "decoder_layers": 3,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 1024,
    "decoder_ffn_dim": 1024,
    "max_position_embeddings": 256,
    "dropout": 0.0,
    "pad_token_id": 0,
    "eos_token_id": 2,
    "decoder_start_token_id": 1,
}


def build(system: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if system == "hf_attn":
        return TransformerSeq2SeqForConditionalGeneration(TransformerSeq2SeqConfig(bos_token_id=1, **DIMENSIONS))
    return MarianMTModel(MarianConfig(**DIMENSIONS, scale_embedding=True))


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def training_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def generation(model: torch.nn.Module, batch: dict[str, torch.Tensor], new_tokens: int, **options) -> Callable:
    def run() -> None:
        with torch.inference_mode():
            model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, **options)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up round)")
    parser.add_argument("--sentences", type=int, default=16)
    parser.add_argument("--length", type=int, default=24, help="source and target tokens per sentence")
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--output-json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, DIMENSIONS["vocab_size"], (args.sentences, args.length), generator=generator)
    labels = torch.randint(3, DIMENSIONS["vocab_size"], (args.sentences, args.length), generator=generator)
    source = {"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}
    train_batch = {**source, "labels": labels}

    cases: dict[str, Callable[[], object]] = {}
    for system in ("hf_attn", "marian"):
        eager = build(system).train()
        cases[f"train {system} eager"] = training_step(eager, train_batch)
        compiled = build(system).train()
        compiled.compile(dynamic=False)
        cases[f"train {system} compiled"] = training_step(compiled, train_batch)
        decoder = build(system).eval()
        cases[f"beam4 {system} eager"] = generation(decoder, source, args.new_tokens, num_beams=4)
        cases[f"greedy {system} eager"] = generation(decoder, source, args.new_tokens)
        static = build(system).eval()
        static.forward = torch.compile(static.forward, fullgraph=True, dynamic=False)
        cases[f"greedy {system} compiled static"] = generation(
            static, source, args.new_tokens, cache_implementation="static"
        )

    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(args.rounds + 1):
        for name, case in cases.items():
            seconds = timed(case)
            if round_index > 0:
                times[name].append(seconds)
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = {
        "train eager: hf_attn speed / Marian": median["train marian eager"] / median["train hf_attn eager"],
        "train compiled: hf_attn / Marian": median["train marian compiled"] / median["train hf_attn compiled"],
        "train hf_attn: compiled / eager": median["train hf_attn eager"] / median["train hf_attn compiled"],
        "beam4 eager: hf_attn / Marian": median["beam4 marian eager"] / median["beam4 hf_attn eager"],
        "greedy hf_attn: compiled static / eager": median["greedy hf_attn eager"]
        / median["greedy hf_attn compiled static"],
        "greedy Marian: compiled static / eager": median["greedy marian eager"]
        / median["greedy marian compiled static"],
    }
    load = os.getloadavg()
    for name, seconds in median.items():
        print(f"{name:34s} {seconds * 1000:9.1f} ms (median of {args.rounds})")
    for name, ratio in ratios.items():
        print(f"{name:42s} {ratio:5.2f}x")
    print(f"threads {args.threads}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.output_json:
        result = {"threads": args.threads, "load_average": load, "median_seconds": median, "ratios": ratios}
        with open(args.output_json + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        os.replace(args.output_json + ".tmp", args.output_json)


if __name__ == "__main__":
    main()
