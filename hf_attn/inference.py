"""Loading a saved hf_attn model folder for translation, with errors that say what is missing or damaged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, PreTrainedModel, PreTrainedTokenizerBase

from .atomic import check_json_files
from .tokenization import (
    check_tokenizer_json,
    check_tokenizer_matches_config,
    hub_lookup_failed,
    load_pretrained_tokenizer,
    looks_like_local_path,
    required_tokenizer_files,
)

MODEL_JSON_FILES = ("config.json", "generation_config.json")


def _load_torch_export(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase] | None:
    """An ``hf-attn export`` folder's model for torch (None for any other path); other engines' exports are refused."""
    from .deploy.metadata import read_export_metadata

    metadata = read_export_metadata(path) if path.is_dir() else None
    if metadata is None:
        return None
    if metadata.get("format") != "torch-int8":
        raise ValueError(
            f"{path} is a {metadata.get('format')!r} export, which torch cannot run: use --engine "
            f"{metadata.get('format')} (hf-attn translate/evaluate), or the model folder it was exported from."
        )
    from .deploy.torch_int8 import load_quantized_rnn
    from .tokenization import load_tokenizer

    model, tokenizer = load_quantized_rnn(path), load_tokenizer(path)
    check_tokenizer_matches_config(tokenizer, model.config)
    return model, tokenizer


def check_model_folder_files(path: Path) -> None:
    """Raise a ValueError naming the file when a JSON file or a safetensors header of a model folder is damaged.

    transformers reports a bad tokenizer JSON file by position only, silently ignores a
    damaged ``generation_config.json`` (its defaults replace the saved beam settings) and
    reports a damaged weights file by its header error alone.
    """
    from safetensors import safe_open

    check_json_files(path, MODEL_JSON_FILES)
    check_tokenizer_json(path)
    for weights in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(str(weights), framework="pt"):
                pass
        except Exception as error:
            raise ValueError(f"{weights} is damaged or truncated and cannot be loaded ({error}).") from None


def check_loading_report(report: Any, where: str) -> None:
    """Raise if ``from_pretrained`` found missing, unexpected or resized weights (it initialises those at random)."""

    def field(name: str) -> Any:
        return report.get(name) if isinstance(report, dict) else getattr(report, name, None)

    def listed(names: list[str]) -> str:
        return ", ".join(names[:4]) + (", …" if len(names) > 4 else "")

    problems = []
    for name, what in (("missing_keys", "missing"), ("unexpected_keys", "unexpected")):
        keys = sorted(field(name) or ())
        if keys:
            problems.append(f"{len(keys)} {what} tensor(s): {listed(keys)}")
    mismatched = sorted(field("mismatched_keys") or ())
    if mismatched:
        shapes = [
            f"{key} {tuple(found)} in the file, {tuple(wanted)} in the model" for key, found, wanted in mismatched
        ]
        problems.append(f"{len(mismatched)} tensor(s) of another shape: {listed(shapes)}")
    if problems:
        raise ValueError(
            f"The weights in {where} do not fit the model its config.json describes ({'; '.join(problems)}). "
            "The weights file is incomplete or belongs to another model; the model would translate with randomly "
            "initialised weights."
        )


def load_model_and_tokenizer(
    model_dir: str | Path, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (in eval mode) and tokenizer from one ``save_pretrained`` folder.

    ``model_dir`` is a local folder or a Hub repo id. A local folder is checked first so
    that a typo or an incomplete copy fails with the name of the missing file rather than
    a Hub lookup error, and a damaged file fails with its name. The weights must fit the
    config exactly (no missing or unexpected tensors) and the tokenizer the model's vocabulary.
    A folder written by ``hf-attn export --format torch-int8`` loads as its int8 model.
    """
    path = Path(model_dir)
    exported = _load_torch_export(path)
    if exported is not None:
        return exported
    local = path.exists()
    if local or looks_like_local_path(str(model_dir)):
        if not path.exists():
            raise FileNotFoundError(f"No model folder at {path}.")
        if not path.is_dir():
            raise NotADirectoryError(f"{path} is a file; expected a model folder written by save_pretrained.")
        needed = ("config.json", *required_tokenizer_files(path))
        missing = [name for name in needed if not (path / name).is_file()]
        if not list(path.glob("*.safetensors")):
            missing.append("model.safetensors")
        if missing:
            raise FileNotFoundError(f"{path} is not a complete hf_attn model folder: missing {', '.join(missing)}.")
        check_model_folder_files(path)
    try:
        # Resized tensors are reported (and refused below) rather than raised as a bare RuntimeError.
        model, report = AutoModelForSeq2SeqLM.from_pretrained(
            model_dir, output_loading_info=True, ignore_mismatched_sizes=True
        )
    except OSError as error:
        if not local:
            raise hub_lookup_failed(str(model_dir), "model", error) from error
        raise
    check_loading_report(report, str(model_dir))
    tokenizer = load_pretrained_tokenizer(model_dir, exists_locally=local)
    check_tokenizer_matches_config(tokenizer, model.config)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer
