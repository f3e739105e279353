"""The systems under benchmark: each framework's model config at the run's size, and the spec its worker builds.

The configs make the peers as alike as their libraries allow (same dimensions, dropout, tied
embeddings, loss); the differences that remain are stated in each system's ``note``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from .data import PreparedData
from .joey import JOEY_VERSION, joey_rnn_config
from .settings import BenchmarkSettings, ModelSize


@dataclass
class SystemSpec:
    """One system under benchmark: who it is, which interpreter runs it, what the worker builds."""

    key: str
    label: str
    family: str
    python: str
    spec: dict[str, Any]
    note: str = ""
    worker: str = ""  # the worker file to run; "" is research/benchmark/worker.py (training and generate)


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
    """hf_attn's Transformer; Marian's built-in loss has no label smoothing, so hf_attn's is off to match it."""
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
            systems.append(
                SystemSpec(
                    f"hf_attn-transformer-{implementation}",
                    f"hf_attn Transformer ({implementation})",
                    "transformer",
                    sys.executable,
                    {
                        **common,
                        "system": "hf_attn",
                        "model_type": "transformer_seq2seq",
                        "attn_implementation": implementation,
                        "model": hf_transformer_config(size, vocab, ids, dropout),
                    },
                    note="attention projections without biases; label smoothing off to match Marian's loss",
                )
            )
        if wanted & {"transformer", "generation"}:
            systems.append(
                SystemSpec(
                    f"marian-{implementation}",
                    f"MarianMTModel ({implementation})",
                    "transformer",
                    sys.executable,
                    {
                        **common,
                        "system": "marian",
                        "attn_implementation": implementation,
                        "model": marian_config(size, vocab, ids, dropout),
                    },
                    note="attention projections with biases; adds its final_logits_bias buffer to the logits",
                )
            )
    if wanted & {"rnn", "scaling"}:
        for input_feeding, suffix, label in ((True, "", ""), (False, "-no-input-feeding", ", no input feeding")):
            systems.append(
                SystemSpec(
                    f"hf_attn-rnn{suffix}",
                    f"hf_attn RNN{label}",
                    "rnn",
                    sys.executable,
                    {
                        **common,
                        "system": "hf_attn",
                        "model_type": "rnn_seq2seq",
                        "model": hf_rnn_config(size, vocab, ids, dropout, input_feeding),
                    },
                    note="step-by-step decoder (input feeding)"
                    if input_feeding
                    else "fused whole-sequence decoder LSTM",
                )
            )
    if "rnn" in wanted and joey_python is not None:
        systems.append(
            SystemSpec(
                "joeynmt-rnn",
                f"Joey NMT {JOEY_VERSION} RNN",
                "rnn",
                joey_python,
                {
                    **common,
                    "system": "joey_rnn",
                    "joey_model": joey_rnn_config(size, dropout),
                    "joey_vocab_file": str(data.joey_vocab_file),
                    "label_smoothing": 0.1,
                },
                note="per step: sorts the batch by source length, KL-divergence label-smoothed loss, accuracy count",
            )
        )
    return systems
