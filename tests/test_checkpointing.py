"""Atomic writes leave either the old or the new content, never a partial one."""

from __future__ import annotations

import pytest

from hf_attn.atomic import atomic_directory, atomic_write_text
from hf_attn.training.checkpointing import checkpoint_dir, latest_checkpoint, mark_latest, prune_checkpoints


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "a" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_failed_directory_write_keeps_the_previous_version(tmp_path):
    target = tmp_path / "best"
    atomic_directory(target, lambda d: (d / "weights").write_text("v1"))

    def crash(directory):
        (directory / "weights").write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_directory(target, crash)
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    atomic_directory(target, lambda d: (d / "weights").write_text("v2"))
    assert (target / "weights").read_text() == "v2"


def test_latest_pointer_and_pruning(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (10, 20, 30):
        checkpoint_dir(tmp_path, step).mkdir()
        mark_latest(tmp_path, checkpoint_dir(tmp_path, step))
    prune_checkpoints(tmp_path, keep=2)
    assert latest_checkpoint(tmp_path) == checkpoint_dir(tmp_path, 30)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-00000020", "step-00000030"]


def test_dangling_pointer_is_a_clear_error(tmp_path):
    (tmp_path / "latest").write_text("step-00000099\n")
    with pytest.raises(FileNotFoundError, match="step-00000099"):
        latest_checkpoint(tmp_path)


def test_atomic_outputs_get_ordinary_permissions(tmp_path):
    atomic_write_text(tmp_path / "card.md", "text")
    atomic_directory(tmp_path / "model", lambda d: (d / "weights").write_text("w"))
    assert (tmp_path / "card.md").stat().st_mode & 0o044 == 0o044, "others must be able to read a written file"
    assert (tmp_path / "model").stat().st_mode & 0o055 == 0o055, "others must be able to list a written folder"
