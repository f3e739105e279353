"""The checkpoint layout a training run resumes from.

A checkpoint is written into a temporary sibling directory and renamed into place only
when complete (``hf_attn.atomic``); the ``latest`` pointer file is replaced the same way,
after the rename. A run killed at any moment therefore leaves either the previous
checkpoint or the new one, never a half-written directory that resume would pick up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..atomic import atomic_write_text

LATEST_POINTER = "latest"
CHECKPOINT_PREFIX = "step-"


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
