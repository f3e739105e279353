"""The student: a preset trained on the distilled corpus by the normal loop, then exported for its engine.

Training is ``hf_attn.training.loop.train`` exactly as ``hf-attn train PRESET --set …`` runs it
(budgets, checkpoints, resume, averaging); only ``data`` and ``output_dir`` are the distiller's.
The export is ``hf-attn export`` with the format the student's architecture serves fastest in.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from ..deploy.export import EXPORT_FORMATS, export_model
from ..training.config import TrainingConfig, load_training_config, parse_override
from ..training.loop import TrainingSummary, train

RESERVED_OVERRIDES = ("data", "output_dir")


def student_config(
    preset: str, overrides: Sequence[str], data_dir: str | os.PathLike, output_dir: str | os.PathLike
) -> TrainingConfig:
    """The student's training config: ``preset`` (a preset name or config file) with ``--set`` overrides."""
    for assignment in overrides:
        key, _ = parse_override(assignment)
        if key in RESERVED_OVERRIDES:
            raise ValueError(
                f"--set {key}=… is not allowed for the student: hf-attn distill sets `{key}` itself "
                "(the distilled corpus and OUTPUT_DIR/student)."
            )
    config = load_training_config(preset, list(overrides))
    return dataclasses.replace(config, data=str(data_dir), output_dir=str(output_dir))


def train_student(config: TrainingConfig) -> TrainingSummary:
    """Train the student, or resume its interrupted run from the latest checkpoint."""
    return train(config, resume=True)


def student_model_dir(summary: TrainingSummary) -> Path:
    """The folder to deploy: the averaged model when the run averaged checkpoints, else the best one."""
    return Path(summary.averaged_model_dir or summary.best_model_dir)


def export_format_for(model_type: str) -> str:
    """The export format that serves ``model_type`` (CTranslate2 for the Transformer, torch-int8 for the RNN)."""
    for format, (model_types, _) in EXPORT_FORMATS.items():
        if model_type in model_types:
            return format
    raise ValueError(f"No export format takes a {model_type!r} model.")


def export_student(model_dir: str | os.PathLike, out_dir: str | os.PathLike, model_type: str) -> tuple[Path, str]:
    """Export the student (int8, the format's default quantization); returns the folder and the format."""
    format = export_format_for(model_type)
    return export_model(model_dir, out_dir, format), format
