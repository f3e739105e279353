"""The seed experiment: does attention fix the plain RNN encoder-decoder, and does the Transformer keep that?

Four models of matched size (presets ``hf_attn/configs/seed_*.yaml``: an RNN without
attention, RNN + Bahdanau, RNN + Luong general with input feeding, and a Transformer) are
trained on the bundled English→Spanish corpus with one shared tokenizer and the same
budget (training minutes and/or steps), the way :mod:`hf_attn.quickstart` trains its two.
Then the experiment measures each claim of the project's seed notes:

* quality, overall and by source length (test BLEU/chrF, Bahdanau et al. 2014 Fig. 2);
* alignments the decoder learned (cross-attention heatmaps of real test verses);
* vanishing gradients (:mod:`research.experiment.gradient_probe` on long verses, trained and at init);
* sequential computation (:mod:`research.experiment.length_scaling`: training tokens/s against length);
* the long-input and gradient claims again on a controlled task small enough to train on a CPU
  (:mod:`research.experiment.synthetic_run`: reversing random strings, accuracy by length);

and writes ``results.json``, the figures and a report (:mod:`research.experiment.report`)
whose conclusions are computed from the numbers. Re-running with the same output folder
skips models whose training already finished with the same config and resumes one that
was interrupted (the training loop restarts from its last checkpoint).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import random
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hf_attn.atomic import atomic_directory, atomic_write_json, read_json_if_exists
from hf_attn.cards import write_model_card
from hf_attn.data import load_bible_corpus
from hf_attn.evaluation import DEFAULT_LENGTH_BUCKETS, evaluate_model
from hf_attn.generation import alignment
from hf_attn.inference import load_model_and_tokenizer
from hf_attn.models.config_validation import require_positive_int
from hf_attn.plotting import plot_attention, plot_bleu_by_length, plot_learning_curves, plot_series
from hf_attn.quickstart import shared_tokenizer_dir
from hf_attn.tokenization import load_tokenizer
from hf_attn.training.config import TrainingConfig, load_training_config

from ..provenance import describe_machine, load_average
from .gradient_probe import probe_gradients
from .length_scaling import training_tokens_per_second
from .report import FIGURES_DIR, REPORT_NAME, write_report
from .runs import MODELS, ExperimentModel, check_model_names, fresh_model, parameter_counts, train_model, training_entry
from .synthetic_run import QUICK_SYNTHETIC, SyntheticSettings, draw_synthetic_figures, run_synthetic

logger = logging.getLogger(__name__)


@dataclass
class ExperimentSettings:
    """What the experiment runs and measures; :func:`make_settings` builds the default and quick ones.

    Training budgets come from the presets (2,000 updates per model, the same for all four) unless
    ``max_steps`` overrides them; ``max_minutes`` adds a wall-clock cap; ``overrides`` are ``key=value`` training
    config changes for all models and ``model_overrides`` per model name (e.g. tiny models in
    tests). ``test_per_bucket`` caps the test verses of each length bucket (a seeded sample;
    ``None`` = the whole test split). ``synthetic`` is the controlled part (string reversal, its own small
    budget; :mod:`research.experiment.synthetic_run`), or None to skip it.
    """

    output_dir: str = "runs/seed_experiment"
    docs_dir: str | None = "docs"
    quick: bool = False
    max_minutes: float | None = None
    max_steps: int | None = None
    overrides: tuple[str, ...] = ()
    model_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tokenizer: str | None = None
    test_per_bucket: int | None = 40
    num_beams: int = 4
    heatmap_words: tuple[int, ...] = (20, 45)
    probe_min_words: int = 40
    probe_verses: int = 32
    throughput_lengths: tuple[int, ...] = (16, 32, 64, 128, 256)
    throughput_tokens: int = 2048
    throughput_repeats: int = 3
    bleu_margin: float = 1.0
    synthetic: SyntheticSettings | None = field(default_factory=SyntheticSettings)
    write_cards: bool = True
    device: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_model_names(self.model_overrides, "model_overrides")
        for name in ("num_beams", "probe_min_words", "probe_verses", "throughput_tokens", "throughput_repeats"):
            require_positive_int(name, getattr(self, name))
        if self.test_per_bucket is not None and self.test_per_bucket < 1:
            raise ValueError(f"`test_per_bucket` must be positive or None (all), got {self.test_per_bucket!r}.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"`max_steps` must be positive or None, got {self.max_steps!r}.")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"`max_minutes` must be positive or None, got {self.max_minutes!r}.")


# A smoke run of a few minutes: the pipeline end to end, numbers without meaning.
QUICK = {
    "overrides": (
        "max_steps=60",
        "max_train_examples=5000",
        "warmup_steps=10",
        "eval_every=1000",
        "eval_examples=20",
        "save_every=1000",
        "log_every=5",
    ),
    "test_per_bucket": 5,
    "num_beams": 1,
    "heatmap_words": (20,),
    "probe_verses": 4,
    "throughput_lengths": (16, 64, 256),
    "throughput_tokens": 512,
    "throughput_repeats": 1,
    "synthetic": QUICK_SYNTHETIC,
}


def make_settings(
    quick: bool = False,
    *,
    extra_overrides: Sequence[str] = (),
    test_per_bucket: int | None = None,
    synthetic: SyntheticSettings | bool = True,
    synthetic_steps: int | None = None,
    **changes: Any,
) -> ExperimentSettings:
    """The default settings, or the quick ones, with ``changes`` (None = keep); ``test_per_bucket=0`` = all verses.

    ``extra_overrides`` are added after the preset's own (quick) overrides. A quick run writes
    no docs unless ``docs_dir`` is given, so a smoke run never replaces the published report.
    ``synthetic`` is True for the default (or quick) controlled part, False to skip it, or its settings;
    ``synthetic_steps`` changes its budget.
    """
    values: dict[str, Any] = {**QUICK, "quick": True, "docs_dir": None} if quick else {}
    values.update({key: value for key, value in changes.items() if value is not None})
    if test_per_bucket is not None:
        values["test_per_bucket"] = test_per_bucket or None
    if synthetic is True:
        synthetic = values.get("synthetic", SyntheticSettings())
    if synthetic and synthetic_steps is not None:
        synthetic = dataclasses.replace(synthetic, max_steps=synthetic_steps)
    values["synthetic"] = synthetic or None
    values["overrides"] = (*values.get("overrides", ()), *extra_overrides)
    return ExperimentSettings(**values)


def command_line(settings: ExperimentSettings) -> str:
    """The `python scripts/seed_experiment.py` command reproducing `settings` (options that differ from defaults)."""
    baseline = make_settings(quick=settings.quick)
    words = ["python", "scripts/seed_experiment.py"] + (["--quick"] if settings.quick else [])
    options = {
        "output_dir": "--output-dir",
        "docs_dir": "--docs-dir",
        "max_minutes": "--minutes-per-model",
        "max_steps": "--steps-per-model",
        "test_per_bucket": "--test-per-bucket",
        "num_beams": "--num-beams",
        "tokenizer": "--tokenizer",
    }
    for name, flag in options.items():
        value = getattr(settings, name)
        if value != getattr(baseline, name):
            words += [flag, "0" if name == "test_per_bucket" and value is None else str(value)]
    words += [word for assignment in settings.overrides[len(baseline.overrides) :] for word in ("--set", assignment)]
    if settings.synthetic is None:
        words.append("--no-synthetic")
    elif settings.synthetic.max_steps != baseline.synthetic.max_steps:
        words += ["--synthetic-steps", str(settings.synthetic.max_steps)]
    if not settings.write_cards:
        words.append("--no-cards")
    return shlex.join(words)


def training_configs(settings: ExperimentSettings, tokenizer_dir: str | None = None) -> dict[str, TrainingConfig]:
    """Each model's training config: its preset with the shared overrides, budget, run folder and tokenizer."""
    budget = [f"max_minutes={settings.max_minutes}"] if settings.max_minutes is not None else []
    budget += [f"max_steps={settings.max_steps}"] if settings.max_steps is not None else []
    configs = {}
    for model in MODELS:
        assignments = [*settings.overrides, *budget, *settings.model_overrides.get(model.name, ())]
        assignments.append(f"output_dir={Path(settings.output_dir) / model.name}")
        if tokenizer_dir is not None:
            assignments.append(f"tokenizer={tokenizer_dir}")
        configs[model.name] = load_training_config(model.preset, assignments)
    return configs


# ------------------------------------------------------------------------------ verse selection


def _bucket_of(words: int) -> int | None:
    return next(
        (
            index
            for index, (low, high) in enumerate(DEFAULT_LENGTH_BUCKETS)
            if low <= words and (high is None or words <= high)
        ),
        None,
    )


def select_test_verses(split: datasets.Dataset, per_bucket: int | None, seed: int) -> datasets.Dataset:
    """At most ``per_bucket`` verses of each source-length bucket (a seeded sample, in corpus order).

    Long verses are rare, so a plain sample small enough for CPU decoding would leave the
    buckets that matter most nearly empty; capping each bucket keeps them all populated.
    """
    if per_bucket is None:
        return split
    members: dict[int | None, list[int]] = {}
    for index, source in enumerate(split["source"]):
        members.setdefault(_bucket_of(len(source.split())), []).append(index)
    generator = random.Random(seed)
    keep = [i for indices in members.values() for i in generator.sample(indices, min(per_bucket, len(indices)))]
    return split.select(sorted(keep))


def select_probe_verses(
    split: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, min_words: int, count: int, max_tokens: int, seed: int
) -> datasets.Dataset:
    """A seeded sample of ``count`` verses with at least ``min_words`` source words that fit ``max_tokens``."""
    encoded = tokenizer(list(split["source"]), text_target=list(split["target"]))
    eligible = [
        i
        for i, (source, ids, labels) in enumerate(zip(split["source"], encoded["input_ids"], encoded["labels"]))
        if len(source.split()) >= min_words and len(ids) <= max_tokens and len(labels) <= max_tokens
    ]
    if not eligible:
        raise ValueError(
            f"No test verse has {min_words}+ source words within {max_tokens} tokens; lower probe_min_words."
        )
    return split.select(sorted(random.Random(seed).sample(eligible, min(count, len(eligible)))))


def select_heatmap_verses(split: datasets.Dataset, word_counts: Sequence[int]) -> list[dict[str, Any]]:
    """For each wanted length, the first test verse whose source word count is closest to it."""
    lengths = [len(source.split()) for source in split["source"]]
    picks = []
    for wanted in word_counts:
        index = min(range(len(lengths)), key=lambda i: (abs(lengths[i] - wanted), i))
        if index not in picks:
            picks.append(index)
    return [split[i] for i in picks]


# ------------------------------------------------------------------------------ training and testing


def test_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    test_split: datasets.Dataset,
    run_dir: Path,
    num_beams: int,
    reuse: bool,
) -> tuple[dict[str, Any], list[str]]:
    """Test metrics and hypotheses, reusing a saved evaluation of the same model, verses and beam size."""
    test_dir = run_dir / "test"
    selection = {"ids": list(test_split["id"]), "num_beams": num_beams}
    if reuse and read_json_if_exists(test_dir / "selection.json") == selection:
        logger.info("Reusing the test evaluation in %s", test_dir)
    else:
        evaluate_model(model, tokenizer, test_split, output_dir=test_dir, num_beams=num_beams)
        atomic_write_json(test_dir / "selection.json", selection)
    hypotheses = (test_dir / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    return read_json_if_exists(test_dir / "metrics.json"), hypotheses


# ------------------------------------------------------------------------------ analyses


def _focused_head(per_head: np.ndarray) -> tuple[int, int]:
    """(layer, head) whose attention is most peaked: the highest mean over target tokens of the max weight."""
    peak = per_head.max(axis=-1).mean(axis=-1)  # (layers, heads)
    layer, head = np.unravel_index(int(peak.argmax()), peak.shape)
    return int(layer), int(head)


def draw_heatmaps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    verse: dict[str, Any],
    spec: ExperimentModel,
    figures_dir: Path,
    index: int,
) -> dict[str, Any] | None:
    """Cross-attention heatmaps of the model translating one verse (None if it returns no cross-attention).

    One figure per decoder layer (mean over heads) and, for multi-head models, one of the most focused head.
    """
    model.set_attn_implementation("eager")  # the sdpa path returns no attention weights
    try:
        result = alignment(model, tokenizer, verse["source"])
    except ValueError:
        logger.info("%s returns no cross-attention: no alignment heatmap", spec.label)
        return None
    per_head = result["attention_per_head"]
    layers, heads = per_head.shape[:2]
    figures = []
    for layer in range(layers):
        name = f"attention_{spec.name}_verse{index}_layer{layer + 1}.png"
        caption = f"{spec.label}, layer {layer + 1} of {layers}" + (f", mean over {heads} heads" if heads > 1 else "")
        plot_attention(
            result["source_tokens"],
            result["target_tokens"],
            result["attention"][layer],
            figures_dir / name,
            title=caption,
        )
        figures.append({"file": name, "caption": caption})
    if heads > 1:
        layer, head = _focused_head(per_head)
        name = f"attention_{spec.name}_verse{index}_head.png"
        caption = f"{spec.label}, layer {layer + 1}, head {head + 1} (the most focused head)"
        plot_attention(
            result["source_tokens"], result["target_tokens"], per_head[layer, head], figures_dir / name, title=caption
        )
        figures.append({"file": name, "caption": caption})
    return {
        "verse_id": verse["id"],
        "source": verse["source"],
        "reference": verse["target"],
        "translation": result["target_text"],
        "figures": figures,
    }


def analyse_trained(
    spec: ExperimentModel,
    best_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    probe: datasets.Dataset,
    heatmap_verses: Sequence[dict[str, Any]],
    device: torch.device,
    figures_dir: Path,
) -> dict[str, Any]:
    """Alignment heatmaps and the gradient profile of the trained model."""
    model, _ = load_model_and_tokenizer(best_dir, device=device)
    heatmaps = [
        draw_heatmaps(model, tokenizer, verse, spec, figures_dir, i + 1) for i, verse in enumerate(heatmap_verses)
    ]
    profile = probe_gradients(model, tokenizer, list(probe["source"]), list(probe["target"]))
    return {
        "heatmaps": [h for h in heatmaps if h is not None],
        "cross_attention": any(h is not None for h in heatmaps),
        "gradients": {"trained": dataclasses.asdict(profile)},
    }


def analyse_fresh(
    configs: dict[str, TrainingConfig],
    tokenizer: PreTrainedTokenizerBase,
    probe: datasets.Dataset,
    settings: ExperimentSettings,
    device: torch.device,
) -> dict[str, dict[str, Any]]:
    """Gradient profiles of freshly initialised models, then their training speed by sentence length."""
    fresh = {name: fresh_model(config, tokenizer, device) for name, config in configs.items()}
    profiles = {
        name: probe_gradients(model, tokenizer, list(probe["source"]), list(probe["target"]))
        for name, model in fresh.items()
    }
    logger.info("Training throughput at lengths %s", list(settings.throughput_lengths))
    rates = training_tokens_per_second(
        fresh,
        settings.throughput_lengths,
        tokens_per_batch=settings.throughput_tokens,
        repeats=settings.throughput_repeats,
        seed=settings.seed,
    )
    return {
        name: {"init": dataclasses.asdict(profiles[name]), "throughput": [round(rate, 1) for rate in rates[name]]}
        for name in fresh
    }


def draw_comparison_figures(results: dict[str, Any], figures_dir: Path) -> dict[str, str]:
    """The figures that put the four models side by side; returns {figure key: file name}."""
    models = results["models"]
    labels = {name: entry["label"] for name, entry in models.items()}
    figures = {"bleu_by_length": "bleu_by_length.png"}
    plot_bleu_by_length(
        {labels[n]: m["test"]["by_source_length"] for n, m in models.items()}, figures_dir / figures["bleu_by_length"]
    )
    histories = {labels[n]: m["history"] for n, m in models.items()}
    for x in ("step", "seconds"):
        figures[f"learning_curves_{x}"] = f"learning_curves_{x}.png"
        plot_learning_curves(histories, figures_dir / figures[f"learning_curves_{x}"], x=x)
    probe = f"{results['probe']['verses']} verses of {results['probe']['min_words']}+ words"
    sides = {"from_start": "tokens from the first", "from_end": "tokens before the final </s>"}
    for side, position in sides.items():
        figures[f"gradient_{side}"] = f"gradient_{side}.png"
        series = {labels[n]: (list(range(len(g := m["gradients"]["trained"][side]))), g) for n, m in models.items()}
        plot_series(
            series,
            figures_dir / figures[f"gradient_{side}"],
            xlabel=f"source position ({position})",
            ylabel="‖∂loss/∂embedding‖ (mean over verses)",
            title=f"Gradient reaching each source position ({probe})",
            logy=True,
        )
    figures["throughput"] = "throughput.png"
    lengths = results["throughput"]["lengths"]
    plot_series(
        {labels[n]: (lengths, m["throughput"]) for n, m in models.items()},
        figures_dir / figures["throughput"],
        xlabel="sentence length (tokens)",
        ylabel="training target tokens / s",
        title=f"Training speed at {results['throughput']['tokens_per_batch']} tokens per batch",
        logy=True,
    )
    return figures


def _samples(test_split: datasets.Dataset, hypotheses: list[str]) -> list[dict[str, str]]:
    picks = sorted({0, len(hypotheses) // 2, len(hypotheses) - 1})
    return [
        {
            "id": test_split[i]["id"],
            "source": test_split[i]["source"],
            "reference": test_split[i]["target"],
            "translation": hypotheses[i],
        }
        for i in picks
    ]


def _write_cards(results: dict[str, Any], settings: ExperimentSettings) -> None:
    """A model card for each trained model, linking the experiment report."""
    report_dir = Path(settings.docs_dir) if settings.docs_dir else Path(settings.output_dir)
    for entry in results["models"].values():
        best_dir = Path(entry["training"]["best_model_dir"])
        write_model_card(
            best_dir,
            run_dir=best_dir.parent,
            test_metrics=entry["test"],
            samples=entry["samples"],
            extra_links=[
                (
                    "The seed experiment: RNN without/with attention vs Transformer (report)",
                    os.path.relpath(report_dir / REPORT_NAME, best_dir),
                )
            ],
        )


def train_and_test(
    spec: ExperimentModel,
    config: TrainingConfig,
    tokenizer: PreTrainedTokenizerBase,
    test_split: datasets.Dataset,
    settings: ExperimentSettings,
    device: torch.device,
) -> dict[str, Any]:
    """Train one model (or reuse its finished run) and test it: its entry in the results."""
    logger.info("Seed experiment: %s (%s) into %s", spec.label, spec.preset, config.output_dir)
    trained = train_model(config)
    run_dir = Path(config.output_dir)
    model, _ = load_model_and_tokenizer(trained["summary"]["best_model_dir"], device=device)
    metrics, hypotheses = test_model(model, tokenizer, test_split, run_dir, settings.num_beams, trained["reused"])
    return {
        **training_entry(spec, config, trained),
        **parameter_counts(model),
        "test": metrics,
        "samples": _samples(test_split, hypotheses),
    }


def _results_header(
    settings: ExperimentSettings,
    device: torch.device,
    tokenizer_dir: Path,
    tokenizer: PreTrainedTokenizerBase,
    test_split: datasets.Dataset,
    full_test_size: int,
    probe: datasets.Dataset,
) -> dict[str, Any]:
    """Everything about the run except the per-model results: command, machine, data selections."""
    return {
        "schema": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(settings),
        "quick": settings.quick,
        "settings": dataclasses.asdict(settings),
        "hardware": {
            **describe_machine(str(device), torch.get_num_threads()),
            "load_average_start": load_average(),
        },
        "tokenizer": {"path": str(tokenizer_dir), "vocab_size": len(tokenizer)},
        "test_set": {
            "verses": len(test_split),
            "per_bucket": settings.test_per_bucket,
            "num_beams": settings.num_beams,
            "full_split": full_test_size,
        },
        "probe": {"min_words": settings.probe_min_words, "verses": len(probe), "ids": list(probe["id"])},
        "throughput": {
            "lengths": list(settings.throughput_lengths),
            "tokens_per_batch": settings.throughput_tokens,
            "repeats": settings.throughput_repeats,
        },
        "models": {},
    }


def _run_synthetic_part(settings: ExperimentSettings, output_dir: Path, device: torch.device) -> dict[str, Any] | None:
    """The controlled part's results with its wall time, or None when the settings skip it."""
    if settings.synthetic is None:
        return None
    started = time.perf_counter()
    synthetic = run_synthetic(settings.synthetic, output_dir, device)
    return {**synthetic, "wall_seconds": round(time.perf_counter() - started, 1)}


def run_experiment(settings: ExperimentSettings) -> dict[str, Any]:
    """Train, test and analyse the four models; write results.json, the figures and the report(s)."""
    started = time.perf_counter()
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vocab_size = training_configs(settings)[MODELS[0].name].vocab_size
    tokenizer_dir = Path(settings.tokenizer) if settings.tokenizer else shared_tokenizer_dir(output_dir, vocab_size)
    configs = training_configs(settings, str(tokenizer_dir))
    tokenizer = load_tokenizer(tokenizer_dir)
    test = load_bible_corpus()["test"]
    test_split = select_test_verses(test, settings.test_per_bucket, settings.seed)
    max_tokens = min(config.max_source_tokens for config in configs.values())
    probe = select_probe_verses(
        test, tokenizer, settings.probe_min_words, settings.probe_verses, max_tokens, settings.seed
    )
    heatmap_verses = select_heatmap_verses(test, settings.heatmap_words)
    results = _results_header(settings, device, tokenizer_dir, tokenizer, test_split, len(test), probe)
    results["synthetic"] = _run_synthetic_part(settings, output_dir, device)
    for spec in MODELS:
        results["models"][spec.name] = train_and_test(spec, configs[spec.name], tokenizer, test_split, settings, device)

    def analyse_and_draw(figures_dir: Path) -> None:
        for spec in MODELS:
            logger.info("Seed experiment: analysing %s", spec.label)
            entry = results["models"][spec.name]
            best_dir = Path(entry["training"]["best_model_dir"])
            entry.update(analyse_trained(spec, best_dir, tokenizer, probe, heatmap_verses, device, figures_dir))
        for name, measured in analyse_fresh(configs, tokenizer, probe, settings, device).items():
            results["models"][name]["gradients"]["init"] = measured["init"]
            results["models"][name]["throughput"] = measured["throughput"]
        results["figures"] = draw_comparison_figures(results, figures_dir)
        if results["synthetic"] is not None:
            results["synthetic"]["figures"] = draw_synthetic_figures(results["synthetic"], figures_dir)

    atomic_directory(output_dir / FIGURES_DIR, analyse_and_draw)
    results["hardware"]["load_average_end"] = load_average()
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(output_dir / "results.json", results)
    for target in [output_dir] + ([Path(settings.docs_dir)] if settings.docs_dir else []):
        write_report(results, output_dir / FIGURES_DIR, target)
    if settings.write_cards:
        _write_cards(results, settings)
    return results
