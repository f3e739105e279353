"""The measurement of issue 23: the reference Transformer distilled into smaller students (``hf-attn distill``).

Teacher: ``transformer_reference`` (its ``averaged/`` folder). Students: ``transformer_student``
(3 encoder layers, 1 decoder layer) and ``rnn_small``, each trained once on the teacher's
translations (``run_distillation``) and once on the references (``hf-attn train``), with the same
updates (the presets' budgets unless ``--steps``). Every model is scored on the same test verses
on its fastest engine (CTranslate2 int8 for Transformers, torch-int8 for the RNN) and under
``generate``; the report gives BLEU, chrF, tokens/s, the seconds the test split took, weights
size, each stage's wall time and the machine load. Speed against the teacher is measured last, in
interleaved rounds in one process (the teacher on CTranslate2 int8 and every exported student
translating the same test verses in turn), so a change of machine load slows every model alike.

The teacher translates the training sources once: the second student's run starts from the
first one's chunk files and converted teacher (resumption reuses every chunk, as after a kill).
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from hf_attn.atomic import atomic_write_json, atomic_write_text
from hf_attn.cards import write_model_card
from hf_attn.distillation import DistillationSettings, run_distillation
from hf_attn.distillation.engines import exported_translator, folder_translator
from hf_attn.distillation.report import evaluate_once, weights_megabytes
from hf_attn.distillation.run import StageClock, claim_output_dir, load_data, train_student_once
from hf_attn.distillation.student import export_format_for, export_student, student_model_dir
from hf_attn.quickstart import copy_card
from hf_attn.training.config import load_training_config

from .provenance import describe_machine, git_state, load_average

STUDENTS = ("transformer_student", "rnn_small")
SHARED_TEACHER_FOLDERS = ("teacher_chunks", "teacher_engine")


@dataclasses.dataclass
class ExperimentSettings:
    """What to measure: the teacher folder, the students and their budget, the test subset, the threads."""

    teacher: str
    output_dir: str
    students: tuple[str, ...] = STUDENTS
    data: str | None = None
    steps: int | None = None
    extra_overrides: tuple[str, ...] = ()
    train_examples: int | None = None
    test_examples: int | None = None
    num_beams: int = 4
    speed_sentences: int = 500
    speed_rounds: int = 5
    threads: int = 2
    cards_dir: str | None = None

    def overrides(self) -> list[str]:
        return [*self.extra_overrides, *([] if self.steps is None else [f"max_steps={self.steps}"])]


def _distilled_run(settings: ExperimentSettings, preset: str, first_run: Path | None) -> dict[str, Any]:
    run = Path(settings.output_dir) / f"{preset}-distilled"
    distill = DistillationSettings(
        teacher=settings.teacher,
        output_dir=str(run),
        data=settings.data,
        student=preset,
        overrides=settings.overrides(),
        num_beams=settings.num_beams,
        eval_num_beams=settings.num_beams,
        train_examples=settings.train_examples,
        test_examples=settings.test_examples,
    )
    if first_run is not None and not (run / "teacher_chunks").exists():
        claim_output_dir(distill)
        for name in SHARED_TEACHER_FOLDERS:
            if (first_run / name).is_dir():
                shutil.copytree(first_run / name, run / name)
    report = run_distillation(distill, progress=True)
    return {"run_dir": str(run), "stages": report["stages"], "models": report["models"]}


def _reference_run(settings: ExperimentSettings, preset: str, test: Any) -> dict[str, Any]:
    """The same student trained on the references with the same updates, exported and scored the same way."""
    run = Path(settings.output_dir) / f"{preset}-references"
    overrides = settings.overrides() + (
        [] if settings.train_examples is None else [f"max_train_examples={settings.train_examples}"]
    )
    config = dataclasses.replace(load_training_config(preset, overrides), data=settings.data, output_dir=str(run))
    clock = StageClock(Path(settings.output_dir) / f"{preset}-references-stages.json")
    summary = train_student_once(config, clock)
    model_dir = student_model_dir(summary)
    format = export_format_for(summary.model_type)
    export_dir = run / "exported"
    if "export" not in clock.report["stages"] or not export_dir.is_dir():
        clock.run("export", lambda: export_student(model_dir, export_dir, summary.model_type))
    options = dict(num_beams=settings.num_beams, batch_size=32, max_examples=settings.test_examples)

    def evaluate_both() -> tuple[dict[str, Any], dict[str, Any]]:
        student = evaluate_once(
            "student", run / "eval", test, lambda: folder_translator(model_dir), engine="generate", **options
        )
        exported = evaluate_once(
            "exported_student",
            run / "eval",
            test,
            lambda: exported_translator(export_dir, format),
            engine=format,
            **options,
        )
        return student, exported

    evaluated = all((run / "eval" / name / "metrics.json").is_file() for name in ("student", "exported_student"))
    student, exported = clock.run("evaluate", evaluate_both, done_before=evaluated)
    write_model_card(model_dir, run_dir=run, test_metrics=student)
    models = {
        "student": _row("generate", weights_megabytes(model_dir), student),
        "exported_student": _row(format, weights_megabytes(export_dir), exported),
    }
    return {"run_dir": str(run), "stages": clock.report["stages"], "models": models, "steps": summary.steps}


def _row(engine: str, megabytes: float | None, metrics: dict[str, Any]) -> dict[str, Any]:
    keys = ("bleu", "chrf", "tokens_per_second", "generation_seconds", "n")
    return {"engine": engine, "megabytes": megabytes, **{key: metrics.get(key) for key in keys}}


def measure_speed(
    settings: ExperimentSettings, results: dict[str, Any], teacher_engine: Path, test: Any
) -> dict[str, dict[str, float]]:
    """Seconds to translate the same test verses, per model, median of interleaved rounds (rotated order).

    Evaluations ran minutes apart, under whatever load the machine had then; these rounds run back to back
    in one process, so their ratios to the teacher compare the models, not the moments.
    """
    sources = list(test["source"][: settings.speed_sentences])
    translators = {"teacher": exported_translator(teacher_engine, "ctranslate2")}
    for preset, runs in results["students"].items():
        for data, run in runs.items():
            format = run["models"]["exported_student"]["engine"]
            translators[f"{preset}-{data}"] = exported_translator(Path(run["run_dir"]) / "exported", format)
    names = list(translators)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(settings.speed_rounds):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            start = time.perf_counter()
            translators[name](
                sources,
                batch_size=32,
                num_beams=settings.num_beams,
                max_new_tokens=None,
                length_penalty=1.0,
                progress=False,
            )
            seconds[name].append(time.perf_counter() - start)
    teacher = statistics.median(seconds["teacher"])
    return {
        name: {
            "median_seconds": statistics.median(times),
            "sentences_per_second": len(sources) / statistics.median(times),
            "speedup_vs_teacher": teacher / statistics.median(times),
        }
        for name, times in seconds.items()
    }


def run_experiment(settings: ExperimentSettings) -> dict[str, Any]:
    """Train and score every student both ways; writes OUTPUT_DIR/results.json and results.md."""
    import torch

    torch.set_num_threads(settings.threads)
    output = Path(settings.output_dir)
    results: dict[str, Any] = {
        "settings": dataclasses.asdict(settings),
        "machine": describe_machine("cpu", settings.threads),
        "git": git_state(),
        "load_before": load_average(),
        "students": {},
    }
    test = load_data(
        DistillationSettings(
            teacher=settings.teacher, output_dir=str(output), data=settings.data, train_examples=settings.train_examples
        )
    )["test"]
    first_run: Path | None = None
    for preset in settings.students:
        distilled = _distilled_run(settings, preset, first_run)
        first_run = first_run or Path(distilled["run_dir"])
        results["students"][preset] = {"distilled": distilled, "references": _reference_run(settings, preset, test)}
        atomic_write_json(output / "results.json", results)
    options = dict(num_beams=settings.num_beams, batch_size=32, max_examples=settings.test_examples)
    teacher_generate = evaluate_once(
        "teacher_generate",
        output / "eval",
        test,
        lambda: folder_translator(settings.teacher),
        engine="generate",
        **options,
    )
    teacher_ct2 = results["students"][settings.students[0]]["distilled"]["models"]["teacher"]
    results["teacher"] = {
        "ctranslate2": teacher_ct2,
        "generate": _row("generate", weights_megabytes(settings.teacher), teacher_generate),
    }
    teacher_engine = Path(results["students"][settings.students[0]]["distilled"]["run_dir"]) / "teacher_engine"
    results["speed"] = measure_speed(settings, results, teacher_engine, test)
    results["load_after"] = load_average()
    atomic_write_json(output / "results.json", results)
    atomic_write_text(output / "results.md", format_results(results))
    if settings.cards_dir is not None:
        for preset in settings.students:
            run = Path(results["students"][preset]["distilled"]["run_dir"])
            copy_card(run / "README.md", Path(settings.cards_dir) / f"{preset}_distilled")
    return results


def format_results(results: dict[str, Any]) -> str:
    """The Markdown table of the README's Distillation section.

    "× teacher speed" is the interleaved measurement (:func:`measure_speed`) of the exported models against the
    teacher on CTranslate2 int8; tokens/s and test seconds come from each model's own evaluation.
    """
    speed = results.get("speed", {})
    header = "| model | trained on | engine | BLEU | chrF | tokens/s | test seconds | × teacher speed | MB |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]

    def line(name: str, data: str, row: dict[str, Any], speed_key: str | None) -> None:
        ratio = speed.get(speed_key, {}).get("speedup_vs_teacher") if speed_key else None
        cells = [name, data, row["engine"], _number(row.get("bleu")), _number(row.get("chrf"))]
        cells += [_number(row.get("tokens_per_second"), 0), _number(row.get("generation_seconds"))]
        cells += [_number(ratio, 2), _number(row.get("megabytes"))]
        lines.append("| " + " | ".join(cells) + " |")

    teacher = f"teacher ({Path(results['settings']['teacher']).resolve().parent.name})"
    line(teacher, "references", results["teacher"]["ctranslate2"], "teacher")
    line(teacher, "references", results["teacher"]["generate"], None)
    for preset, runs in results["students"].items():
        for data in ("distilled", "references"):
            trained_on = data if data == "references" else "teacher output"
            line(preset, trained_on, runs[data]["models"]["exported_student"], f"{preset}-{data}")
            line(preset, trained_on, runs[data]["models"]["student"], None)
    stages = []
    for preset, runs in results["students"].items():
        for data, run in runs.items():
            times = ", ".join(f"{name} {_stage_seconds(value)} s" for name, value in run["stages"].items())
            stages.append(f"- {preset}, {data}: {times}")
    settings = results["settings"]
    note = (
        f"Speed: median of {settings['speed_rounds']} interleaved rounds over the first {settings['speed_sentences']}"
        f" test verses, beam {settings['num_beams']}."
    )
    load = f"load average before {results['load_before']}, after {results['load_after']}"
    return "\n".join(lines) + f"\n\n{note}\n\nStage wall times:\n\n" + "\n".join(stages) + f"\n\nMachine: {load}.\n"


def _stage_seconds(value: Any) -> str:
    return _number(value["seconds"] if isinstance(value, dict) else value)


def _number(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"
