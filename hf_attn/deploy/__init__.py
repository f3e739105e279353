"""Serving trained models fast on CPU: CTranslate2 export of the Transformer, int8 PyTorch for the RNN.

``import hf_attn`` does not import this package: ``hf_attn.inference`` imports ``deploy.metadata`` and
``deploy.torch_int8`` inside the function that loads a folder (to recognise an export), and the CLI imports the
export and CTranslate2 modules inside ``hf-attn export`` and ``--engine ctranslate2``. The optional ``ctranslate2``
package (``pip install 'hf_attn[deploy]'``) is imported only by the functions that need it.
"""

from __future__ import annotations

from .export import EXPORT_FORMATS, export_model

__all__ = ["EXPORT_FORMATS", "export_model"]
