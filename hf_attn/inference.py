"""Loading a saved hf_attn model folder for translation, with errors that say what is missing."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .tokenization import check_tokenizer_matches_config, required_tokenizer_files


def looks_like_local_path(name: str) -> bool:
    """True for names that cannot be Hub repo ids ("owner/name"): absolute, relative or nested paths."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


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


def load_model_and_tokenizer(
    model_dir: str | Path, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (in eval mode) and tokenizer from one ``save_pretrained`` folder.

    ``model_dir`` is a local folder or a Hub repo id. A local folder is checked first so
    that a typo or an incomplete copy fails with the name of the missing file rather than
    a Hub lookup error. A folder written by ``hf-attn export --format torch-int8`` loads as its
    int8 model.
    """
    path = Path(model_dir)
    exported = _load_torch_export(path)
    if exported is not None:
        return exported
    if path.exists() or looks_like_local_path(str(model_dir)):
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
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    check_tokenizer_matches_config(tokenizer, model.config)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer
