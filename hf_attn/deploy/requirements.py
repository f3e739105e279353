"""The optional serving dependency, with an error that says how to install it."""

from __future__ import annotations

import importlib.util


def require_ctranslate2() -> None:
    """Raise ImportError naming the extra to install when ``ctranslate2`` is missing."""
    if importlib.util.find_spec("ctranslate2") is None:
        raise ImportError(
            "The CTranslate2 engine needs the `ctranslate2` package: pip install 'hf_attn[deploy]' "
            "(or pip install ctranslate2)."
        )
