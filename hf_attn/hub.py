"""Publish a saved model folder to the Hugging Face Hub.

``model.push_to_hub`` uploads only what ``save_pretrained`` writes; a trained hf_attn
folder also holds the tokenizer, the model card and its plots. This module checks that
such a folder is loadable (config and safetensors weights) before anything is created on
the Hub, then uploads it whole in one commit. The ``hf-attn push`` command calls it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id as _hub_validate_repo_id

logger = logging.getLogger(__name__)

# Bytecode and Trainer/accelerate checkpoint folders are not part of a published model.
_IGNORE_PATTERNS = ["*__pycache__/*", "*.pyc", "checkpoint-*/*"]
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def validate_repo_id(repo_id: str) -> None:
    """Raise ``ValueError`` naming ``repo_id`` unless it is ``name`` or ``owner/name`` with Hub-legal characters."""
    if not isinstance(repo_id, str):
        raise ValueError(f"Hub repo id must be a string like 'owner/name', got {repo_id!r}.")
    try:
        _hub_validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(
            f"Invalid Hub repo id {repo_id!r}: expected 'name' or 'owner/name', each part 1-96 letters, digits, "
            "'-', '_' or '.', not starting or ending with '-' or '.', without '--' or '..', not ending in '.git'."
        ) from err


def check_model_folder(model_dir: str | os.PathLike[str]) -> Path:
    """Return ``model_dir`` as a Path, or raise naming what it lacks to load with ``from_pretrained``."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Model folder {str(folder)!r} does not exist or is not a directory.")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"Model folder {str(folder)!r} has no config.json; write the folder with model.save_pretrained()."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(config_path)!r} is not valid JSON: {err}") from err
    if not isinstance(config, dict) or "model_type" not in config:
        raise ValueError(f"{str(config_path)!r} is not a transformers config: it has no 'model_type'.")
    if not any(folder.glob("*.safetensors")):
        found = sorted(path.name for path in folder.iterdir() if path.is_file())
        raise FileNotFoundError(
            f"Model folder {str(folder)!r} has no *.safetensors weight file (found: {', '.join(found) or 'nothing'}); "
            "write the weights with model.save_pretrained()."
        )
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        logger.warning("%s has no tokenizer files; AutoTokenizer.from_pretrained on the repo will fail.", folder)
    return folder


def push_model_folder(
    model_dir: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
) -> CommitInfo:
    """Upload every file of a saved model folder to the Hub model repo ``repo_id`` (created if missing).

    Returns the commit: a ``str`` (the commit URL) that also carries ``.oid`` and ``.repo_url``.
    ``token`` defaults to the logged-in token or ``HF_TOKEN``; ``private`` applies only
    when the repo is created.
    """
    validate_repo_id(repo_id)
    folder = check_model_folder(model_dir)
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=folder,
        commit_message=commit_message or f"Upload {folder.name} with hf_attn",
        ignore_patterns=list(_IGNORE_PATTERNS),
    )
    logger.info("Pushed %s to %s (commit %s)", folder, repo_url, commit.oid)
    return commit
