"""The four compared models and their training runs, shared by the real-data and the controlled parts.

Both parts train the same four presets (``hf_attn/configs/seed_*.yaml``) with the project's
training loop, skip a run that already finished with the same config, and record the wall time
and machine load of the session that trained it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hf_attn.atomic import atomic_write_json, read_json_if_exists
from hf_attn.training.builders import build_model
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import train

from ..provenance import load_average

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentModel:
    """One of the compared models: its run folder name, preset, display label and role in the claims."""

    name: str
    preset: str
    label: str
    role: str


MODELS = (
    ExperimentModel("rnn_none", "seed_rnn_none", "RNN, no attention", "no_attention"),
    ExperimentModel("rnn_bahdanau", "seed_rnn_bahdanau", "RNN + Bahdanau", "attention_rnn"),
    ExperimentModel("rnn_luong", "seed_rnn_luong", "RNN + Luong general + input feeding", "attention_rnn"),
    ExperimentModel("transformer", "seed_transformer", "Transformer", "transformer"),
)


def check_model_names(names: Iterable[str], what: str) -> None:
    """Raise if ``names`` mentions a model that is not one of :data:`MODELS`."""
    unknown = sorted(set(names) - {model.name for model in MODELS})
    if unknown:
        raise ValueError(f"{what} names unknown models {unknown}; the models are {[m.name for m in MODELS]}.")


def _finished_summary(config: TrainingConfig) -> dict[str, Any] | None:
    """The summary of a finished run of exactly this config, or None (never run, interrupted, or changed)."""
    run_dir = Path(config.output_dir)
    summary, saved = run_dir / "summary.json", run_dir / "training_config.json"
    # A restarted run rewrites training_config.json first, so an older summary.json is stale.
    if not (summary.is_file() and saved.is_file()) or summary.stat().st_mtime < saved.stat().st_mtime:
        return None
    return read_json_if_exists(summary) if read_json_if_exists(saved) == config.to_dict() else None


def train_model(config: TrainingConfig) -> dict[str, Any]:
    """Train (or skip a finished run, or resume an interrupted one): the summary, wall time and machine load.

    The wall time and load of the session that trained are kept in ``run_dir/experiment_training.json``,
    so a re-run that skips the model still reports them.
    """
    conditions = Path(config.output_dir) / "experiment_training.json"
    summary = _finished_summary(config)
    if summary is not None:
        logger.info("%s already trained with this config: skipping", config.output_dir)
        return {"summary": summary, "reused": True, **(read_json_if_exists(conditions) or {})}
    load_before, started = load_average(), time.perf_counter()
    summary = dataclasses.asdict(train(config))
    measured = {
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average": {"start": load_before, "end": load_average()},
    }
    atomic_write_json(conditions, measured)
    return {"summary": summary, "reused": False, **measured}


def training_entry(spec: ExperimentModel, config: TrainingConfig, trained: dict[str, Any]) -> dict[str, Any]:
    """What the results say about one model's training: who it is, its budget and how the run went."""
    return {
        "label": spec.label,
        "role": spec.role,
        "preset": spec.preset,
        "model_type": config.model_type,
        "model": config.model,
        "budget": {"max_minutes": config.max_minutes, "max_steps": config.max_steps},
        "training": trained["summary"],
        "reused": trained["reused"],
        "wall_seconds": trained.get("wall_seconds"),
        "load_average": trained.get("load_average"),
        "history": read_json_if_exists(Path(config.output_dir) / "history.json"),
    }


def parameter_counts(model: PreTrainedModel) -> dict[str, int]:
    """All parameters (shared tensors once) and those of the (shared, tied) input embedding."""
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "embedding_parameters": model.get_input_embeddings().weight.numel(),
    }


def fresh_model(config: TrainingConfig, tokenizer: PreTrainedTokenizerBase, device: torch.device) -> PreTrainedModel:
    """The model a run of ``config`` starts from (same seed), for measurements at initialisation."""
    transformers.set_seed(config.seed)
    return build_model(config, tokenizer).to(device)
