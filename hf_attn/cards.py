"""Model cards (``README.md`` with Hub metadata) for saved hf_attn models.

A card is written from what a run leaves behind, never from memory: the model folder's
``config.json`` and weights, and, when the run folder is known, ``summary.json``,
``training_config.json``, ``test/metrics.json``, ``test/hypotheses.txt`` and the plots.
Nothing here branches on the model type: the architecture table lists the fields the
model's config class declares, with the meaning each field declares (``described``), so a new model
family gets a complete card for free.

The YAML header follows the Hub's model-card metadata: ``model-index`` carries the test
BLEU and chrF as ``results`` (task, dataset, metrics), built with ``huggingface_hub``'s own
``ModelCardData``/``EvalResult`` so the structure is the one the Hub parses. The bundled
corpus has no Hub dataset id, so the header has no ``datasets`` list; the model-index names
the corpus descriptively instead.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCardData
from safetensors import safe_open
from transformers import AutoConfig, PreTrainedConfig

from .atomic import atomic_write_text, read_json_if_exists
from .plotting import plot_bleu_by_length

logger = logging.getLogger(__name__)

CARD_NAME = "README.md"
BLEU_BY_LENGTH_PLOT = "bleu_by_length.png"
NUM_SAMPLES = 3
BIBLE_DATASET_NAME = "KJV → Reina-Valera 1909 Bible verses (bundled with hf_attn)"
BIBLE_DATASET_TYPE = "hf_attn-kjv-rv1909"
BIBLE_DATASET_DESCRIPTION = (
    "English King James Version (1769 text) verses aligned with the Spanish Reina-Valera 1909, "
    "both in the public domain, as bundled with hf_attn (`hf_attn.data.load_bible_corpus()`). "
    "The splits hold out whole chapters, so no validation or test verse shares a chapter with "
    "training data. Provenance and cleaning are documented in `hf_attn/resources/KJV_RV1909_LICENSE.md`."
)
# Config fields that describe how the model runs, not what it is.
_NOT_ARCHITECTURE = frozenset({"use_cache", "is_encoder_decoder"})
PAPERS = {
    "rnn": [
        "Bahdanau, Cho, Bengio (2014). Neural Machine Translation by Jointly Learning to Align and Translate. "
        "arXiv:1409.0473",
        "Luong, Pham, Manning (2015). Effective Approaches to Attention-based Neural Machine Translation. "
        "arXiv:1508.04025",
    ],
    "transformer": ["Vaswani et al. (2017). Attention Is All You Need. arXiv:1706.03762"],
}
FAMILY_NAMES = {"rnn": "an RNN", "transformer": "a Transformer"}


@dataclass
class _RunRecord:
    """Everything the card reports, read from the model and run folders."""

    name: str
    config: PreTrainedConfig
    num_parameters: int
    summary: dict[str, Any] | None = None
    training_config: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = None
    samples: list[dict[str, str]] = field(default_factory=list)
    split_sizes: dict[str, int] | None = None
    plots: list[str] = field(default_factory=list)


def _count_parameters(model_dir: Path) -> int:
    """Parameters stored in the safetensors files (tied matrices are stored, and counted, once)."""
    total = 0
    for weights in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 - safe_open is not iterable
                shape = tensors.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
    return total


def _family(config: PreTrainedConfig) -> str:
    """ "rnn" or "transformer": what the config describes, read from its fields rather than its name."""
    return "rnn" if hasattr(config, "rnn_type") else "transformer"


def _attention_name(config: PreTrainedConfig) -> str:
    return getattr(config, "attention_type", None) or "multi-head scaled dot-product"


def _tags(config: PreTrainedConfig) -> list[str]:
    tags = ["translation", "seq2seq", "hf_attn", config.model_type, _family(config)]
    tags.append(f"{_attention_name(config).replace(' ', '-')}-attention")
    if rnn_type := getattr(config, "rnn_type", None):
        tags.append(rnn_type)
    return tags


def architecture_rows(config: PreTrainedConfig) -> list[tuple[str, Any, Any, str]]:
    """(field, value, class default, meaning) for every field the model's config class declares."""
    config_class = type(config)
    declared = [name for name in vars(config_class).get("__annotations__", {}) if name not in _NOT_ARCHITECTURE]
    defaults = config_class()
    docs = {field.name: field.metadata.get("description", "") for field in dataclasses.fields(config_class)}
    return [
        (name, getattr(config, name), getattr(defaults, name), docs.get(name, "").replace("``", "`"))
        for name in declared
    ]


def _split_sizes(training_config: Mapping[str, Any]) -> tuple[dict[str, int], Any]:
    """Pairs per split of the run's data (after ``max_train_examples``), and the corpus itself."""
    from .data import load_bible_corpus, load_parallel_data

    data = training_config.get("data")
    corpus = load_bible_corpus() if data is None else load_parallel_data(data)
    sizes = {split: len(corpus[split]) for split in corpus}
    if training_config.get("max_train_examples") is not None:
        sizes["train"] = min(sizes["train"], training_config["max_train_examples"])
    return sizes, corpus


def _samples_from_run(run_dir: Path, test_split: Any) -> list[dict[str, str]]:
    """Source, reference and hypothesis of the first, middle and last evaluated test sentences."""
    hypotheses = (run_dir / "test" / "hypotheses.txt").read_text(encoding="utf-8").splitlines()
    picks = sorted({0, len(hypotheses) // 2, len(hypotheses) - 1})[:NUM_SAMPLES] if hypotheses else []
    return [
        {
            "id": str(test_split[i]["id"]),
            "source": test_split[i]["source"],
            "reference": test_split[i]["target"],
            "translation": hypotheses[i],
        }
        for i in picks
    ]


def _copy_run_plots(run_dir: Path, model_dir: Path) -> None:
    """Put the run's figures (learning curve, ...) next to the card so its relative links work on the Hub."""
    for plot in sorted(run_dir.glob("*.png")):
        shutil.copy2(plot, model_dir / plot.name)


def _gather(
    model_dir: Path,
    run_dir: Path | None,
    test_metrics: Mapping[str, Any] | None,
    samples: Sequence[Mapping[str, str]] | None,
    repo_id: str | None,
) -> _RunRecord:
    config = AutoConfig.from_pretrained(model_dir)
    # A run's model folder is called "best"; the run folder's name says which model it is.
    name = repo_id or (
        run_dir.resolve().name if run_dir is not None and model_dir.name == "best" else model_dir.resolve().name
    )
    record = _RunRecord(name=name, config=config, num_parameters=_count_parameters(model_dir))
    corpus = None
    if run_dir is not None:
        record.summary = read_json_if_exists(run_dir / "summary.json")
        record.training_config = read_json_if_exists(run_dir / "training_config.json")
        if record.training_config is not None:
            record.split_sizes, corpus = _split_sizes(record.training_config)
        _copy_run_plots(run_dir, model_dir)
    record.test_metrics = (
        dict(test_metrics)
        if test_metrics is not None
        else (read_json_if_exists(run_dir / "test" / "metrics.json") if run_dir is not None else None)
    )
    if samples is not None:
        record.samples = [dict(sample) for sample in samples]
    elif run_dir is not None and corpus is not None and (run_dir / "test" / "hypotheses.txt").is_file():
        record.samples = _samples_from_run(run_dir, corpus["test"])
    if record.test_metrics and record.test_metrics.get("by_source_length"):
        plot_bleu_by_length({record.name: record.test_metrics["by_source_length"]}, model_dir / BLEU_BY_LENGTH_PLOT)
    record.plots = sorted(path.name for path in model_dir.glob("*.png"))
    return record


def _dataset_name(record: _RunRecord) -> tuple[str, str]:
    data = (record.training_config or {}).get("data")
    if data is None:
        return BIBLE_DATASET_NAME, BIBLE_DATASET_TYPE
    return f"User data ({Path(str(data)).name})", "user-data"


def _metadata(record: _RunRecord) -> ModelCardData:
    """The YAML header: languages, licence, library, tags, pipeline tag and the test results as model-index."""
    eval_results = None
    metrics = record.test_metrics
    if metrics:
        dataset_name, dataset_type = _dataset_name(record)
        common = {
            "task_type": "translation",
            "task_name": "Translation (English to Spanish)",
            "dataset_type": dataset_type,
            "dataset_name": dataset_name,
            "dataset_split": "test",
        }
        eval_results = [
            EvalResult(
                metric_type="bleu", metric_value=round(metrics["bleu"], 2), metric_name="BLEU (sacrebleu)", **common
            ),
            EvalResult(
                metric_type="chrf", metric_value=round(metrics["chrf"], 2), metric_name="chrF (sacrebleu)", **common
            ),
        ]
    return ModelCardData(
        language=["en", "es"],
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="translation",
        tags=_tags(record.config),
        model_name=record.name,
        eval_results=eval_results,
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _section_model(record: _RunRecord) -> str:
    config, family = record.config, _family(record.config)
    architecture = (config.architectures or [type(config).__name__])[0]
    papers = "\n".join(f"- {paper}" for paper in PAPERS[family])
    rows = [(f"`{name}`", value, default, doc) for name, value, default, doc in architecture_rows(config)]
    return f"""## Model

An English→Spanish translation model: {FAMILY_NAMES[family]} **encoder-decoder** with
**{_attention_name(config)} attention** (`{architecture}`, model type `{config.model_type}`,
{record.num_parameters:,} parameters), written from scratch as a genuine 🤗 `transformers` model
by the hf_attn project, after:

{papers}

Its configuration (every field the config class declares; "default" is the class default):

{_table(["field", "value", "default", "meaning"], rows)}
"""


def _section_data(record: _RunRecord, dataset_description: str) -> str:
    text = f"## Training data\n\n{dataset_description}\n"
    if record.split_sizes:
        rows = [(split, f"{size:,}") for split, size in record.split_sizes.items()]
        text += f"\n{_table(['split', 'sentence pairs'], rows)}\n"
    if record.training_config:
        keys = ("max_source_tokens", "max_target_tokens")
        limits = ", ".join(f"`{key}` = {record.training_config[key]}" for key in keys if key in record.training_config)
        text += f"\nTraining skipped pairs longer than its token limits ({limits}); the test evaluation skipped none.\n"
    return text


def _section_training(record: _RunRecord) -> str:
    summary, config = record.summary, record.training_config
    if not summary and not config:
        return ""
    text = "## Training\n\n"
    if summary:
        best = summary.get("best_dev_bleu")
        rows = [
            ("steps", summary.get("steps")),
            ("epochs completed", summary.get("epochs_completed")),
            ("stopped because", summary.get("stopped_because")),
            ("training time", _duration(summary.get("train_seconds", 0))),
            ("target tokens seen", f"{summary.get('target_tokens', 0):,}"),
            ("target tokens / second", summary.get("target_tokens_per_second")),
            ("peak memory", f"{summary.get('peak_memory_mb', 0):,.0f} MB"),
            ("hardware", f"{summary.get('device')} × {summary.get('num_processes')} process(es)"),
            ("mixed precision", summary.get("mixed_precision")),
            ("best dev BLEU (greedy)", "n/a" if best is None else f"{best:.2f} at step {summary.get('best_step')}"),
        ]
        averaged = summary.get("averaged_dev_bleu")
        if averaged is not None:
            # How many were averaged (fewer than asked when the run stopped early); older summaries lack it.
            count = summary.get("averaged_checkpoints") or (config or {}).get("average_last_checkpoints", "?")
            rows.append((f"dev BLEU of the mean of the last {count} checkpoints (greedy)", f"{averaged:.2f}"))
        text += _table(["budget", "value"], rows) + "\n\n"
    if config:
        # The vocabulary sizes only size a tokenizer the run trains itself.
        skip = {"model", "output_dir", "tokenizer", "model_type"} | (
            {"vocab_size", "target_vocab_size"} if config.get("tokenizer") else set()
        )
        rows = [(f"`{key}`", value) for key, value in config.items() if key not in skip]
        text += "Training configuration (`hf-attn train`, the project's accelerate loop):\n\n"
        text += _table(["setting", "value"], rows) + "\n"
    return text


def _section_results(record: _RunRecord) -> str:
    metrics = record.test_metrics
    if not metrics:
        return ""
    text = f"""## Evaluation

Test split, {metrics.get("n", "?")} sentences, beam size {metrics.get("num_beams", "?")}, scored with sacrebleu:

| metric | score |
|---|---|
| BLEU | {metrics["bleu"]:.2f} |
| chrF | {metrics["chrf"]:.2f} |

Signatures: `{metrics.get("bleu_signature", "")}` and `{metrics.get("chrf_signature", "")}`.
"""
    table = metrics.get("by_source_length")
    if table:
        rows = [
            (row["bucket"], row["n"], "–" if row["bleu"] is None else f"{row['bleu']:.2f}",
             "–" if row["chrf"] is None else f"{row['chrf']:.2f}")
            for row in table
        ]  # fmt: skip
        text += "\nBy source length (words), as in Bahdanau et al. (2014), Fig. 2:\n\n"
        text += _table(["source words", "sentences", "BLEU", "chrF"], rows) + "\n"
    return text


def _section_samples(record: _RunRecord) -> str:
    if not record.samples:
        return ""
    blocks = []
    for sample in record.samples:
        label = f" ({sample['id']})" if sample.get("id") else ""
        blocks.append(
            f"- **English{label}:** {sample['source']}\n  - **Reference:** {sample.get('reference', '–')}\n"
            f"  - **This model:** {sample['translation']}"
        )
    return "## Sample translations (test split)\n\n" + "\n".join(blocks) + "\n"


def _section_usage(record: _RunRecord, repo_id: str | None) -> str:
    where = repo_id or "path/to/this/model"
    source = "In the beginning God created the heaven and the earth."
    return f"""## Usage

With the hf_attn package installed, its import registers the model with the Auto classes:

```python
import hf_attn  # noqa: F401
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

model = AutoModelForSeq2SeqLM.from_pretrained("{where}")
tokenizer = AutoTokenizer.from_pretrained("{where}")
inputs = tokenizer(["{source}"], return_tensors="pt")
outputs = model.generate(**inputs, num_beams=4, max_new_tokens=64)
print(tokenizer.batch_decode(outputs, skip_special_tokens=True))
```

Without hf_attn, the model code shipped in this repository loads with `trust_remote_code=True`:

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

model = AutoModelForSeq2SeqLM.from_pretrained("{where}", trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained("{where}", trust_remote_code=True)  # it reads the config too
inputs = tokenizer(["{source}"], return_tensors="pt")
outputs = model.generate(**inputs, num_beams=4, max_new_tokens=64)
print(tokenizer.batch_decode(outputs, skip_special_tokens=True))
```

As a pipeline (transformers 5 has no `translation` task; hf_attn registers its own):

```python
import hf_attn  # noqa: F401
from transformers import pipeline

translator = pipeline("hf-attn-translation", model="{where}")
print(translator("{source}", num_beams=4))
```
"""


def _section_plots(record: _RunRecord) -> str:
    if not record.plots:
        return ""
    names = {"learning_curve.png": "Learning curves", BLEU_BY_LENGTH_PLOT: "BLEU by source length"}
    images = [
        f"### {names.get(plot, plot.removesuffix('.png').replace('_', ' '))}\n\n![{plot}]({plot})"
        for plot in record.plots
    ]
    return "## Plots\n\n" + "\n\n".join(images) + "\n"


def _section_limitations(record: _RunRecord) -> str:
    budget = ""
    if record.summary:
        seconds = record.summary.get("train_seconds", 0)
        budget = f" It trained for {_duration(seconds)} on {record.summary.get('device')}."
    return f"""## Limitations

- A small model ({record.num_parameters:,} parameters) on a small compute budget.{budget} It is a teaching and
  comparison model for classic attention architectures, not a general translator.
- Trained only on Bible verses: early-modern English in, 1909 Spanish out. Expect archaic vocabulary and style
  ("thou hast", "vosotros"), and poor results on modern or out-of-domain text.
- English→Spanish only; other input languages give meaningless output.
- Scores are corpus BLEU/chrF against a single reference on chapter-held-out verses of the same books.

## License

The hf_attn code is Apache-2.0 and these weights are released under Apache-2.0 as well. The training texts
(King James Version, Reina-Valera 1909) are in the public domain.
"""


def _section_links(extra_links: Sequence[tuple[str, str]]) -> str:
    if not extra_links:
        return ""
    return "## Links\n\n" + "\n".join(f"- [{title}]({url})" for title, url in extra_links) + "\n"


def _render(
    record: _RunRecord,
    *,
    dataset_description: str = BIBLE_DATASET_DESCRIPTION,
    repo_id: str | None = None,
    extra_links: Sequence[tuple[str, str]] = (),
    extra_sections: Sequence[str] = (),
) -> str:
    """The card text: YAML header, then the sections that the record has data for (``extra_sections`` after results)."""
    sections = [
        f"# {record.name}\n",
        _section_model(record),
        _section_data(record, dataset_description),
        _section_training(record),
        _section_results(record),
        *extra_sections,
        _section_samples(record),
        _section_usage(record, repo_id),
        _section_plots(record),
        _section_limitations(record),
        _section_links(extra_links),
    ]
    return f"---\n{_metadata(record).to_yaml()}\n---\n\n" + "\n".join(section for section in sections if section)


def find_run_dir(model_dir: str | os.PathLike[str]) -> Path | None:
    """The training run a model folder came from: its parent when that holds ``summary.json`` (``run/best``)."""
    parent = Path(model_dir).resolve().parent
    return parent if (parent / "summary.json").is_file() else None


def write_model_card(
    model_dir: str | os.PathLike[str],
    *,
    run_dir: str | os.PathLike[str] | None = None,
    test_metrics: Mapping[str, Any] | None = None,
    samples: Sequence[Mapping[str, str]] | None = None,
    dataset_description: str = BIBLE_DATASET_DESCRIPTION,
    repo_id: str | None = None,
    extra_links: Sequence[tuple[str, str]] = (),
    extra_sections: Sequence[str] = (),
) -> Path:
    """Write ``model_dir/README.md`` for a saved model and return its path.

    ``run_dir`` defaults to :func:`find_run_dir` (the ``best`` folder's parent, where
    ``hf-attn train`` writes ``summary.json``); its plots are copied into ``model_dir``.
    ``test_metrics`` (an ``evaluate_model`` result) defaults to ``run_dir/test/metrics.json``;
    ``samples`` (dicts with ``source``, ``reference``, ``translation``, optional ``id``) to
    three sentences of ``run_dir/test/hypotheses.txt``. ``repo_id`` names the model in the
    title and the usage snippets. A BLEU-by-length plot is drawn when the metrics have the table.
    ``extra_sections`` (Markdown, each starting with a ``##`` heading) follow the results, e.g.
    :mod:`hf_attn.distillation`'s teacher/student comparison.
    """
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json; expected a folder written by save_pretrained.")
    run = Path(run_dir) if run_dir is not None else find_run_dir(folder)
    if run is not None and not run.is_dir():
        raise FileNotFoundError(f"Run folder {run} does not exist.")
    record = _gather(folder, run, test_metrics, samples, repo_id)
    card = _render(
        record,
        dataset_description=dataset_description,
        repo_id=repo_id,
        extra_links=extra_links,
        extra_sections=extra_sections,
    )
    path = folder / CARD_NAME
    atomic_write_text(path, card)
    logger.info("Wrote the model card %s", path)
    return path


__all__ = ["architecture_rows", "find_run_dir", "write_model_card"]
