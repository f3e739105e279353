"""What ran, and where: the machine and git description every benchmark and experiment result carries.

A number is only comparable with another if both say which code produced them (the commit, and
whether hf_attn/ or research/ differed from it) on which hardware and library versions.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import torch
import transformers

from . import REPO_ROOT

# The folders whose uncommitted changes would make the commit an incomplete description of the code.
CODE_DIRS = ("hf_attn", "research")


def describe_machine(device: str, threads: int) -> dict[str, Any]:
    """CPU, memory, torch threads, GPU (on cuda), library versions and the git state of the clone."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_gb": memory_gb(),
        "threads": threads,
        "device": device,
        "gpu": torch.cuda.get_device_name(torch.device(device)) if torch.device(device).type == "cuda" else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "git": git_state(),
    }


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(encoding="utf-8"), re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or "unknown"


def usable_cpus() -> int | None:
    """CPUs this process may run on (its affinity mask), which a container or taskset can make fewer than all."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def memory_gb() -> float | None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    match = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(encoding="utf-8"), re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: on a shared machine, how much the numbers may be disturbed."""
    return [round(value, 2) for value in os.getloadavg()]


def git_state() -> dict[str, Any]:
    """The clone's commit and the files of :data:`CODE_DIRS` that differ from it (modified or untracked).

    Outside a git checkout (or without git) the commit is None and no file is listed.
    """
    return {
        "commit": _git("rev-parse", "--short", "HEAD").strip() or None,
        "uncommitted_package_files": [line[3:] for line in _git("status", "--porcelain", *CODE_DIRS).splitlines()],
    }


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""
