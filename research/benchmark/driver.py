"""The driver's side of the workers: start one process per system, and run them in interleaved rounds.

A worker is :mod:`research.benchmark.worker` started by path, with the system's own Python
(Joey NMT's venv has neither hf_attn nor research installed). Rotating who goes first each
round (A, B, C, then B, C, A, ...) gives every system the same share of a shared machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hf_attn.training.cpu_memory import THRESHOLD_BYTES

from .. import REPO_ROOT
from . import worker as benchmark_worker
from .systems import SystemSpec

# glibc returns every freed block above the mmap threshold (32 MB at most by default) to the
# OS, so a (tokens x vocabulary) logits tensor is page-faulted in afresh at every step. These
# settings keep freed memory in the process, for every system alike (--keep-freed-memory).
KEEP_FREED_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(THRESHOLD_BYTES), "MALLOC_TRIM_THRESHOLD_": str(THRESHOLD_BYTES)}


def worker_command(system: SystemSpec, spec_file: Path) -> list[str]:
    """The system's Python on the worker file, by path.

    ``-P`` keeps the worker's own folder off ``sys.path``: it is full of generic module names
    (``data``, ``settings``, ``report``, ...) that must not shadow anyone's imports.
    """
    return [system.python, "-P", system.worker or benchmark_worker.__file__, "--spec", str(spec_file)]


def worker_environment(system: SystemSpec) -> dict[str, str]:
    """One torch thread count for all; the clone's hf_attn first on the path of workers that run in this Python."""
    env = {**os.environ, "OMP_NUM_THREADS": str(system.spec["threads"]), "TOKENIZERS_PARALLELISM": "false"}
    if system.spec.get("keep_freed_memory"):
        env.update(KEEP_FREED_MEMORY_ENV)
    if system.python == sys.executable:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


class WorkerProcess:
    """A running :mod:`research.benchmark.worker` for one system."""

    def __init__(self, system: SystemSpec, work_dir: Path) -> None:
        self.system = system
        self.key = system.key
        spec_file = work_dir / f"{system.key}.spec.json"
        spec_file.write_text(json.dumps(system.spec, indent=1), encoding="utf-8")
        self.log_file = work_dir / f"{system.key}.log"
        with open(self.log_file, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                worker_command(system, spec_file),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=worker_environment(system),
                bufsize=1,
            )
        self.info: dict[str, Any] = {}

    def receive(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        message = json.loads(line) if line else {"error": "the worker exited"}
        if "error" in message:
            tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise RuntimeError(
                f"Benchmark worker {self.key} failed: {message['error']}\n--- {self.log_file} ---\n{tail}"
            )
        return message

    def request(self, command: dict[str, Any]) -> dict[str, Any]:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "exit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def interleaved(
    workers: Sequence[WorkerProcess],
    commands: Sequence[dict[str, Any]],
    rounds: int,
    warmup: int,
    progress: Callable[[str], None],
) -> dict[str, list[list[dict[str, Any]]]]:
    """Run ``commands`` on each worker in turn, round after round, rotating who goes first.

    Returns, per worker, one list of answers (one per command) for each measured round; the
    first ``warmup`` rounds are run and discarded.
    """
    results: dict[str, list[list[dict[str, Any]]]] = {w.key: [] for w in workers}
    for round_index in range(warmup + rounds):
        shift = round_index % len(workers)
        for worker in [*workers[shift:], *workers[:shift]]:
            answers = [worker.request(command) for command in commands]
            if round_index >= warmup:
                results[worker.key].append(answers)
        measured = round_index - warmup + 1
        progress(f"round {'warm-up' if measured <= 0 else f'{measured}/{rounds}'} done")
    return results
