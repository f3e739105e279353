"""One benchmark run: prepare the data, start the workers, run the selected benchmarks, assemble the results.

The method in short: every system runs in its own worker process (:mod:`.driver`), built
once and kept alive, and the workers take turns over the same batches, round after round;
each ratio is the median over rounds of the per-round ratio (:mod:`.summary`). Benchmarks:
Transformer training (hf_attn vs MarianMTModel of identical dimensions, per attention
implementation), generation (greedy and beam search, a fixed number of new tokens), RNN
training (hf_attn vs Joey NMT 2.3 with the same dimensions), efficiency (achieved model
FLOP/s over the measured matmul FLOP/s of the same process), scaling (training tokens/s
against sentence length on synthetic batches of a fixed token count) and fast paths (eager and
compiled, one process per thread count: :mod:`.fast_paths`).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..provenance import describe_machine, load_average
from .data import PreparedData, prepare_data
from .driver import WorkerProcess, interleaved
from .fast_paths import run_fast_paths
from .joey import ensure_joey_venv, run_joey_cli
from .settings import TARGETS, WORKER_BENCHMARKS, BenchmarkSettings
from .summary import comparison, median, training_summary
from .systems import build_systems

logger = logging.getLogger(__name__)


class BenchmarkRun:
    """Prepares data, starts the workers, runs the selected benchmarks and assembles the results."""

    def __init__(self, settings: BenchmarkSettings, progress: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.progress = progress or (lambda message: logger.info("%s", message))
        # Absolute, because Joey NMT's trainer runs in a folder of its own.
        self.work_dir = Path(settings.work_dir).resolve()
        self.results: dict[str, Any] = {"comparisons": [], "errors": []}

    def run(self, command: str | None = None) -> dict[str, Any]:
        settings = self.settings
        started = time.perf_counter()
        self.results.update(
            {
                "schema": 1,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": command,
                "settings": {
                    k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(settings).items()
                },
                "machine": {
                    **describe_machine(settings.device, settings.threads),
                    "load_average_at_start": load_average(),
                },
                "size": dataclasses.asdict(settings.model_size),
                "targets": TARGETS,
            }
        )
        wants_joey = settings.joey and "rnn" in settings.benchmarks
        joey_python = ensure_joey_venv(Path(settings.joey_venv)) if wants_joey else None
        data = self._worker_benchmarks(joey_python) if set(settings.benchmarks) & set(WORKER_BENCHMARKS) else None
        if "fast_paths" in settings.benchmarks:
            self.results["fast_paths"] = run_fast_paths(settings, self.work_dir, self.progress)
        if joey_python and data is not None and settings.joey_cli_steps > 0:
            self.progress(f"Joey NMT's own trainer for {settings.joey_cli_steps} steps (cross-check)")
            try:
                self.results["joey_cli"] = run_joey_cli(settings, data, joey_python, self.work_dir)
            except (RuntimeError, OSError) as error:  # keep the measurements above; the caller sees the error
                logger.error("%s", error)
                self.results["errors"].append(f"Joey NMT cross-check: {error}")
        self.results["machine"]["load_average_at_end"] = load_average()
        self.results["wall_seconds"] = round(time.perf_counter() - started, 1)
        return self.results

    def _worker_benchmarks(self, joey_python: str | None) -> PreparedData:
        """The benchmarks on the prepared Bible batches, every system in its own worker process; returns the data."""
        settings = self.settings
        self.progress("preparing data (BPE, batches)")
        data = prepare_data(settings, self.work_dir)
        self.results["data"] = data.description
        systems = build_systems(settings, data, joey_python)
        self.progress(f"starting {len(systems)} workers: {', '.join(s.key for s in systems)}")
        workers = [WorkerProcess(system, self.work_dir) for system in systems]
        try:
            for worker in workers:
                worker.info = worker.receive()
            self.results["systems"] = {
                w.key: {
                    "label": w.system.label,
                    "family": w.system.family,
                    "note": w.system.note,
                    **{k: v for k, v in w.info.items() if k != "ready"},
                }
                for w in workers
            }
            by_key = {w.key: w for w in workers}
            self._training(workers)
            if "generation" in settings.benchmarks:
                self._generation([w for w in workers if w.system.family == "transformer"])
            if "scaling" in settings.benchmarks:
                self._scaling([by_key[k] for k in self._scaling_keys() if k in by_key])
        finally:
            for worker in workers:
                worker.close()
        return data

    def _scaling_keys(self) -> list[str]:
        transformer = f"hf_attn-transformer-{self.settings.attn_implementations[0]}"
        return [transformer, "hf_attn-rnn", "hf_attn-rnn-no-input-feeding"]

    def _training(self, workers: list[WorkerProcess]) -> None:
        settings = self.settings
        families = set(settings.benchmarks) & {"transformer", "rnn"}
        trained = [w for w in workers if w.system.family in families]
        if not trained:
            return
        self.progress(
            f"training on {settings.train_batches} real batches, {settings.repeats} rounds (+{settings.warmup} warm-up)"
        )
        commands = [{"op": "train", "set": "train"}, {"op": "matmul", "size": settings.matmul_size}]
        rounds = interleaved(trained, commands, settings.repeats, settings.warmup, self.progress)
        summaries = {w.key: training_summary(rounds[w.key], w.info.get("flop_parameters")) for w in trained}
        self.results["training"] = summaries
        per_round = {key: s["target_tokens_per_s_rounds"] for key, s in summaries.items()}
        absolute = {key: s["target_tokens_per_s"] for key, s in summaries.items()}
        for implementation in settings.attn_implementations:
            ours, theirs = f"hf_attn-transformer-{implementation}", f"marian-{implementation}"
            if ours in summaries and theirs in summaries:
                self.results["comparisons"].append(
                    comparison(
                        f"Transformer training ({implementation})",
                        "target tokens/s",
                        ours,
                        theirs,
                        per_round,
                        absolute,
                        TARGETS["transformer_training"],
                    )
                )
        for ours in ("hf_attn-rnn", "hf_attn-rnn-no-input-feeding"):
            if ours in summaries and "joeynmt-rnn" in summaries:
                self.results["comparisons"].append(
                    comparison(
                        f"RNN training ({self.results['systems'][ours]['label']})",
                        "target tokens/s",
                        ours,
                        "joeynmt-rnn",
                        per_round,
                        absolute,
                        TARGETS["rnn_training"],
                    )
                )

    def _generation(self, workers: list[WorkerProcess]) -> None:
        settings = self.settings
        generation: dict[str, Any] = {}
        for beams in settings.beams:
            name = "greedy" if beams == 1 else f"beam{beams}"
            self.progress(f"generation ({name}), {settings.generation_repeats} rounds")
            command = {"op": "generate", "num_beams": beams, "max_new_tokens": settings.max_new_tokens}
            rounds = interleaved(workers, [command], settings.generation_repeats, settings.warmup, self.progress)
            rates = {k: [r[0]["tokens"] / r[0]["seconds"] for r in v] for k, v in rounds.items()}
            absolute = {k: round(median(v), 1) for k, v in rates.items()}
            generation[name] = {
                k: {
                    "tokens_per_s": absolute[k],
                    "tokens_per_s_rounds": [round(x, 1) for x in v],
                    "tokens": rounds[k][0][0]["tokens"],
                    "sentences": rounds[k][0][0]["sentences"],
                }
                for k, v in rates.items()
            }
            for implementation in settings.attn_implementations:
                ours, theirs = f"hf_attn-transformer-{implementation}", f"marian-{implementation}"
                if ours in rates and theirs in rates:
                    self.results["comparisons"].append(
                        comparison(
                            f"Generation {name} ({implementation})",
                            "generated tokens/s",
                            ours,
                            theirs,
                            rates,
                            absolute,
                            TARGETS["beam_generation"] if beams > 1 else None,
                        )
                    )
        self.results["generation"] = generation

    def _scaling(self, workers: list[WorkerProcess]) -> None:
        settings = self.settings
        scaling: dict[str, Any] = {}
        for length in settings.scaling_lengths:
            self.progress(f"scaling: length {length}, {settings.scaling_repeats} rounds")
            command = {"op": "train", "set": f"length_{length}"}
            rounds = interleaved(workers, [command], settings.scaling_repeats, settings.warmup, self.progress)
            scaling[str(length)] = {
                key: {
                    "target_tokens_per_s": round(median([r[0]["target_tokens"] / r[0]["seconds"] for r in v]), 1),
                    "sentences_per_batch": max(1, settings.scaling_tokens // length),
                }
                for key, v in rounds.items()
            }
        self.results["scaling"] = scaling
        transformer = self._scaling_keys()[0]
        self.results["scaling_ratios"] = {
            length: {
                key: round(row[transformer]["target_tokens_per_s"] / row[key]["target_tokens_per_s"], 2)
                for key in row
                if key != transformer
            }
            for length, row in scaling.items()
            if transformer in row
        }


def shell_command(argv: Sequence[str]) -> str:
    """The command line that reproduces a run, as the docs print it."""
    return "python scripts/benchmark.py " + " ".join(shlex.quote(a) for a in argv)
