"""``hf-attn export``: turn a trained model folder into a folder built for serving.

Formats: ``ctranslate2`` (the Transformer, for the CTranslate2 engine, fp32 or int8) and
``torch-int8`` (the RNN, PyTorch dynamic int8 quantization). Each output folder holds what
translating needs (the model, our tokenizer files, ``hf_attn_export.json`` saying what it is)
and a README with the command that uses it.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from .. import __version__
from ..atomic import atomic_directory, atomic_write_json, atomic_write_text
from ..inference import load_model_and_tokenizer
from .metadata import METADATA_NAME, export_metadata

# format -> (model types it takes, quantizations it offers (first = default)).
EXPORT_FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ctranslate2": (("transformer_seq2seq",), ("int8", "int8_float32", "float32")),
    "torch-int8": (("rnn_seq2seq",), ("int8",)),
}


def check_export_request(model_type: str, format: str, quantization: str | None) -> str:
    """The quantization to use; ValueError for an unknown format, a model type it cannot take, a bad quantization."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {format!r}; supported: {', '.join(EXPORT_FORMATS)}.")
    model_types, quantizations = EXPORT_FORMATS[format]
    if model_type not in model_types:
        supported = "; ".join(f"{name} for {', '.join(types)}" for name, (types, _) in EXPORT_FORMATS.items())
        raise ValueError(f"--format {format} cannot export a {model_type!r} model. Supported: {supported}.")
    if quantization is None:
        return quantizations[0]
    if quantization not in quantizations:
        raise ValueError(
            f"Unknown quantization {quantization!r} for --format {format}; choose one of {', '.join(quantizations)}."
        )
    return quantization


def _readme(format: str, quantization: str, out_dir: Path) -> str:
    usage = {
        "ctranslate2": f"hf-attn translate {out_dir} --engine ctranslate2 'In the beginning God created the heaven.'",
        "torch-int8": f"hf-attn translate {out_dir} 'In the beginning God created the heaven.'",
    }[format]
    python = {
        "ctranslate2": "from hf_attn.deploy.ctranslate2_translate import CTranslate2Model\n"
        f"print(CTranslate2Model({str(out_dir)!r}).translate(['In the beginning God created the heaven.']))",
        "torch-int8": "from hf_attn.generation import translate\n"
        "from hf_attn.inference import load_model_and_tokenizer\n"
        f"model, tokenizer = load_model_and_tokenizer({str(out_dir)!r})\n"
        "print(translate(model, tokenizer, ['In the beginning God created the heaven.']))",
    }[format]
    return (
        f"# hf_attn model exported for serving ({format}, {quantization})\n\n"
        f"Written by `hf-attn export` (hf_attn {__version__}); `{METADATA_NAME}` says what it is.\n\n"
        f"```bash\n{usage}\n```\n\n```python\n{python}\n```\n"
    )


def _write_export(
    folder: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    format: str,
    quantization: str,
    source: str,
    out_dir: Path,
) -> None:
    if format == "ctranslate2":
        from .ctranslate2_export import write_ctranslate2_model

        write_ctranslate2_model(model, tokenizer, folder, quantization)
    else:
        from .torch_int8 import quantize_rnn, save_quantized

        save_quantized(quantize_rnn(model), folder)
    tokenizer.save_pretrained(folder)
    atomic_write_json(folder / METADATA_NAME, export_metadata(format, quantization, model.config, source))
    atomic_write_text(folder / "README.md", _readme(format, quantization, out_dir))


def export_model(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    format: str = "ctranslate2",
    quantization: str | None = None,
) -> Path:
    """Export the model folder ``model_dir`` (``save_pretrained`` + tokenizer) to ``out_dir``; returns ``out_dir``.

    The model type is checked before any weight is loaded, so an RNN given to
    ``--format ctranslate2`` fails at once with what is supported. ``out_dir`` is replaced
    atomically: an interrupted export leaves the previous one (or nothing).
    """
    model_path, out_path = Path(model_dir), Path(out_dir)
    if not model_path.is_dir():
        raise FileNotFoundError(f"No model folder at {model_path}.")
    if not (model_path / "config.json").is_file():
        raise FileNotFoundError(f"{model_path} has no config.json; expected a folder written by save_pretrained.")
    model_type = AutoConfig.from_pretrained(model_path).model_type
    quantization = check_export_request(model_type, format, quantization)
    if out_path.resolve() == model_path.resolve():
        raise ValueError("The export folder must differ from the model folder.")
    model, tokenizer = load_model_and_tokenizer(model_path)
    atomic_directory(
        out_path,
        lambda folder: _write_export(folder, model, tokenizer, format, quantization, str(model_path), out_path),
    )
    return out_path
