"""What a benchmark run measures: the benchmarks, the model sizes, the targets and :class:`BenchmarkSettings`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

BENCHMARKS = ("transformer", "generation", "rnn", "scaling", "fast_paths")
# The benchmarks that run in worker processes on the prepared Bible batches (fast_paths runs in its own processes).
WORKER_BENCHMARKS = ("transformer", "generation", "rnn", "scaling")
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


SIZES = {
    "tiny": ModelSize(vocab_size=400, d_model=32, layers=1, heads=2, ffn_dim=64, rnn_hidden=32),
    "small": ModelSize(vocab_size=8000, d_model=256, layers=3, heads=4, ffn_dim=1024, rnn_hidden=256),
    "base": ModelSize(vocab_size=8000, d_model=512, layers=6, heads=8, ffn_dim=2048, rnn_hidden=512),
}


def default_joey_venv() -> str:
    """Joey NMT's venv in the user's cache (``$XDG_CACHE_HOME``, else ``~/.cache``): outside any clone, made once."""
    cache = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore a relative XDG_CACHE_HOME.
    root = Path(cache) if Path(cache).is_absolute() else Path.home() / ".cache"
    return str(root / "hf_attn" / "joey-venv")


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
    joey_venv: str = field(default_factory=default_joey_venv)
    joey_cli_steps: int = 40
    dropout: float = 0.1
    learning_rate: float = 5e-4
    max_grad_norm: float = 1.0
    keep_freed_memory: bool = False
    work_dir: str = "runs/benchmark"
    # fast_paths: one process per thread count, random ids of this shape, settings.max_new_tokens new tokens.
    fast_path_threads: tuple[int, ...] = (1, 2)
    fast_path_sentences: int = 16
    fast_path_length: int = 24
    fast_path_compile: bool = True

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
        for name in (
            "repeats",
            "train_batches",
            "max_tokens",
            "generation_sentences",
            "generation_batch_size",
            "max_new_tokens",
            "generation_repeats",
            "scaling_tokens",
            "scaling_repeats",
            "matmul_size",
            "threads",
            "fast_path_sentences",
            "fast_path_length",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {getattr(self, name)!r}.")
        if not self.fast_path_threads or any(not isinstance(n, int) or n < 1 for n in self.fast_path_threads):
            raise ValueError(f"`fast_path_threads` must be positive integers, got {self.fast_path_threads!r}.")
        if not self.attn_implementations:
            raise ValueError("`attn_implementations` needs at least one attention implementation.")

    @property
    def model_size(self) -> ModelSize:
        return SIZES[self.size]
