"""Serving trained models fast on CPU: CTranslate2 export of the Transformer, int8 PyTorch for the RNN.

Nothing here is imported by ``hf_attn`` itself, and the optional ``ctranslate2`` package
(``pip install 'hf_attn[deploy]'``) is imported only by the functions that need it.
"""

from __future__ import annotations

from .export import EXPORT_FORMATS, export_model

__all__ = ["EXPORT_FORMATS", "export_model"]
