"""Bad input and faults around training run folders: crafted or damaged checkpoints, signals, locks, full disks.

Every case asserts the error type, that the message names the offending file or setting,
and, for faults, that the earlier good checkpoint still resumes. Nothing in a run folder
may run code: the crafted pickles below would write a marker file if anything unpickled
them unsafely.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_seq2seq import TINY_CONFIGS, one_torch_thread, small_tokenizer  # noqa: F401 - fixture

from hf_attn.training.checkpointing import (
    LEGACY_PROGRESS_FILE,
    PROGRESS_FILE,
    CheckpointError,
    OutputDirectoryInUse,
    latest_checkpoint,
)
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import TrainingInterrupted, TrainingRun, train

REPO = Path(__file__).resolve().parents[1]
MODEL_TYPE = "rnn_seq2seq"


class RunsCode:
    """Unpickling this (with weights_only=False) writes ``marker``: a stand-in for any payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tokenizer")
    small_tokenizer().save_pretrained(directory)
    return directory


def run_config(output_dir: Path, tokenizer_dir: Path, **overrides) -> TrainingConfig:
    settings = {
        "model_type": MODEL_TYPE,
        "model": {**TINY_CONFIGS[MODEL_TYPE], "dropout": 0.1},
        "output_dir": str(output_dir),
        "tokenizer": str(tokenizer_dir),
        "max_train_examples": 64,
        "max_source_tokens": 48,
        "max_target_tokens": 48,
        "max_tokens": 256,
        "warmup_steps": 2,
        "max_steps": 4,
        "eval_every": 100,
        "eval_examples": 2,
        "save_every": 2,
        "log_every": 1,
        "seed": 3,
    }
    settings.update(overrides)
    return TrainingConfig.from_dict(settings)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tokenizer_dir) -> Path:
    """A run folder stopped at step 4 (checkpoints at steps 2 and 4); tests work on copies of it."""
    output_dir = tmp_path_factory.mktemp("runs") / "template"
    train(run_config(output_dir, tokenizer_dir))
    return output_dir


@pytest.fixture
def run_dir(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def latest(run_dir: Path) -> Path:
    return latest_checkpoint(run_dir / "checkpoints")


def resume(run_dir: Path, tokenizer_dir: Path, allow_inexact_resume: bool = False, **overrides):
    config = run_config(run_dir, tokenizer_dir, **{"max_steps": 6, **overrides})
    return train(config, allow_inexact_resume=allow_inexact_resume)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def assert_resumes(run_dir: Path, tokenizer_dir: Path) -> None:
    """The run's good checkpoint still resumes to the end."""
    assert resume(run_dir, tokenizer_dir).steps == 6


# --- No code runs from a run folder ------------------------------------------------------------------------------


def test_the_crafted_pickle_really_runs_code_when_unpickled_unsafely(tmp_path):
    """Guard for the tests below: the payload is live, so a marker-free run proves nothing was unpickled unsafely."""
    path, marker = tmp_path / "payload.pkl", tmp_path / "marker"
    torch.save({"step": RunsCode(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_checkpoints_hold_no_pickled_progress(run_dir):
    checkpoint = latest(run_dir)
    assert (checkpoint / PROGRESS_FILE).is_file()
    assert json.loads((checkpoint / PROGRESS_FILE).read_text())["step"] == 4
    assert not list(checkpoint.glob("custom_checkpoint_*.pkl"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_crafted_legacy_progress_pickle_is_refused_without_running(writer, run_dir, tokenizer_dir, tmp_path):
    """A 0.1-style checkpoint (pickled progress, no JSON) whose pickle would run code."""
    checkpoint, marker = latest(run_dir), tmp_path / "marker"
    (checkpoint / PROGRESS_FILE).unlink()
    payload = {"step": RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, checkpoint / LEGACY_PROGRESS_FILE)
    else:
        with open(checkpoint / LEGACY_PROGRESS_FILE, "wb") as handle:
            pickle.dump(payload, handle)
    with pytest.raises(CheckpointError, match=rf"{LEGACY_PROGRESS_FILE}.*refusing to unpickle"):
        resume(run_dir, tokenizer_dir)
    assert not marker.exists()


def test_a_crafted_pickle_planted_next_to_the_json_progress_is_refused_unread(run_dir, tokenizer_dir, tmp_path):
    marker = tmp_path / "marker"
    torch.save(RunsCode(marker), latest(run_dir) / "custom_checkpoint_0.pkl")
    with pytest.raises(CheckpointError, match="custom_checkpoint_0.pkl, which hf_attn does not write"):
        resume(run_dir, tokenizer_dir)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["random_states_0.pkl", "optimizer.bin", "scheduler.bin"])
def test_crafted_accelerate_state_files_are_refused_without_running(name, run_dir, tokenizer_dir, tmp_path):
    marker = tmp_path / "marker"
    torch.save({"state": RunsCode(marker)}, latest(run_dir) / name)
    with pytest.raises(CheckpointError, match=rf"{name} holds objects other than tensors.*refusing to unpickle"):
        resume(run_dir, tokenizer_dir, allow_inexact_resume=True)
    assert not marker.exists()


def test_a_plain_data_legacy_progress_pickle_is_converted_and_resumes(run_dir, tokenizer_dir):
    checkpoint = latest(run_dir)
    state = json.loads((checkpoint / PROGRESS_FILE).read_text())
    (checkpoint / PROGRESS_FILE).unlink()
    torch.save(state, checkpoint / LEGACY_PROGRESS_FILE)
    assert_resumes(run_dir, tokenizer_dir)


# --- Damaged checkpoints: an error naming the file, never a silently inexact resume --------------------------------


@pytest.mark.parametrize(
    ("name", "damage", "message"),
    [
        ("optimizer.bin", "truncate", "optimizer.bin is damaged or truncated"),
        ("scheduler.bin", "empty", "scheduler.bin is damaged or truncated"),
        ("model.safetensors", "truncate", "model.safetensors is damaged or truncated"),
        ("model.safetensors", "garbage", "model.safetensors is damaged or truncated"),
        ("model.safetensors", "delete", "model.safetensors is missing"),
        (PROGRESS_FILE, "truncate", f"{PROGRESS_FILE} is damaged: not valid JSON"),
        (PROGRESS_FILE, "delete", f"has no {PROGRESS_FILE}"),
        (PROGRESS_FILE, "wrong-fields", f"{PROGRESS_FILE} is damaged: training progress must have the fields"),
        (PROGRESS_FILE, "negative-step", "`step` must be a non-negative integer"),
    ],
)
def test_a_damaged_checkpoint_file_is_a_clear_error(name, damage, message, run_dir, tokenizer_dir):
    path = latest(run_dir) / name
    if damage == "truncate":
        truncate(path)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"\x00\xff not a safetensors file" * 10)
    elif damage == "delete":
        path.unlink()
    elif damage == "wrong-fields":
        path.write_text(json.dumps({"step": 4, "epochs": 0}))
    elif damage == "negative-step":
        state = json.loads(path.read_text())
        path.write_text(json.dumps({**state, "step": -4}))
    with pytest.raises(CheckpointError, match=message):
        resume(run_dir, tokenizer_dir)


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_missing_or_damaged_random_states_refuse_an_inexact_resume(damage, run_dir, tokenizer_dir):
    path = latest(run_dir) / "random_states_0.pkl"
    path.unlink() if damage == "delete" else truncate(path)
    with pytest.raises(CheckpointError, match=r"random_states_0.pkl.*--allow-inexact-resume"):
        resume(run_dir, tokenizer_dir)


def test_allow_inexact_resume_continues_with_a_warning(run_dir, tokenizer_dir, caplog):
    (latest(run_dir) / "random_states_0.pkl").unlink()
    assert resume(run_dir, tokenizer_dir, allow_inexact_resume=True).steps == 6
    assert "inexactly (allowed)" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {**TINY_CONFIGS[MODEL_TYPE], "hidden_size": 48}}, "different shapes"),
        ({"model": {**TINY_CONFIGS[MODEL_TYPE], "attention_type": "none"}}, "unexpected tensors"),
    ],
)
def test_resuming_with_a_changed_model_is_a_clear_error(change, message, run_dir, tokenizer_dir):
    with pytest.raises(CheckpointError, match=rf"model.safetensors does not fit the model.*{message}.*--no-resume"):
        resume(run_dir, tokenizer_dir, **change)
    assert_resumes(run_dir, tokenizer_dir)


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ("", r"latest is empty; it should name a checkpoint folder .*step-00000002, step-00000004"),
        ("../../etc", r"latest holds '../../etc'"),
        ("step-00000099", "names step-00000099, which does not exist"),
    ],
)
def test_a_bad_latest_pointer_names_the_pointer(pointer, message, run_dir, tokenizer_dir):
    (run_dir / "checkpoints" / "latest").write_text(pointer)
    with pytest.raises((CheckpointError, FileNotFoundError), match=message) as error:
        resume(run_dir, tokenizer_dir)
    assert "pytorch_model.bin" not in str(error.value)


def test_no_resume_starts_over_despite_a_damaged_checkpoint(run_dir, tokenizer_dir):
    truncate(latest(run_dir) / "optimizer.bin")
    summary = train(run_config(run_dir, tokenizer_dir), resume=False)
    assert summary.steps == 4


# --- Signals, locks, leftovers -------------------------------------------------------------------------------------


def send_signal_at_step(monkeypatch, step: int, signal_number: int) -> None:
    original = TrainingRun._optimizer_step

    def step_then_signal(self, window):
        result = original(self, window)
        if self.progress.step + 1 == step:
            os.kill(os.getpid(), signal_number)
        return result

    monkeypatch.setattr(TrainingRun, "_optimizer_step", step_then_signal)


@pytest.fixture
def python_signal_handlers():
    """SIGINT and SIGTERM as a foreground Python process has them, whatever the test runner was started under."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_training_after_saving_a_checkpoint_and_resume_is_exact(
    signal_number, tokenizer_dir, tmp_path, monkeypatch, python_signal_handlers
):
    train(run_config(tmp_path / "reference", tokenizer_dir, max_steps=5))
    with monkeypatch.context() as patch:
        send_signal_at_step(patch, 3, signal_number)
        with pytest.raises(TrainingInterrupted, match=rf"stopped by {signal_number.name} at step 3") as stop:
            train(run_config(tmp_path / "stopped", tokenizer_dir, max_steps=5))
    assert stop.value.signal_number == signal_number and stop.value.step == 3
    assert latest(tmp_path / "stopped").name == "step-00000003"
    assert not (tmp_path / "stopped" / "summary.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the handler must be restored"
    assert train(run_config(tmp_path / "stopped", tokenizer_dir, max_steps=5)).steps == 5
    reference = load_file(latest(tmp_path / "reference") / "model.safetensors")
    resumed = load_file(latest(tmp_path / "stopped") / "model.safetensors")
    assert reference.keys() == resumed.keys()
    for name in reference:
        assert torch.equal(reference[name], resumed[name]), name


def test_a_signal_the_launcher_ignores_stays_ignored(tokenizer_dir, tmp_path, monkeypatch, python_signal_handlers):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as under nohup or a script's background job
    send_signal_at_step(monkeypatch, 3, signal.SIGTERM)
    assert train(run_config(tmp_path / "ignored", tokenizer_dir, max_steps=5)).steps == 5
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_a_second_run_on_the_same_output_dir_is_refused(tokenizer_dir, tmp_path):
    config = run_config(tmp_path / "shared", tokenizer_dir)
    first = TrainingRun(config)
    with pytest.raises(OutputDirectoryInUse, match=rf"{tmp_path / 'shared'} is in use by another training run \(pid"):
        TrainingRun(config)
    first.close()
    TrainingRun(config).close()


def test_leftovers_of_a_killed_run_are_cleaned_and_a_retired_best_model_restored(run_dir, tokenizer_dir):
    (run_dir / ".best.k1ll3d.tmp").mkdir()
    (run_dir / ".best.k1ll3d.tmp" / "model.safetensors").write_bytes(b"half")
    (run_dir / ".history.json.x1.tmp").write_text("[")
    (run_dir / "checkpoints" / ".step-00000006.tmp").mkdir()
    (run_dir / "unrelated.tmp").write_text("mine")
    os.replace(run_dir / "best", run_dir / ".best.old")  # killed between retiring best and moving in the new one
    TrainingRun(run_config(run_dir, tokenizer_dir)).close()
    assert sorted(p.name for p in run_dir.glob(".*.tmp")) == []
    assert not list((run_dir / "checkpoints").glob(".*"))
    assert (run_dir / "best" / "model.safetensors").is_file() and not (run_dir / ".best.old").exists()
    assert (run_dir / "unrelated.tmp").read_text() == "mine"


# --- A full disk ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "8m"):
    path.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except OSError as error:
        pytest.skip(f"cannot run mount to make a small tmpfs for the disk-full test ({error})")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the disk-full test (needs root): {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``folder`` but ``leave_bytes``."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


@pytest.mark.parametrize(("eval_every", "what"), [(100, "checkpoint of step 6"), (5, "best model of step 5")])
def test_a_full_disk_fails_clearly_and_the_previous_checkpoint_survives(
    eval_every, what, finished_run, tokenizer_dir, tmp_path
):
    with small_tmpfs(tmp_path / "disk") as disk:
        run_dir = disk / "run"
        shutil.copytree(finished_run, run_dir)
        best_before = (run_dir / "best" / "model.safetensors").read_bytes()
        progress = latest(run_dir) / PROGRESS_FILE
        # Any dev BLEU beats -1, so the evaluation at step 5 writes the best model.
        progress.write_text(json.dumps({**json.loads(progress.read_text()), "best_bleu": -1.0}))
        filler = fill_disk(disk, leave_bytes=40_000)
        with pytest.raises(OSError, match=rf"Could not write the {what} .*(No space left|intact)") as error:
            resume(run_dir, tokenizer_dir, max_steps=8, eval_every=eval_every)
        assert "intact" in str(error.value)
        assert latest(run_dir).name == "step-00000004"
        assert (run_dir / "best" / "model.safetensors").read_bytes() == best_before
        assert not list(run_dir.glob(".best.*")) and not list((run_dir / "checkpoints").glob(".*.tmp"))
        filler.unlink()
        assert resume(run_dir, tokenizer_dir, max_steps=8, eval_every=eval_every).steps == 8


# --- The command line: one-line messages, signal exit codes --------------------------------------------------------


def test_the_cli_reports_a_bad_checkpoint_in_one_line(run_dir, tokenizer_dir, capsys):
    from hf_attn.cli import main

    config = run_config(run_dir, tokenizer_dir, max_steps=6)
    config.save(run_dir / "config.json")
    (latest(run_dir) / "random_states_0.pkl").unlink()
    assert main(["train", str(run_dir / "config.json")]) == 2
    error = capsys.readouterr().err
    assert "random_states_0.pkl is missing" in error and "--allow-inexact-resume" in error and "Traceback" not in error
    assert main(["train", str(run_dir / "config.json"), "--allow-inexact-resume"]) == 0


@pytest.mark.slow
def test_sigterm_to_hf_attn_train_saves_a_checkpoint_and_exits_143(tokenizer_dir, tmp_path):
    config = run_config(
        tmp_path / "run", tokenizer_dir, max_steps=100_000, num_epochs=100_000, save_every=100_000, eval_every=1
    )
    config.save(tmp_path / "config.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_attn.cli", "train", str(tmp_path / "config.json")],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    history = tmp_path / "run" / "history.json"  # written by the first dev evaluation: training is under way
    while time.monotonic() < deadline and not history.is_file():
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "training stopped by SIGTERM at step" in stderr and "Traceback" not in stderr
    step = int(stderr.split("training stopped by SIGTERM at step ")[1].split(";")[0])
    assert latest(tmp_path / "run").name == f"step-{step:08d}"
