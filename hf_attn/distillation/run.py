"""``hf-attn distill``: teacher translations → distilled corpus → student → export → evaluation → card.

Every stage is a library function (``teacher``, ``chunks``, ``corpus``, ``student``, ``report``);
this module runs them in order in one output folder and makes a restart cheap: teacher chunks,
the corpus, the student's checkpoints, the export and each evaluation are reused when present.
``OUTPUT_DIR/distill.json`` records what the run is (teacher, data, student, settings); a folder
holding another run, or files of something else, is refused rather than mixed with this one.
``OUTPUT_DIR/distill_report.json`` keeps each stage's wall time and the test results.

Layout: ``teacher_engine/`` (the teacher converted for CTranslate2), ``teacher_chunks/``,
``distilled/`` (the corpus, ``save_to_disk``), ``student/`` (an ``hf-attn train`` run folder),
``exported/``, ``eval/{teacher,student,exported_student}/``, ``README.md`` (the card's copy).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from ..atomic import atomic_write_json, read_json_file, read_json_if_exists
from ..data import load_bible_corpus, load_parallel_data
from ..deploy.export import EXPORT_FORMATS
from ..generation import is_blank
from ..models.config_validation import require_choice, require_positive_int
from ..training.config import TrainingConfig
from ..training.loop import TrainingSummary
from .chunks import translate_in_chunks
from .corpus import build_distilled_corpus, save_corpus
from .engines import exported_translator, folder_translator
from .report import evaluate_once, weights_megabytes, write_distillation_card
from .student import export_format_for, export_student, student_config, student_model_dir, train_student
from .teacher import (
    TEACHER_ENGINES,
    Teacher,
    check_tokenizer_encodes,
    load_teacher,
    load_teacher_tokenizer,
    teacher_config,
)

logger = logging.getLogger(__name__)

MANIFEST_NAME = "distill.json"
REPORT_NAME = "distill_report.json"
EVALUATED = ("teacher", "student", "exported_student")
# What makes a run this run: changing any of them in a folder that holds one is refused.
IDENTITY_FIELDS = (
    "teacher",
    "data",
    "train_examples",
    "student",
    "overrides",
    "num_beams",
    "chunk_size",
    "mix_references",
    "teacher_engine",
    "teacher_quantization",
)


@dataclass
class DistillationSettings:
    """One distillation run (the ``hf-attn distill`` arguments)."""

    teacher: str
    output_dir: str
    student: str = "transformer_student"
    data: str | None = None
    overrides: list[str] = field(default_factory=list)
    num_beams: int = 4
    batch_size: int = 32
    chunk_size: int = 1000
    mix_references: bool = False
    teacher_engine: str = "auto"
    teacher_quantization: str = "int8"
    train_examples: int | None = None
    test_examples: int | None = None
    eval_num_beams: int = 4

    def __post_init__(self) -> None:
        for name in ("num_beams", "batch_size", "chunk_size", "eval_num_beams"):
            require_positive_int(name, getattr(self, name))
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                require_positive_int(name, getattr(self, name))
        require_choice("teacher_engine", self.teacher_engine, TEACHER_ENGINES)
        require_choice("teacher_quantization", self.teacher_quantization, EXPORT_FORMATS["ctranslate2"][1])
        self.overrides = list(self.overrides)

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in IDENTITY_FIELDS}


def claim_output_dir(settings: DistillationSettings) -> Path:
    """Create or reopen the run folder; refuse one holding another run or files of something else."""
    folder = Path(settings.output_dir)
    manifest_path = folder / MANIFEST_NAME
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"--output-dir {folder} is a file, not a folder.")
    if manifest_path.is_file():
        recorded = read_json_file(manifest_path)
        differences = [
            f"{name}: {recorded.get(name)!r} there, {value!r} now"
            for name, value in settings.identity().items()
            if recorded.get(name) != value
        ]
        if differences:
            raise ValueError(
                f"--output-dir {folder} holds another distillation run ({'; '.join(differences)}). "
                "Choose another folder, or repeat that run's arguments to resume it."
            )
    elif folder.is_dir() and any(folder.iterdir()):
        raise ValueError(
            f"--output-dir {folder} is not empty and holds no {MANIFEST_NAME}: it is not an hf-attn distill run. "
            "Choose an empty or new folder."
        )
    else:
        atomic_write_json(manifest_path, settings.identity())
    return folder


def load_data(settings: DistillationSettings) -> datasets.DatasetDict:
    """The user's data (default: the bundled corpus), with ``train_examples`` keeping the first training pairs."""
    corpus = load_bible_corpus() if settings.data is None else load_parallel_data(settings.data)
    for split in ("train", "test"):
        if split not in corpus:
            raise ValueError(f"The data has no {split!r} split (splits: {', '.join(corpus)}).")
    if settings.train_examples is not None:
        corpus["train"] = corpus["train"].select(range(min(settings.train_examples, len(corpus["train"]))))
    return corpus


class StageClock:
    """Times each stage and keeps the report file current, so a killed run still says what it finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.report: dict[str, Any] = read_json_if_exists(path) or {"stages": {}}

    def run(self, name: str, stage: Callable[[], Any], *, done_before: bool = False) -> Any:
        """Run and time ``stage``; with ``done_before`` (it only reads back saved results) keep the recorded time."""
        if done_before and name in self.report["stages"]:
            return stage()
        began = time.perf_counter()
        result = stage()
        seconds = round(time.perf_counter() - began, 2)
        self.report["stages"][name] = {"seconds": seconds}
        logger.info("distill: stage %s took %.1f s", name, seconds)
        atomic_write_json(self.path, self.report)
        return result

    def record(self, name: str, **details: Any) -> None:
        """Add what a finished stage did (counts, engine) to its entry."""
        self.report["stages"][name].update(details)
        atomic_write_json(self.path, self.report)


def train_student_once(config: TrainingConfig, clock: StageClock) -> TrainingSummary:
    """Train the student as the stage "student", or read the summary of the run this folder already finished."""
    summary_path = Path(config.output_dir) / "summary.json"
    if "student" in clock.report["stages"] and summary_path.is_file():
        return TrainingSummary(**read_json_file(summary_path))
    summary = clock.run("student", lambda: train_student(config))
    clock.record("student", steps=summary.steps, train_seconds=summary.train_seconds)
    return summary


def _check_inputs(settings: DistillationSettings, folder: Path) -> tuple[datasets.DatasetDict, Any]:
    """Everything refusable before any translation: teacher kind, student preset and overrides, data, tokenizer."""
    teacher_config(settings.teacher)
    config = student_config(settings.student, settings.overrides, folder / "distilled", folder / "student")
    corpus = load_data(settings)
    check_tokenizer_encodes(load_teacher_tokenizer(settings.teacher), list(corpus["train"]["source"]), settings.teacher)
    return corpus, config


def run_distillation(settings: DistillationSettings, *, progress: bool = False) -> dict[str, Any]:
    """Run (or resume) every stage; returns the report (also ``OUTPUT_DIR/distill_report.json``)."""
    corpus, config = _check_inputs(settings, Path(settings.output_dir))
    folder = claim_output_dir(settings)
    clock = StageClock(folder / REPORT_NAME)
    clock.report["settings"] = dataclasses.asdict(settings)
    teacher: list[Teacher] = []

    def get_teacher() -> Teacher:
        if not teacher:
            engine_dir = folder / "teacher_engine"
            loaded = load_teacher(
                settings.teacher, engine_dir, engine=settings.teacher_engine, quantization=settings.teacher_quantization
            )
            teacher.append(loaded)
        return teacher[0]

    distilled_dir = folder / "distilled"
    if not distilled_dir.is_dir():
        sources = list(corpus["train"]["source"])

        def translate_sources():
            return translate_in_chunks(
                sources,
                get_teacher().translate_with_stats,
                folder / "teacher_chunks",
                chunk_size=settings.chunk_size,
                num_beams=settings.num_beams,
                batch_size=settings.batch_size,
                progress=progress,
            )

        chunks = clock.run("teacher", translate_sources)
        clock.record(
            "teacher",
            engine=get_teacher().engine,
            quantization=get_teacher().quantization,
            sentences=len(sources),
            translated_chunks=chunks.translated_chunks,
            reused_chunks=chunks.reused_chunks,
            generated_tokens=chunks.generated_tokens,
            generation_seconds=round(chunks.generation_seconds, 2),
        )
        distilled = build_distilled_corpus(corpus, chunks.hypotheses, mix_references=settings.mix_references)
        clock.run("corpus", lambda: save_corpus(distilled, distilled_dir))
        blank = sum(is_blank(hypothesis) for hypothesis in chunks.hypotheses)
        clock.record("corpus", train_pairs=len(distilled["train"]), blank_translations_dropped=blank)

    summary = train_student_once(config, clock)
    model_dir = student_model_dir(summary)

    export_dir = folder / "exported"
    format = export_format_for(summary.model_type)
    if "export" not in clock.report["stages"] or not export_dir.is_dir():
        clock.run("export", lambda: export_student(model_dir, export_dir, summary.model_type))
        clock.record("export", format=format)

    test = corpus["test"]
    options = dict(
        num_beams=settings.eval_num_beams, batch_size=settings.batch_size, max_examples=settings.test_examples
    )
    eval_dir = folder / "eval"

    def evaluate_all() -> dict[str, dict[str, Any]]:
        models: dict[str, dict[str, Any]] = {}
        teacher_engine = clock.report["stages"].get("teacher", {}).get("engine") or get_teacher().engine
        teacher_weights = folder / "teacher_engine" if teacher_engine == "ctranslate2" else settings.teacher
        models["teacher"] = {
            "engine": teacher_engine,
            "megabytes": weights_megabytes(teacher_weights),  # the weights that translated, not the source folder
            "metrics": evaluate_once(
                "teacher", eval_dir, test, lambda: get_teacher().translate_with_stats, engine=teacher_engine, **options
            ),
        }
        models["student"] = {
            "engine": "generate",
            "megabytes": weights_megabytes(model_dir),
            "metrics": evaluate_once(
                "student", eval_dir, test, lambda: folder_translator(model_dir), engine="generate", **options
            ),
        }
        models["exported_student"] = {
            "engine": format,
            "megabytes": weights_megabytes(export_dir),
            "metrics": evaluate_once(
                "exported_student",
                eval_dir,
                test,
                lambda: exported_translator(export_dir, format),
                engine=format,
                **options,
            ),
        }
        return models

    evaluated = all((eval_dir / name / "metrics.json").is_file() for name in EVALUATED)
    models = clock.run("evaluate", evaluate_all, done_before=evaluated)
    clock.report["models"] = {
        name: {key: entry[key] for key in ("engine", "megabytes")}
        | {key: entry["metrics"].get(key) for key in ("bleu", "chrf", "tokens_per_second", "generation_seconds", "n")}
        for name, entry in models.items()
    }
    card = write_distillation_card(model_dir, config.output_dir, settings.teacher, clock.report["settings"], models)
    shutil.copy2(card, folder / "README.md")
    clock.report["card"] = str(card)
    atomic_write_json(folder / REPORT_NAME, clock.report)
    return clock.report
