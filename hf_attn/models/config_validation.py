"""Validators shared by the hf_attn configs.

Configs call these in ``__post_init__`` so that a bad value fails when the config is
built, with a message that names the field and what it may be, instead of surfacing as
a shape error deep inside ``forward``. The module imports nothing but the standard
library so it can travel with the remote-code files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any


def require_positive_int(name: str, value: Any) -> None:
    """Raise unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def require_non_negative_int(name: str, value: Any) -> None:
    """Raise unless ``value`` is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}.")


def require_probability(name: str, value: Any) -> None:
    """Raise unless ``value`` is a number in [0, 1) (a dropout rate or smoothing mass)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1), got {value!r}.")


def require_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    """Raise unless ``value`` is one of ``allowed``; the message lists them."""
    allowed = list(allowed)
    if value not in allowed:
        options = ", ".join(repr(option) for option in allowed)
        raise ValueError(f"`{name}` must be one of {options}; got {value!r}.")


def require_bool(name: str, value: Any) -> None:
    """Raise unless ``value`` is a bool (catches "false" strings from hand-edited JSON)."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be true or false, got {value!r}.")


def require_token_id(name: str, value: Any, vocab_size: int, optional: bool = False) -> None:
    """Raise unless ``value`` is a valid id into a vocabulary of ``vocab_size`` (or None if optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
        raise ValueError(f"`{name}` must be a token id in [0, {vocab_size}) (the vocabulary size), got {value!r}.")


def require_positive_number(name: str, value: Any, optional: bool = False) -> None:
    """Raise unless ``value`` is an int or float above 0 (or None if optional); a bool is not a number here."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        suffix = " or None" if optional else ""
        raise ValueError(f"`{name}` must be a positive number{suffix}, got {value!r}.")


def validate_vocabularies(config: Any) -> None:
    """The checks every hf_attn config shares: vocabulary sizes, one vocabulary when embeddings are shared, token ids.

    ``config`` has ``vocab_size`` (source, or shared), ``decoder_vocab_size`` (target), ``target_vocab_size``,
    ``share_encoder_decoder_embeddings`` and the four token ids; the pad id indexes the source vocabulary (it pads
    encoder inputs), the others the target one.
    """
    require_positive_int("vocab_size", config.vocab_size)
    require_positive_int("decoder_vocab_size", config.decoder_vocab_size)
    if config.share_encoder_decoder_embeddings is True and config.target_vocab_size != config.vocab_size:
        raise ValueError(
            f"`decoder_vocab_size` ({config.decoder_vocab_size}) differs from `vocab_size` ({config.vocab_size}) "
            "but `share_encoder_decoder_embeddings=True` needs one vocabulary; set it to False for separate ones."
        )
    require_token_id("pad_token_id", config.pad_token_id, config.vocab_size)
    require_token_id("bos_token_id", config.bos_token_id, config.target_vocab_size, optional=True)
    require_token_id("eos_token_id", config.eos_token_id, config.target_vocab_size)
    require_token_id("decoder_start_token_id", config.decoder_start_token_id, config.target_vocab_size)


def described(default: Any, description: str) -> Any:
    """A config field whose meaning travels with it (``metadata["description"]``).

    Model cards and the class docstring read these, so reformatting a docstring cannot
    silently drop a field's meaning from a card.
    """
    return dataclasses.field(default=default, metadata={"description": description})


def document_fields(config_class: type) -> None:
    """Append an ``Args:`` section built from the fields' descriptions to ``config_class.__doc__``."""
    lines = [
        f"        {field.name}: {field.metadata['description']}"
        for field in dataclasses.fields(config_class)
        if "description" in field.metadata
    ]
    config_class.__doc__ = (config_class.__doc__ or "").rstrip() + "\n\n    Args:\n" + "\n".join(lines) + "\n"
