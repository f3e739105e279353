"""Model cards written from real (tiny) training runs of both models: Hub metadata, sections, validation."""

from __future__ import annotations

import json
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from hub_server import LocalHub, run_python
from huggingface_hub import ModelCard
from tiny_seq2seq import (
    MODEL_TYPES,
    bible_corpus,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    train_tiny_run,
)
from transformers import AutoConfig

from hf_attn.cards import architecture_rows, find_run_dir, write_model_card
from hf_attn.cli import main as cli_main

FAMILY_TAGS = {"transformer_seq2seq": ["transformer", "multi-head-scaled-dot-product-attention"],
               "rnn_seq2seq": ["rnn", "bahdanau-attention", "lstm"]}  # fmt: skip


@pytest.fixture(scope="module", params=MODEL_TYPES)
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny_run(request.param, tmp_path_factory.mktemp("runs") / request.param)


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(YAML metadata, markdown body) of a card."""
    match = re.match(r"^---\n(.*?)\n---\n+(.*)$", text, re.DOTALL)
    assert match, text[:200]
    return yaml.safe_load(match.group(1)), match.group(2)


def test_yaml_header_has_the_hub_metadata_and_test_results(run_dir: Path):
    card = write_model_card(run_dir / "best")
    assert card == run_dir / "best" / "README.md"
    metadata, _ = split_card(card.read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "test" / "metrics.json").read_text())
    model_type = AutoConfig.from_pretrained(run_dir / "best").model_type

    assert metadata["language"] == ["en", "es"] and metadata["license"] == "apache-2.0"
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "translation"
    assert metadata["tags"] == ["translation", "seq2seq", "hf_attn", model_type, *FAMILY_TAGS[model_type]]
    assert "datasets" not in metadata  # the bundled corpus has no Hub dataset id
    (entry,) = metadata["model-index"]
    assert entry["name"] == run_dir.name
    (result,) = entry["results"]
    assert result["task"] == {"type": "translation", "name": "Translation (English to Spanish)"}
    assert result["dataset"]["split"] == "test" and "Reina-Valera 1909" in result["dataset"]["name"]
    assert result["metrics"] == [
        {"type": "bleu", "value": round(metrics["bleu"], 2), "name": "BLEU (sacrebleu)"},
        {"type": "chrf", "value": round(metrics["chrf"], 2), "name": "chrF (sacrebleu)"},
    ]
    # huggingface_hub parses the model-index back into the same evaluation results.
    parsed = ModelCard.load(card).data.eval_results
    assert [(r.metric_type, r.metric_value, r.dataset_split) for r in parsed] == [
        ("bleu", round(metrics["bleu"], 2), "test"), ("chrf", round(metrics["chrf"], 2), "test")
    ]  # fmt: skip


def table_row(name: str, value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"| `{name}` | {text} |"


def test_body_reports_the_run(run_dir: Path):
    best = run_dir / "best"
    _, body = split_card(write_model_card(best, repo_id="user/tiny").read_text(encoding="utf-8"))
    config = AutoConfig.from_pretrained(best)
    summary = json.loads((run_dir / "summary.json").read_text())
    metrics = json.loads((run_dir / "test" / "metrics.json").read_text())

    assert body.startswith("# user/tiny\n")
    rows = architecture_rows(config)
    assert {row[0] for row in rows} >= {"vocab_size", "decoder_layers", "dropout", "tie_word_embeddings"}
    for name, value, _, _ in rows:
        assert table_row(name, value) in body, name
    assert f"{summary['num_parameters']:,} parameters" in body
    corpus = bible_corpus()
    assert f"| validation | {len(corpus['validation']):,} |" in body and "| train | 64 |" in body
    assert f"| steps | {summary['steps']} |" in body and "| `max_train_examples` | 64 |" in body
    assert metrics["bleu_signature"] in body and metrics["chrf_signature"] in body
    for bucket in metrics["by_source_length"]:
        assert f"| {bucket['bucket']} | {bucket['n']} |" in body
    hypotheses = (run_dir / "test" / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    for index in (0, len(hypotheses) // 2, len(hypotheses) - 1):
        assert corpus["test"][index]["source"] in body and f"**This model:** {hypotheses[index]}" in body
    assert 'from_pretrained("user/tiny", trust_remote_code=True)' in body
    assert 'pipeline("hf-attn-translation", model="user/tiny")' in body
    for plot in ("learning_curve.png", "bleu_by_length.png"):
        assert f"]({plot})" in body and (best / plot).is_file()
    assert "## Limitations" in body and "Bible verses" in body


def test_body_reports_the_averaged_models_dev_bleu_when_the_run_averaged(run_dir: Path, tmp_path: Path):
    _, plain = split_card(write_model_card(run_dir / "best").read_text(encoding="utf-8"))
    assert "mean of the last" not in plain
    averaged_run = tmp_path / "run"
    shutil.copytree(run_dir, averaged_run)
    for name, field, value in (("summary.json", "averaged_dev_bleu", 12.345), ("training_config.json",
                               "average_last_checkpoints", 3)):  # fmt: skip
        record = json.loads((averaged_run / name).read_text())
        (averaged_run / name).write_text(json.dumps({**record, field: value}))
    _, body = split_card(write_model_card(averaged_run / "best").read_text(encoding="utf-8"))
    assert "| dev BLEU of the mean of the last 3 checkpoints (greedy) | 12.35 |" in body


def test_card_from_a_model_folder_alone(tmp_path: Path):
    """Without a run folder the card still describes the model, and lists given metrics and samples."""
    folder = tmp_path / "model"
    save_tiny_model("rnn_seq2seq", folder)
    assert find_run_dir(folder) is None
    metadata, body = split_card(write_model_card(folder).read_text(encoding="utf-8"))
    assert "model-index" not in metadata and "## Evaluation" not in body and "## Training\n" not in body
    assert "`attention_type` | bahdanau |" in body and "![" not in body

    metrics = {
        "bleu": 12.345,
        "chrf": 40.0,
        "n": 2,
        "num_beams": 4,
        "bleu_signature": "sig-b",
        "chrf_signature": "sig-c",
    }
    samples = [{"source": "And God said.", "reference": "Y dijo Dios.", "translation": "Y Dios dijo."}]
    links = [("Project report", "https://example.org/report")]
    metadata, body = split_card(
        write_model_card(folder, test_metrics=metrics, samples=samples, extra_links=links).read_text(encoding="utf-8")
    )
    assert metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == 12.35
    assert "`sig-b`" in body and "**This model:** Y Dios dijo." in body
    assert "- [Project report](https://example.org/report)" in body


def test_card_yaml_passes_the_hub_validator(local_hub: LocalHub, run_dir: Path, tmp_path: Path):
    card = write_model_card(run_dir / "best")
    broken = tmp_path / "broken.md"
    broken.write_text(
        card.read_text(encoding="utf-8").replace("license: apache-2.0", "license: [apache-2.0"), encoding="utf-8"
    )
    script = f"""
from huggingface_hub import ModelCard
ModelCard.load({str(card)!r}).validate()
"""
    run_python(script, local_hub.env, cwd=tmp_path)  # raises unless validate() passed
    # The client refuses to load the broken text at all, so it goes to the validator raw: it must be rejected.
    request = urllib.request.Request(
        f"{local_hub.endpoint}/api/validate-yaml",
        data=json.dumps({"content": broken.read_text(encoding="utf-8")}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as rejected:
        urllib.request.urlopen(request, timeout=30)
    assert rejected.value.code == 400 and "Invalid YAML" in rejected.value.read().decode()
    assert [path for _, path in local_hub.requests].count("/api/validate-yaml") == 2


def test_card_command(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    metrics = {**json.loads((run_dir / "test" / "metrics.json").read_text()), "bleu": 33.333}
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text(json.dumps(metrics))
    assert cli_main(["card", str(run_dir / "best"), "--repo-id", "user/cli", "--test-metrics", str(metrics_file)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "best" / "README.md")
    metadata, body = split_card((run_dir / "best" / "README.md").read_text(encoding="utf-8"))
    assert body.startswith("# user/cli\n") and metadata["model-index"][0]["results"][0]["metrics"][0]["value"] == 33.33
    assert cli_main(["card", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err


def test_architecture_table_reads_each_fields_declared_meaning():
    """Every architecture row of both configs carries the description declared with its field, not parsed text."""
    for model_type in ("transformer_seq2seq", "rnn_seq2seq"):
        rows = architecture_rows(AutoConfig.for_model(model_type))
        described = {name: meaning for name, _, _, meaning in rows if meaning}
        assert {"vocab_size", "decoder_layers", "dropout", "tie_word_embeddings"} <= set(described)
        assert all("``" not in meaning for meaning in described.values())
