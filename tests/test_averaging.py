"""Checkpoint averaging (hf_attn.training.averaging, `hf-attn average`, `average_last_checkpoints`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_seq2seq import MODEL_TYPES, TINY_CONFIGS, one_torch_thread, save_tiny_model, small_tokenizer  # noqa: F401
from transformers import AutoModelForSeq2SeqLM

from hf_attn.cli import main
from hf_attn.training.averaging import average_checkpoints
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import train


def saved_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def scaled_copy(source: Path, destination: Path, factor: float) -> Path:
    """A save_pretrained folder whose every float weight is ``factor`` times ``source``'s."""
    model = AutoModelForSeq2SeqLM.from_pretrained(source)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(factor)
    model.save_pretrained(destination)
    small_tokenizer().save_pretrained(destination)
    return destination


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_average_of_identical_checkpoints_is_that_checkpoint(model_type, tmp_path):
    folder = tmp_path / "model"
    save_tiny_model(model_type, folder)
    averaged = average_checkpoints([folder, folder, folder], tmp_path / "averaged")
    original, result = saved_weights(folder), saved_weights(averaged)
    assert original.keys() == result.keys()
    for name, tensor in original.items():
        assert torch.equal(tensor, result[name]), name


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_average_of_two_checkpoints_is_their_mean_and_generates(model_type, tmp_path):
    one = tmp_path / "one"
    save_tiny_model(model_type, one)
    three = scaled_copy(one, tmp_path / "three", 3.0)
    averaged = average_checkpoints([one, three], tmp_path / "averaged")
    for name, tensor in saved_weights(one).items():
        torch.testing.assert_close(saved_weights(averaged)[name], 2.0 * tensor)
    model = AutoModelForSeq2SeqLM.from_pretrained(averaged)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # ties survive
    batch = small_tokenizer()(["In the beginning God created the heaven."], return_tensors="pt")
    assert model.generate(**batch, max_new_tokens=5).shape[0] == 1


def test_checkpoints_of_different_sizes_are_refused_by_name(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    save_tiny_model("transformer_seq2seq", small)
    save_tiny_model("transformer_seq2seq", large, encoder_ffn_dim=128)
    with pytest.raises(ValueError, match=r"`model\.encoder\.layers\.0\.ffn\.fc1\.bias` has shape \(128,\)"):
        average_checkpoints([small, large], tmp_path / "averaged")
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        average_checkpoints([small, tmp_path], tmp_path / "averaged")
    assert not (tmp_path / "averaged").exists()


def tiny_run_config(tmp_path: Path, **overrides) -> TrainingConfig:
    """A few updates of a tiny RNN on 48 verses with a tokenizer of its own, averaging its last 2 checkpoints."""
    tokenizer_dir = tmp_path / "tokenizer"
    small_tokenizer().save_pretrained(tokenizer_dir)
    settings = {
        "model_type": "rnn_seq2seq",
        "model": TINY_CONFIGS["rnn_seq2seq"],
        "output_dir": str(tmp_path / "run"),
        "tokenizer": str(tokenizer_dir),
        "max_train_examples": 48,
        "max_tokens": 400,
        "warmup_steps": 2,
        "eval_every": 3,
        "eval_examples": 4,
        "average_last_checkpoints": 2,
        "log_every": 1,
    }
    return TrainingConfig(**{**settings, **overrides})


def test_training_averages_its_last_checkpoints(tmp_path, capsys):
    """`average_last_checkpoints: 2` averages the last two step-* checkpoints into averaged/ and scores it on dev."""
    summary = train(tiny_run_config(tmp_path, max_steps=6, save_every=3, keep_checkpoints=2))
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("step-*"))
    assert [path.name for path in checkpoints] == ["step-00000003", "step-00000006"]
    assert summary.averaged_dev_bleu is not None and Path(summary.averaged_model_dir).name == "averaged"
    first, second = (saved_weights(path) for path in checkpoints)
    averaged = saved_weights(Path(summary.averaged_model_dir))
    for name, tensor in first.items():
        torch.testing.assert_close(averaged[name], (tensor + second[name]) / 2)
    saved_summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved_summary["averaged_dev_bleu"] == summary.averaged_dev_bleu

    assert main(["average", *map(str, checkpoints), str(tmp_path / "by_cli")]) == 0
    assert json.loads(capsys.readouterr().out)["averaged"] == 2
    for name, tensor in averaged.items():
        assert torch.equal(saved_weights(tmp_path / "by_cli")[name], tensor), name


def test_averaging_more_checkpoints_than_kept_is_a_config_error():
    with pytest.raises(ValueError, match="average_last_checkpoints.*keep_checkpoints"):
        TrainingConfig(average_last_checkpoints=5, keep_checkpoints=2)


def test_a_run_that_stops_before_its_budget_averages_what_it_has_and_still_finishes(tmp_path, caplog):
    """One epoch ends the run long before max_steps: 2 checkpoints for average_last_checkpoints=3 are averaged
    with a warning naming both numbers, and the summary and learning curve are written."""
    config = tiny_run_config(
        tmp_path, max_train_examples=24, num_epochs=1, max_steps=1000, eval_every=1000, save_every=2,
        keep_checkpoints=5, average_last_checkpoints=5,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="hf_attn.training.loop"):
        summary = train(config)
    held = len(list((tmp_path / "run" / "checkpoints").glob("step-*")))
    assert summary.stopped_because == "num_epochs" and 2 <= held < 5
    assert f"average_last_checkpoints is 5 but the run stopped with {held} checkpoint(s)" in caplog.text
    assert summary.averaged_checkpoints == held and summary.averaged_dev_bleu is not None
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["averaged_checkpoints"] == held
    assert (tmp_path / "run" / "learning_curve.png").is_file()
