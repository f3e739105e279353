"""A source/target pair of BPE vocabularies that behaves as one ``transformers`` tokenizer, like Marian's.

``Seq2SeqBPETokenizer`` holds two ``tokenizers`` backends with the same special tokens and
ids. Which one it uses depends on the direction:

* **Encoding** (text or tokens to ids) uses the *source* vocabulary: ``tokenizer(src)``,
  ``convert_tokens_to_ids``, ``get_vocab()`` and ``len(tokenizer)``. ``text_target=`` encodes
  with the *target* vocabulary, so ``tokenizer(src, text_target=tgt)["labels"]`` are target ids.
* **Decoding** (ids to tokens or text) uses the *target* vocabulary, because that is what
  ``generate()`` returns: ``decode``, ``batch_decode`` and ``convert_ids_to_tokens``. Source ids
  turn back into text with ``decode(ids, use_source_tokenizer=True)`` (Marian's switch) and into
  pieces with :meth:`Seq2SeqBPETokenizer.convert_source_ids_to_tokens`.

``target_vocab_size`` is the target vocabulary's size, the counterpart of ``len(tokenizer)``.
``save_pretrained`` writes the source backend to ``tokenizer.json`` and the target one to
``target_tokenizer.json``.

This module imports only the standard library, ``tokenizers`` and ``transformers``: it is
copied next to a saved tokenizer, which then loads with ``trust_remote_code=True`` where
hf_attn is not installed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerFast

SOURCE_TOKENIZER_FILE = "tokenizer.json"
TARGET_TOKENIZER_FILE = "target_tokenizer.json"


class Seq2SeqBPETokenizer(PreTrainedTokenizerFast):
    """Source vocabulary for encoding, target vocabulary for labels (``text_target``) and decoding."""

    vocab_files_names = {"tokenizer_file": SOURCE_TOKENIZER_FILE, "target_tokenizer_file": TARGET_TOKENIZER_FILE}

    def __init__(
        self,
        *args: Any,
        target_tokenizer_object: Tokenizer | None = None,
        target_tokenizer_file: str | None = None,
        **kwargs: Any,
    ) -> None:
        if target_tokenizer_object is not None:
            target = copy.deepcopy(target_tokenizer_object)
        elif target_tokenizer_file is not None and os.path.isfile(target_tokenizer_file):
            target = Tokenizer.from_file(target_tokenizer_file)
        else:
            raise ValueError(
                f"{type(self).__name__} needs a target vocabulary: pass `target_tokenizer_object`, or load a folder "
                f"that has {TARGET_TOKENIZER_FILE} (got {target_tokenizer_file!r})."
            )
        super().__init__(*args, **kwargs)
        self._source_tokenizer = self._tokenizer
        self._target_tokenizer = target

    @classmethod
    def convert_to_native_format(cls, trust_remote_code: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Load ``tokenizer.json`` whole, not re-assembled from its vocabulary, so normaliser and decoder stay."""
        return kwargs

    @property
    def target_vocab_size(self) -> int:
        """Tokens in the target vocabulary, special tokens included (``len(tokenizer)`` is the source's)."""
        return self._target_tokenizer.get_vocab_size(with_added_tokens=True)

    def get_source_vocab(self) -> dict[str, int]:
        return self._source_tokenizer.get_vocab(with_added_tokens=True)

    def get_target_vocab(self) -> dict[str, int]:
        return self._target_tokenizer.get_vocab(with_added_tokens=True)

    @contextmanager
    def _using(self, backend: Tokenizer) -> Iterator[None]:
        """Run the base class's code against one vocabulary, then restore the current one."""
        current = self._tokenizer
        self._tokenizer = backend
        try:
            yield
        finally:
            self._tokenizer = current

    def _switch_to_input_mode(self) -> None:
        self._tokenizer = self._source_tokenizer

    def _switch_to_target_mode(self) -> None:
        self._tokenizer = self._target_tokenizer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """As the base class; back in source mode afterwards even when encoding the target fails."""
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self._switch_to_input_mode()

    def _decode(self, token_ids: Any, *args: Any, use_source_tokenizer: bool = False, **kwargs: Any) -> str:
        with self._using(self._source_tokenizer if use_source_tokenizer else self._target_tokenizer):
            return super()._decode(token_ids, *args, **kwargs)

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Target pieces of target ids (what ``generate`` returns); see :meth:`convert_source_ids_to_tokens`."""
        with self._using(self._target_tokenizer):
            return super().convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)

    def convert_source_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Source pieces of source ids (``input_ids``), e.g. for the source axis of an alignment plot."""
        with self._using(self._source_tokenizer):
            return super().convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens)

    def _save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        file_names: tuple[str, ...],
        legacy_format: bool | None = None,
        filename_prefix: str | None = None,
    ) -> tuple[str, ...]:
        with self._using(self._source_tokenizer):
            file_names = super()._save_pretrained(save_directory, file_names, legacy_format, filename_prefix)
        prefix = filename_prefix + "-" if filename_prefix else ""
        target_file = os.path.join(str(save_directory), prefix + TARGET_TOKENIZER_FILE)
        self._target_tokenizer.save(target_file)
        return (*file_names, target_file)


__all__ = ["SOURCE_TOKENIZER_FILE", "TARGET_TOKENIZER_FILE", "Seq2SeqBPETokenizer"]
