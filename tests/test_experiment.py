"""The seed experiment: presets, gradient probe, length scaling, report rendering, a micro end-to-end run, CLI."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from tiny_seq2seq import (  # noqa: F401
    TINY_SEED_OVERRIDES,
    bible_corpus,
    one_torch_thread,
    small_tokenizer,
    tiny_model,
    tiny_synthetic_settings,
)
from transformers import AutoConfig, AutoModelForSeq2SeqLM

from hf_attn.evaluation import DEFAULT_LENGTH_BUCKETS
from hf_attn.training.config import PRESETS_DIR
from research.experiment.gradient_probe import probe_gradients, source_gradient_norms
from research.experiment.length_scaling import synthetic_batch, training_tokens_per_second
from research.experiment.report import HELD, INCONCLUSIVE, MIXED, NOT_HELD, assess_claims, render_markdown
from research.experiment.run import (
    MODELS,
    command_line,
    make_settings,
    run_experiment,
    select_test_verses,
    train_model,
    training_configs,
)

REPO = Path(__file__).resolve().parents[1]
MODEL_KEYS = {"model_type", "model", "output_dir"}


def _long_pairs(count: int) -> tuple[list[str], list[str]]:
    test = bible_corpus()["test"]
    picks = [i for i, source in enumerate(test["source"]) if len(source.split()) >= 40][:count]
    return [test[i]["source"] for i in picks], [test[i]["target"] for i in picks]


def _norms(model, source: str, target: str) -> torch.Tensor:
    encoded = small_tokenizer()(source, text_target=target, return_tensors="pt")
    return source_gradient_norms(model, encoded["input_ids"], encoded["labels"])


# ------------------------------------------------------------------------------ presets


def test_presets_differ_only_in_the_model():
    presets = {m.preset: yaml.safe_load((PRESETS_DIR / f"{m.preset}.yaml").read_text()) for m in MODELS}
    reference = presets["seed_transformer"]
    for name, values in presets.items():
        assert set(values) == set(reference), name
        assert {k: v for k, v in values.items() if k not in MODEL_KEYS} == {
            k: v for k, v in reference.items() if k not in MODEL_KEYS
        }, name
        assert values["output_dir"].endswith(next(m.name for m in MODELS if m.preset == name))
    assert len({yaml.safe_dump(v["model"]) for v in presets.values()}) == len(MODELS)


def test_preset_models_are_matched_in_size():
    counts = {}
    for model in MODELS:
        config = training_configs(make_settings())[model.name]
        built = AutoModelForSeq2SeqLM.from_config(
            AutoConfig.for_model(config.model_type, vocab_size=8000, **config.model)
        )
        counts[model.name] = sum(p.numel() for p in built.parameters())
    # Stated in the presets' header comment: 4.48 M, 4.81 M, 5.01 M, 4.94 M.
    assert [round(counts[m.name] / 1e6, 2) for m in MODELS] == [4.48, 4.81, 5.01, 4.94]
    assert max(counts.values()) / min(counts.values()) < 1.12


# ------------------------------------------------------------------------------ gradient probe


@pytest.mark.parametrize("model_type", ["transformer_seq2seq", "rnn_seq2seq"])
def test_gradient_norms_cover_every_source_position(model_type):
    model = tiny_model(model_type).train()
    sources, targets = _long_pairs(1)
    encoded = small_tokenizer()(sources[0], text_target=targets[0], return_tensors="pt")
    norms = source_gradient_norms(model, encoded["input_ids"], encoded["labels"])
    assert norms.shape == (encoded["input_ids"].shape[1],)
    assert torch.isfinite(norms).all() and (norms > 0).all()
    assert model.training  # the caller's mode is restored
    assert all(p.grad is None for p in model.parameters())  # measuring does not leave gradients behind
    with pytest.raises(ValueError, match="one pair"):
        source_gradient_norms(model, encoded["input_ids"].repeat(2, 1), encoded["labels"].repeat(2, 1))


def test_without_attention_the_gradient_vanishes_with_distance_from_the_decoder():
    """Measured at random init (tiny models, 3 verses of 40+ words): the properties hold by orders of magnitude."""
    sources, targets = _long_pairs(3)
    unidirectional = tiny_model("rnn_seq2seq", attention_type="none", input_feeding=False, bidirectional_encoder=False)
    bidirectional = tiny_model("rnn_seq2seq", attention_type="none", input_feeding=False)
    attention = tiny_model("rnn_seq2seq", attention_type="bahdanau", input_feeding=False)
    for source, target in zip(sources, targets):
        # The decoder starts from the final state: the first token is reached through the whole recurrence.
        norms = _norms(unidirectional, source, target)
        assert norms[0] < 1e-2 * norms[-1]
        # A bidirectional encoder's final state holds both ends, so the middle gets the least.
        norms = _norms(bidirectional, source, target)
        middle = norms[len(norms) // 2]
        assert middle < 1e-2 * norms[0] and middle < 1e-2 * norms[-1]
    spread_without = probe_gradients(bidirectional, small_tokenizer(), sources, targets).spread
    spread_with = probe_gradients(attention, small_tokenizer(), sources, targets).spread
    assert spread_with < 10 < 100 * 10 < spread_without


def test_gradient_profile_averages_verses_over_shared_positions():
    sources, targets = _long_pairs(2)
    profile = probe_gradients(tiny_model("transformer_seq2seq"), small_tokenizer(), sources, targets)
    assert profile.num_verses == 2 and profile.positions == min(profile.source_lengths)
    assert len(profile.from_start) == len(profile.from_end) == profile.positions
    assert profile.spread >= 1 and all(math.isfinite(v) and v > 0 for v in profile.from_start + profile.from_end)


# ------------------------------------------------------------------------------ length scaling, verse selection


def test_training_throughput_on_fixed_token_batches():
    models = {"rnn": tiny_model("rnn_seq2seq"), "transformer": tiny_model("transformer_seq2seq")}
    batch = synthetic_batch(models["rnn"], length=16, tokens=100, seed=0)
    assert batch["input_ids"].shape == batch["labels"].shape == (6, 16)
    assert (batch["labels"][:, -1] == models["rnn"].config.eos_token_id).all() and (
        batch["input_ids"][:, :-1] > 3
    ).all()
    before = [p.detach().clone() for p in models["rnn"].parameters()]
    rates = training_tokens_per_second(models, [8, 32], tokens_per_batch=64, repeats=2)
    assert list(rates) == ["rnn", "transformer"]
    assert all(len(r) == 2 and all(math.isfinite(x) and x > 0 for x in r) for r in rates.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, models["rnn"].parameters()))  # real training steps
    with pytest.raises(ValueError, match="lengths"):
        training_tokens_per_second(models, [1])


def test_test_verses_are_capped_per_length_bucket():
    test = bible_corpus()["test"]
    chosen = select_test_verses(test, per_bucket=5, seed=0)
    counts = [
        sum(low <= len(s.split()) and (high is None or len(s.split()) <= high) for s in chosen["source"])
        for low, high in DEFAULT_LENGTH_BUCKETS
    ]
    assert counts == [5] * len(DEFAULT_LENGTH_BUCKETS)
    assert list(chosen["id"]) == list(select_test_verses(test, per_bucket=5, seed=0)["id"])
    assert select_test_verses(test, per_bucket=None, seed=0) is test


def test_command_line_reproduces_the_settings():
    settings = make_settings(quick=True, max_minutes=2.5, test_per_bucket=0, extra_overrides=["max_tokens=900"])
    assert settings.test_per_bucket is None and settings.docs_dir is None
    assert settings.overrides[-1] == "max_tokens=900"
    assert command_line(settings) == (
        "python scripts/seed_experiment.py --quick --minutes-per-model 2.5 --test-per-bucket 0 --set max_tokens=900"
    )
    assert command_line(make_settings()) == "python scripts/seed_experiment.py"
    assert command_line(make_settings(synthetic=False)) == "python scripts/seed_experiment.py --no-synthetic"
    quick = make_settings(quick=True, synthetic_steps=7)
    assert command_line(quick) == "python scripts/seed_experiment.py --quick --synthetic-steps 7"
    assert quick.synthetic.task.train_examples == 2000  # the quick task, with another budget
    assert make_settings().docs_dir == "docs"


# ------------------------------------------------------------------------------ report


def _buckets(bleus: list[float | None]) -> list[dict[str, Any]]:
    return [
        {
            "bucket": f"{low}+" if high is None else f"{low}-{high}",
            "min_words": low,
            "max_words": high,
            "n": 0 if bleu is None else 20,
            "bleu": bleu,
            "chrf": None if bleu is None else bleu + 20,
        }
        for (low, high), bleu in zip(DEFAULT_LENGTH_BUCKETS, bleus)
    ]


def _model(label: str, role: str, bleu: float, buckets: list, throughput: list, spread: float) -> dict[str, Any]:
    gradients = {"spread": spread, "first_to_last": 1.0, "from_start": [1.0, 0.5], "from_end": [1.0, 0.5]}
    return {
        "label": label,
        "role": role,
        "preset": f"seed_{label}",
        "parameters": 4_800_000,
        "embedding_parameters": 2_048_000,
        "budget": {"max_minutes": 10, "max_steps": None},
        "training": {
            "steps": 400,
            "epochs_completed": 0,
            "train_seconds": 600.0,
            "stopped_because": "max_minutes",
            "target_tokens_per_second": 700.0,
            "target_tokens": 420_000,
            "best_dev_bleu": bleu,
        },
        "reused": False,
        "load_average": {"start": [3.9, 3.0, 2.0], "end": [4.2, 3.5, 2.5]},
        "test": {
            "bleu": bleu,
            "chrf": bleu + 20,
            "bleu_signature": "nrefs:1|tok:13a",
            "chrf_signature": "nc:6",
            "by_source_length": _buckets(buckets),
        },
        "gradients": {"trained": gradients, "init": gradients},
        "throughput": throughput,
        "heatmaps": []
        if role == "no_attention"
        else [
            {
                "verse_id": "GEN.1.1",
                "source": "In the beginning",
                "reference": "En el principio",
                "translation": "En el principio",
                "figures": [{"file": f"attention_{label}_verse1_layer1.png", "caption": f"{label}, layer 1"}],
            }
        ],
    }


def made_up_results() -> dict[str, Any]:
    """A results dict shaped like run_experiment's, with numbers that make claims 1-7 hold."""
    return {
        "created": "2026-11-26T12:00:00+00:00",
        "command": "python scripts/seed_experiment.py",
        "quick": False,
        "settings": {"bleu_margin": 1.0},
        "hardware": {
            "cpu": "Test CPU",
            "logical_cpus": 2,
            "usable_cpus": 2,
            "threads": 2,
            "device": "cpu",
            "gpu": None,
            "python": "3.11",
            "torch": "2.x",
            "transformers": "5.23.0",
            "git": {"commit": "abc123", "uncommitted_package_files": []},
            "load_average_start": [3.0, 3.0, 3.0],
            "load_average_end": [4.0, 4.0, 4.0],
        },
        "tokenizer": {"vocab_size": 8000},
        "test_set": {"verses": 365, "per_bucket": 80, "num_beams": 4, "full_split": 1015},
        "probe": {"min_words": 40, "verses": 32},
        "throughput": {"lengths": [16, 256], "tokens_per_batch": 2048, "repeats": 3},
        "figures": {
            key: f"{key}.png"
            for key in (
                "bleu_by_length",
                "learning_curves_step",
                "learning_curves_seconds",
                "gradient_from_start",
                "gradient_from_end",
                "throughput",
            )
        },
        "wall_seconds": 3600.0,
        "models": {
            "rnn_none": _model("none", "no_attention", 10.0, [None, 14, 12, 9, 5, 2], [900, 800], 1e5),
            "rnn_bahdanau": _model("bahdanau", "attention_rnn", 15.0, [None, 16, 16, 15, 14, 13], [1000, 700], 3.0),
            "rnn_luong": _model("luong", "attention_rnn", 16.0, [None, 17, 17, 16, 15, 14], [500, 100], 2.0),
            "transformer": _model("transformer", "transformer", 18.0, [None, 19, 19, 18, 17, 16], [1200, 2400], 6.0),
        },
    }


def test_claims_follow_the_numbers():
    results = made_up_results()
    assert [claim.verdict for claim in assess_claims(results)] == [HELD] * 7
    claims = {claim.title: claim for claim in assess_claims(results)}
    long_claim = claims["Without attention, quality collapses on long sentences (51+ words)"]
    assert "none 2.00 vs bahdanau 13.00, luong 14.00" in long_claim.evidence

    models = results["models"]
    models["rnn_bahdanau"]["test"]["bleu"] = 10.5  # within the 1-BLEU margin of the baseline
    models["rnn_none"]["throughput"] = [900, 3000]  # the fastest RNN at 256 tokens now beats the Transformer
    models["transformer"]["gradients"]["trained"]["spread"] = 1e5
    verdicts = [claim.verdict for claim in assess_claims(results)]
    assert verdicts[0] == MIXED  # luong beats the baseline, bahdanau is inside the margin
    assert verdicts[5] == MIXED and verdicts[6] == MIXED  # held against the attention RNNs only
    for entry in models.values():
        entry["throughput"] = [1000, 1000]
    assert assess_claims(results)[5].verdict == NOT_HELD

    for entry in models.values():  # nothing learned: no difference is meaningful
        entry["test"]["bleu"] = 0.0
        entry["test"]["by_source_length"] = _buckets([None, 0.0, 0.0, 0.0, 0.0, 0.0])
    verdicts = [claim.verdict for claim in assess_claims(results)]
    assert verdicts[:5] == [INCONCLUSIVE] * 5


def test_report_has_every_section_figure_and_number():
    results = made_up_results()
    markdown = render_markdown(results)
    for heading in (
        "# The seed experiment",
        "## Setup",
        "## Translation quality",
        "## What the numbers show",
        "## Learning curves",
        "## Alignments",
        "## Vanishing gradients",
        "## Sequential computation",
        "## Caveats",
    ):
        assert f"\n{heading}" in "\n" + markdown, heading
    for figure in [*results["figures"].values(), "attention_bahdanau_verse1_layer1.png"]:
        assert f"(experiment/{figure})" in markdown
    assert "```bash\npython scripts/seed_experiment.py\n```" in markdown
    assert "Test CPU" in markdown and "5.23.0" in markdown
    assert "commit abc123" in markdown
    assert "| none | 10.00 | 30.00 |" in markdown  # the test BLEU/chrF table
    assert "Smoke run" not in markdown and "No model finished an epoch" in markdown
    quick = copy.deepcopy(results) | {"quick": True}
    assert "Smoke run" in render_markdown(quick)


def _controlled_model(label: str, role: str, token_accuracy: list[float], spread: float) -> dict[str, Any]:
    """A model of the controlled part with the given token accuracy per bucket (shortest first)."""
    buckets = [(5, 10), (11, 40), (41, 80)]
    rows = [
        {"bucket": f"{low}-{high}", "min_length": low, "max_length": high, "n": 50, "token_accuracy": accuracy,
         "exact_match": accuracy**high}
        for (low, high), accuracy in zip(buckets, token_accuracy)
    ]  # fmt: skip
    gradients = {"spread": spread, "first_to_last": 1.0, "from_start": [1.0, 0.5], "from_end": [1.0, 0.5]}
    sample = {"source": "a b c", "reference": "c b a", "output": "c b a"}
    return {
        "label": label,
        "role": role,
        "parameters": 180_000,
        "reused": False,
        "training": {"steps": 3000, "train_seconds": 180.0, "best_dev_bleu": 90.0},
        "test": {"token_accuracy": sum(token_accuracy) / 3, "exact_match": 0.5, "by_length": rows},
        "samples": [sample, sample],
        "gradients": {"trained": gradients, "init": gradients},
    }


def with_controlled_part(results: dict[str, Any], accuracies: dict[str, list[float]]) -> dict[str, Any]:
    """``results`` with a controlled part whose models have these token accuracies per bucket."""
    roles = {"rnn_none": "no_attention", "rnn_bahdanau": "attention_rnn", "rnn_luong": "attention_rnn"}
    models = {
        name: _controlled_model(name, roles.get(name, "transformer"), accuracy, 1e4 if name == "rnn_none" else 3.0)
        for name, accuracy in accuracies.items()
    }
    task = {"symbols": 20, "min_length": 5, "typical_max_length": 40, "max_length": 80, "long_fraction": 0.1,
            "train_examples": 20_000, "test_per_bucket": 50}  # fmt: skip
    figures = {key: f"synthetic_{key}.png" for key in ("token_accuracy", "exact_match", "gradient")}
    synthetic = {"task": task, "probe": {"strings": 16, "min_length": 71}, "models": models, "figures": figures}
    return {**results, "synthetic": {**synthetic, "wall_seconds": 600.0}}


HOLDS = {
    "rnn_none": [1.0, 0.6, 0.2],
    "rnn_bahdanau": [1.0, 0.99, 0.95],
    "rnn_luong": [1.0, 1.0, 0.97],
    "transformer": [1.0, 1.0, 0.99],
}


def test_controlled_claims_hold_when_attention_keeps_its_accuracy_on_long_strings():
    results = with_controlled_part(made_up_results(), HOLDS)
    claims = assess_claims(results)
    assert [claim.verdict for claim in claims] == [HELD] * 10
    collapse = claims[7]
    assert collapse.title.startswith("Controlled task: Without attention, accuracy collapses on long inputs")
    assert "rnn_none 0.20 of 1.00 (kept 0.20); rnn_bahdanau 0.95 of 1.00 (kept 0.95)" in collapse.evidence
    assert "16 test strings of ≥ 71 symbols" in claims[9].evidence
    markdown = render_markdown(results)
    assert "\n## Controlled task: reversing random strings\n" in markdown
    assert "| rnn_none | 1.00 | 0.60 | 0.20 | 0.60 |" in markdown  # token accuracy by bucket, then overall
    for figure in ("synthetic_token_accuracy.png", "synthetic_exact_match.png", "synthetic_gradient.png"):
        assert f"(experiment/{figure})" in markdown
    assert "Where the data does not back the seed notes: nowhere" in markdown
    assert markdown.index("## Controlled task") < markdown.index("## What the numbers show")


def test_controlled_claims_do_not_hold_when_the_numbers_disagree():
    no_collapse = {**HOLDS, "rnn_none": [1.0, 0.9, 0.8]}  # the fixed-size vector copes
    verdicts = [claim.verdict for claim in assess_claims(with_controlled_part(made_up_results(), no_collapse))]
    assert verdicts[7] == NOT_HELD and verdicts[8] == HELD

    attention_collapses = {**HOLDS, "rnn_luong": [1.0, 0.5, 0.3], "transformer": [1.0, 0.4, 0.1]}
    results = with_controlled_part(made_up_results(), attention_collapses)
    verdicts = [claim.verdict for claim in assess_claims(results)]
    assert verdicts[7] == MIXED and verdicts[8] == NOT_HELD  # held against Bahdanau, not against Luong
    assert "claims 8 (mixed), 9 (did not hold)" in render_markdown(results)

    unlearned = {**HOLDS, "rnn_none": [0.1, 0.06, 0.05]}  # chance level even on short strings
    assert assess_claims(with_controlled_part(made_up_results(), unlearned))[7].verdict == INCONCLUSIVE
    in_between = {**HOLDS, "transformer": [1.0, 0.9, 0.7]}
    assert assess_claims(with_controlled_part(made_up_results(), in_between))[8].verdict == INCONCLUSIVE


def test_the_report_leaves_out_a_skipped_controlled_part():
    results = made_up_results() | {"synthetic": None}
    assert len(assess_claims(results)) == 7 and "## Controlled task" not in render_markdown(results)


# ------------------------------------------------------------------------------ end to end


MICRO_TRAINING = (
    "max_train_examples=32",
    "max_tokens=256",
    "max_steps=2",
    "warmup_steps=1",
    "eval_every=2",
    "eval_examples=2",
    "save_every=2",
    "log_every=1",
)


def test_micro_experiment_end_to_end(tmp_path):
    """Tiny models, two updates each, a handful of verses: every artefact is written, into tmp only."""
    tokenizer_dir = tmp_path / "tokenizer"
    small_tokenizer().save_pretrained(tokenizer_dir)
    settings = make_settings(
        output_dir=str(tmp_path / "run"),
        docs_dir=str(tmp_path / "docs"),
        tokenizer=str(tokenizer_dir),
        extra_overrides=MICRO_TRAINING,
        model_overrides=TINY_SEED_OVERRIDES,
        synthetic=tiny_synthetic_settings(),
        test_per_bucket=1,
        num_beams=1,
        heatmap_words=(10,),
        probe_verses=2,
        throughput_lengths=(8, 16),
        throughput_tokens=64,
        throughput_repeats=1,
    )
    results = run_experiment(settings)

    assert list(results["models"]) == [m.name for m in MODELS]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["models"].keys() == results["models"].keys()
    for name, entry in results["models"].items():
        assert entry["training"]["steps"] == 2 and entry["test"]["n"] == 6
        assert len(entry["throughput"]) == 2 and entry["gradients"]["trained"]["num_verses"] == 2
        assert entry["cross_attention"] == (name != "rnn_none")
        card = (tmp_path / "run" / name / "best" / "README.md").read_text()
        assert "experiment.md" in card
    synthetic = results["synthetic"]
    assert list(synthetic["models"]) == [m.name for m in MODELS]
    for entry in synthetic["models"].values():
        assert entry["training"]["steps"] == 2 and [row["n"] for row in entry["test"]["by_length"]] == [3, 3]
        assert entry["gradients"]["init"]["num_verses"] == entry["gradients"]["trained"]["num_verses"] == 2
    transformer_figures = [f["file"] for f in results["models"]["transformer"]["heatmaps"][0]["figures"]]
    assert transformer_figures == ["attention_transformer_verse1_layer1.png", "attention_transformer_verse1_head.png"]
    for report_dir in (tmp_path / "docs", tmp_path / "run"):
        markdown = (report_dir / "experiment.md").read_text()
        links = re.findall(r"\]\((experiment/[^)]+)\)", markdown)
        assert len(links) >= 10 and all((report_dir / link).is_file() for link in links)
        assert "## Controlled task: reversing random strings" in markdown
        assert "experiment/synthetic_token_accuracy.png" in links

    configs = training_configs(settings, str(tokenizer_dir))
    skipped = train_model(configs["rnn_none"])  # a finished run with the same config is skipped...
    assert skipped["reused"] and skipped["summary"] == results["models"]["rnn_none"]["training"]
    assert skipped["load_average"] == results["models"]["rnn_none"]["load_average"]  # ...and keeps its conditions
    longer = training_configs(dataclasses.replace(settings, max_steps=3), str(tokenizer_dir))
    resumed = train_model(longer["rnn_none"])  # a larger budget continues from the checkpoint
    assert not resumed["reused"] and resumed["summary"]["steps"] == 3


# ------------------------------------------------------------------------------ command line


@pytest.fixture
def script(monkeypatch):
    """scripts/seed_experiment.py as a module (a script of the clone, not an importable package)."""
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # as `python scripts/seed_experiment.py` has it, for _clone
    spec = importlib.util.spec_from_file_location("seed_experiment", REPO / "scripts" / "seed_experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_help(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--quick",
        "--minutes-per-model",
        "--steps-per-model",
        "--docs-dir",
        "--output-dir",
        "--set",
        "--no-synthetic",
        "--synthetic-steps",
    ):
        assert option in text


@pytest.mark.parametrize(
    "argv", [["--steps-per-model", "0"], ["--num-beams", "-2"], ["--synthetic-steps", "x"], ["--test-per-bucket", "-1"]]
)
def test_script_refuses_non_positive_counts(script, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_script_passes_the_controlled_part_options_and_prints_its_accuracy(script, monkeypatch, capsys):
    seen = []

    def fake_run(settings):
        seen.append(settings)
        synthetic = None if settings.synthetic is None else {"models": {"rnn_none": {"test": {"token_accuracy": 0.5}}}}
        return {"models": {"rnn_none": {"test": {"bleu": 1.0}}}, "synthetic": synthetic}

    monkeypatch.setattr(script, "run_experiment", fake_run)
    assert script.main(["--quick", "--synthetic-steps", "9", "--test-per-bucket", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["synthetic_token_accuracy"] == {"rnn_none": 0.5}
    assert script.main(["--no-synthetic"]) == 0
    assert "synthetic_token_accuracy" not in json.loads(capsys.readouterr().out)
    assert seen[0].synthetic.max_steps == 9 and seen[1].synthetic is None and seen[0].test_per_bucket is None


def test_script_runs_from_any_directory(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "seed_experiment.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and "seed_experiment.py" in done.stdout and "--quick" in done.stdout


def test_hf_attn_has_no_experiment_command(capsys):
    from hf_attn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "--quick"])
    assert exit_info.value.code == 2 and "invalid choice: 'experiment'" in capsys.readouterr().err
