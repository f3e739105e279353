"""Joey NMT 2.3 as a benchmark peer: its venv, its model config, and a run of its own trainer.

Joey NMT never enters hf_attn's environment: it lives in a venv of its own (created on
first use), its model is built there by :mod:`research.benchmark.worker`, and its trainer
runs there as ``python -m joeynmt train`` for the cross-check of the harness.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import worker as benchmark_worker
from .data import PreparedData
from .settings import BenchmarkSettings, ModelSize

logger = logging.getLogger(__name__)

JOEY_VERSION = "2.3.0"


def joey_rnn_config(size: ModelSize, dropout: float) -> dict[str, Any]:
    """Joey NMT's ``model:`` section with the dimensions of :func:`research.benchmark.systems.hf_rnn_config`."""
    embeddings = {"embedding_dim": size.rnn_hidden, "scale": False, "dropout": dropout}
    return {
        "initializer": "xavier_uniform",
        "embed_initializer": "normal",
        "bias_initializer": "zeros",
        "tied_embeddings": True,
        "tied_softmax": True,
        "encoder": {
            "type": "recurrent",
            "rnn_type": "lstm",
            "embeddings": embeddings,
            "hidden_size": size.rnn_hidden,
            "bidirectional": True,
            "dropout": dropout,
            "num_layers": 1,
        },
        "decoder": {
            "type": "recurrent",
            "rnn_type": "lstm",
            "embeddings": embeddings,
            "hidden_size": size.rnn_hidden,
            "dropout": dropout,
            "hidden_dropout": dropout,
            "num_layers": 1,
            "input_feeding": True,
            "init_hidden": "bridge",
            "attention": "bahdanau",
        },
    }


def ensure_joey_venv(venv: Path) -> str:
    """The Python of a venv with Joey NMT 2.3 and this torch version; created on first use (needs PyPI)."""
    python = venv / "bin" / "python"
    if python.is_file():
        check = subprocess.run([str(python), "-c", "import joeynmt"], capture_output=True, text=True, check=False)
        if check.returncode == 0:
            return str(python)
    torch_version = torch.__version__.split("+")[0]
    packages = [f"torch=={torch_version}", f"joeynmt=={JOEY_VERSION}", "importlib_metadata"]
    logger.warning(
        "Creating the Joey NMT venv at %s (pip install %s); this takes a few minutes and needs the package index. "
        "Pass --no-joey to skip Joey NMT.",
        venv,
        " ".join(packages),
    )
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
    return str(python)


def joey_cli_config(settings: BenchmarkSettings, data: PreparedData, joey_dir: Path) -> dict[str, Any]:
    """A Joey NMT training config on the same BPE ids (word level over our pieces), for its own trainer."""
    side = {
        "level": "word",
        "voc_file": str(data.joey_vocab_file),
        "lowercase": False,
        "normalize": False,
        "max_length": 128,
        "min_length": 1,
        "tokenizer_type": "none",
    }
    return {
        "name": "hf_attn_benchmark",
        "joeynmt_version": JOEY_VERSION,
        "model_dir": str(joey_dir / "model"),
        "use_cuda": settings.device == "cuda",
        "data": {
            "train": str(joey_dir / "train"),
            "dev": str(joey_dir / "dev"),
            "test": str(joey_dir / "dev"),
            "dataset_type": "plain",
            "src": {"lang": "en", **side},
            "trg": {"lang": "es", **side},
        },
        "testing": {
            "beam_size": 1,
            "batch_size": 8,
            "batch_type": "sentence",
            "max_output_length": 4,
            "eval_metrics": ["bleu"],
        },
        "training": {
            "model_dir": str(joey_dir / "model"),
            "overwrite": True,
            "random_seed": settings.seed,
            "optimizer": "adamw",
            "adam_betas": [0.9, 0.98],
            "learning_rate": settings.learning_rate,
            "clip_grad_norm": settings.max_grad_norm,
            "batch_size": settings.max_tokens,
            "batch_type": "token",
            "scheduling": "warmupinversesquareroot",
            "learning_rate_warmup": 100,
            "normalization": "tokens",
            "label_smoothing": 0.1,
            "loss": "crossentropy",
            "epochs": 1,
            "updates": settings.joey_cli_steps,
            "logging_freq": 10,
            "validation_freq": 10**6,
            "shuffle": True,
            "keep_best_ckpts": 1,
            "print_valid_sents": [],
            "use_cuda": settings.device == "cuda",
            "num_workers": 0,
        },
        "model": joey_rnn_config(settings.model_size, settings.dropout),
    }


def run_joey_cli(settings: BenchmarkSettings, data: PreparedData, joey_python: str, work_dir: Path) -> dict[str, Any]:
    """Joey NMT's own ``train`` for a few steps: the speed its log reports, and its peak RSS.

    Not interleaved with the other systems (its trainer owns the loop), so it is a
    cross-check of the harness, not a ratio. Joey's token batches are not length-bucketed,
    so they carry more padding than the batches every system gets in the harness.
    """
    import yaml

    joey_dir = work_dir / "joey_cli"
    joey_dir.mkdir(parents=True, exist_ok=True)
    for name, lines in data.joey_cli_texts.items():
        (joey_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    config_file = joey_dir / "config.yaml"
    config_file.write_text(yaml.safe_dump(joey_cli_config(settings, data, joey_dir)), encoding="utf-8")
    log_file = joey_dir / "joey_stdout.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads)}
    started = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [joey_python, "-m", "joeynmt", "train", str(config_file), "--skip-test"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=joey_dir,
        )
        peak = None
        while process.poll() is None:
            peak = benchmark_worker.peak_rss_mb(process.pid) or peak
            time.sleep(0.2)
    text = log_file.read_text(encoding="utf-8", errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"Joey NMT training failed; see {log_file}:\n{text[-3000:]}")
    rates = [float(x) for x in re.findall(r"Tokens per Sec:\s*([\d.]+)", text)]
    if not rates:
        raise RuntimeError(f"No 'Tokens per Sec' line in Joey NMT's log {log_file}.")
    logged = rates[1:] or rates
    return {
        "steps": int(re.findall(r"Step:\s*(\d+)", text)[-1]),
        "logged_target_tokens_per_s": [round(r, 1) for r in rates],
        "target_tokens_per_s": round(statistics.median(logged), 1),
        "peak_rss_mb": None if peak is None else round(peak, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "note": "Joey's log 'Tokens per Sec' (non-pad target tokens incl. EOS per second of its training loop); "
        "median of its log lines after the first; its own unbucketed token batches.",
    }
