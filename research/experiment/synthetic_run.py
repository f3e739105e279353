"""The controlled part of the seed experiment: the four models on string reversal (:mod:`.synthetic`).

Each model is its seed preset with every width divided by four (depths, heads, dropout, label
smoothing and the optimiser kept), trained for the same number of updates by the project's loop
on the task's data (a saved ``DatasetDict``, read by :func:`hf_attn.data.load_parallel_data`) and
its word-level tokenizer. Then greedy ``generate()`` is scored by string length, and the gradient
probe runs on the longest test strings, at initialisation and trained. A re-run skips models
whose training finished with the same config and continues one with a larger budget; the data,
tokenizer and runs of other task settings live in another folder, so none is mistaken for these.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch

from hf_attn.atomic import atomic_directory
from hf_attn.data import load_parallel_data
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.models.config_validation import require_positive_int
from hf_attn.plotting import plot_series
from hf_attn.tokenization import load_tokenizer
from hf_attn.training.config import TrainingConfig, load_training_config

from .gradient_probe import probe_gradients
from .runs import MODELS, check_model_names, fresh_model, parameter_counts, train_model, training_entry
from .synthetic import ReversalTask, bucket_members, evaluate_reversal, generate_splits, symbol_tokenizer

logger = logging.getLogger(__name__)

# Each seed preset with every width divided by four (depths and heads kept), so the four keep the seed's size ratios
# without embeddings: 155 k (no attention), 176 k (Bahdanau), 188 k (Luong), 184 k (Transformer) parameters. No
# dropout: training strings are fresh random draws, there is nothing to overfit.
MODEL_CHANGES = {
    "rnn_seq2seq": (
        "model.embedding_size=64",
        "model.hidden_size=64",
        "model.encoder_hidden_size=64",
        "model.dropout=0.0",
        "model.embedding_dropout=0.0",
    ),
    "transformer_seq2seq": (
        "model.d_model=64",
        "model.encoder_ffn_dim=160",
        "model.decoder_ffn_dim=160",
        "model.max_position_embeddings=128",
        "model.dropout=0.0",
    ),
}
# The presets' optimiser with a higher peak rate and a longer warmup, which these small models take (calibration:
# learning_rate 0.001 left the RNN without attention at chance after 2,000 updates). Dev evaluations (greedy, on
# validation strings) pick the best checkpoint, as on real data.
TRAINING = (
    "learning_rate=0.003",
    "warmup_steps=400",
    "eval_every=250",
    "eval_examples=100",
    "save_every=250",
    "log_every=50",
)


@dataclass(frozen=True)
class SyntheticSettings:
    """The controlled part: the task's data, the updates every model gets, and the probe's size.

    ``overrides`` are ``key=value`` training config changes for all four models and
    ``model_overrides`` per model name (tiny models in tests).
    """

    task: ReversalTask = field(default_factory=ReversalTask)
    # Calibration, this default on 2 CPU cores lightly shared (1-minute load average 1.4-2.8), torch on 1 thread:
    # 3,000 updates took 58 s (no attention), 111 s (Bahdanau), 279 s (Luong: input feeding decodes one step at a
    # time) and 124 s (Transformer), the whole part with testing and probing 10.5 minutes. Token accuracy on 5-10 /
    # 71-80 symbols: 0.43 / 0.05, 1.00 / 0.82, 1.00 / 0.98, 0.97 / 0.25. At 4,500 updates the RNN without attention
    # (0.47 / 0.07) and the Transformer (0.97 / 0.23) had hardly moved, so more updates would buy little.
    max_steps: int = 3000
    overrides: tuple[str, ...] = ()
    model_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    probe_sequences: int = 16

    def __post_init__(self) -> None:
        check_model_names(self.model_overrides, "synthetic model_overrides")
        for name in ("max_steps", "probe_sequences"):
            require_positive_int(name, getattr(self, name))


# A smoke run: the pipeline end to end in well under a minute per model, numbers without meaning.
QUICK_SYNTHETIC = SyntheticSettings(
    task=ReversalTask(train_examples=2000, validation_examples=20, test_per_bucket=5),
    max_steps=40,
    overrides=("eval_every=1000", "eval_examples=20", "save_every=1000", "log_every=10"),
    probe_sequences=2,
)


def task_folder(task: ReversalTask, root: Path) -> Path:
    """Where the task's data, tokenizer and training runs live: one folder per task setting."""
    return root / f"task-{task.fingerprint()}"


def prepare_task(task: ReversalTask, root: Path) -> tuple[Path, Path]:
    """The task's data (a saved DatasetDict) and tokenizer folders, made once per task setting."""
    data_dir, tokenizer_dir = task_folder(task, root) / "data", task_folder(task, root) / "tokenizer"
    if not data_dir.is_dir():
        atomic_directory(data_dir, lambda staging: generate_splits(task).save_to_disk(str(staging)))
    if not tokenizer_dir.is_dir():
        atomic_directory(tokenizer_dir, symbol_tokenizer(task).save_pretrained)
    return data_dir, tokenizer_dir


def synthetic_configs(
    settings: SyntheticSettings, root: Path, data_dir: Path, tokenizer_dir: Path
) -> dict[str, TrainingConfig]:
    """Each model's training config: its seed preset at the controlled sizes, on the task's data, same updates."""
    configs = {}
    for model in MODELS:
        assignments = [
            *MODEL_CHANGES[load_training_config(model.preset).model_type],
            *TRAINING,
            *settings.overrides,
            f"max_steps={settings.max_steps}",
            *settings.model_overrides.get(model.name, ()),
            f"data={data_dir}",
            f"tokenizer={tokenizer_dir}",
            f"output_dir={task_folder(settings.task, root) / model.name}",
        ]
        configs[model.name] = load_training_config(model.preset, assignments)
    return configs


def probe_strings(test: datasets.Dataset, task: ReversalTask, count: int) -> datasets.Dataset:
    """The first ``count`` test strings of the longest bucket (test strings are already in random order)."""
    return test.select(bucket_members(test["source"], task.buckets[-1])[:count])


def _samples(test: datasets.Dataset, hypotheses: list[str], task: ReversalTask) -> list[dict[str, str]]:
    """The first test string of the shortest and of the longest bucket, with the model's output."""
    picks = []
    for bucket in (task.buckets[0], task.buckets[-1]):
        index = bucket_members(test["source"], bucket)[0]
        picks.append({"source": test[index]["source"], "reference": test[index]["target"], "output": hypotheses[index]})
    return picks


def run_synthetic(settings: SyntheticSettings, output_dir: Path, device: torch.device) -> dict[str, Any]:
    """Train (or reuse), test and probe the four models on the task; their part of ``results.json``."""
    root = output_dir / "synthetic"
    task = settings.task
    data_dir, tokenizer_dir = prepare_task(task, root)
    configs = synthetic_configs(settings, root, data_dir, tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    test = load_parallel_data(str(data_dir))["test"]
    probe = probe_strings(test, task, settings.probe_sequences)
    probe_pairs = (list(probe["source"]), list(probe["target"]))
    models = {}
    for spec in MODELS:
        logger.info("Controlled task: %s into %s", spec.label, configs[spec.name].output_dir)
        trained = train_model(configs[spec.name])
        model, _ = load_model_and_tokenizer(trained["summary"]["best_model_dir"], device=device)
        scores, hypotheses = evaluate_reversal(model, tokenizer, test, task)
        init = fresh_model(configs[spec.name], tokenizer, device)
        models[spec.name] = {
            **training_entry(spec, configs[spec.name], trained),
            **parameter_counts(model),
            "test": scores,
            "samples": _samples(test, hypotheses, task),
            "gradients": {
                "trained": dataclasses.asdict(probe_gradients(model, tokenizer, *probe_pairs)),
                "init": dataclasses.asdict(probe_gradients(init, tokenizer, *probe_pairs)),
            },
        }
    return {
        "task": {**dataclasses.asdict(task), "buckets": task.buckets, "data": str(data_dir)},
        "probe": {"strings": len(probe), "min_length": task.buckets[-1][0]},
        "models": models,
    }


def draw_synthetic_figures(synthetic: dict[str, Any], figures_dir: Path) -> dict[str, str]:
    """Accuracy by length (token and exact match) and the trained gradient profile; returns {figure key: file}."""
    models = synthetic["models"].values()
    figures = {}
    for key, label in (("token_accuracy", "token accuracy"), ("exact_match", "exact-match rate")):
        figures[key] = f"synthetic_{key}.png"
        plot_series(
            {
                m["label"]: (
                    [(r["min_length"] + r["max_length"]) / 2 for r in m["test"]["by_length"]],
                    [r[key] for r in m["test"]["by_length"]],
                )
                for m in models
            },
            figures_dir / figures[key],
            xlabel="string length (middle of the bucket)",
            ylabel=f"{label} (greedy)",
            title=f"Reversing random strings: {label} by length",
        )
    figures["gradient"] = "synthetic_gradient_from_start.png"
    probe = synthetic["probe"]
    plot_series(
        {m["label"]: (list(range(len(g := m["gradients"]["trained"]["from_start"]))), g) for m in models},
        figures_dir / figures["gradient"],
        xlabel="source position (symbols from the first)",
        ylabel="‖∂loss/∂embedding‖ (mean over strings)",
        title=f"Gradient reaching each position ({probe['strings']} strings of {probe['min_length']}+ symbols)",
        logy=True,
    )
    return figures
