"""Side-by-side speed benchmarks: hf_attn's models against MarianMTModel and Joey NMT, in one run.

Every system runs in its own worker process (:mod:`hf_attn.benchmark_worker`), built once
and kept alive; the driver asks them in turn for one timed pass over the same prepared
batches, rotating the order every round (A, B, C, then B, C, A, ...). On a shared, noisy
machine all systems so see the same load, and each ratio is the median over rounds of the
per-round ratio. Separate processes also give every system its own peak memory
(``ru_maxrss``) and let Joey NMT run from its own virtual environment.

Benchmarks: Transformer training (hf_attn vs MarianMTModel of identical dimensions, per
attention implementation), generation (greedy and beam search, a fixed number of new
tokens), RNN training (hf_attn vs Joey NMT 2.3 with the same dimensions), efficiency
(achieved model FLOP/s over the measured matmul FLOP/s of the same process) and scaling
(training tokens/s against sentence length on synthetic batches of a fixed token count).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import benchmark_worker
from .benchmark_joey import DEFAULT_JOEY_VENV, JOEY_VERSION, ensure_joey_venv, joey_rnn_config, run_joey_cli
from .cpu_memory import THRESHOLD_BYTES

logger = logging.getLogger(__name__)

BENCHMARKS = ("transformer", "generation", "rnn", "scaling")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")
LABEL_PAD = -100
# Targets from the issue ("where we stand"): hf_attn / peer ratios, and the matmul-ceiling fraction.
TARGETS = {"transformer_training": 1.15, "beam_generation": 1.15, "rnn_training": 1.5, "efficiency": 0.5}


@dataclass(frozen=True)
class ModelSize:
    """Dimensions shared by every system of one benchmark run."""

    vocab_size: int
    d_model: int
    layers: int
    heads: int
    ffn_dim: int
    rnn_hidden: int


# glibc returns every freed block above the mmap threshold (32 MB at most by default) to the
# OS, so a (tokens x vocabulary) logits tensor is page-faulted in afresh at every step. These
# settings keep freed memory in the process, for every system alike (--keep-freed-memory).
KEEP_FREED_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(THRESHOLD_BYTES), "MALLOC_TRIM_THRESHOLD_": str(THRESHOLD_BYTES)}

SIZES = {
    "tiny": ModelSize(vocab_size=400, d_model=32, layers=1, heads=2, ffn_dim=64, rnn_hidden=32),
    "small": ModelSize(vocab_size=8000, d_model=256, layers=3, heads=4, ffn_dim=1024, rnn_hidden=256),
    "base": ModelSize(vocab_size=8000, d_model=512, layers=6, heads=8, ffn_dim=2048, rnn_hidden=512),
}


@dataclass
class BenchmarkSettings:
    """Everything a benchmark run depends on; saved with its results."""

    size: str = "small"
    benchmarks: tuple[str, ...] = BENCHMARKS
    attn_implementations: tuple[str, ...] = ATTN_IMPLEMENTATIONS
    repeats: int = 5
    warmup: int = 1
    train_batches: int = 4
    max_tokens: int = 1200
    generation_sentences: int = 256
    generation_batch_size: int = 64
    max_new_tokens: int = 32
    beams: tuple[int, ...] = (1, 4)
    generation_repeats: int = 3
    scaling_lengths: tuple[int, ...] = (16, 32, 64, 128, 256)
    scaling_tokens: int = 1024
    scaling_repeats: int = 3
    matmul_size: int = 1024
    device: str = "cpu"
    dtype: str = "fp32"
    threads: int = field(default_factory=lambda: len(os.sched_getaffinity(0)))
    seed: int = 0
    max_train_examples: int | None = None
    joey: bool = True
    joey_venv: str = str(DEFAULT_JOEY_VENV)
    joey_cli_steps: int = 40
    dropout: float = 0.1
    learning_rate: float = 5e-4
    max_grad_norm: float = 1.0
    keep_freed_memory: bool = False
    work_dir: str = "runs/benchmark"

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"`size` must be one of {sorted(SIZES)}, got {self.size!r}.")
        for name, allowed in (("benchmarks", BENCHMARKS), ("attn_implementations", ATTN_IMPLEMENTATIONS)):
            unknown = sorted(set(getattr(self, name)) - set(allowed))
            if unknown:
                raise ValueError(f"Unknown {name} {unknown}; choose from {list(allowed)}.")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"`device` must be 'cpu' or 'cuda', got {self.device!r}.")
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"`dtype` must be 'fp32' or 'bf16', got {self.dtype!r}.")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("`device='cuda'` but torch sees no CUDA device.")
        for name in ("repeats", "train_batches", "max_tokens", "generation_sentences", "generation_batch_size",
                     "max_new_tokens", "generation_repeats", "scaling_tokens", "scaling_repeats", "matmul_size", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        if not self.attn_implementations:
            raise ValueError("`attn_implementations` needs at least one attention implementation.")

    @property
    def model_size(self) -> ModelSize:
        return SIZES[self.size]


@dataclass
class SystemSpec:
    """One system under benchmark: who it is, which interpreter runs it, what the worker builds."""

    key: str
    label: str
    family: str
    python: str
    spec: dict[str, Any]
    note: str = ""


# ---------------------------------------------------------------- model configurations


def special_ids(tokenizer) -> dict[str, int]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.bos_token_id,
    }


def transformer_dimensions(size: ModelSize, vocab_size: int, dropout: float) -> dict[str, Any]:
    """Config fields hf_attn's Transformer and MarianConfig name identically."""
    return {
        "vocab_size": vocab_size,
        "d_model": size.d_model,
        "encoder_layers": size.layers,
        "decoder_layers": size.layers,
        "encoder_attention_heads": size.heads,
        "decoder_attention_heads": size.heads,
        "encoder_ffn_dim": size.ffn_dim,
        "decoder_ffn_dim": size.ffn_dim,
        "dropout": dropout,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "activation_function": "relu",
        "max_position_embeddings": 512,
        "scale_embedding": True,
        "share_encoder_decoder_embeddings": True,
        "tie_word_embeddings": True,
    }


def hf_transformer_config(size: ModelSize, vocab_size: int, ids: dict[str, int], dropout: float) -> dict[str, Any]:
    # Marian's built-in loss has no label smoothing, so hf_attn's is switched off to compute the same loss.
    return {
        **transformer_dimensions(size, vocab_size, dropout),
        **ids,
        "position_embedding_type": "sinusoidal",
        "normalize_before": False,
        "label_smoothing": 0.0,
    }


def marian_config(size: ModelSize, vocab_size: int, ids: dict[str, int], dropout: float) -> dict[str, Any]:
    return {
        **transformer_dimensions(size, vocab_size, dropout),
        **ids,
        "decoder_vocab_size": vocab_size,
        "forced_eos_token_id": None,
    }


def hf_rnn_config(
    size: ModelSize, vocab_size: int, ids: dict[str, int], dropout: float, input_feeding: bool
) -> dict[str, Any]:
    """Joey NMT's dimensions: each encoder direction has ``rnn_hidden`` units (not hidden // 2)."""
    return {
        "vocab_size": vocab_size,
        **ids,
        "rnn_type": "lstm",
        "hidden_size": size.rnn_hidden,
        "embedding_size": size.rnn_hidden,
        "encoder_hidden_size": size.rnn_hidden,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "bidirectional_encoder": True,
        "attention_type": "bahdanau",
        "input_feeding": input_feeding,
        "decoder_init": "bridge",
        "dropout": dropout,
        "embedding_dropout": dropout,
        "label_smoothing": 0.1,
        "share_encoder_decoder_embeddings": True,
        "tie_word_embeddings": True,
    }


# ---------------------------------------------------------------- data


@dataclass
class PreparedData:
    """What the workers read (``batches_file``) plus what the report says about it."""

    batches_file: Path
    joey_vocab_file: Path
    vocab_size: int
    special_ids: dict[str, int]
    description: dict[str, Any]
    joey_cli_texts: dict[str, list[str]]


def prepare_data(settings: BenchmarkSettings, work_dir: Path) -> PreparedData:
    """BPE on the bundled corpus, the first token-count batches of an epoch, test sources, synthetic batches."""
    from .data import load_bible_corpus
    from .tokenization import train_bpe_tokenizer

    corpus = load_bible_corpus()
    if settings.max_train_examples is not None:
        corpus["train"] = corpus["train"].select(range(min(settings.max_train_examples, len(corpus["train"]))))
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=settings.model_size.vocab_size)
    vocab_size, ids = len(tokenizer), special_ids(tokenizer)
    train_batches, train_pairs = real_batches(corpus["train"], tokenizer, settings)
    train_sets = {"train": train_batches}
    for length in settings.scaling_lengths:
        train_sets[f"length_{length}"] = synthetic_batches(length, settings.scaling_tokens, vocab_size, ids, settings.seed)
    sources = list(corpus["test"]["source"][: settings.generation_sentences])
    encoded = (
        tokenizer(sources[start : start + settings.generation_batch_size], truncation=True, max_length=128,
                  padding=True, return_tensors="pt")
        for start in range(0, len(sources), settings.generation_batch_size)
    )
    generation = [{"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]} for e in encoded]
    work_dir.mkdir(parents=True, exist_ok=True)
    batches_file = work_dir / "batches.pt"
    torch.save({"train_sets": train_sets, "generation": generation}, batches_file)
    joey_vocab_file = write_joey_vocabulary(tokenizer, work_dir / "joey_vocab.txt")

    source_tokens = [int(b["attention_mask"].sum()) for b in train_batches]
    target_tokens = [int((b["labels"] != LABEL_PAD).sum()) for b in train_batches]
    description = {
        "corpus": "bundled KJV→RV1909 Bible pairs (hf_attn.data.load_bible_corpus), train split",
        "train_pairs": train_pairs,
        "vocab_size": vocab_size,
        "train_batches": len(train_batches),
        "max_padded_tokens_per_batch": settings.max_tokens,
        "mean_source_tokens_per_batch": round(statistics.mean(source_tokens), 1),
        "mean_target_tokens_per_batch": round(statistics.mean(target_tokens), 1),
        "mean_sentences_per_batch": round(statistics.mean(b["input_ids"].shape[0] for b in train_batches), 1),
        "generation_sentences": len(sources),
        "generation_mean_source_tokens": round(
            statistics.mean(int(m.sum()) for b in generation for m in b["attention_mask"]), 1
        ),
    }
    joey_cli_texts = {
        name: [" ".join(tokenizer.convert_ids_to_tokens(ids_[:-1])) for ids_ in tokenizer(texts)["input_ids"]]
        for name, texts in {
            "train.en": corpus["train"]["source"][:4000],
            "train.es": corpus["train"]["target"][:4000],
            "dev.en": corpus["validation"]["source"][:8],
            "dev.es": corpus["validation"]["target"][:8],
        }.items()
    }
    return PreparedData(batches_file, joey_vocab_file, vocab_size, ids, description, joey_cli_texts)


def real_batches(split, tokenizer, settings: BenchmarkSettings) -> tuple[list[dict[str, torch.Tensor]], int]:
    """The first ``train_batches`` token-count batches of epoch 0, collated as the training loop does."""
    from transformers import DataCollatorForSeq2Seq

    from .batching import plan_token_batches
    from .training import example_lengths, tokenize_split
    from .training_config import TrainingConfig

    limits = TrainingConfig(max_source_tokens=128, max_target_tokens=128, max_tokens=max(settings.max_tokens, 128))
    tokenized = tokenize_split(split, tokenizer, limits)
    plan = plan_token_batches(example_lengths(tokenized), settings.max_tokens, seed=settings.seed, epoch=0)
    if len(plan) < settings.train_batches:
        raise ValueError(f"The corpus gives only {len(plan)} batches; lower `train_batches` ({settings.train_batches}).")
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=LABEL_PAD, return_tensors="pt")
    keys = ("input_ids", "attention_mask", "labels")
    batches = [
        {k: v for k, v in collator([tokenized[i] for i in indices]).items() if k in keys}
        for indices in plan[: settings.train_batches]
    ]
    return batches, len(tokenized)


def write_joey_vocabulary(tokenizer, path: Path) -> Path:
    """Our BPE pieces in id order, one per line: Joey NMT's word-level ``voc_file`` for the same ids."""
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if any(not piece or any(c.isspace() for c in piece) for piece in pieces):
        raise ValueError("A BPE piece is empty or contains whitespace: Joey NMT could not read it as a word.")
    path.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    return path


def synthetic_batches(length: int, tokens: int, vocab_size: int, ids: dict[str, int], seed: int) -> list[dict]:
    """Two unpadded batches of ``tokens // length`` random sentences of exactly ``length`` tokens (EOS last)."""
    generator = torch.Generator().manual_seed(seed + length)
    rows = max(1, tokens // length)
    batches = []
    for _ in range(2):
        source = torch.randint(4, vocab_size, (rows, length), generator=generator)
        labels = torch.randint(4, vocab_size, (rows, length), generator=generator)
        source[:, -1] = labels[:, -1] = ids["eos_token_id"]
        batches.append({"input_ids": source, "attention_mask": torch.ones_like(source), "labels": labels})
    return batches


# ---------------------------------------------------------------- systems and workers


def build_systems(settings: BenchmarkSettings, data: PreparedData, joey_python: str | None) -> list[SystemSpec]:
    """The systems the selected benchmarks need, with their worker specs."""
    size, vocab, ids, dropout = settings.model_size, data.vocab_size, data.special_ids, settings.dropout
    common = {
        "batches": str(data.batches_file),
        "device": settings.device,
        "dtype": settings.dtype,
        "threads": settings.threads,
        "seed": settings.seed,
        "learning_rate": settings.learning_rate,
        "max_grad_norm": settings.max_grad_norm,
        "keep_freed_memory": settings.keep_freed_memory,
    }
    wanted = set(settings.benchmarks)
    systems = []
    for index, implementation in enumerate(settings.attn_implementations):
        if wanted & {"transformer", "generation"} or ("scaling" in wanted and index == 0):
            systems.append(SystemSpec(
                f"hf_attn-transformer-{implementation}", f"hf_attn Transformer ({implementation})", "transformer",
                sys.executable,
                {**common, "system": "hf_attn", "model_type": "transformer_seq2seq",
                 "attn_implementation": implementation, "model": hf_transformer_config(size, vocab, ids, dropout)},
                note="attention projections without biases; label smoothing off to match Marian's loss",
            ))
        if wanted & {"transformer", "generation"}:
            systems.append(SystemSpec(
                f"marian-{implementation}", f"MarianMTModel ({implementation})", "transformer", sys.executable,
                {**common, "system": "marian", "attn_implementation": implementation,
                 "model": marian_config(size, vocab, ids, dropout)},
                note="attention projections with biases; adds its final_logits_bias buffer to the logits",
            ))
    if wanted & {"rnn", "scaling"}:
        for input_feeding, suffix, label in ((True, "", ""), (False, "-no-input-feeding", ", no input feeding")):
            systems.append(SystemSpec(
                f"hf_attn-rnn{suffix}", f"hf_attn RNN{label}", "rnn", sys.executable,
                {**common, "system": "hf_attn", "model_type": "rnn_seq2seq",
                 "model": hf_rnn_config(size, vocab, ids, dropout, input_feeding)},
                note="fused whole-sequence decoder LSTM" if not input_feeding else "step-by-step decoder (input feeding)",
            ))
    if "rnn" in wanted and joey_python is not None:
        systems.append(SystemSpec(
            "joeynmt-rnn", f"Joey NMT {JOEY_VERSION} RNN", "rnn", joey_python,
            {**common, "system": "joey_rnn", "joey_model": joey_rnn_config(size, dropout),
             "joey_vocab_file": str(data.joey_vocab_file), "label_smoothing": 0.1},
            note="per step: sorts the batch by source length, KL-divergence label-smoothed loss, accuracy count",
        ))
    return systems


class WorkerProcess:
    """A running :mod:`hf_attn.benchmark_worker` for one system."""

    def __init__(self, system: SystemSpec, work_dir: Path) -> None:
        self.system = system
        self.key = system.key
        spec_file = work_dir / f"{system.key}.spec.json"
        spec_file.write_text(json.dumps(system.spec, indent=1), encoding="utf-8")
        self.log_file = work_dir / f"{system.key}.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(system.spec["threads"]), "TOKENIZERS_PARALLELISM": "false"}
        if system.spec.get("keep_freed_memory"):
            env.update(KEEP_FREED_MEMORY_ENV)
        if system.python == sys.executable:
            package_root = str(Path(__file__).resolve().parent.parent)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        # -P: do not put the worker's own folder (hf_attn/, full of generic module names) on sys.path.
        command = [system.python, "-P", benchmark_worker.__file__, "--spec", str(spec_file)]
        with open(self.log_file, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env, bufsize=1
            )
        self.info: dict[str, Any] = {}

    def receive(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        message = json.loads(line) if line else {"error": "the worker exited"}
        if "error" in message:
            tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(f"Benchmark worker {self.key} failed: {message['error']}\n--- {self.log_file} ---\n{tail}")
        return message

    def request(self, command: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def interleaved(
    workers: Sequence[WorkerProcess],
    commands: Sequence[dict[str, Any]],
    rounds: int,
    warmup: int,
    progress: Callable[[str], None],
) -> dict[str, list[list[dict[str, Any]]]]:
    """Run ``commands`` on each worker in turn, round after round, rotating who goes first.

    Returns, per worker, one list of answers (one per command) for each measured round; the
    first ``warmup`` rounds are run and discarded.
    """
    results: dict[str, list[list[dict[str, Any]]]] = {w.key: [] for w in workers}
    for round_index in range(warmup + rounds):
        shift = round_index % len(workers)
        for worker in [*workers[shift:], *workers[:shift]]:
            answers = [worker.request(command) for command in commands]
            if round_index >= warmup:
                results[worker.key].append(answers)
        measured = round_index - warmup + 1
        progress(f"round {'warm-up' if measured <= 0 else f'{measured}/{rounds}'} done")
    return results


# ---------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def summarise_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, float]:
    """Median, min and max over rounds of the per-round ratio (both measured in the same round)."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    return {"ratio": round(median(ratios), 3), "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3)}


def training_summary(rounds: list[list[dict[str, Any]]], worker: WorkerProcess) -> dict[str, Any]:
    """Medians of one system's training rounds (answers: [train, matmul]) with its FLOP-based efficiency."""
    passes = [answers[0] for answers in rounds]
    matmul = [answers[1]["gflops"] for answers in rounds]
    target_rates = [p["target_tokens"] / p["seconds"] for p in passes]
    total_rates = [(p["source_tokens"] + p["target_tokens"]) / p["seconds"] for p in passes]
    first = passes[0]
    summary = {
        "target_tokens_per_s": round(median(target_rates), 1),
        "total_tokens_per_s": round(median(total_rates), 1),
        "target_tokens_per_s_rounds": [round(r, 1) for r in target_rates],
        "seconds_per_pass": round(median([p["seconds"] for p in passes]), 3),
        "steps_per_pass": first["steps"],
        "source_tokens_per_pass": first["source_tokens"],
        "target_tokens_per_pass": first["target_tokens"],
        "peak_rss_mb": passes[-1]["max_rss_mb"],
        "matmul_gflops": round(median(matmul), 1),
    }
    if "cuda_peak_allocated_mb" in passes[-1]:
        summary["cuda_peak_allocated_mb"] = passes[-1]["cuda_peak_allocated_mb"]
    flop_parameters = worker.info.get("flop_parameters")
    if flop_parameters:
        summary.update(efficiency(passes, matmul, flop_parameters))
    return summary


def efficiency(passes: list[dict[str, Any]], matmul: list[float], parameters: dict[str, int]) -> dict[str, Any]:
    """Model FLOP/s = 6 × (P_enc × source tokens + P_dec × target tokens) / seconds, over the matmul rate.

    P_enc / P_dec are the encoder's / decoder's non-embedding parameters; tokens are non-pad
    tokens (padding and attention-score products are not counted). The "with output
    projection" variant adds 6 × d_model × vocab per target token for the tied output layer.
    Each round's rate is divided by the matmul rate the same process measured in that round.
    """
    body, head = [], []
    for answer in passes:
        seconds = answer["seconds"] * 1e9
        body.append(6 * (parameters["encoder"] * answer["source_tokens"] + parameters["decoder"] * answer["target_tokens"]) / seconds)
        head.append(6 * parameters["output_projection"] * answer["target_tokens"] / seconds)
    return {
        "model_gflops": round(median(body), 2),
        "model_gflops_with_output_projection": round(median([b + h for b, h in zip(body, head)]), 2),
        "fraction_of_matmul": round(median([b / c for b, c in zip(body, matmul)]), 3),
        "fraction_of_matmul_with_output_projection": round(median([(b + h) / c for b, h, c in zip(body, head, matmul)]), 3),
    }


# ---------------------------------------------------------------- machine


def machine_description(settings: BenchmarkSettings) -> dict[str, Any]:
    import transformers

    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu_model = match.group(1).strip() if match else cpu_model
    memory_gb = None
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        memory_gb = round(int(match.group(1)) / 2**20, 1) if match else None
    description = {
        "cpu": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "threads_per_system": settings.threads,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git": git_state(),
    }
    if settings.device == "cuda":
        description["gpu"] = torch.cuda.get_device_name(0)
    return description


def git_state() -> dict[str, Any]:
    """Commit of the code measured, and which hf_attn files differed from it (modified or untracked)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout

    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted_package_files": [line[3:] for line in git("status", "--porcelain", "hf_attn").splitlines()],
    }


# ---------------------------------------------------------------- the run


def comparison(
    name: str, metric: str, numerator: str, denominator: str,
    rounds: dict[str, list[float]], absolute: dict[str, float], target: float | None,
) -> dict[str, Any]:
    entry = {
        "name": name,
        "metric": metric,
        "numerator": numerator,
        "denominator": denominator,
        "numerator_value": absolute[numerator],
        "denominator_value": absolute[denominator],
        **summarise_ratio(rounds[numerator], rounds[denominator]),
        "target": target,
    }
    entry["meets_target"] = None if target is None else entry["ratio"] >= target
    return entry


class BenchmarkRun:
    """Prepares data, starts the workers, runs the selected benchmarks and assembles the results."""

    def __init__(self, settings: BenchmarkSettings, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress or (lambda message: logger.info("%s", message))
        # Absolute, because Joey NMT's trainer runs in a folder of its own.
        self.work_dir = Path(settings.work_dir).resolve()
        self.results: dict[str, Any] = {"comparisons": [], "errors": []}

    def run(self, command: str | None = None) -> dict[str, Any]:
        settings = self.settings
        started = time.perf_counter()
        self.results.update({
            "schema": 1,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()},
            "machine": machine_description(settings),
            "size": dataclasses.asdict(settings.model_size),
            "targets": TARGETS,
        })
        joey_python = ensure_joey_venv(Path(settings.joey_venv)) if settings.joey and "rnn" in settings.benchmarks else None
        self.progress("preparing data (BPE, batches)")
        data = prepare_data(settings, self.work_dir)
        self.results["data"] = data.description
        systems = build_systems(settings, data, joey_python)
        self.progress(f"starting {len(systems)} workers: {', '.join(s.key for s in systems)}")
        workers = [WorkerProcess(system, self.work_dir) for system in systems]
        try:
            for worker in workers:
                worker.info = worker.receive()
            self.results["systems"] = {
                w.key: {"label": w.system.label, "family": w.system.family, "note": w.system.note,
                        **{k: v for k, v in w.info.items() if k != "ready"}}
                for w in workers
            }
            by_key = {w.key: w for w in workers}
            self._training(workers)
            if "generation" in settings.benchmarks:
                self._generation([w for w in workers if w.system.family == "transformer"])
            if "scaling" in settings.benchmarks:
                self._scaling([by_key[k] for k in self._scaling_keys() if k in by_key])
        finally:
            for worker in workers:
                worker.close()
        if joey_python and settings.joey_cli_steps > 0:
            self.progress(f"Joey NMT's own trainer for {settings.joey_cli_steps} steps (cross-check)")
            try:
                self.results["joey_cli"] = run_joey_cli(settings, data, joey_python, self.work_dir)
            except (RuntimeError, OSError) as error:  # keep the measurements above; the caller sees the error
                logger.error("%s", error)
                self.results["errors"].append(f"Joey NMT cross-check: {error}")
        self.results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.results["wall_seconds"] = round(time.perf_counter() - started, 1)
        return self.results

    def _scaling_keys(self) -> list[str]:
        return [f"hf_attn-transformer-{self.settings.attn_implementations[0]}", "hf_attn-rnn", "hf_attn-rnn-no-input-feeding"]

    def _training(self, workers: list[WorkerProcess]) -> None:
        settings = self.settings
        families = set(settings.benchmarks) & {"transformer", "rnn"}
        trained = [w for w in workers if w.system.family in families]
        if not trained:
            return
        self.progress(f"training on {settings.train_batches} real batches, {settings.repeats} rounds (+{settings.warmup} warm-up)")
        commands = [{"op": "train", "set": "train"}, {"op": "matmul", "size": settings.matmul_size}]
        rounds = interleaved(trained, commands, settings.repeats, settings.warmup, self.progress)
        summaries = {w.key: training_summary(rounds[w.key], w) for w in trained}
        self.results["training"] = summaries
        per_round = {key: s["target_tokens_per_s_rounds"] for key, s in summaries.items()}
        absolute = {key: s["target_tokens_per_s"] for key, s in summaries.items()}
        for implementation in settings.attn_implementations:
            ours, theirs = f"hf_attn-transformer-{implementation}", f"marian-{implementation}"
            if ours in summaries and theirs in summaries:
                self.results["comparisons"].append(comparison(
                    f"Transformer training ({implementation})", "target tokens/s", ours, theirs,
                    per_round, absolute, TARGETS["transformer_training"],
                ))
        for ours in ("hf_attn-rnn", "hf_attn-rnn-no-input-feeding"):
            if ours in summaries and "joeynmt-rnn" in summaries:
                self.results["comparisons"].append(comparison(
                    f"RNN training ({self.results['systems'][ours]['label']})",
                    "target tokens/s", ours, "joeynmt-rnn", per_round, absolute, TARGETS["rnn_training"],
                ))

    def _generation(self, workers: list[WorkerProcess]) -> None:
        settings = self.settings
        generation: dict[str, Any] = {}
        for beams in settings.beams:
            name = "greedy" if beams == 1 else f"beam{beams}"
            self.progress(f"generation ({name}), {settings.generation_repeats} rounds")
            command = {"op": "generate", "num_beams": beams, "max_new_tokens": settings.max_new_tokens}
            rounds = interleaved(workers, [command], settings.generation_repeats, settings.warmup, self.progress)
            rates = {k: [r[0]["tokens"] / r[0]["seconds"] for r in v] for k, v in rounds.items()}
            absolute = {k: round(median(v), 1) for k, v in rates.items()}
            generation[name] = {
                k: {"tokens_per_s": absolute[k], "tokens_per_s_rounds": [round(x, 1) for x in v],
                    "tokens": rounds[k][0][0]["tokens"], "sentences": rounds[k][0][0]["sentences"]}
                for k, v in rates.items()
            }
            for implementation in settings.attn_implementations:
                ours, theirs = f"hf_attn-transformer-{implementation}", f"marian-{implementation}"
                if ours in rates and theirs in rates:
                    self.results["comparisons"].append(comparison(
                        f"Generation {name} ({implementation})", "generated tokens/s", ours, theirs, rates, absolute,
                        TARGETS["beam_generation"] if beams > 1 else None,
                    ))
        self.results["generation"] = generation

    def _scaling(self, workers: list[WorkerProcess]) -> None:
        settings = self.settings
        scaling: dict[str, Any] = {}
        for length in settings.scaling_lengths:
            self.progress(f"scaling: length {length}, {settings.scaling_repeats} rounds")
            command = {"op": "train", "set": f"length_{length}"}
            rounds = interleaved(workers, [command], settings.scaling_repeats, settings.warmup, self.progress)
            scaling[str(length)] = {
                key: {
                    "target_tokens_per_s": round(median([r[0]["target_tokens"] / r[0]["seconds"] for r in v]), 1),
                    "sentences_per_batch": max(1, settings.scaling_tokens // length),
                }
                for key, v in rounds.items()
            }
        self.results["scaling"] = scaling
        transformer = self._scaling_keys()[0]
        self.results["scaling_ratios"] = {
            length: {
                key: round(row[transformer]["target_tokens_per_s"] / row[key]["target_tokens_per_s"], 2)
                for key in row if key != transformer
            }
            for length, row in scaling.items() if transformer in row
        }


def shell_command(argv: Sequence[str]) -> str:
    return "python scripts/benchmark.py " + " ".join(shlex.quote(a) for a in argv)
