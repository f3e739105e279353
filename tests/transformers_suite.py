"""transformers' own common model tests, fetched at test time for the installed release.

``ModelTesterMixin`` (``tests/test_modeling_common.py``) and ``ConfigTester``
(``tests/test_configuration_common.py``) ship in transformers' source distribution on the
package index, not in its wheel, and are not copied into this repository. :func:`load`
downloads the sdist of the *installed* ``transformers.__version__`` with pip (so only the
indexes pip is configured with are used), extracts just those two files into a cache
directory reused between runs, and imports them as the package ``hf_attn_transformers_tests``.

Cache: ``$HF_ATTN_TEST_CACHE/transformers-tests/VERSION/`` when that variable is set, else
``${XDG_CACHE_HOME:-~/.cache}/hf_attn/transformers-tests/VERSION/``. A cache entry is built
in a temporary sibling directory and renamed into place, so a directory under that name is
always complete.

The two files import three modules the sdist does not contain; small stand-ins for them
are generated into the cached package (see :data:`STAND_INS`): empty ``ExportTesterMixin``
and ``GenerationTesterMixin`` and a ``config_common_kwargs`` built from
``transformers.PreTrainedConfig``'s declared fields by :func:`build_config_common_kwargs`.

The one condition that skips is an index pip cannot reach; any other failure (the release
is not on the index, the sdist lacks a file, pip fails for another reason) is an error.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import transformers

PACKAGE = "hf_attn_transformers_tests"
"""Import name of the cached package (unique, so it cannot shadow another ``tests`` package)."""

FETCHED_FILES = ("test_modeling_common.py", "test_configuration_common.py")
"""transformers' files, by their path under the sdist's ``tests/`` folder."""

# pip reports an index it cannot reach with one of these (urllib3/requests/socket errors).
_UNREACHABLE = re.compile(
    r"NewConnectionError|ConnectTimeoutError|ReadTimeoutError|ProxyError|SSLError|ConnectionResetError"
    r"|Max retries exceeded|Failed to establish a new connection|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|Connection refused|No route to host"
)


_MARK_USE = re.compile(r"(?<![\w.])(?:pytest\.)?mark\.([A-Za-z]\w*)")
"""``@mark.name`` / ``@pytest.mark.name`` in transformers' files."""


class IndexUnreachable(RuntimeError):
    """pip could not reach the package index (the only reason the suite skips)."""


def build_config_common_kwargs(config_class: type | None = None) -> dict:
    """A non-default value for every common ``PreTrainedConfig`` argument, as transformers' own dict has.

    ``ConfigTester.check_config_arguments_init`` builds the model's config with these keyword
    arguments and checks each one is read back unchanged (``dtype`` as ``torch.float16``), so a
    config class that drops or overrides a common argument fails. The values are derived from
    the dataclass fields ``PreTrainedConfig`` declares in the installed release, so the
    dictionary follows that release: booleans are flipped, integers moved off their default,
    ``Literal`` fields take another allowed value, mappings and lists get one entry.
    Left out, as transformers' dict leaves them out: ``transformers_version`` (written on
    save, not a setting) and ``is_encoder_decoder`` (fixed by the architecture, not by users).
    ``output_attentions`` is added: a common argument that ``PreTrainedConfig`` keeps behind a
    property instead of a field.

    This function is copied verbatim into the generated stand-in module, so it imports what it uses.
    """
    import dataclasses
    import types
    import typing

    import torch
    import transformers as _transformers

    config_class = config_class or _transformers.PreTrainedConfig
    not_settings = {"transformers_version", "is_encoder_decoder"}
    hints = typing.get_type_hints(config_class, localns={"torch": torch})  # torch is a TYPE_CHECKING import there

    def alternatives(annotation) -> list:
        """The concrete types (and Literal values) an annotation allows, without None."""
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            return [part for arg in typing.get_args(annotation) for part in alternatives(arg)]
        return [] if annotation is type(None) else [annotation]

    def non_default(name: str, annotation, default):
        options = alternatives(annotation)
        if name == "dtype":  # ConfigTester compares it with torch.float16
            return "float16"
        for option in options:
            origin = typing.get_origin(option)
            if origin is typing.Literal:
                return next(value for value in typing.get_args(option) if value != default)
            if option is bool:
                return not default
            if option is int:
                return (default or 0) + 5
            if option is float:
                return (default or 0.0) + 0.5
            if origin is dict:
                key_type, value_type = typing.get_args(option)
                key = 0 if key_type is int else "label"
                value = "label" if key_type is int else ("0" if value_type is str else 0)
                return {key: value}
            if origin is list:
                return [f"{config_class.__name__}TestArchitecture"]
            if option is str:
                return "hf_attn_test_value"
        raise TypeError(f"No non-default test value for {config_class.__name__}.{name}: {annotation!r}")

    kwargs = {}
    for field in dataclasses.fields(config_class):
        if field.name in not_settings or field.name.startswith("_") or not field.init:
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        kwargs[field.name] = non_default(field.name, hints.get(field.name, field.type), default)
    kwargs["output_attentions"] = True
    return kwargs


_MODULE_HEADER = (
    '"""Stand-in generated by hf_attn\'s tests/transformers_suite.py; not transformers\' file.\n\n{doc}\n"""\n'
)

STAND_INS: dict[str, str] = {
    "__init__.py": (
        '"""transformers\' common tests, extracted from the transformers {version} sdist by hf_attn\'s tests.\n\n'
        "Only test_modeling_common.py and test_configuration_common.py are transformers' files; the\n"
        "subpackages hold stand-ins generated by tests/transformers_suite.py.\n"
        '"""\n'
    ),
    "exporters/__init__.py": "",
    "exporters/test_export.py": _MODULE_HEADER.format(
        doc=(
            "transformers' ExportTesterMixin (torch.export of every model class) is not in the sdist.\n"
            "hf_attn's own tests cover torch.export of both models (tests/test_generation_contract.py),\n"
            "so this mixin adds no tests."
        )
    )
    + '\n\nclass ExportTesterMixin:\n    """Empty: export is tested by hf_attn\'s own tests."""\n',
    "generation/__init__.py": "",
    "generation/test_utils.py": _MODULE_HEADER.format(
        doc=(
            "transformers' GenerationTesterMixin (generate() in every decoding mode) is not in the sdist.\n"
            "hf_attn's own tests cover generation (tests/test_generation_contract.py and the per-model\n"
            "tests: decoding modes, output shapes, cache reordering), so this mixin adds no tests; it exists\n"
            "because ModelTesterMixin.test_generation_tester_mixin_inheritance requires the tester of a model\n"
            "that can generate() to inherit it."
        )
    )
    + '\n\nclass GenerationTesterMixin:\n    """Empty: generation is tested by hf_attn\'s own tests."""\n',
    "utils/__init__.py": "",
    "utils/test_configuration_utils.py": _MODULE_HEADER.format(
        doc=(
            "transformers' tests/utils/test_configuration_utils.py is not in the sdist. Only its\n"
            "`config_common_kwargs` is needed (by ConfigTester.check_config_arguments_init); it is built\n"
            "here from the installed PreTrainedConfig's declared fields."
        )
    )
    + "\n\n"
    + textwrap.dedent(inspect.getsource(build_config_common_kwargs))
    + "\n\nconfig_common_kwargs = build_config_common_kwargs()\n",
}
"""Generated modules of the cached package, by path; ``{version}`` is filled in."""

_LAYOUT = hashlib.sha256(json.dumps([FETCHED_FILES, STAND_INS], sort_keys=True).encode()).hexdigest()[:16]
"""Changes whenever what this file writes changes, so an older cache entry is rebuilt."""


def cache_root() -> Path:
    """``$HF_ATTN_TEST_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/hf_attn``."""
    if os.environ.get("HF_ATTN_TEST_CACHE"):
        return Path(os.environ["HF_ATTN_TEST_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "hf_attn"


def download_sdist(version: str, destination: Path) -> Path:
    """``pip download`` the transformers ``version`` sdist into ``destination``; return its path.

    pip prepares the sdist's metadata before saving it; that step is tried first in pip's
    isolated build environment and, if it fails for a reason other than the network, again
    with this interpreter's setuptools (``--no-build-isolation``).
    """
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    tail = ["--retries", "2", "--disable-pip-version-check", "--no-input", f"transformers=={version}"]
    logs = []
    for extra in ([], ["--no-build-isolation"]):
        with tempfile.TemporaryDirectory(dir=destination) as attempt:
            result = subprocess.run([*base, *extra, *tail, "-d", attempt], capture_output=True, text=True)
            log = f"$ pip download {' '.join(extra + tail)}\n{result.stdout}{result.stderr}"
            logs.append(log)
            archives = sorted(Path(attempt).glob(f"transformers-{version}.tar.gz"))
            if result.returncode == 0 and len(archives) == 1:
                return Path(shutil.move(archives[0], destination / archives[0].name))
            if _UNREACHABLE.search(log):
                raise IndexUnreachable(log[-3000:])
    raise RuntimeError(
        f"Could not download the transformers {version} sdist from the package index:\n" + "\n".join(logs)[-6000:]
    )


def extract_tests(sdist: Path, version: str, package_dir: Path) -> None:
    """Write transformers' two test files from ``sdist`` and the stand-ins into ``package_dir``."""
    with tarfile.open(sdist) as archive:
        members = {member.name: member for member in archive.getmembers() if member.isfile()}
        for name in FETCHED_FILES:
            path = f"transformers-{version}/tests/{name}"
            if path not in members:
                raise RuntimeError(f"{sdist.name} has no {path}; transformers' test layout changed.")
            (package_dir / name).write_bytes(archive.extractfile(members[path]).read())
    for relative, source in STAND_INS.items():
        target = package_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.replace("{version}", version))


def _is_current(entry: Path) -> bool:
    """Whether ``entry`` is a complete cache entry written by this version of this file."""
    stamp = entry / "layout.json"
    return stamp.is_file() and json.loads(stamp.read_text()).get("layout") == _LAYOUT


def ensure_cached(version: str) -> Path:
    """The cache directory for ``version`` (the folder to put on ``sys.path``), built if missing."""
    final = cache_root() / "transformers-tests" / version
    if _is_current(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
    try:
        sdist = download_sdist(version, staging)
        package_dir = staging / PACKAGE
        package_dir.mkdir()
        extract_tests(sdist, version, package_dir)
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        sdist.unlink()
        stamp_data = {"layout": _LAYOUT, "transformers": version, "sdist": sdist.name, "sha256": digest}
        (staging / "layout.json").write_text(json.dumps(stamp_data, indent=2) + "\n")
        if _is_current(final):  # a concurrent run finished first
            return final
        if final.exists():  # an entry written by an older version of this file
            stale = Path(tempfile.mkdtemp(prefix=f".{version}-stale-", dir=final.parent))
            os.replace(final, stale / "entry")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(staging, final)
        except OSError:
            if not _is_current(final):  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def load() -> tuple[ModuleType, ModuleType]:
    """``(test_modeling_common, test_configuration_common)`` of the installed transformers.

    Skips the calling test module (at collection) when the package index is unreachable.
    """
    version = transformers.__version__
    try:
        folder = ensure_cached(version)
    except IndexUnreachable as error:
        pytest.skip(
            f"transformers' common tests come from the transformers {version} sdist on the package index, "
            f"which pip could not reach:\n{error}",
            allow_module_level=True,
        )
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    register_marks(folder / PACKAGE)
    return (
        importlib.import_module(f"{PACKAGE}.test_modeling_common"),
        importlib.import_module(f"{PACKAGE}.test_configuration_common"),
    )


pytest_config: pytest.Config | None = None
"""The running pytest config, handed over by ``tests/conftest.py``'s ``pytest_configure``."""


def register_marks(package_dir: Path) -> None:
    """Declare the pytest marks transformers' files use, before they are imported.

    transformers' own conftest registers marks such as ``flash_attn_test`` or
    ``accelerate_tests`` that select CI jobs there; this repository runs pytest with
    ``--strict-markers``, under which an undeclared mark fails the import. Outside pytest
    (``pytest_config`` is None) marks are never checked.
    """
    if pytest_config is None:
        return
    names = set()
    for name in FETCHED_FILES:
        names.update(_MARK_USE.findall((package_dir / name).read_text(encoding="utf-8")))
    for name in sorted(names):
        pytest_config.addinivalue_line("markers", f"{name}: mark of transformers' CI, used by its {FETCHED_FILES[0]}")
