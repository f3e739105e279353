"""scripts/gpu_check.sh: refuses clearly without CUDA, and its --dry-run runs every part on the CPU at tiny sizes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is what a machine without CUDA gets")
def test_refuses_without_cuda(tmp_path):
    output = tmp_path / "gpu.json"
    completed = subprocess.run([str(SCRIPT), "--output", str(output)], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "needs a CUDA GPU" in completed.stderr and "--dry-run" in completed.stderr
    assert not output.exists()


@pytest.mark.slow
def test_dry_run_measures_every_part_and_writes_json(tmp_path):
    output = tmp_path / "gpu.json"
    completed = subprocess.run(
        [str(SCRIPT), "--dry-run", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(output.read_text(encoding="utf-8"))
    assert results["dry_run"] and results["device"] == "cpu" and results["size"] == "tiny"
    training = results["training_bf16"]
    assert training["target_tokens_per_s"] > 0 and 0 < training["mfu"] < 1
    generation = results["generation_bf16"]
    for case in ("beam4_eager", "greedy_eager", "greedy_compiled_static"):
        assert generation[case]["generated_tokens_per_s"] > 0
    assert generation["greedy_compiled_static"]["first_call_seconds"] > 0
    assert isinstance(generation["greedy_compiled_static"]["same_tokens_as_eager"], bool)
    attention = results["sdpa_vs_flash"]
    assert "error" not in attention, attention.get("error")
    assert attention["other"] == "eager" and attention["max_abs_logit_difference"] < 0.5
    assert "wrote" in completed.stdout
