"""The house rules of the layout, checked statically (docs/architecture.md, "Layout").

* ``hf_attn/models/`` is the remote-code boundary: ``save_pretrained`` copies a modeling file
  and the siblings it imports next to the weights, and a folder loaded with
  ``trust_remote_code`` has nothing else. So those files import only the standard library,
  torch, transformers (and tokenizers, which transformers' tokenizers are built on) and
  their own siblings.
* The plugin never imports the research tooling, and the wheel does not ship it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "hf_attn" / "models"
ALLOWED_THIRD_PARTY = {"torch", "transformers", "tokenizers"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(level, module) of every import in ``path``: level 0 is absolute, 1 is a sibling, 2+ climbs packages."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.py")), ids=lambda path: path.name)
def test_models_import_only_torch_transformers_and_siblings(path):
    siblings = {sibling.stem for sibling in MODELS.glob("*.py")}
    for level, module in imports_of(path):
        top = module.split(".")[0]
        if level == 0:
            assert top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__", (
                f"{path.name} imports {module}: outside the remote-code boundary"
            )
        else:
            assert level == 1 and top in siblings, f"{path.name} imports {'.' * level}{module}: not a sibling file"


def test_hf_attn_never_imports_research():
    for path in sorted((ROOT / "hf_attn").rglob("*.py")):
        for level, module in imports_of(path):
            assert not (level == 0 and module.split(".")[0] == "research"), f"{path} imports {module}"


def test_the_wheel_ships_the_plugin_and_not_the_research_tooling(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(ROOT)], check=True, timeout=600)
    (wheel,) = tmp_path.glob("hf_attn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [name for name in names if name.startswith("research/")]
    for expected in (
        "hf_attn/models/modeling_transformer_seq2seq.py",
        "hf_attn/models/modeling_rnn_seq2seq.py",
        "hf_attn/training/loop.py",
        "hf_attn/configs/transformer_small.yaml",
        "hf_attn/generation.py",
    ):
        assert expected in names, f"{expected} is missing from the wheel"
