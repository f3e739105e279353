"""Loading a saved hf_attn model folder for translation, with errors that say what is missing."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .tokenization import check_tokenizer_matches_config, required_tokenizer_files


def looks_like_local_path(name: str) -> bool:
    """True for names that cannot be Hub repo ids ("owner/name"): absolute, relative or nested paths."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def load_model_and_tokenizer(
    model_dir: str | Path, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (in eval mode) and tokenizer from one ``save_pretrained`` folder.

    ``model_dir`` is a local folder or a Hub repo id. A local folder is checked first so
    that a typo or an incomplete copy fails with the name of the missing file rather than
    a Hub lookup error.
    """
    path = Path(model_dir)
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
