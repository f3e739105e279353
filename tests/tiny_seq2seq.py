"""Tiny hf_attn models on real Bible verses, for the fine-tuning, pipeline, LoRA, card and push tests.

The tokenizer is a real joint BPE trained on a few hundred training verses, and the
models are built from configs small enough to train a few steps in well under a second,
so these tests exercise the real Trainer, pipeline and peft code paths in little time.
The corpus and the tokenizer are built once per test process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

from hf_attn.data import load_bible_corpus
from hf_attn.tokenization import train_bpe_tokenizer

TOKENIZER_VERSES = 400
VOCAB_SIZE = 700
MODEL_TYPES = ("transformer_seq2seq", "rnn_seq2seq")
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "transformer_seq2seq": {
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 256,
        "dropout": 0.0,
        "init_std": 0.3,  # large enough that generations depend on the input
    },
    "rnn_seq2seq": {
        "rnn_type": "lstm",
        "hidden_size": 32,
        "embedding_size": 32,
        "dropout": 0.0,
        "embedding_dropout": 0.0,
        "init_std": 0.3,
    },
}


@functools.lru_cache(maxsize=1)
def bible_corpus() -> datasets.DatasetDict:
    return load_bible_corpus()


def short_pairs(split: str, count: int, max_words: int = 25) -> datasets.Dataset:
    """The first ``count`` pairs of ``split`` with at most ``max_words`` words a side (fast to train on)."""
    data = bible_corpus()[split]
    keep = [
        i
        for i, (source, target) in enumerate(zip(data["source"], data["target"]))
        if len(source.split()) <= max_words and len(target.split()) <= max_words
    ]
    return data.select(keep[:count])


@functools.lru_cache(maxsize=1)
def small_tokenizer() -> PreTrainedTokenizerFast:
    return train_bpe_tokenizer(bible_corpus()["train"].select(range(TOKENIZER_VERSES)), vocab_size=VOCAB_SIZE)


def tiny_model(model_type: str, seed: int = 0, **overrides: Any) -> PreTrainedModel:
    """A seeded tiny model of ``model_type`` whose vocabulary and special ids are the small tokenizer's."""
    tokenizer = small_tokenizer()
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        **{**TINY_CONFIGS[model_type], **overrides},
    )
    return seeded_model(config, seed)


def seeded_model(config: PreTrainedConfig, seed: int = 0) -> PreTrainedModel:
    """A freshly initialised model of ``config`` in eval mode: the same weights for the same seed."""
    torch.manual_seed(seed)
    return AutoModelForSeq2SeqLM.from_config(config).eval()


def save_tiny_model(model_type: str, path: Path, **overrides: Any) -> PreTrainedModel:
    """Save a tiny model with the small tokenizer as a ``save_pretrained`` folder; returns the model."""
    model = tiny_model(model_type, **overrides)
    model.save_pretrained(path)
    small_tokenizer().save_pretrained(path)
    return model


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run a test module's tiny models on one thread, then restore the setting.

    On the two shared cores a second intra-op thread only contends: generating 60 tokens
    with a tiny model took 0.03 s on one thread and 1.4 s on two under load. Import this
    fixture into a test module to apply it there.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_tiny_run(model_type: str, output_dir: Path, test_examples: int = 6) -> Path:
    """A real ``hf-attn train`` run folder (a few steps) plus its test evaluation, as quickstart leaves one.

    Returns ``output_dir``, holding ``best/``, ``summary.json``, ``training_config.json``,
    ``history.json``, ``learning_curve.png`` and ``test/metrics.json`` + ``test/hypotheses.txt``.
    """
    from hf_attn.evaluation import evaluate_model
    from hf_attn.inference import load_model_and_tokenizer
    from hf_attn.training.config import TrainingConfig
    from hf_attn.training.loop import train

    tokenizer_dir = output_dir.parent / f"{output_dir.name}-tokenizer"
    small_tokenizer().save_pretrained(tokenizer_dir)
    config = TrainingConfig(
        model_type=model_type,
        model=TINY_CONFIGS[model_type],
        output_dir=str(output_dir),
        tokenizer=str(tokenizer_dir),
        max_train_examples=64,
        max_tokens=512,
        max_steps=4,
        warmup_steps=2,
        eval_every=2,
        eval_examples=4,
        save_every=4,
        log_every=1,
    )
    summary = train(config)
    model, tokenizer = load_model_and_tokenizer(summary.best_model_dir)
    evaluate_model(
        model, tokenizer, bible_corpus()["test"], output_dir=output_dir / "test", num_beams=2,
        max_examples=test_examples, max_new_tokens=16,
    )  # fmt: skip
    return output_dir


# Training-config overrides that shrink each seed preset's model to a tiny one (the experiment's tests).
TINY_RNN_OVERRIDES = (
    "model.hidden_size=16",
    "model.embedding_size=16",
    "model.encoder_hidden_size=16",
    "model.decoder_layers=1",
)
TINY_TRANSFORMER_OVERRIDES = (
    "model.d_model=16",
    "model.encoder_layers=1",
    "model.decoder_layers=1",
    "model.encoder_ffn_dim=32",
    "model.decoder_ffn_dim=32",
)
TINY_SEED_OVERRIDES = {
    "rnn_none": TINY_RNN_OVERRIDES,
    "rnn_bahdanau": TINY_RNN_OVERRIDES,
    "rnn_luong": TINY_RNN_OVERRIDES,
    "transformer": TINY_TRANSFORMER_OVERRIDES,
}


def tiny_synthetic_settings(max_steps: int = 2):
    """The controlled part at toy scale: strings of 3-16 symbols in two buckets, tiny models, a few updates."""
    from research.experiment.synthetic import ReversalTask
    from research.experiment.synthetic_run import SyntheticSettings

    return SyntheticSettings(
        task=ReversalTask(
            symbols=6,
            min_length=3,
            typical_max_length=8,
            max_length=16,
            train_examples=48,
            validation_examples=4,
            test_per_bucket=3,
            bucket_width=8,
        ),
        max_steps=max_steps,
        overrides=("max_tokens=256", "warmup_steps=1", "eval_every=2", "eval_examples=4", "save_every=2"),
        model_overrides=TINY_SEED_OVERRIDES,
        probe_sequences=2,
    )
