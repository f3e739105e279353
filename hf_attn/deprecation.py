"""Shims for public names that moved: the old import keeps working, with a FutureWarning, for one minor version.

The policy (README, "Compatibility and deprecations"): a public name that moves or is renamed stays importable from
its old place for the next minor release, warning with ``FutureWarning`` (shown by default, unlike
``DeprecationWarning``) that names the new place and the release that drops the old one.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved_names(old_module: str, moves: Mapping[str, str], removed_in: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``old_module.NAME`` from ``moves[NAME]`` (the new module) with a warning."""

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        new_module = moves[name]
        warnings.warn(
            f"`{old_module}.{name}` moved to `{new_module}.{name}`; import it from there. "
            f"The old name will be removed in hf_attn {removed_in}.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(new_module), name)

    return __getattr__
