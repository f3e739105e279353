"""Atomic files and directories: a reader sees the old content or the new, never half of either.

Each write goes to a temporary sibling and is renamed into place only when complete, so a
process killed at any moment leaves no partial file behind. Training checkpoints, the best
model, evaluation outputs and reports are all written this way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:
            # A failed write (e.g. a full disk) names no file; say which one was being written.
            raise type(error)(error.errno, error.strerror, str(path)) from error
        raise


def atomic_write_json(path: str | os.PathLike, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def replace_directory(finished: Path, target: Path) -> None:
    """Move the complete directory ``finished`` to ``target``, replacing what is there.

    A directory cannot be renamed over a non-empty one, so an existing ``target`` is first
    retired to ``.TARGET.old`` and deleted after the swap; a kill between the two renames
    leaves that copy, which ``training.checkpointing.clean_leftovers`` puts back.
    """
    if not target.exists():
        os.replace(finished, target)
        return
    retired = target.with_name(f".{target.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    os.replace(target, retired)
    os.replace(finished, target)
    shutil.rmtree(retired, ignore_errors=True)


def atomic_directory(target: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` and then move the finished directory to ``target`` (replacing it)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        write(temporary)
        os.chmod(temporary, _default_mode(directory=True))
        replace_directory(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def read_json_file(path: str | os.PathLike) -> Any:
    """The JSON document at ``path``; a damaged file is a ValueError that names it (json's own names no file)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path} is damaged: not valid JSON ({error.msg}: line {error.lineno}, column {error.colno})."
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is damaged: not UTF-8 text ({error.reason} at byte {error.start}).") from None


def check_json_files(folder: str | os.PathLike, names: tuple[str, ...]) -> None:
    """Raise a ValueError naming the file for any of ``names`` in ``folder`` that is damaged (absent ones pass)."""
    for name in names:
        path = Path(folder) / name
        if path.is_file():
            read_json_file(path)


def read_json_if_exists(path: Path) -> Any:
    """The JSON document at ``path`` (as :func:`atomic_write_json` wrote it), or None when there is none."""
    return read_json_file(path) if path.is_file() else None
