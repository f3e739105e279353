"""The house rules of the layout, checked statically (docs/architecture.md, "Layout").

* ``hf_attn/models/`` is the remote-code boundary: ``save_pretrained`` copies a modeling file
  and the siblings it imports next to the weights, and a folder loaded with
  ``trust_remote_code`` has nothing else. So those files import only the standard library,
  torch, transformers (and tokenizers, which transformers' tokenizers are built on) and
  their own siblings.
* The plugin never imports the research tooling, and the wheel does not ship it: no static import,
  no ``importlib.import_module``/``__import__`` of it (nor of a name computed at run time, which could
  be it), no loading files by path, and no ``sys.path`` changes that would make it importable.
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


DYNAMIC_IMPORTERS = {"import_module", "__import__", "spec_from_file_location", "run_path", "run_module", "addsitedir"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def back_doors(source: str) -> list[str]:
    """Ways ``source`` could reach ``research`` besides a static import: what test_hf_attn_never_imports_research
    cannot see. A dynamic import is allowed only of a literal name outside ``research``; ``sys.path`` is not touched."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in DYNAMIC_IMPORTERS:
            name = _dotted(node.func)
            first = node.args[0] if node.args else None
            literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
            if not literal or first.value.split(".")[0] == "research" or name.endswith(("location", "path", "dir")):
                found.append(f"line {line}: {name}({ast.unparse(first) if first else ''})")
        elif _dotted(node) == "sys.path":
            found.append(f"line {line}: sys.path")
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "path" for a in node.names):
            found.append(f"line {line}: from sys import path")
    return found


def test_hf_attn_never_imports_research():
    for path in sorted((ROOT / "hf_attn").rglob("*.py")):
        for level, module in imports_of(path):
            assert not (level == 0 and module.split(".")[0] == "research"), f"{path} imports {module}"
        assert not back_doors(path.read_text(encoding="utf-8")), f"{path}: {back_doors(path.read_text('utf-8'))}"


@pytest.mark.parametrize(
    "snippet",
    [
        "import importlib\nimportlib.import_module('research.experiment.run')",
        "from importlib import import_module\nimport_module('research')",
        "__import__('research.corpus_build')",
        "import importlib\nname = 'research'\nimportlib.import_module(name)",
        "import sys\nsys.path.insert(0, '/clone')",
        "import sys\nsys.path += ['/clone']",
        "from sys import path\npath.append('/clone')",
        "import importlib.util\nimportlib.util.spec_from_file_location('x', '/clone/research/run.py')",
        "import runpy\nrunpy.run_path('/clone/research/experiment/run.py')",
    ],
)
def test_the_back_door_check_catches_dynamic_imports(snippet):
    assert back_doors(snippet), f"not caught: {snippet!r}"


def test_the_back_door_check_allows_literal_imports_of_other_modules():
    assert back_doors("import importlib\nimportlib.import_module('ctranslate2')") == []
    assert back_doors("import importlib.util\nimportlib.util.find_spec('ctranslate2')") == []


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
