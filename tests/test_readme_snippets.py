"""The README's loading snippets run as written, each in a fresh Python (no import done for them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from seq2seq_checks import run_without_hf_attn
from tiny_seq2seq import MODEL_TYPES, save_tiny_model

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE_DIR = "runs/quickstart/transformer/best"


def loading_snippets() -> list[str]:
    """The README's Python blocks that load the example model folder."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [block for block in blocks if f'from_pretrained("{EXAMPLE_DIR}"' in block]


def test_readme_has_an_installed_and_a_remote_code_snippet():
    snippets = loading_snippets()
    assert len(snippets) == 2
    assert "import hf_attn" in snippets[0] and "trust_remote_code" not in snippets[0]
    assert "trust_remote_code=True" in snippets[1] and "import hf_attn" not in snippets[1]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_installed_snippet_runs_in_a_fresh_process(model_type, tmp_path):
    save_tiny_model(model_type, tmp_path / EXAMPLE_DIR)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    script = loading_snippets()[0] + "\nprint(type(model).__module__)\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("hf_attn.")


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_remote_code_snippet_runs_where_hf_attn_cannot_be_imported(model_type, tmp_path):
    save_tiny_model(model_type, tmp_path / EXAMPLE_DIR)
    run_without_hf_attn(
        loading_snippets()[1] + "\nassert not type(model).__module__.startswith('hf_attn')\n", [], tmp_path
    )
