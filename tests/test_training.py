"""The accelerate training loop on the real corpus: learns, saves, resumes exactly, reloads, runs on 2 processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_attn.data import load_bible_corpus
from hf_attn.tokenization import train_bpe_tokenizer
from hf_attn.training.builders import build_model
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import TrainingRun, train

REPO = Path(__file__).resolve().parents[1]

TINY_MODELS = {
    "transformer_seq2seq": {
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "max_position_embeddings": 128,
    },
    "rnn_seq2seq": {"hidden_size": 32, "embedding_size": 32, "attention_type": "bahdanau", "input_feeding": True},
}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    """A small BPE tokenizer trained on the first verses of the real training split."""
    directory = tmp_path_factory.mktemp("tokenizer")
    train_split = load_bible_corpus()["train"].select(range(2000))
    train_bpe_tokenizer(train_split, vocab_size=600).save_pretrained(directory)
    return directory


def tiny_config(model_type: str, output_dir: Path, tokenizer_dir: Path, **overrides) -> TrainingConfig:
    settings = {
        "model_type": model_type,
        "model": {**TINY_MODELS[model_type], "dropout": 0.1},
        "output_dir": str(output_dir),
        "tokenizer": str(tokenizer_dir),
        "max_train_examples": 400,
        "max_source_tokens": 64,
        "max_target_tokens": 64,
        "max_tokens": 512,
        "learning_rate": 3e-3,
        "warmup_steps": 2,
        "max_steps": 6,
        "eval_every": 3,
        "eval_examples": 8,
        "save_every": 2,
        "log_every": 1,
        "seed": 7,
    }
    settings.update(overrides)
    return TrainingConfig.from_dict(settings)


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    pointer = (output_dir / "checkpoints" / "latest").read_text().strip()
    return load_file(output_dir / "checkpoints" / pointer / "model.safetensors")


def training_curve(output_dir: Path) -> list[tuple[int, float, float]]:
    """(step, train loss, learning rate) rows; dev rows differ legitimately (a stopped run evaluates at its end)."""
    history = json.loads((output_dir / "history.json").read_text())
    return [(row["step"], row["train_loss"], row["learning_rate"]) for row in history]


def assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=atol, rtol=0, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("model_type", list(TINY_MODELS))
def test_training_saves_a_loadable_best_model_and_resumes_exactly(model_type, tokenizer_dir, tmp_path):
    uninterrupted = train(tiny_config(model_type, tmp_path / "a", tokenizer_dir))
    assert uninterrupted.steps == 6 and uninterrupted.stopped_because == "max_steps"
    assert uninterrupted.target_tokens > 0 and uninterrupted.target_tokens_per_second > 0

    # The same run stopped at step 4, then restarted: it must end with identical weights.
    train(tiny_config(model_type, tmp_path / "b", tokenizer_dir, max_steps=4))
    resumed = train(tiny_config(model_type, tmp_path / "b", tokenizer_dir))
    assert resumed.steps == 6
    assert_same_weights(final_weights(tmp_path / "a"), final_weights(tmp_path / "b"))
    assert training_curve(tmp_path / "b") == training_curve(tmp_path / "a")
    assert [step for step, _, _ in training_curve(tmp_path / "b")] == [1, 2, 3, 4, 5, 6]

    best = tmp_path / "a" / "best"
    model = AutoModelForSeq2SeqLM.from_pretrained(best)
    tokenizer = AutoTokenizer.from_pretrained(best)
    assert model.config.model_type == model_type
    batch = tokenizer(["In the beginning God created the heaven and the earth."], return_tensors="pt")
    assert model.generate(**batch, max_new_tokens=5).shape[0] == 1
    assert (tmp_path / "a" / "learning_curve.png").stat().st_size > 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["best_step"] in (3, 6) and summary["model_type"] == model_type


def test_one_step_is_the_same_whole_or_as_accumulated_micro_batches(tokenizer_dir, tmp_path):
    """The loss is normalised by the step's token count, so splitting a batch changes nothing."""
    model = {**TINY_MODELS["transformer_seq2seq"], "dropout": 0.0}
    # Two output directories: a run locks its own.
    whole_run = TrainingRun(tiny_config("transformer_seq2seq", tmp_path / "whole", tokenizer_dir, model=model))
    split_run = TrainingRun(tiny_config("transformer_seq2seq", tmp_path / "split", tokenizer_dir, model=model))
    examples = [whole_run.train_data[i] for i in range(6)]
    whole_loss, _, whole_tokens = whole_run._optimizer_step([whole_run.collator(examples)])
    split_loss, _, split_tokens = split_run._optimizer_step(
        [split_run.collator(examples[:2]), split_run.collator(examples[2:])]
    )
    assert whole_tokens == split_tokens
    assert whole_loss == pytest.approx(split_loss, rel=1e-5)
    for (name, whole), (_, split) in zip(whole_run.model.named_parameters(), split_run.model.named_parameters()):
        torch.testing.assert_close(whole, split, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_mismatched_tokenizer_and_model_vocabulary_is_a_clear_error(tokenizer_dir, tmp_path):
    config = tiny_config("transformer_seq2seq", tmp_path, tokenizer_dir)
    config.model["vocab_size"] = 999
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    with pytest.raises(ValueError, match="vocab"):
        build_model(config, tokenizer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(config: TrainingConfig, path: Path) -> Path:
    config.save(path)
    return path


def run_script(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def single_and_distributed_configs(tokenizer_dir: Path, tmp_path: Path, name: str, max_steps: int) -> tuple[Path, Path]:
    """Config files of one run in ``tmp_path/one`` and the same run in ``tmp_path/NAME``, set up so that
    N processes sharing each global batch must end with the 1-process weights (no dropout, ≥ 2 rows a batch)."""
    overrides = {
        "model": {**TINY_MODELS["transformer_seq2seq"], "dropout": 0.0},
        "min_batch_size": 2,
        "max_steps": max_steps,
        "eval_every": 100,
        "save_every": max_steps,
    }
    return tuple(
        write_config(
            tiny_config("transformer_seq2seq", tmp_path / run, tokenizer_dir, **overrides), tmp_path / f"{run}.json"
        )
        for run in ("one", name)
    )


@pytest.mark.slow
def test_two_processes_with_half_batches_match_one_process(tokenizer_dir, tmp_path):
    """torchrun with 2 CPU processes, each taking half of every global batch, ends with the 1-process weights."""
    single, double = single_and_distributed_configs(tokenizer_dir, tmp_path, "two", max_steps=4)
    run_script([sys.executable, "scripts/train.py", str(single)])
    run_script(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "scripts/train.py",
            str(double),
        ]
    )
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["num_processes"] == 2
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["target_tokens"] == one["target_tokens"]
    assert_same_weights(final_weights(tmp_path / "one"), final_weights(tmp_path / "two"), atol=1e-5)


@pytest.mark.slow
def test_run_killed_with_sigkill_resumes_to_the_same_weights(tokenizer_dir, tmp_path):
    """A real crash: SIGKILL right after a checkpoint lands, restart, compare with an uninterrupted run."""
    overrides = {"max_steps": 12, "save_every": 3, "eval_every": 100}
    reference = write_config(
        tiny_config("rnn_seq2seq", tmp_path / "ref", tokenizer_dir, **overrides), tmp_path / "ref.json"
    )
    crashed = write_config(
        tiny_config("rnn_seq2seq", tmp_path / "crash", tokenizer_dir, **overrides), tmp_path / "crash.json"
    )
    run_script([sys.executable, "scripts/train.py", str(reference)])

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        [sys.executable, "scripts/train.py", str(crashed)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pointer = tmp_path / "crash" / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (pointer.is_file() and pointer.read_text().strip() == "step-00000006"):
        assert process.poll() is None, "training finished before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (tmp_path / "crash" / "summary.json").exists()

    run_script([sys.executable, "scripts/train.py", str(crashed)])
    assert json.loads((tmp_path / "crash" / "summary.json").read_text())["steps"] == 12
    assert_same_weights(final_weights(tmp_path / "ref"), final_weights(tmp_path / "crash"))


def test_checkpoints_of_tied_embeddings_save_without_accelerates_shared_tensor_warning(
    tokenizer_dir, tmp_path, caplog, capfd, monkeypatch
):
    """Issue 25: every save used to log "Removed shared tensor {...} while saving"; ties are stored once, silently."""

    def run(output_dir: Path) -> str:
        caplog.clear()
        capfd.readouterr()
        with caplog.at_level("INFO"):
            train(tiny_config("transformer_seq2seq", output_dir, tokenizer_dir, max_steps=6, save_every=2))
        return caplog.text + capfd.readouterr().err

    logs = run(tmp_path / "quiet")
    assert logs.count("Removed shared tensor") == 0
    checkpoint = tmp_path / "quiet" / "checkpoints" / "step-00000006"
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "quiet" / "best")
    assert model.config.tie_word_embeddings  # the tiny Transformer ties, so its saves have ties to drop
    stored = load_file(checkpoint / "model.safetensors")
    assert "lm_head.weight" not in stored and len(stored) < len(model.state_dict())

    # The check can fail: without the hook accelerate warns on each of the 3 saves, and stores the same tensors.
    monkeypatch.setattr("hf_attn.training.loop.drop_tied_copies", lambda models, weights, output_dir: None)
    noisy = run(tmp_path / "noisy")
    assert noisy.count("Removed shared tensor") >= 3
    assert_same_weights(stored, load_file(tmp_path / "noisy" / "checkpoints" / "step-00000006" / "model.safetensors"))


@pytest.mark.slow
def test_compiled_training_follows_the_eager_curve(tokenizer_dir, tmp_path):
    """`compile: true` trains the inductor-compiled forward: the same losses as eager, to float rounding."""
    # Without dropout: inductor draws its dropout masks from another generator than eager.
    model = {**TINY_MODELS["transformer_seq2seq"], "dropout": 0.0}
    overrides = {"max_steps": 3, "eval_every": 100, "save_every": 100, "model": model}
    eager = train(tiny_config("transformer_seq2seq", tmp_path / "eager", tokenizer_dir, **overrides))
    torch._dynamo.reset()
    try:
        compiled_run = TrainingRun(
            tiny_config("transformer_seq2seq", tmp_path / "probe", tokenizer_dir, compile=True, **overrides)
        )
        assert compiled_run.unwrapped_model._compiled_call_impl is not None
        compiled_run.close()
        compiled = train(
            tiny_config("transformer_seq2seq", tmp_path / "compiled", tokenizer_dir, compile=True, **overrides)
        )
    finally:
        torch._dynamo.reset()
    assert compiled.steps == eager.steps == 3
    eager_curve, compiled_curve = training_curve(tmp_path / "eager"), training_curve(tmp_path / "compiled")
    assert [row[0] for row in compiled_curve] == [row[0] for row in eager_curve]
    for (_, eager_loss, _), (_, compiled_loss, _) in zip(eager_curve, compiled_curve):
        assert compiled_loss == pytest.approx(eager_loss, rel=1e-4)
