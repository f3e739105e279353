"""The checkpoint layout a training run resumes from, and the checks that make resuming safe.

A checkpoint is written into a temporary sibling directory and renamed into place only
when complete (``hf_attn.atomic``); the ``latest`` pointer file is replaced the same way,
after the rename. A run killed at any moment therefore leaves either the previous
checkpoint or the new one, never a half-written directory that resume would pick up.

Nothing in a run folder is trusted to be code. The run's position (step, epoch, history,
best score) is JSON (``training_progress.json``); accelerate's optimizer, schedule and
random-number files are torch pickles, which are only ever read with
``torch.load(weights_only=True)`` (tensors and plain data, no arbitrary objects). Before a
resume loads anything, every file is checked here, so a damaged, truncated, foreign or
crafted checkpoint is a :class:`CheckpointError` naming the file instead of a traceback,
code execution, or a silently inexact resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
from pathlib import Path
from typing import IO, Any, Protocol

from ..atomic import atomic_write_json, atomic_write_text, read_json_file

try:  # POSIX; elsewhere the output directory is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger(__name__)

LATEST_POINTER = "latest"
CHECKPOINT_PREFIX = "step-"
CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}\d{{8}}$")
PROGRESS_FILE = "training_progress.json"
# Written by hf_attn 0.1 through accelerate's register_for_checkpointing (a pickle); read only as plain data.
LEGACY_PROGRESS_FILE = "custom_checkpoint_0.pkl"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.bin"
SCHEDULER_FILE = "scheduler.bin"
LOCK_FILE = ".hf_attn.lock"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (exactly): damaged, missing a file, or not this run's."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holding objects other than tensors and plain data: unpickling it could run code."""


class OutputDirectoryInUse(OSError):
    """Another process is training into the same output directory."""


def checkpoint_dir(checkpoints_root: Path, step: int) -> Path:
    return checkpoints_root / f"{CHECKPOINT_PREFIX}{step:08d}"


def rng_state_file(process_index: int) -> str:
    """accelerate's per-process random-number state file name."""
    return f"random_states_{process_index}.pkl"


def stream_state_file(process_index: int) -> str:
    """A streaming run's per-process position in its stream (``hf_attn.streaming``), JSON."""
    return f"stream_state_{process_index}.json"


class ResumableStream(Protocol):
    """What a checkpoint saves of a streaming run's batches: a plain-data position (``StreamingBatches``)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def save_stream_position(checkpoint: Path, process_index: int, stream: ResumableStream | None) -> None:
    """Write this process's stream position into ``checkpoint`` (nothing for a map-style run)."""
    if stream is not None:
        atomic_write_json(checkpoint / stream_state_file(process_index), stream.state_dict())


def restore_stream_position(checkpoint: Path, process_index: int, stream: ResumableStream | None) -> None:
    """Make ``stream`` continue where the checkpoint's run stopped; refuse a checkpoint of the other kind of run."""
    path = checkpoint / stream_state_file(process_index)
    if stream is None:
        if any(checkpoint.glob(stream_state_file("*"))):
            raise CheckpointError(
                f"{checkpoint} was written by a run with `data.streaming: true`; resume it with the same `data`, "
                "or start over (--no-resume)."
            )
        return
    if not path.is_file():
        raise CheckpointError(
            f"{checkpoint} has no {path.name}: it was not written by a streaming run (`data.streaming: true`) "
            "with this process count, so the stream cannot continue where it stopped; resume it with the same "
            "`data` and processes, or start over (--no-resume)."
        )
    try:
        stream.load_state_dict(read_json_file(path))
    except ValueError as error:
        raise CheckpointError(f"Cannot resume {path}: {error}.") from None


def mark_latest(checkpoints_root: Path, checkpoint: Path) -> None:
    atomic_write_text(checkpoints_root / LATEST_POINTER, checkpoint.name + "\n")


def _complete_checkpoints(checkpoints_root: Path) -> list[str]:
    return sorted(p.name for p in checkpoints_root.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir())


def latest_checkpoint(checkpoints_root: str | os.PathLike) -> Path | None:
    """The checkpoint the ``latest`` pointer names, or None when the run has none yet."""
    checkpoints_root = Path(checkpoints_root)
    pointer = checkpoints_root / LATEST_POINTER
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        name = "<not text>"
    if not CHECKPOINT_NAME.match(name):
        found = ", ".join(_complete_checkpoints(checkpoints_root)) or "none"
        described = "is empty" if not name else f"holds {name[:60]!r}"
        raise CheckpointError(
            f"{pointer} {described}; it should name a checkpoint folder such as {CHECKPOINT_PREFIX}00000100 "
            f"(checkpoints found: {found}). Write the name of the one to resume from into it, or start over "
            "with --no-resume."
        )
    checkpoint = checkpoints_root / name
    if not checkpoint.is_dir():
        raise FileNotFoundError(
            f"{pointer} names {checkpoint.name}, which does not exist; the checkpoint directory was modified by hand."
        )
    return checkpoint


def prune_checkpoints(checkpoints_root: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest complete checkpoints (the latest one is always kept)."""
    latest = latest_checkpoint(checkpoints_root)
    finished = sorted(p for p in checkpoints_root.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir())
    for old in finished[: max(0, len(finished) - keep)]:
        if old != latest:
            shutil.rmtree(old, ignore_errors=True)


# --- Reading a checkpoint without running code from it --------------------------------------------------------


def load_plain_data(path: Path) -> Any:
    """A torch pickle read as tensors and plain data only (``weights_only=True``); anything else is refused.

    accelerate's ``load`` adds the numpy types its random-state files need to the allowed globals.
    """
    import pickle

    from accelerate.utils import load

    if not path.is_file():
        raise CheckpointError(f"{path} is missing.")
    try:
        return load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error) or "Unsupported operand" in str(error):
            first_line = str(error).split("\n")[0]
            raise UnsafeCheckpointError(
                f"{path} holds objects other than tensors and plain data; refusing to unpickle it, since that could "
                f"run code. hf_attn never writes such a file: it was modified or crafted. ({first_line})"
            ) from None
        raise CheckpointError(f"{path} is damaged or truncated and cannot be read ({error}).") from None
    except Exception as error:  # truncated zip archives, EOF, bad magic numbers…
        raise CheckpointError(f"{path} is damaged or truncated and cannot be read ({error}).") from None


def convert_legacy_progress(checkpoint: Path) -> None:
    """Rewrite a 0.1 checkpoint's pickled progress (``custom_checkpoint_0.pkl``) as ``training_progress.json``.

    The pickle is read as plain data only, so a crafted one is refused rather than run. A
    checkpoint that has both files was not written by hf_attn: :func:`read_progress` refuses it.
    """
    legacy, path = checkpoint / LEGACY_PROGRESS_FILE, checkpoint / PROGRESS_FILE
    if legacy.is_file() and not path.is_file():
        state = load_plain_data(legacy)
        atomic_write_json(path, state)
        legacy.unlink()
        logger.info("Converted %s to %s (hf_attn no longer pickles training progress).", legacy, path.name)


def read_progress(checkpoint: Path) -> dict[str, Any]:
    """The run's position saved with ``checkpoint`` (``training_progress.json``)."""
    path = checkpoint / PROGRESS_FILE
    foreign = sorted(p.name for p in checkpoint.glob("custom_checkpoint_*.pkl"))
    if foreign:
        raise CheckpointError(
            f"{checkpoint} holds {', '.join(foreign)}, which hf_attn does not write (its progress is "
            f"{PROGRESS_FILE}) and never unpickles; the checkpoint was modified. Remove the file(s) to resume."
        )
    if not path.is_file():
        raise CheckpointError(f"{checkpoint} has no {PROGRESS_FILE}: the checkpoint is incomplete.")
    try:
        state = read_json_file(path)
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} must hold a JSON object of training progress, found {type(state).__name__}.")
    return state


def read_rng_state(checkpoint: Path, process_index: int) -> tuple[dict[str, Any] | None, str | None]:
    """This process's random-number states, or ``(None, reason)`` when they are missing or damaged.

    A refused (possibly malicious) file is always an error, never a reason to resume inexactly.
    """
    path = checkpoint / rng_state_file(process_index)
    if not path.is_file():
        return None, f"{path} is missing"
    try:
        states = load_plain_data(path)
    except UnsafeCheckpointError:
        raise
    except CheckpointError as error:
        return None, str(error).rstrip(".")
    required = ("random_state", "numpy_random_seed", "torch_manual_seed")
    if not isinstance(states, dict) or any(key not in states for key in required):
        return None, f"{path} does not hold the random states accelerate saves ({', '.join(required)})"
    return states, None


def alias_groups(tensors: dict[str, Any]) -> list[list[str]]:
    """Names of ``tensors`` grouped by the one tensor they are (same memory, shape and strides: tied parameters),
    in ``tensors``' order; a name with no alias is a group of one."""
    groups: dict[tuple[int, tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for name, tensor in tensors.items():
        groups.setdefault((tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride())), []).append(name)
    return list(groups.values())


def drop_tied_copies(models: list[Any], weights: list[dict[str, Any]], output_dir: str) -> None:
    """``Accelerator.register_save_state_pre_hook``: store each tied tensor once, under its first name.

    accelerate would do the same while saving to safetensors, but with a warning on every save ("Removed shared
    tensor ... check by verifying that you don't receive any warning while reloading"). The ties (output projection
    and target embeddings; shared encoder/decoder embeddings) are the model's own, remade by ``tie_weights`` when it
    is built and kept while resuming (the file's tensor is loaded into the one shared parameter), so there is
    nothing for users to check. Only full aliases are dropped; tensors that merely overlap are left to accelerate.
    """
    for state_dict in weights:
        for group in alias_groups(state_dict):
            for name in group[1:]:
                del state_dict[name]


def check_model_weights(checkpoint: Path, expected: dict[str, Any]) -> None:
    """Raise unless ``model.safetensors`` holds exactly the tensors (names and shapes) of the model being trained."""
    from safetensors import safe_open

    path = checkpoint / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete.")
    try:
        with safe_open(str(path), framework="pt") as weights:
            shapes = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}
    except Exception as error:
        raise CheckpointError(f"{path} is damaged or truncated and cannot be read ({error}).") from None
    wanted = {name: tuple(tensor.shape) for name, tensor in expected.items()}
    # Tied parameters share one tensor, which the file holds under one of their names.
    missing = sorted(names[0] for names in alias_groups(expected) if not any(name in shapes for name in names))
    unexpected = sorted(set(shapes) - set(wanted))
    resized = [
        f"{name} {shapes[name]} there, {wanted[name]} here"
        for name in sorted(wanted)
        if name in shapes and shapes[name] != wanted[name]
    ]
    problems = [
        f"{kind}: {separator.join(items[:5])}{' …' if len(items) > 5 else ''}"
        for kind, items, separator in (
            ("different shapes", resized, "; "),
            ("missing tensors", missing, ", "),
            ("unexpected tensors", unexpected, ", "),
        )
        if items
    ]
    if problems:
        raise CheckpointError(
            f"{path} does not fit the model this training config builds ({'; '.join(problems)}). The model settings "
            "or the tokenizer changed since the checkpoint was written: train into a new output_dir, or pass "
            "--no-resume to start this one over."
        )


# --- The output directory: one run at a time, no leftovers ---------------------------------------------------


def lock_output_dir(output_dir: Path) -> IO[str] | None:
    """Take an exclusive lock on ``output_dir`` for this process; raise if another run holds it.

    The lock is an ``fcntl.flock`` on a file in the directory, released when the returned
    handle is closed or the process ends (also on SIGKILL), so a crashed run never leaves a
    stale lock behind.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return None
    path = output_dir / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # held for the run's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise OutputDirectoryInUse(
            f"{output_dir} is in use by another training run ({holder}, holding {path}); two runs writing one "
            "output directory would overwrite each other's checkpoints. Wait for it to finish or choose another "
            "output_dir."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def unlock_output_dir(handle: IO[str] | None) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()


def clean_leftovers(output_dir: Path, names: tuple[str, ...], checkpoints_root: Path) -> list[str]:
    """Remove what a killed run left half-written (call with the output directory locked); returns what went.

    Temporary siblings of the run's outputs ``names`` (``.NAME.*.tmp``, as ``hf_attn.atomic``
    writes them), checkpoint staging directories (``.step-N.tmp``) and pointer temporaries are
    deleted. A directory retired during an atomic replacement (``.NAME.old``, ``.step-N.old``) is deleted, or,
    when the kill came between retiring the old version and moving in the new one, renamed
    back into place. Nothing else in the directory is touched.
    """
    leftovers = [path for name in names for path in output_dir.glob(f".{name}.*.tmp")]
    leftovers += [
        *checkpoints_root.glob(f".{CHECKPOINT_PREFIX}*.tmp"),
        *checkpoints_root.glob(f".{LATEST_POINTER}.*.tmp"),
    ]
    removed = []
    for leftover in sorted(leftovers):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(str(leftover))
    retirees = [output_dir / f".{name}.old" for name in names]
    retirees += checkpoints_root.glob(f".{CHECKPOINT_PREFIX}*.old")
    for retired in retirees:
        target = retired.with_name(retired.name[1 : -len(".old")])
        if not retired.is_dir():
            continue
        if target.exists():
            shutil.rmtree(retired, ignore_errors=True)
            removed.append(str(retired))
        else:
            os.replace(retired, target)
            logger.warning("Restored %s from %s (a run was killed while replacing it).", target, retired)
    if removed:
        logger.info("Removed what an interrupted run left behind: %s", ", ".join(removed))
    return removed
