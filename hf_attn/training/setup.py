"""Moved to :mod:`hf_attn.training.builders` (which also builds the loader, optimizer and schedule).

``from hf_attn.training.setup import build_model`` keeps working with a FutureWarning until 0.3.0.
"""

from __future__ import annotations

from ..deprecation import moved_names
from . import builders

# Every public name this module held before the move.
_MOVED_TO_BUILDERS = (
    "TOKENIZER_DIR",
    "build_model",
    "check_tokenizer_kind",
    "example_lengths",
    "has_accelerator",
    "load_corpus",
    "peak_memory_mb",
    "prepare_tokenizer",
    "smallest_id_dtype",
    "tokenize_split",
    "train_tokenizer",
)
__getattr__ = moved_names(__name__, dict.fromkeys(_MOVED_TO_BUILDERS, builders), removed_in="0.3.0")
