"""The small JSON file every exported folder carries, and the check that a folder is the export asked for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..atomic import read_json_if_exists

METADATA_NAME = "hf_attn_export.json"


def export_metadata(format: str, quantization: str, config: Any, exported_from: str) -> dict[str, Any]:
    """What an export folder says about itself: format, quantization, model type and position limit, source."""
    from .. import __version__

    return {
        "format": format,
        "quantization": quantization,
        "model_type": config.model_type,
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "exported_from": exported_from,
        "hf_attn_version": __version__,
    }


def read_export_metadata(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's export metadata, or None when it is not an ``hf-attn export`` folder."""
    return read_json_if_exists(Path(folder) / METADATA_NAME)


def require_export(folder: str | os.PathLike, format: str) -> dict[str, Any]:
    """The metadata of an export folder of ``format``; clear errors for a missing folder or another kind."""
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"No exported model folder at {path}.")
    metadata = read_export_metadata(path)
    if metadata is None:
        raise FileNotFoundError(
            f"{path} has no {METADATA_NAME}: it is not a folder written by `hf-attn export --format {format}`."
        )
    if metadata.get("format") != format:
        raise ValueError(f"{path} holds a {metadata.get('format')!r} export, not a {format!r} one.")
    return metadata
