"""Seq2SeqTrainer fine-tuning (hf_attn.training.finetune, scripts/finetune.py) with the real Trainer on tiny models.

The key checks: the loss the Trainer logs under gradient accumulation is the per-token mean
over the whole optimizer step, recomputed here independently from the very batches and
weights the Trainer used; an interrupted run resumed from its checkpoint ends with the
weights of an uninterrupted one; evaluation reports BLEU and chrF and keeps the best model.
"""

from __future__ import annotations

import copy
import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tiny_seq2seq import (
    MODEL_TYPES,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    short_pairs,
    small_tokenizer,
    tiny_model,
)
from transformers import EvalPrediction, TrainerCallback

from hf_attn.evaluation import corpus_scores
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.training.finetune import (
    build_trainer,
    finetune,
    make_compute_metrics,
    tokenize_pairs,
    training_arguments,
)

REPO = Path(__file__).resolve().parents[1]
QUICK_EVAL = {"generation_num_beams": 2, "generation_max_length": 16, "disable_tqdm": True}


def small_corpus(train: int = 160, validation: int = 8) -> datasets.DatasetDict:
    return datasets.DatasetDict(train=short_pairs("train", train), validation=short_pairs("validation", validation))


class RecordingCollator:
    """The Trainer's collator, keeping a copy of every batch it hands out, in order."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.batches: list[dict[str, torch.Tensor]] = []

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collator(features)
        self.batches.append({name: tensor.clone() for name, tensor in batch.items()})
        return batch


class WeightsAtStepBegin(TrainerCallback):
    """The weights each optimizer step starts from."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self.weights.append(copy.deepcopy(model.state_dict()))


class StopAtStep(TrainerCallback):
    """Ends training after ``step`` optimizer steps, as an interruption would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def token_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Summed label-smoothed cross-entropy and target-token count, computed here from the logits."""
    logits = model(**batch).logits
    labels = batch["labels"]
    total = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).double(),
        labels.flatten(),
        ignore_index=-100,
        label_smoothing=model.config.label_smoothing,
        reduction="sum",
    )
    return float(total), int((labels != -100).sum())


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_logged_loss_is_the_token_mean_over_accumulated_micro_batches(model_type: str, tmp_path: Path):
    tokenizer = small_tokenizer()
    model = tiny_model(model_type, label_smoothing=0.1)
    args = training_arguments(
        tmp_path,
        max_steps=10,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        logging_steps=1,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        disable_tqdm=True,
    )
    weights = WeightsAtStepBegin()
    trainer = build_trainer(
        model, tokenizer, args, tokenize_pairs(short_pairs("train", 160), tokenizer), callbacks=[weights]
    )
    recorder = trainer.data_collator = RecordingCollator(trainer.data_collator)
    trainer.train()

    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    # accelerate's loader collates one batch ahead (to spot the last one), so 21 batches were made for 20 used.
    assert len(logged) == len(weights.weights) == 10 and len(recorder.batches) >= 20
    replica = tiny_model(model_type, label_smoothing=0.1).train()
    mean_of_means = []
    with torch.no_grad():
        for step, state in enumerate(weights.weights):
            replica.load_state_dict(state)
            sums, counts = zip(*(token_loss_sum(replica, batch) for batch in recorder.batches[2 * step : 2 * step + 2]))
            assert logged[step] == pytest.approx(sum(sums) / sum(counts), rel=1e-5), step
            mean_of_means.append(sum(s / c for s, c in zip(sums, counts)) / 2)
    # The micro-batches differ in token count, so averaging their means would have been caught.
    assert max(abs(a - b) for a, b in zip(logged, mean_of_means)) > 1e-3


@pytest.fixture(scope="module")
def transformer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("transformer")
    save_tiny_model("transformer_seq2seq", path, dropout=0.1)  # dropout: resume must restore the RNG too
    return path


def resume_run(model_dir: Path, output_dir: Path, **kwargs: Any):
    return finetune(
        model_dir,
        output_dir,
        data=small_corpus(),
        eval_examples=8,
        max_steps=10,
        eval_steps=5,
        save_steps=5,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        logging_steps=1,
        **QUICK_EVAL,
        **kwargs,
    )


def checkpoint_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model.safetensors")


def test_resume_from_checkpoint_reaches_the_uninterrupted_weights(transformer_dir: Path, tmp_path: Path):
    whole = resume_run(transformer_dir, tmp_path / "whole")
    resume_run(transformer_dir, tmp_path / "split", callbacks=[StopAtStep(5)])
    assert (tmp_path / "split" / "checkpoint-5").is_dir() and not (tmp_path / "split" / "checkpoint-10").exists()
    resumed = resume_run(transformer_dir, tmp_path / "split", resume_from_checkpoint=True)

    assert resumed.global_step == whole.global_step == 10
    reference = checkpoint_weights(tmp_path / "whole" / "checkpoint-10")
    final = checkpoint_weights(tmp_path / "split" / "checkpoint-10")
    assert reference.keys() == final.keys()
    for name in reference:
        assert torch.equal(reference[name], final[name]), name
    halfway = checkpoint_weights(tmp_path / "split" / "checkpoint-5")
    assert any(not torch.equal(halfway[name], final[name]) for name in final)  # the resumed half did train

    def losses(run: str) -> list[float]:
        history = json.loads((tmp_path / run / "trainer_state.json").read_text())["log_history"]
        return [entry["loss"] for entry in history if "loss" in entry]

    assert losses("split") == losses("whole") and len(losses("whole")) == 10


def test_evaluation_reports_bleu_and_chrf_and_keeps_the_best_model(transformer_dir: Path, tmp_path: Path):
    result = resume_run(transformer_dir, tmp_path / "run")
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    evals = [entry for entry in history if "eval_bleu" in entry]
    assert [entry["step"] for entry in evals] == [5, 10]
    assert all(0 <= entry["eval_bleu"] <= 100 and 0 <= entry["eval_chrf"] <= 100 for entry in evals)
    assert any(entry["eval_chrf"] > 0 for entry in evals)
    best = max(evals, key=lambda entry: entry["eval_bleu"])  # ties keep the first, as the Trainer does
    assert result.best_metric == best["eval_bleu"]
    assert result.best_model_checkpoint == str(tmp_path / "run" / f"checkpoint-{best['step']}")
    saved = json.loads((tmp_path / "run" / "finetune_result.json").read_text())
    assert saved["best_metric"] == result.best_metric and saved["global_step"] == 10

    model, tokenizer = load_model_and_tokenizer(result.best_model_dir)
    best_weights = checkpoint_weights(Path(result.best_model_checkpoint))
    for name, tensor in model.state_dict().items():
        if name in best_weights:
            assert torch.equal(tensor, best_weights[name]), name
    assert tokenizer.get_vocab() == small_tokenizer().get_vocab()


def test_rnn_fine_tunes_and_evaluates(tmp_path: Path):
    model_dir = tmp_path / "model"
    save_tiny_model("rnn_seq2seq", model_dir)
    result = finetune(
        model_dir,
        tmp_path / "run",
        data=small_corpus(train=64),
        eval_examples=8,
        max_steps=4,
        eval_steps=2,
        save_steps=2,
        per_device_train_batch_size=8,
        logging_steps=1,
        **QUICK_EVAL,
    )
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "eval_bleu" in entry and "eval_chrf" in entry] == [2, 4]
    assert result.global_step == 4 and result.best_metric is not None
    model, _ = load_model_and_tokenizer(result.best_model_dir)
    assert type(model).__name__ == "RNNSeq2SeqForConditionalGeneration"


def test_compute_metrics_decodes_generations_and_labels_padded_with_minus_100():
    tokenizer = small_tokenizer()
    references = list(short_pairs("validation", 3)["target"])
    hypotheses = [references[0], references[1][: len(references[1]) // 2], "y"]
    generated = tokenizer(hypotheses)["input_ids"]
    labels = tokenizer(text_target=references)["input_ids"]
    width = max(map(len, generated + labels)) + 2
    # As Seq2SeqTrainer hands them over: the decoder start token first, pad within a batch, -100 across batches.
    predictions = np.array([[tokenizer.bos_token_id, *row] + [-100] * (width - len(row) - 1) for row in generated])
    predictions[0, -1] = tokenizer.pad_token_id
    label_ids = np.array([row + [-100] * (width - len(row)) for row in labels])
    metrics = make_compute_metrics(tokenizer)(EvalPrediction(predictions=predictions, label_ids=label_ids))
    expected = corpus_scores(hypotheses, references)
    assert metrics["bleu"] == pytest.approx(expected["bleu"]) and metrics["chrf"] == pytest.approx(expected["chrf"])
    assert 0 < metrics["bleu"] < 100
    assert metrics["gen_len"] == pytest.approx(np.mean([len(row) - 1 for row in generated]))  # without </s>


def test_tokenize_pairs_truncates_and_keeps_the_end_token():
    tokenizer = small_tokenizer()
    pairs = short_pairs("train", 4)
    tokenized = tokenize_pairs(pairs, tokenizer, max_source_length=6, max_target_length=5)
    assert tokenized.column_names == ["input_ids", "attention_mask", "labels"]
    assert all(len(row) <= 6 and row[-1] == tokenizer.eos_token_id for row in tokenized["input_ids"])
    assert all(len(row) <= 5 and row[-1] == tokenizer.eos_token_id for row in tokenized["labels"])
    full = tokenize_pairs(pairs, tokenizer)
    assert full["labels"] == tokenizer(text_target=list(pairs["target"]))["input_ids"]


def run_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def write_tsv(path: Path, pairs: datasets.Dataset) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in zip(pairs["source"], pairs["target"])), encoding="utf-8")
    return path


def script_args(model_dir: Path, output_dir: Path, data: Path) -> list[str]:
    return [
        str(model_dir),
        "--output-dir", str(output_dir), "--data", str(data), "--max-steps", "4", "--eval-steps", "2",
        "--batch-size", "4", "--eval-examples", "4", "--num-beams", "1", "--generation-max-length", "12",
        "--logging-steps", "1", "--training-arg", "disable_tqdm=true",
    ]  # fmt: skip


def test_script_fine_tunes_user_data(transformer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    help_text = run_script([sys.executable, "scripts/finetune.py", "--help"], REPO).stdout
    assert "--gradient-accumulation-steps" in help_text and "--resume" in help_text and "--lora" in help_text
    data = write_tsv(tmp_path / "pairs.tsv", short_pairs("train", 80))
    script = runpy.run_path(str(REPO / "scripts" / "finetune.py"), run_name="finetune_script")
    assert script["main"](script_args(transformer_dir, tmp_path / "run", data)) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex('{\n  "output_dir"') :])  # after the Trainer's log lines
    assert printed["global_step"] == 4 and Path(printed["best_model_dir"]).is_dir()
    assert json.loads((tmp_path / "run" / "finetune_result.json").read_text()) == printed
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert sum("eval_bleu" in entry for entry in state["log_history"]) == 2  # --eval-steps 2 of --max-steps 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_script_under_torchrun_trains_with_two_processes(transformer_dir: Path, tmp_path: Path):
    data = write_tsv(tmp_path / "pairs.tsv", short_pairs("train", 80))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    launcher += ["--master_port", str(free_port()), str(REPO / "scripts" / "finetune.py")]
    run_script([*launcher, *script_args(transformer_dir, tmp_path / "two", data)], tmp_path)
    run_script(
        [sys.executable, str(REPO / "scripts" / "finetune.py"), *script_args(transformer_dir, tmp_path / "one", data)],
        tmp_path,
    )
    one, two = (json.loads((tmp_path / run / "trainer_state.json").read_text()) for run in ("one", "two"))
    assert two["global_step"] == one["global_step"] == 4
    # Each step of the 2-process run consumed two per-device batches: twice the data of the 1-process run.
    assert two["log_history"][-1]["epoch"] == pytest.approx(2 * one["log_history"][-1]["epoch"])
    assert sum("eval_bleu" in entry for entry in two["log_history"]) == 2
