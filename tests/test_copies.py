"""Every ``# Copied from`` marker under ``hf_attn/`` agrees with its source (after its ``with A->B`` replacements).

Modelled on transformers' ``utils/check_copies.py``: a deliberate copy is marked above the copied
``def``/``class`` (or its first decorator) as
``# Copied from hf_attn.module.Class.method with Transformer->RNN``; the check renders the source
with the replacements applied and compares it line by line with the copy, so a copy that drifts
(someone edits one side only) fails here and names both places.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(
    r"^(?P<indent>\s*)#\s*Copied from\s+(?P<name>hf_attn(?:\.\w+)+)"
    r"(?:\s+with\s+(?P<replacements>\S+->\S+(?:\s*,\s*\S+->\S+)*))?\s*(?:#\s*noqa:\s*E501)?\s*$"
)


@dataclass(frozen=True)
class Copy:
    file: Path
    line: int  # 1-based line of the marker
    source_name: str
    replacements: tuple[tuple[str, str], ...]


def _definitions(tree: ast.AST) -> dict[str, ast.AST]:
    """Qualified names (``Class.method``) of every class and function in a module."""
    found: dict[str, ast.AST] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                found[name] = child
                visit(child, f"{name}.")

    visit(tree, "")
    return found


def _block(lines: list[str], node: ast.AST) -> list[str]:
    """The definition's lines, decorators included, without their common indentation."""
    start = min([decorator.lineno for decorator in node.decorator_list] + [node.lineno])
    block = lines[start - 1 : node.end_lineno]
    indent = min(len(line) - len(line.lstrip()) for line in block if line.strip())
    return [line[indent:].rstrip() for line in block]


def _resolve(root: Path, dotted: str) -> tuple[Path, str]:
    """Split ``hf_attn.pkg.module.Class.method`` into the module's file and ``Class.method``."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        candidate = root.joinpath(*parts[:split]).with_suffix(".py")
        if candidate.is_file():
            return candidate, ".".join(parts[split:])
    raise LookupError(f"`# Copied from {dotted}`: no module file for it under {root}")


def find_copies(root: Path) -> list[Copy]:
    copies = []
    for file in sorted((root / "hf_attn").rglob("*.py")):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            match = MARKER.match(line)
            if match is None:
                if "Copied from" in line:
                    raise ValueError(f"{file}:{number}: malformed `# Copied from` marker: {line.strip()!r}")
                continue
            pairs = match["replacements"].split(",") if match["replacements"] else []
            replacements = tuple(tuple(pair.strip().split("->")) for pair in pairs)
            copies.append(Copy(file, number, match["name"], replacements))
    return copies


def copy_mismatches(root: Path) -> list[str]:
    """One message per marked copy that differs from its source with the replacements applied."""
    problems = []
    for copy in find_copies(root):
        source_file, source_name = _resolve(root, copy.source_name)
        source_text = source_file.read_text(encoding="utf-8")
        source_node = _definitions(ast.parse(source_text)).get(source_name)
        if source_node is None:
            problems.append(f"{copy.file}:{copy.line}: `{copy.source_name}` does not exist")
            continue
        expected = _block(source_text.splitlines(), source_node)
        for old, new in copy.replacements:
            expected = [line.replace(old, new) for line in expected]

        copy_text = copy.file.read_text(encoding="utf-8")
        copy_lines = copy_text.splitlines()
        marked = [
            node
            for node in _definitions(ast.parse(copy_text)).values()
            if min([d.lineno for d in node.decorator_list] + [node.lineno]) == copy.line + 1
        ]
        if not marked:
            problems.append(f"{copy.file}:{copy.line}: the marker is not directly above a def or class")
            continue
        actual = _block(copy_lines, marked[0])
        if actual != expected:
            differing = next(
                (i for i, (a, e) in enumerate(zip(actual, expected)) if a != e), min(len(actual), len(expected))
            )
            problems.append(
                f"{copy.file}:{copy.line}: copy of {copy.source_name} has drifted "
                f"(first difference in its line {differing + 1}: "
                f"{(actual + [''])[differing]!r} vs {(expected + [''])[differing]!r})"
            )
    return problems


def test_marked_copies_match_their_sources():
    copies = find_copies(REPO_ROOT)
    sources = {copy.source_name for copy in copies}
    # The check must not pass vacuously: the seq2seq classes' shared accessors and forward are marked.
    assert "hf_attn.models.modeling_transformer_seq2seq.TransformerSeq2SeqForConditionalGeneration.forward" in sources
    assert len(copies) >= 10
    assert copy_mismatches(REPO_ROOT) == []


def _edited_package_copy(tmp_path: Path, module: str, old: str, new: str) -> Path:
    """A copy of ``hf_attn/models`` under ``tmp_path`` with ``old`` replaced by ``new`` once in ``module``."""
    shutil.copytree(REPO_ROOT / "hf_attn" / "models", tmp_path / "hf_attn" / "models")
    path = tmp_path / "hf_attn" / "models" / f"{module}.py"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


def test_a_drifted_copy_is_reported(tmp_path):
    root = _edited_package_copy(
        tmp_path, "modeling_rnn_seq2seq", "        return self.model.encoder\n", "        return self.model.decoder\n"
    )
    problems = copy_mismatches(root)
    assert len(problems) == 1
    assert "TransformerSeq2SeqForConditionalGeneration.get_encoder has drifted" in problems[0]
    assert "return self.model.decoder" in problems[0]


def test_an_edit_to_the_source_alone_is_reported(tmp_path):
    root = _edited_package_copy(
        tmp_path, "modeling_transformer_seq2seq", "            use_cache = False\n", "            use_cache = None\n"
    )
    problems = copy_mismatches(root)
    assert any("TransformerSeq2SeqForConditionalGeneration.forward has drifted" in p for p in problems)


def test_a_marker_naming_a_missing_source_is_reported(tmp_path):
    root = _edited_package_copy(
        tmp_path,
        "modeling_rnn_seq2seq",
        "TransformerSeq2SeqModel.get_decoder with",
        "TransformerSeq2SeqModel.get_decoderr with",
    )
    problems = copy_mismatches(root)
    assert len(problems) == 1 and "get_decoderr` does not exist" in problems[0]


def test_replacements_are_applied(tmp_path):
    package = tmp_path / "hf_attn"
    package.mkdir()
    (package / "source.py").write_text(
        "class FooModel:\n    def build(self):\n        return FooLayer()\n", encoding="utf-8"
    )
    copy_template = "class BarModel:\n    # Copied from hf_attn.source.FooModel.build{suffix}\n    def build(self):\n"
    copy_template += "        return BarLayer()\n"
    (package / "copy.py").write_text(copy_template.format(suffix=" with Foo->Bar"), encoding="utf-8")
    assert copy_mismatches(tmp_path) == []
    (package / "copy.py").write_text(copy_template.format(suffix=""), encoding="utf-8")
    (problem,) = copy_mismatches(tmp_path)
    assert "'    return BarLayer()' vs '    return FooLayer()'" in problem
