"""scripts/benchmark.py: the quick path end to end on tiny models (no Joey NMT), and its arithmetic."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from research.benchmark import worker
from research.benchmark.settings import BenchmarkSettings, default_joey_venv
from research.benchmark.summary import efficiency, summarise_ratio

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "benchmark.py"
# research/ is not installed: the script must find it from its own location, whatever the cwd and PYTHONPATH.
OUTSIDE_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
# Tiny models, tiny data, one measured round; one thread so a busy machine cannot stall it on barriers.
TINY_ARGS = [
    "--quick",
    "--size",
    "tiny",
    "--no-joey",
    "--threads",
    "1",
    "--attn",
    "sdpa",
    "--benchmarks",
    "transformer",
    "generation",
    "scaling",
    "--repeats",
    "1",
    "--generation-repeats",
    "1",
    "--beams",
    "1",
    "2",
    "--train-batches",
    "2",
    "--max-tokens",
    "200",
    "--max-train-examples",
    "300",
    "--generation-sentences",
    "8",
    "--generation-batch-size",
    "8",
    "--max-new-tokens",
    "4",
    "--scaling-lengths",
    "8",
    "16",
    "--scaling-tokens",
    "128",
    "--keep-freed-memory",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, Path]:
    tmp = tmp_path_factory.mktemp("benchmark")
    output, docs = tmp / "results.json", tmp / "docs"
    command = [
        sys.executable,
        str(SCRIPT),
        *TINY_ARGS,
        "--work-dir",
        str(tmp / "work"),
        "--output-json",
        str(output),
        "--write-docs",
        "--docs-dir",
        str(docs),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp, env=OUTSIDE_ENV)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(output.read_text(encoding="utf-8")), docs


def is_positive_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_help_from_another_directory(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=OUTSIDE_ENV,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    flags = ("--size", "--benchmarks", "--repeats", "--device", "--dtype", "--write-docs", "--joey-venv", "--quick")
    assert all(flag in completed.stdout for flag in flags)


def test_worker_runs_by_path_without_hf_attn_or_research():
    """Joey NMT's venv runs the worker file by path, where neither package can be imported."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['worker', '--help']\n"
        "try:\n"
        f"    runpy.run_path({worker.__file__!r}, run_name='__main__')\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'hf_attn', 'research', 'transformers'}))\n"
    )
    completed = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_joey_venv_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert BenchmarkSettings().joey_venv == str(tmp_path / "hf_attn" / "joey-venv")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says to ignore it
    assert default_joey_venv() == str(Path.home() / ".cache" / "hf_attn" / "joey-venv")


def test_quick_run_results_structure(quick_run):
    results, _ = quick_run
    for key in (
        "machine",
        "settings",
        "data",
        "systems",
        "training",
        "generation",
        "scaling",
        "comparisons",
        "command",
    ):
        assert key in results, key
    machine = results["machine"]
    assert machine["load_average_at_start"] and machine["torch"] and machine["threads"] == 1
    assert set(machine["git"]) == {"commit", "uncommitted_package_files"}
    assert results["settings"]["keep_freed_memory"] is True
    assert set(results["systems"]) == {
        "hf_attn-transformer-sdpa",
        "marian-sdpa",
        "hf_attn-rnn",
        "hf_attn-rnn-no-input-feeding",
    }
    names = [entry["name"] for entry in results["comparisons"]]
    assert names == ["Transformer training (sdpa)", "Generation greedy (sdpa)", "Generation beam2 (sdpa)"]
    for entry in results["comparisons"]:
        for field in ("ratio", "ratio_min", "ratio_max", "numerator_value", "denominator_value"):
            assert is_positive_number(entry[field]), (entry["name"], field, entry[field])
    for key in ("hf_attn-transformer-sdpa", "marian-sdpa"):
        summary = results["training"][key]
        for field in (
            "target_tokens_per_s",
            "total_tokens_per_s",
            "peak_rss_mb",
            "matmul_gflops",
            "model_gflops",
            "fraction_of_matmul",
        ):
            assert is_positive_number(summary[field]), (key, field)
        assert summary["total_tokens_per_s"] > summary["target_tokens_per_s"]
        assert summary["steps_per_pass"] == 2
    # Every system generated the same number of tokens, so the rates compare like with like.
    for mode in ("greedy", "beam2"):
        assert {row["tokens"] for row in results["generation"][mode].values()} == {8 * 4}
    assert set(results["scaling"]) == {"8", "16"}
    rows = [row for length in results["scaling"].values() for row in length.values()]
    assert all(is_positive_number(row["target_tokens_per_s"]) for row in rows)


def test_quick_run_writes_docs(quick_run):
    results, docs = quick_run
    markdown = (docs / "benchmarks.md").read_text(encoding="utf-8")
    assert "## Where we stand" in markdown and "benchmark_scaling.png" in markdown
    assert results["machine"]["cpu"] in markdown
    assert "keep freed memory in the process (`--keep-freed-memory`" in markdown
    assert (docs / "benchmark_scaling.png").stat().st_size > 0
    assert json.loads((docs / "benchmarks.json").read_text(encoding="utf-8")) == results


def test_docs_rerender_from_saved_json(quick_run, tmp_path):
    _, docs = quick_run
    command = [
        sys.executable,
        str(SCRIPT),
        "--from-json",
        str(docs / "benchmarks.json"),
        "--write-docs",
        "--docs-dir",
        str(tmp_path),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    rerendered = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    assert rerendered == (docs / "benchmarks.md").read_text(encoding="utf-8")


def test_ratio_is_median_of_per_round_ratios():
    # Round 2 is slow for both systems (load); the per-round ratio stays 2.
    assert summarise_ratio([200, 20, 180], [100, 10, 90]) == {"ratio": 2.0, "ratio_min": 2.0, "ratio_max": 2.0}


def test_efficiency_counts_encoder_and_decoder_tokens():
    passes = [{"seconds": 2.0, "source_tokens": 1000, "target_tokens": 500}]
    parameters = {"encoder": 1_000_000, "decoder": 2_000_000, "output_projection": 500_000}
    result = efficiency(passes, [12.0], parameters)
    body = 6 * (1e6 * 1000 + 2e6 * 500) / 2.0 / 1e9  # 6 GFLOP/s
    assert result["model_gflops"] == pytest.approx(body)
    assert result["fraction_of_matmul"] == pytest.approx(body / 12.0, abs=1e-3)
    with_head = body + 6 * 5e5 * 500 / 2e9
    assert result["model_gflops_with_output_projection"] == pytest.approx(with_head)
    assert result["fraction_of_matmul_with_output_projection"] == pytest.approx(with_head / 12.0, abs=1e-3)


@pytest.mark.parametrize(
    "field, value",
    [("size", "huge"), ("benchmarks", ("speed",)), ("dtype", "fp16"), ("repeats", 0), ("attn_implementations", ())],
)
def test_settings_reject_bad_values(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        BenchmarkSettings(**{field: value})


@pytest.mark.slow
def test_fast_paths_run_writes_its_own_page(tmp_path):
    """``--benchmarks fast_paths`` alone: its process runs, the ratios and the RNN's split are sane, and
    only the fast-path page is written (benchmarks.md of the worker benchmarks is left alone)."""
    docs = tmp_path / "docs"
    command = [
        sys.executable,
        str(SCRIPT),
        *("--size", "tiny", "--benchmarks", "fast_paths", "--repeats", "2", "--fast-path-threads", "1"),
        *("--fast-path-sentences", "3", "--fast-path-length", "6", "--max-new-tokens", "3", "--no-fast-path-compile"),
        *("--work-dir", str(tmp_path / "work"), "--write-docs", "--docs-dir", str(docs)),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=OUTSIDE_ENV)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert sorted(path.name for path in docs.iterdir()) == ["fast_paths_benchmark.json", "fast_paths_benchmark.md"]
    run = json.loads((docs / "fast_paths_benchmark.json").read_text(encoding="utf-8"))["fast_paths"]["1"]
    assert set(run["ratios"]) == {"train eager", "beam4 eager"}  # eager only: no compiled pairs
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in run["seconds_rounds"].values())
    assert set(run["time_splits"]) == {"rnn beam4 eager", "beam4 hf_attn eager", "greedy hf_attn eager"}
    for split in run["time_splits"].values():
        assert 0 < split["output_projection_seconds"] < split["forward_seconds"] < split["generate_seconds"]
        assert split["speed_up_bound_free_step"] > 1
    assert all(0 < profile["matmul_share"] < 1 for profile in run["profiles"].values())
    page = (docs / "fast_paths_benchmark.md").read_text(encoding="utf-8")
    assert "training step, eager: hf_attn speed / Marian" in page and "1 thread(s)" in page
    assert "## Targets not met, and why" in page
