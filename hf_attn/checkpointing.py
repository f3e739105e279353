"""Atomic files and directories, and the checkpoint layout a training run resumes from.

A checkpoint is written into a temporary sibling directory and renamed into place only
when complete; the ``latest`` pointer file is replaced the same way, after the rename. A
run killed at any moment therefore leaves either the previous checkpoint or the new one,
never a half-written directory that resume would pick up.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

LATEST_POINTER = "latest"
CHECKPOINT_PREFIX = "step-"


def _default_mode(directory: bool) -> int:
    """The permissions a plain ``open``/``mkdir`` would give under the current umask (mkstemp/mkdtemp use 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _default_mode(directory=False))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_directory(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` and then move the finished directory to ``target`` (replacing it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        write(temporary)
        os.chmod(temporary, _default_mode(directory=True))
        if target.exists():
            retired = target.with_name(f".{target.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
            os.replace(temporary, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def checkpoint_dir(checkpoints_root: Path, step: int) -> Path:
    return checkpoints_root / f"{CHECKPOINT_PREFIX}{step:08d}"


def mark_latest(checkpoints_root: Path, checkpoint: Path) -> None:
    atomic_write_text(checkpoints_root / LATEST_POINTER, checkpoint.name + "\n")


def latest_checkpoint(checkpoints_root: str | os.PathLike) -> Path | None:
    """The checkpoint the ``latest`` pointer names, or None when the run has none yet."""
    checkpoints_root = Path(checkpoints_root)
    pointer = checkpoints_root / LATEST_POINTER
    if not pointer.is_file():
        return None
    checkpoint = checkpoints_root / pointer.read_text(encoding="utf-8").strip()
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
