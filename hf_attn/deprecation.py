"""Shims for public names that moved: the old import keeps working, with a FutureWarning, for one minor version.

The policy (README, "Compatibility and deprecations"): a public name that moves or is renamed stays importable from
its old place for the next minor release, warning with ``FutureWarning`` (shown by default, unlike
``DeprecationWarning``) that names the new place and the release that drops the old one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def moved_names(old_module: str, moves: Mapping[str, ModuleType], removed_in: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``old_module.NAME`` from ``moves[NAME]`` (the new module) with a warning.

    The new modules are passed in, already imported: nothing here imports by a computed name.
    """

    def __getattr__(name: str) -> Any:
        if name not in moves:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        new_module = moves[name]
        warnings.warn(
            f"`{old_module}.{name}` moved to `{new_module.__name__}.{name}`; import it from there. "
            f"The old name will be removed in hf_attn {removed_in}.",
            FutureWarning,
            stacklevel=2,
        )
        return getattr(new_module, name)

    return __getattr__
