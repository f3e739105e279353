"""Fast paths in one process: eager and ``torch.compile`` hf_attn against eager and compiled MarianMTModel.

Run by :class:`research.benchmark.run.BenchmarkRun` once per thread count, each in a fresh
process (``python -m research.benchmark.fast_paths --spec SPEC.json --output OUT.json``), so
compiled kernels and thread pools never carry over from one thread count to the next. Inside
the process every case runs once per round (one unmeasured warm-up round pays for the
compilations), so each per-round ratio compares cases measured under the same load:

* training steps (forward with loss, backward, AdamW), eager against eager and compiled
  (``model.compile(dynamic=False)``) against compiled, hf_attn over Marian;
* beam-4 ``generate``, eager against eager and compiled (forward under ``torch.compile``
  with ``cache_implementation="static"``) against compiled;
* greedy decoding with a compiled static cache against the same model's eager decoding;
* the RNN's beam-4 ``generate``.

Eager ``generate`` cases (the RNN's, hf_attn's greedy and beam 4) also get one unmeasured
call split into the model's forward, the output projection inside it and what ``generate``
does around the model (logits copy, ``log_softmax``, beam scores, ``topk``, bookkeeping): the
most a faster decoding step could give (:func:`time_split`).

After the rounds, one unmeasured, profiled call of each case gives the share of its CPU time
spent in matrix products and the rate they reach, next to the matmul ceiling this process
measures: the explanation of any target the ratios miss. Models have random weights and the
inputs are random ids, so no data is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from hf_attn.atomic import atomic_write_json, read_json_file

# Targets from the issue: speed ratios (higher is faster) and the RNN's beam-4 speed-up.
FAST_PATH_TARGETS = {
    "train eager": 1.15,
    "train compiled": 1.15,
    "beam4 eager": 1.15,
    "beam4 compiled": 1.15,
    "greedy compiled static / eager": 1.3,
    "rnn beam4 speed-up": 1.5,
}
# Leaf operators that are matrix products, eager or inside a compiled graph (inductor calls the same kernels).
MATMUL_OPERATORS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise")
SPECIAL_IDS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 1}


def build_model(system: str, size_name: str, dropout: float) -> torch.nn.Module:
    """A fresh model of one size (seeded): hf_attn's Transformer, Marian with its dimensions, or hf_attn's RNN."""
    from transformers import MarianConfig, MarianMTModel

    from hf_attn import (
        RNNSeq2SeqConfig,
        RNNSeq2SeqForConditionalGeneration,
        TransformerSeq2SeqConfig,
        TransformerSeq2SeqForConditionalGeneration,
    )

    from .settings import SIZES
    from .systems import hf_rnn_config, hf_transformer_config, marian_config

    size = SIZES[size_name]
    torch.manual_seed(0)
    if system == "hf_attn":
        config = hf_transformer_config(size, size.vocab_size, SPECIAL_IDS, dropout)
        return TransformerSeq2SeqForConditionalGeneration(TransformerSeq2SeqConfig(**config))
    if system == "marian":
        return MarianMTModel(MarianConfig(**marian_config(size, size.vocab_size, SPECIAL_IDS, dropout)))
    config = hf_rnn_config(size, size.vocab_size, SPECIAL_IDS, dropout, input_feeding=True)
    return RNNSeq2SeqForConditionalGeneration(RNNSeq2SeqConfig(**config))


def training_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def generation(model: torch.nn.Module, source: dict[str, torch.Tensor], new_tokens: int, **options) -> Callable:
    """``generate`` with exactly ``new_tokens`` new tokens per sentence (random weights would stop anywhere)."""
    model.eval()

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model.generate(
                **source, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, **options
            )

    return run


def compiled_forward(model: torch.nn.Module) -> torch.nn.Module:
    """The decoding step compiled as a transformers user does it for a static cache (shapes fixed per call)."""
    model.forward = torch.compile(model.forward, fullgraph=False, dynamic=False)
    return model


def time_split(model: torch.nn.Module, case: Callable[[], object]) -> dict[str, float]:
    """One call of a ``generate`` case, its wall time split into the model's forward, the output projection
    inside it, and the rest (what ``generate`` does around the model); wall clocks are installed only for it.

    ``speed_up_bound_free_step`` is Amdahl's bound for any faster decoding step that keeps the
    tokens: the rest and the output projection stay, everything else in the step costs nothing.
    """
    spent = {"forward": 0.0, "projection": 0.0}
    starts: list[float] = []
    original = model.forward

    def timed_forward(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent["forward"] += time.perf_counter() - started

    def projection_done(*_) -> None:
        spent["projection"] += time.perf_counter() - starts.pop()

    projection = model.get_output_embeddings()
    hooks = [
        projection.register_forward_pre_hook(lambda *_: starts.append(time.perf_counter())),
        projection.register_forward_hook(projection_done),
    ]
    model.forward = timed_forward
    try:
        started = time.perf_counter()
        case()
        total = time.perf_counter() - started
    finally:
        del model.forward  # back to the class's forward
        for hook in hooks:
            hook.remove()
    step_without_projection = spent["forward"] - spent["projection"]
    return {
        "generate_seconds": round(total, 6),
        "forward_seconds": round(spent["forward"], 6),
        "output_projection_seconds": round(spent["projection"], 6),
        "outside_forward_seconds": round(total - spent["forward"], 6),
        "speed_up_bound_free_step": round(total / (total - step_without_projection), 3),
    }


def matmul_profile(case: Callable[[], object]) -> dict[str, float]:
    """One profiled call: the share of CPU time in matrix products, their FLOPs and the rate they reach."""
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as profiled:
        case()
    events = profiled.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    products = [event for event in events if event.key in MATMUL_OPERATORS]
    matmul_us = sum(event.self_cpu_time_total for event in products)
    flops = sum(event.flops for event in products)
    return {
        "matmul_share": round(matmul_us / total, 3) if total else 0.0,
        "matmul_seconds": round(matmul_us / 1e6, 4),
        "profiled_seconds": round(total / 1e6, 4),
        "matmul_gflops_achieved": round(flops / matmul_us / 1e3, 1) if matmul_us else 0.0,
    }


def build_cases(spec: dict[str, Any]) -> tuple[dict[str, Callable[[], object]], dict[str, torch.nn.Module]]:
    """Every measured case by name, and the eager models whose ``generate`` cases get a time split."""
    from .settings import SIZES

    def fresh(system: str) -> torch.nn.Module:
        return build_model(system, spec["size"], spec["dropout"])

    generator = torch.Generator().manual_seed(0)
    vocab = SIZES[spec["size"]].vocab_size
    shape = (spec["sentences"], spec["length"])
    tokens = torch.randint(4, vocab, shape, generator=generator)
    labels = torch.randint(4, vocab, shape, generator=generator)
    source = {"input_ids": tokens, "attention_mask": torch.ones_like(tokens)}
    new_tokens = spec["new_tokens"]
    cases: dict[str, Callable[[], object]] = {}
    split: dict[str, torch.nn.Module] = {}
    for system in ("hf_attn", "marian"):
        batch = {**source, "labels": labels}
        eager = fresh(system)
        cases[f"train {system} eager"] = training_step(fresh(system), batch)
        cases[f"beam4 {system} eager"] = generation(eager, source, new_tokens, num_beams=4)
        cases[f"greedy {system} eager"] = generation(eager, source, new_tokens)
        if system == "hf_attn":
            split.update({f"beam4 {system} eager": eager, f"greedy {system} eager": eager})
        if not spec["compile"]:
            continue
        compiled = fresh(system)
        compiled.compile(dynamic=False)
        cases[f"train {system} compiled"] = training_step(compiled, batch)
        static = compiled_forward(fresh(system))
        cases[f"beam4 {system} compiled"] = generation(
            static, source, new_tokens, num_beams=4, cache_implementation="static"
        )
        cases[f"greedy {system} compiled static"] = generation(
            static, source, new_tokens, cache_implementation="static"
        )
    rnn = fresh("rnn")
    cases["rnn beam4 eager"] = generation(rnn, source, new_tokens, num_beams=4)
    split["rnn beam4 eager"] = rnn
    return cases, split


def speed_ratios(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per-round speed ratios (slower time over faster), summarised as median, min and max over rounds."""
    from .summary import summarise_ratio

    pairs = {
        "train eager": ("train marian eager", "train hf_attn eager"),
        "train compiled": ("train marian compiled", "train hf_attn compiled"),
        "train hf_attn compiled / eager": ("train hf_attn eager", "train hf_attn compiled"),
        "train marian compiled / eager": ("train marian eager", "train marian compiled"),
        "beam4 eager": ("beam4 marian eager", "beam4 hf_attn eager"),
        "beam4 compiled": ("beam4 marian compiled", "beam4 hf_attn compiled"),
        "greedy compiled static / eager": ("greedy hf_attn eager", "greedy hf_attn compiled static"),
        "greedy marian compiled static / eager": ("greedy marian eager", "greedy marian compiled static"),
    }
    return {
        name: summarise_ratio(times[slow], times[fast])
        for name, (slow, fast) in pairs.items()
        if slow in times and fast in times
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    """All cases in interleaved rounds at ``spec['threads']`` threads, then the time splits and the profiles."""
    from .worker import matmul_gflops

    torch.set_num_threads(spec["threads"])
    # Every transformers model's forward is one code object (the `can_return_tuple` wrapper), so the compiled
    # cases of both models and both batch shapes share dynamo's per-code cache: the default 8 entries overflow.
    torch._dynamo.config.recompile_limit = 64
    started = time.perf_counter()
    cases, split_models = build_cases(spec)
    times: dict[str, list[float]] = {name: [] for name in cases}
    first_call: dict[str, float] = {}
    for round_index in range(spec["rounds"] + 1):
        for name, case in cases.items():
            case_started = time.perf_counter()
            case()
            seconds = time.perf_counter() - case_started
            if round_index:
                times[name].append(seconds)
            else:
                first_call[name] = round(seconds, 3)
    splits = {name: time_split(model, cases[name]) for name, model in split_models.items()}
    profiled = [name for name in cases if "hf_attn" in name or name.startswith("rnn")]
    profiles = {name: matmul_profile(cases[name]) for name in profiled}
    return {
        "threads": spec["threads"],
        "rounds": spec["rounds"],
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "median_seconds": {name: round(statistics.median(values), 4) for name, values in times.items()},
        "seconds_rounds": {name: [round(value, 4) for value in values] for name, values in times.items()},
        "first_call_seconds": first_call,
        "ratios": speed_ratios(times),
        "time_splits": splits,
        "profiles": profiles,
        "matmul_ceiling_gflops": round(matmul_gflops(spec["matmul_size"], "fp32", torch.device("cpu")), 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def run_fast_paths(settings: Any, work_dir: Path, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure at each of ``settings.fast_path_threads`` in a fresh process; results by thread count."""
    from .. import REPO_ROOT

    results: dict[str, Any] = {}
    work_dir.mkdir(parents=True, exist_ok=True)
    for threads in settings.fast_path_threads:
        spec = {
            "size": settings.size,
            "dropout": settings.dropout,
            "threads": threads,
            "rounds": settings.repeats,
            "sentences": settings.fast_path_sentences,
            "length": settings.fast_path_length,
            "new_tokens": settings.max_new_tokens,
            "matmul_size": settings.matmul_size,
            "compile": settings.fast_path_compile,
        }
        spec_file, output = work_dir / f"fast_paths_{threads}.spec.json", work_dir / f"fast_paths_{threads}.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        warm_up = "1 warm-up round, which compiles" if settings.fast_path_compile else "1 warm-up round"
        progress(f"fast paths at {threads} thread(s): {settings.repeats} rounds (+{warm_up})")
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            # A first call's time is then a cold compilation, not a cache hit from an earlier run.
            "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        command = [sys.executable, "-m", "research.benchmark.fast_paths", "--spec", str(spec_file)]
        done = subprocess.run(
            [*command, "--output", str(output)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"fast paths at {threads} thread(s) failed:\n{done.stderr[-3000:]}")
        results[str(threads)] = json.loads(output.read_text(encoding="utf-8"))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON: size, dropout, threads, rounds, sentences, length, ...")
    parser.add_argument("--output", required=True, help="where the results JSON goes (written atomically)")
    args = parser.parse_args(argv)
    atomic_write_json(args.output, measure(read_json_file(args.spec)))


if __name__ == "__main__":
    main()
