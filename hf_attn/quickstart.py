"""The main job: train a Transformer and an RNN+attention model on the bundled corpus and compare them.

Both models share one tokenizer and the same batches, and train for the updates their presets
in ``hf_attn/configs`` set (a budget in updates, so a busy machine changes the wall time, not the
model), so the comparison is fair by construction. The output folder holds
both trained models (each loadable with ``AutoModelForSeq2SeqLM.from_pretrained``), the
tokenizer, per-model learning curves and test metrics, and ``results.json``.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_directory, atomic_write_json
from .cards import write_model_card
from .data import load_bible_corpus
from .evaluation import evaluate_model
from .inference import load_model_and_tokenizer
from .models.config_validation import require_positive_int
from .tokenization import load_tokenizer, train_bpe_tokenizer
from .training.config import load_training_config
from .training.loop import train

logger = logging.getLogger(__name__)

MODELS = {"transformer": "transformer_small", "rnn": "rnn_small"}
QUICK_OVERRIDES = ["max_steps=120", "eval_every=40", "eval_examples=40", "save_every=40", "log_every=5"]
QUICK_TEST_EXAMPLES = 100
NUM_SAMPLES = 3


def shared_tokenizer_dir(output_dir: Path, vocab_size: int) -> Path:
    """Train the joint BPE tokenizer once on the training split (reused when the job is re-run)."""
    tokenizer_dir = output_dir / "tokenizer"
    if not tokenizer_dir.is_dir():
        logger.info("Training the shared BPE tokenizer (%d tokens) on the training split", vocab_size)
        tokenizer = train_bpe_tokenizer(load_bible_corpus(), vocab_size=vocab_size)
        atomic_directory(tokenizer_dir, tokenizer.save_pretrained)
    return tokenizer_dir


def run_quickstart(
    output_dir: str | Path,
    quick: bool = False,
    minutes_per_model: float | None = None,
    steps_per_model: int | None = None,
    test_examples: int | None = None,
    cards_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train, evaluate and compare both models; returns (and writes) the results report.

    Each trained model folder gets a model card; with ``cards_dir`` the cards and their
    plots (no weights) are also copied to ``cards_dir/<model>/``, which is how the
    repository's ``model_cards/`` is regenerated. ``steps_per_model`` replaces the presets'
    update budgets; ``minutes_per_model`` adds a wall-clock cap.
    """
    output_dir = Path(output_dir)
    started = time.perf_counter()
    overrides = list(QUICK_OVERRIDES) if quick else []
    if minutes_per_model is not None:
        overrides.append(f"max_minutes={minutes_per_model}")
    if steps_per_model is not None:
        overrides.append(f"max_steps={steps_per_model}")
    if test_examples is None and quick:
        test_examples = QUICK_TEST_EXAMPLES
    if test_examples is not None:
        require_positive_int("test_examples", test_examples)
    tokenizer_dir = output_dir / "tokenizer"
    # Every setting is checked (both configs built) before the tokenizer or a model is trained.
    configs = {
        name: load_training_config(
            preset, [*overrides, f"output_dir={output_dir / name}", f"tokenizer={tokenizer_dir}"]
        )
        for name, preset in MODELS.items()
    }
    if cards_dir is not None:  # the cards are copied after each training: a folder that cannot be made fails now
        Path(cards_dir).mkdir(parents=True, exist_ok=True)
    shared_tokenizer_dir(output_dir, configs["transformer"].vocab_size)
    test_split = load_bible_corpus()["test"]
    if test_examples is not None:
        test_split = test_split.select(range(min(test_examples, len(test_split))))

    report: dict[str, Any] = {"output_dir": str(output_dir), "quick": quick, "models": {}}
    hypotheses: dict[str, list[str]] = {}
    for name, preset in MODELS.items():
        run_dir, config = output_dir / name, configs[name]
        logger.info("Training the %s (%s) into %s", name, preset, run_dir)
        summary = train(config)
        model, tokenizer = load_model_and_tokenizer(summary.best_model_dir)
        logger.info("Translating %d test verses with the %s (beam 4)", len(test_split), name)
        metrics = evaluate_model(model, tokenizer, test_split, output_dir=run_dir / "test", num_beams=4, progress=True)
        hypotheses[name] = (run_dir / "test" / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
        card = write_model_card(summary.best_model_dir, run_dir=run_dir, test_metrics=metrics)
        if cards_dir is not None:
            copy_card(card, Path(cards_dir) / name)
        report["models"][name] = {"preset": preset, "training": summary.__dict__, "test": metrics}

    picks = sorted({0, len(test_split) // 2, len(test_split) - 1})[:NUM_SAMPLES]
    report["samples"] = [
        {
            "id": test_split[i]["id"],
            "source": test_split[i]["source"],
            "reference": test_split[i]["target"],
            **{name: hypotheses[name][i] for name in MODELS},
        }
        for i in picks
    ]
    report["tokenizer"] = {"path": str(tokenizer_dir), "vocab_size": len(load_tokenizer(tokenizer_dir))}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_json(output_dir / "results.json", report)
    return report


def copy_card(card: Path, destination: Path) -> None:
    """Copy a model card and the plots it shows (not the weights) into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in [card, *sorted(card.parent.glob("*.png"))]:
        shutil.copy2(path, destination / path.name)


def format_report(report: dict[str, Any]) -> str:
    """A plain-text results table and the sample translations."""
    lines = [
        f"{'model':<12} {'params':>10} {'steps':>6} {'train min':>9} {'tgt tok/s':>9} "
        f"{'peak MB':>8} {'dev BLEU':>8} {'test BLEU':>9} {'test chrF':>9}"
    ]
    for name, result in report["models"].items():
        training, test = result["training"], result["test"]
        dev_bleu = training["best_dev_bleu"]
        lines.append(
            f"{name:<12} {training['num_parameters']:>10,} {training['steps']:>6} "
            f"{training['train_seconds'] / 60:>9.1f} {training['target_tokens_per_second']:>9.0f} "
            f"{training['peak_memory_mb']:>8.0f} {dev_bleu if dev_bleu is not None else float('nan'):>8.2f} "
            f"{test['bleu']:>9.2f} {test['chrf']:>9.2f}"
        )
    first = next(iter(report["models"].values()))["test"]
    lines.append(f"sacrebleu: {first['bleu_signature']} | {first['chrf_signature']}")
    for sample in report["samples"]:
        lines.append("")
        lines.append(f"[{sample['id']}] EN:  {sample['source']}")
        lines.append(f"{'reference':>12}: {sample['reference']}")
        lines.extend(f"{name:>12}: {sample[name]}" for name in report["models"])
    lines.append("")
    lines.append(f"Everything is in {report['output_dir']} ({report['wall_seconds'] / 60:.1f} minutes).")
    return "\n".join(lines)
