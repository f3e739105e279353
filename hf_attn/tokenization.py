"""BPE tokenizers for the models: one joint vocabulary, or a source/target pair; training and checks.

A joint tokenizer is a plain ``transformers.PreTrainedTokenizerFast`` whose one vocabulary
covers both languages. With separate vocabularies, :func:`train_bpe_tokenizer_pair` returns a
:class:`~hf_attn.models.tokenization_seq2seq_bpe.Seq2SeqBPETokenizer`: the source vocabulary encodes
inputs, the target one encodes labels (``text_target=``) and decodes. Either way the ids follow
the project's convention: ``<pad>``=0, ``<s>``=1 (also the decoder start), ``</s>``=2,
``<unk>``=3, and every encoded sequence ends with ``</s>``. The tokenizers are built with the
``tokenizers`` library so that ``save_pretrained`` writes ``tokenizer.json`` files that
``AutoTokenizer`` reloads anywhere, with or without hf_attn installed.

Training can also use a tokenizer the project did not make (:func:`load_tokenizer`): any
``save_pretrained`` folder or Hub id (Marian/OPUS-MT, T5, BERT-style WordPiece, …) or a
SentencePiece ``.model`` file. The model then takes its vocabulary size and special ids from
that tokenizer (:func:`model_settings_from_tokenizer`): it needs a pad and an end-of-sequence
token; the decoder starts from ``bos`` where there is one, else from ``pad`` (the T5 and Marian
convention); a fast tokenizer that does not append ``eos`` is given a post-processor that does.

Text is NFKC-normalised, split on whitespace (kept as a "▁" word-start marker, so decoding
restores the spaces) and around punctuation, then BPE-encoded. Characters the BPE vocabulary
lacks fall back to their UTF-8 bytes (256 ``<0xNN>`` tokens), so any text round-trips:
``decode(encode(x)) == NFKC(x)``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from datasets.fingerprint import generate_random_fingerprint
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
from transformers.tokenization_utils_base import TOKENIZER_CONFIG_FILE

from .atomic import check_json_files, read_json_file
from .data import ROWS_PER_RECORD_BATCH
from .models.tokenization_seq2seq_bpe import SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE, Seq2SeqBPETokenizer

logger = logging.getLogger(__name__)

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(len(SPECIAL_TOKENS))
BYTE_TOKENS = tuple(f"<0x{byte:02X}>" for byte in range(256))
DEFAULT_VOCAB_SIZE = 8000
DEFAULT_MODEL_MAX_LENGTH = 512
WORD_START = "▁"
_BATCH = 1000


def train_bpe_tokenizer(
    texts: Iterable[str] | datasets.Dataset | datasets.DatasetDict,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    columns: Sequence[str] = ("source", "target"),
    min_frequency: int = 2,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> PreTrainedTokenizerFast:
    """Train a joint BPE tokenizer of at most ``vocab_size`` tokens (special and byte tokens included).

    ``texts`` is an iterable of strings, a ``Dataset`` (its ``columns`` are read, source and
    target by default, giving the joint vocabulary), or a ``DatasetDict`` (its ``train``
    split only, so validation and test text stays unseen). The vocabulary may come out
    smaller than ``vocab_size`` when the texts offer too few merges.
    """
    return wrap_tokenizer(_train_backend(texts, vocab_size, columns, min_frequency), model_max_length)


def train_bpe_tokenizer_pair(
    corpus: datasets.Dataset | datasets.DatasetDict,
    source_vocab_size: int = DEFAULT_VOCAB_SIZE,
    target_vocab_size: int | None = None,
    source_column: str = "source",
    target_column: str = "target",
    min_frequency: int = 2,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> Seq2SeqBPETokenizer:
    """Train separate source and target vocabularies, each on its own column (of the ``train`` split).

    ``target_vocab_size`` defaults to ``source_vocab_size``. Both vocabularies share the special
    ids and the text pipeline of :func:`train_bpe_tokenizer`.
    """
    if not isinstance(corpus, (datasets.Dataset, datasets.DatasetDict)):
        raise TypeError(
            f"A tokenizer pair trains on a Dataset or DatasetDict with columns, got {type(corpus).__name__}."
        )
    source = _train_backend(corpus, source_vocab_size, (source_column,), min_frequency)
    target_size = source_vocab_size if target_vocab_size is None else target_vocab_size
    target = _train_backend(corpus, target_size, (target_column,), min_frequency)
    return wrap_tokenizer_pair(source, target, model_max_length)


# Rows per block of the BPE sample: a whole record batch of the files this package writes. A memory-mapped page
# read stays in RSS, and since Linux 6.16 ext4 caches a freshly written file in folios of up to 2 MB, each mapped
# whole on a fault: 256-row blocks (1,172 for 300k of 3M pairs) mapped 1.1 GB to read 165 MB of text.
TOKENIZER_SAMPLE_BLOCK = ROWS_PER_RECORD_BATCH
_SAMPLE_SCHEMA = pa.schema([("source", pa.string()), ("target", pa.string())])  # a stream's BPE sample


def tokenizer_training_sample(
    split: datasets.Dataset | datasets.IterableDataset, size: int | None, seed: int
) -> datasets.Dataset:
    """At most ``size`` rows of ``split``, drawn with ``seed`` in storage order (all of it when smaller, or size None).

    BPE then costs the same time and memory however large the corpus grows. The rows come in
    blocks of ``TOKENIZER_SAMPLE_BLOCK`` (10,000) rows stored consecutively, spread over the whole
    split: the Arrow file is memory-mapped and every page read stays in the process's RSS, and
    single rows drawn at random touch nearly every page (a 300k sample of 3M pairs put the whole
    1.75 GB file in RSS). The default 300k sample is 30 such blocks: a corpus concatenated from many
    small parts may leave some out, so shuffle such a file or raise ``tokenizer_sample_size``. A stream
    (``data.streaming``) cannot be sampled without reading it all, so its first ``size``
    pairs are read into memory instead (all of it with size None: give a bound).
    """
    if isinstance(split, datasets.IterableDataset):
        head = (split if size is None else split.take(size)).select_columns(list(_SAMPLE_SCHEMA.names))
        parts = [pa.table(batch, schema=_SAMPLE_SCHEMA) for batch in head.iter(batch_size=ROWS_PER_RECORD_BATCH)]
        table = pa.concat_tables(parts) if parts else _SAMPLE_SCHEMA.empty_table()
        logger.info("Training the tokenizer on the first %d pairs of the stream.", len(table))
        # Given a fingerprint, datasets does not hash the table by pickling it whole (1.25 GB at 300k pairs).
        return datasets.Dataset(datasets.table.InMemoryTable(table), fingerprint=generate_random_fingerprint())
    if size is None or len(split) <= size:
        return split
    logger.info("Training the tokenizer on %d of the %d training pairs (tokenizer_sample_size).", size, len(split))
    blocks = _rows_in_blocks(len(split), size, seed, TOKENIZER_SAMPLE_BLOCK)
    return split.select(_positions_in_storage_order(split)[blocks])


def _positions_in_storage_order(split: datasets.Dataset) -> np.ndarray:
    """``split``'s row positions ordered by where each row is stored in its Arrow file.

    A split carved from ``train`` (``validation_size``) or selected is an indices mapping that
    scatters consecutive positions over the whole file, so blocks are cut in storage order to be
    contiguous on disk.
    """
    mapping = getattr(split, "_indices", None)  # datasets' indices mapping: position -> stored row
    if mapping is None:
        return np.arange(len(split))
    return np.argsort(mapping.column(0).to_numpy(), kind="stable")


def _rows_in_blocks(total: int, size: int, seed: int, block: int) -> np.ndarray:
    """``size`` of ``range(total)`` (``size < total``), sorted: whole blocks of ``block`` rows drawn with ``seed``."""
    blocks = -(-total // block)
    chosen = min(blocks, -(-size // block) + 1)  # one spare: the last block of the split may be short
    starts = np.sort(np.random.default_rng(seed).choice(blocks, size=chosen, replace=False)) * block
    rows = (starts[:, None] + np.arange(block)).ravel()
    return rows[rows < total][:size]


def _train_backend(
    texts: Iterable[str] | datasets.Dataset | datasets.DatasetDict,
    vocab_size: int,
    columns: Sequence[str],
    min_frequency: int,
) -> Tokenizer:
    """A trained byte-fallback BPE backend of at most ``vocab_size`` tokens."""
    reserved = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
    if vocab_size <= reserved:
        raise ValueError(f"vocab_size must exceed {reserved} (special and byte tokens), got {vocab_size}.")
    backend = _new_backend()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(BYTE_TOKENS),
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        # Without a limit the trainer keeps every character of the texts even past vocab_size (300 asked, 330
        # made); with it the rarest characters are left to byte fallback. A limit above the alphabet changes nothing.
        limit_alphabet=vocab_size - reserved,
        show_progress=False,
    )
    backend.train_from_iterator(_text_batches(texts, columns), trainer=trainer)
    backend = _with_byte_tokens(backend)
    if backend.get_vocab_size() > vocab_size:
        raise ValueError(f"Training made {backend.get_vocab_size()} tokens although vocab_size is {vocab_size}.")
    if backend.get_vocab_size() < vocab_size:
        logger.warning("The texts support only %d of the %d tokens asked for.", backend.get_vocab_size(), vocab_size)
    return backend


def _new_backend() -> Tokenizer:
    """An untrained tokenizers pipeline: NFKC, whitespace-and-punctuation split, byte-fallback BPE."""
    backend = Tokenizer(models.BPE(unk_token=UNK_TOKEN, byte_fallback=True))
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
        ]
    )
    backend.decoder = decoders.Sequence(
        [decoders.ByteFallback(), decoders.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True)]
    )
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, EOS_ID)]
    )
    return backend


def _text_batches(
    texts: Iterable[str] | datasets.Dataset | datasets.DatasetDict, columns: Sequence[str]
) -> Iterator[list[str]]:
    if isinstance(texts, datasets.DatasetDict):
        if "train" not in texts:
            raise ValueError(f"A DatasetDict to train on needs a 'train' split (splits: {', '.join(texts)}).")
        texts = texts["train"]
    if isinstance(texts, datasets.Dataset):
        missing = [c for c in columns if c not in texts.column_names]
        if missing:
            raise ValueError(f"The dataset lacks column(s) {missing}; its columns are {texts.column_names}.")
        for start in range(0, len(texts), _BATCH):
            rows = texts[start : start + _BATCH]
            yield [text for column in columns for text in rows[column]]
        return
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, not a single string.")
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    yield batch


def _with_byte_tokens(backend: Tokenizer) -> Tokenizer:
    """Append the ``<0xNN>`` tokens to the BPE vocabulary, which byte fallback needs there."""
    state = json.loads(backend.to_str())
    vocab = state["model"]["vocab"]
    for token in BYTE_TOKENS:
        vocab.setdefault(token, len(vocab))
    return Tokenizer.from_str(json.dumps(state))


def wrap_tokenizer(backend: Tokenizer, model_max_length: int = DEFAULT_MODEL_MAX_LENGTH) -> PreTrainedTokenizerFast:
    """The ``transformers`` tokenizer around a trained backend, checked against the id convention."""
    tokenizer = PreTrainedTokenizerFast(**_wrapper_settings(backend, model_max_length))
    check_special_tokens(tokenizer)
    return tokenizer


def wrap_tokenizer_pair(
    source: Tokenizer, target: Tokenizer, model_max_length: int = DEFAULT_MODEL_MAX_LENGTH
) -> Seq2SeqBPETokenizer:
    """The one ``transformers`` tokenizer around a source and a target backend, checked on both sides."""
    tokenizer = Seq2SeqBPETokenizer(target_tokenizer_object=target, **_wrapper_settings(source, model_max_length))
    check_special_tokens(tokenizer)
    return tokenizer


def _wrapper_settings(backend: Tokenizer, model_max_length: int) -> dict[str, Any]:
    """Constructor arguments that give a wrapped backend the project's special tokens and padding."""
    return {
        "tokenizer_object": backend,
        "pad_token": PAD_TOKEN,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": UNK_TOKEN,
        "model_max_length": model_max_length,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
    }


def encode_pairs_within_limits(
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    targets: Sequence[str],
    max_source_tokens: int,
    max_target_tokens: int,
) -> dict[str, list]:
    """``input_ids``, ``labels`` and padded ``length`` (the longer side) of the pairs within the token limits.

    The one rule for which training pairs are kept, shared by the tokenized cache (map-style) and the stream.
    """
    encoded = tokenizer(list(sources), text_target=list(targets))
    kept: dict[str, list] = {"input_ids": [], "labels": [], "length": []}
    for source, target in zip(encoded["input_ids"], encoded["labels"]):
        if len(source) <= max_source_tokens and len(target) <= max_target_tokens:
            kept["input_ids"].append(source)
            kept["labels"].append(target)
            kept["length"].append(max(len(source), len(target)))
    return kept


def has_separate_vocabularies(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether source and target ids come from two vocabularies (a :class:`Seq2SeqBPETokenizer`, or its remote code)."""
    return isinstance(getattr(tokenizer, "target_vocab_size", None), int)


def target_vocab_size_of(tokenizer: PreTrainedTokenizerBase) -> int:
    """Size of the vocabulary labels and generated ids come from: the target one of a pair, else the joint one."""
    return tokenizer.target_vocab_size if has_separate_vocabularies(tokenizer) else len(tokenizer)


def check_special_tokens(tokenizer: PreTrainedTokenizerBase, name: str = "the tokenizer") -> None:
    """Raise unless the tokenizer follows the project's special-token ids and appends ``</s>``, on both sides."""
    problems = []
    for role, token, token_id in zip(("pad", "bos", "eos", "unk"), SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID, UNK_ID)):
        found, found_id = getattr(tokenizer, f"{role}_token"), getattr(tokenizer, f"{role}_token_id")
        if (found, found_id) != (token, token_id):
            problems.append(f"{role}_token is {found!r} with id {found_id!r}, expected {token!r} with id {token_id}")
    if tokenizer("a")["input_ids"][-1:] != [EOS_ID]:
        problems.append(f"encoded text does not end with {EOS_TOKEN} (id {EOS_ID})")
    if has_separate_vocabularies(tokenizer):
        target_vocab = tokenizer.get_target_vocab()
        problems.extend(
            f"the target vocabulary gives {token!r} id {target_vocab.get(token)!r}, expected {token_id}"
            for token, token_id in zip(SPECIAL_TOKENS, (PAD_ID, BOS_ID, EOS_ID, UNK_ID))
            if target_vocab.get(token) != token_id
        )
        if tokenizer(text_target="a")["input_ids"][-1:] != [EOS_ID]:
            problems.append(f"encoded target text does not end with {EOS_TOKEN} (id {EOS_ID})")
    if problems:
        raise ValueError(f"{name} does not follow the hf_attn token convention: " + "; ".join(problems) + ".")


TOKENIZER_JSON_FILES = (TOKENIZER_CONFIG_FILE, SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE, "special_tokens_map.json")


def check_tokenizer_json(folder: str | os.PathLike[str]) -> None:
    """Raise a ValueError naming the file when a saved tokenizer's JSON file is damaged (json's error names none)."""
    check_json_files(folder, TOKENIZER_JSON_FILES)


def required_tokenizer_files(folder: str | os.PathLike[str]) -> tuple[str, ...]:
    """The vocabulary files a saved tokenizer folder needs: ``tokenizer.json``, and the target one for a pair.

    A folder of a tokenizer that keeps its vocabulary in files of its own (Marian's ``source.spm``,
    ``target.spm`` and ``vocab.json``) and has no ``tokenizer.json`` needs what its class
    needs: transformers names those files when they are missing.
    """
    config_file = Path(folder) / TOKENIZER_CONFIG_FILE
    config = read_json_file(config_file) if config_file.is_file() else {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_file} is damaged: it must hold a JSON object, found {type(config).__name__}.")
    tokenizer_class = config.get("tokenizer_class")
    if tokenizer_class == Seq2SeqBPETokenizer.__name__:
        return (SOURCE_TOKENIZER_FILE, TARGET_TOKENIZER_FILE)
    if tokenizer_class not in (None, *FAST_TOKENIZER_CLASSES) and not (Path(folder) / SOURCE_TOKENIZER_FILE).is_file():
        return ()
    return (SOURCE_TOKENIZER_FILE,)


FAST_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def load_tokenizer(path: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """A tokenizer saved with ``save_pretrained`` (a folder, or a Hub repository id) or a SentencePiece ``.model``.

    The project's joint tokenizers load as ``PreTrainedTokenizerFast``, pairs as
    :class:`Seq2SeqBPETokenizer`, others as their own class (``AutoTokenizer``). Every one is
    checked to have what a model needs (:func:`check_usable_tokenizer`), and made to append ``eos``.
    """
    local = Path(path).expanduser()
    if local.suffix == SENTENCEPIECE_SUFFIX and local.is_file():
        return ready_for_seq2seq(load_sentencepiece_model(local), name=f"The SentencePiece model {path}")
    if local.exists():
        if not local.is_dir():
            raise NotADirectoryError(f"{local} is a file; expected a tokenizer folder written by save_pretrained.")
        missing = [name for name in required_tokenizer_files(local) if not (local / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{local} has no {' and '.join(missing)}; expected a folder written by save_pretrained."
            )
        check_tokenizer_json(local)
    elif looks_like_local_path(str(path)):
        raise FileNotFoundError(f"No tokenizer folder at {path}.")
    tokenizer = load_pretrained_tokenizer(path, exists_locally=local.exists())
    if has_separate_vocabularies(tokenizer):  # only the project makes pairs: they keep its id convention
        check_special_tokens(tokenizer, name=f"The tokenizer at {path}")
        return tokenizer
    return ready_for_seq2seq(tokenizer, name=f"The tokenizer at {path}")


SENTENCEPIECE_SUFFIX = ".model"


def load_sentencepiece_model(path: Path) -> PreTrainedTokenizerFast:
    """A fast tokenizer converted from a SentencePiece ``.model`` (its pad/bos/eos/unk pieces become special tokens).

    The conversion (transformers' own, as for Hub models that ship only a ``.model``) reads the
    file with ``sentencepiece`` and ``protobuf``: the ``sentencepiece`` extra installs both.
    """
    try:
        import google.protobuf  # noqa: F401 (transformers' converter parses the model with it)
        import sentencepiece
    except ImportError as error:
        raise ImportError(
            f"Reading the SentencePiece model {path} needs the sentencepiece and protobuf packages: "
            "pip install 'hf-attn[sentencepiece]'."
        ) from error
    try:
        processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
        settings = PreTrainedTokenizerFast.convert_to_native_format(vocab_file=str(path))
    except Exception as error:  # sentencepiece's and protobuf's parse errors name no file
        raise ValueError(f"{path} is not a readable SentencePiece model ({type(error).__name__}: {error}).") from error
    roles = {"pad": processor.pad_id(), "bos": processor.bos_id(), "eos": processor.eos_id(), "unk": processor.unk_id()}
    special = {f"{role}_token": processor.id_to_piece(index) for role, index in roles.items() if index >= 0}
    return PreTrainedTokenizerFast(**{**settings, **special}, padding_side="right", clean_up_tokenization_spaces=False)


def check_usable_tokenizer(tokenizer: PreTrainedTokenizerBase, name: str = "the tokenizer") -> None:
    """Raise naming each special token a seq2seq model needs that the tokenizer lacks, and how to add it.

    A model pads batches with ``pad`` and ends every sentence (and generation) with ``eos``;
    ``bos`` is optional (the decoder then starts from ``pad``).
    """
    missing = [role for role in ("pad", "eos") if getattr(tokenizer, f"{role}_token_id", None) is None]
    if missing:
        examples = ", ".join(f"'{role}_token': '{EXAMPLE_TOKENS[role]}'" for role in missing)
        raise ValueError(
            f"{name} has no {' and no '.join(f'{role}_token' for role in missing)}, which a translation model "
            f"needs. Name an existing token (AutoTokenizer.from_pretrained(path, {missing[0]}_token=...)) or add "
            f"one: tokenizer.add_special_tokens({{{examples}}}); tokenizer.save_pretrained(folder) "
            "(a new token grows the vocabulary)."
        )


EXAMPLE_TOKENS = {"pad": PAD_TOKEN, "eos": EOS_TOKEN}


def ready_for_seq2seq(tokenizer: PreTrainedTokenizerBase, name: str) -> PreTrainedTokenizerBase:
    """The tokenizer, checked (:func:`check_usable_tokenizer`) and appending ``eos`` to every encoded text.

    Sources and labels must end with ``eos`` (the model learns to stop there). A fast tokenizer
    that does not append it gets a post-processor that does, saved with it in ``tokenizer.json``,
    so training, ``generate``, the pipeline and exported engines all encode alike.
    """
    check_usable_tokenizer(tokenizer, name)
    if _appends_eos(tokenizer):
        return tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            f"{name} ({type(tokenizer).__name__}) does not end encoded text with its eos_token "
            f"{tokenizer.eos_token!r}, and only a fast tokenizer can be made to: use its fast version."
        )
    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    appends_eos = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A $B {eos}", special_tokens=[(eos, eos_id)])
    existing = backend.post_processor
    backend.post_processor = appends_eos if existing is None else processors.Sequence([existing, appends_eos])
    if not _appends_eos(tokenizer):
        raise ValueError(f"{name} does not end encoded text with {eos!r} even after a post-processor appends it.")
    logger.info("%s does not append %r; hf_attn appends it to every encoded text.", name, eos)
    return tokenizer


def _appends_eos(tokenizer: PreTrainedTokenizerBase) -> bool:
    return tokenizer("a")["input_ids"][-1:] == [tokenizer.eos_token_id]


def decoder_start_token_id_of(tokenizer: PreTrainedTokenizerBase) -> int:
    """The decoder's first input: ``bos`` where the tokenizer has one, else ``pad`` (as T5 and Marian do)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id


def model_settings_from_tokenizer(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The model config fields a tokenizer decides: vocabulary sizes and special ids."""
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": decoder_start_token_id_of(tokenizer),
    }
    if has_separate_vocabularies(tokenizer):
        settings.update(decoder_vocab_size=tokenizer.target_vocab_size, share_encoder_decoder_embeddings=False)
    return settings


def looks_like_local_path(name: str) -> bool:
    """True for names that cannot be Hub repo ids ("owner/name"): absolute, relative or nested paths."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def hub_lookup_failed(name: str, what: str, error: Exception) -> OSError:
    """The error for a name that is no local folder and no Hub repository that could be reached.

    transformers then says only that it could not connect to huggingface.co, which hides the
    likelier cause: a mistyped folder name.
    """
    reason = str(error).strip().split("\n")[0]
    return OSError(
        f"{name!r} is neither a local {what} folder (there is no {Path(name).expanduser().absolute()}) nor a "
        f"reachable Hub repository ({reason})"
    )


def load_pretrained_tokenizer(path: str | os.PathLike[str], exists_locally: bool) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained(path)`` with errors that name the folder (or both places a name may be)."""
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except OSError as error:
        if not exists_locally:
            raise hub_lookup_failed(str(path), "tokenizer", error) from error
        raise
    except Exception as error:  # the tokenizers library's parse errors, KeyErrors of incomplete files…
        raise ValueError(
            f"The tokenizer in {path} is damaged and cannot be loaded ({type(error).__name__}: {error})."
        ) from error


def check_tokenizer_matches_config(tokenizer: PreTrainedTokenizerBase, config: Any) -> None:
    """Raise if a model config's vocabulary sizes or special ids differ from the tokenizer's.

    Works for any config with ``vocab_size``, ``pad_token_id``, ``bos_token_id``,
    ``eos_token_id`` and ``decoder_start_token_id`` (:func:`model_settings_from_tokenizer`). The
    config's target vocabulary (``target_vocab_size``, else ``decoder_vocab_size``, else
    ``vocab_size``) must match the tokenizer's target side, and a tokenizer pair needs
    ``share_encoder_decoder_embeddings=False``.
    """
    needed = model_settings_from_tokenizer(tokenizer)
    needed.pop("decoder_vocab_size", None)  # compared as target_vocab_size, whichever field the config uses
    needed["target_vocab_size"] = target_vocab_size_of(tokenizer)
    found = {field: getattr(config, field, None) for field in needed}
    found["target_vocab_size"] = _config_target_vocab_size(config)
    problems = [
        f"config.{field} is {found[field]!r} but the tokenizer needs {value!r}"
        for field, value in needed.items()
        if found[field] != value
    ]
    if problems:
        raise ValueError(
            "The tokenizer does not match the model config: "
            + "; ".join(problems)
            + ". Build the config from the tokenizer, or load the tokenizer saved with the model."
        )


def _config_target_vocab_size(config: Any) -> int | None:
    """The size of a config's output vocabulary, whichever of the usual fields names it."""
    for field in ("target_vocab_size", "decoder_vocab_size"):
        if getattr(config, field, None) is not None:
            return getattr(config, field)
    return getattr(config, "vocab_size", None)
