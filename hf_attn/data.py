"""Parallel data as ``datasets.DatasetDict``: the bundled Bible corpus, or the user's own.

Every loader returns the same shape, splits ``train``/``validation``/``test`` with text
columns ``source`` and ``target`` plus an ``id``, so training and evaluation never need to
know where the pairs came from. Files are checked as they are read: a bad line fails with
the file name and line number instead of surfacing later as a shape error.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import itertools
import json
import logging
import math
import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

logger = logging.getLogger(__name__)

BIBLE_CORPUS_PATH = Path(__file__).resolve().parent / "resources" / "kjv_rv1909.tsv.gz"
BIBLE_COLUMNS = ("id", "book", "chapter", "verse", "split", "en", "es")
BIBLE_LANGUAGES = ("en", "es")
SPLITS = ("train", "validation", "test")

PathLike: TypeAlias = str | os.PathLike[str]
# One file (TSV, JSONL), a save_to_disk directory, or an aligned pair of plain-text files.
DataSource: TypeAlias = PathLike | tuple[PathLike, PathLike]

_BIBLE_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "book": datasets.Value("string"),
        "chapter": datasets.Value("int32"),
        "verse": datasets.Value("int32"),
        "source": datasets.Value("string"),
        "target": datasets.Value("string"),
    }
)
_PAIR_FEATURES = datasets.Features(
    {"id": datasets.Value("string"), "source": datasets.Value("string"), "target": datasets.Value("string")}
)


def load_bible_corpus(
    *,
    source_lang: str = "en",
    target_lang: str = "es",
    max_words: int | None = None,
    filter_eval_splits: bool = False,
) -> datasets.DatasetDict:
    """The bundled KJV / Reina-Valera 1909 verse pairs with their chapter-held-out splits.

    ``source_lang``/``target_lang`` pick the direction ("en"->"es" by default). ``max_words``
    drops pairs with more whitespace-separated words than that on either side, from the
    training split only unless ``filter_eval_splits``: evaluation then still covers long
    verses, so every model is scored on the same sentences.
    """
    if sorted((source_lang, target_lang)) != sorted(BIBLE_LANGUAGES):
        raise ValueError(
            f"source_lang and target_lang must be 'en' and 'es' in some order, got {source_lang!r}, {target_lang!r}."
        )
    fields = {"id": "id", "book": "book", "chapter": "chapter", "verse": "verse"}
    fields.update(source=source_lang, target=target_lang)
    columns: dict[str, dict[str, list]] = {split: {name: [] for name in _BIBLE_FEATURES} for split in SPLITS}
    for record in _read_bible_rows(BIBLE_CORPUS_PATH):
        for name, field in fields.items():
            columns[record["split"]][name].append(record[field])
    corpus = datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(columns[split], features=_BIBLE_FEATURES) for split in SPLITS}
    )
    return filter_by_length(corpus, max_words, SPLITS if filter_eval_splits else ("train",))


@functools.lru_cache(maxsize=2)
def _read_bible_rows(path: Path) -> tuple[dict[str, str | int], ...]:
    """Rows of the shipped corpus file, checked; cached since several callers load it per run."""
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as handle:
        lines = handle.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or tuple(lines[0].split("\t")) != BIBLE_COLUMNS:
        raise ValueError(f"{path}: expected the header {' '.join(BIBLE_COLUMNS)}; the corpus file is damaged.")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        values = line.split("\t")
        record: dict[str, str | int] = dict(zip(BIBLE_COLUMNS, values))
        if len(values) != len(BIBLE_COLUMNS) or record["split"] not in SPLITS or not record["en"] or not record["es"]:
            raise ValueError(f"{path}, line {number}: malformed corpus row; the corpus file is damaged.")
        record["chapter"], record["verse"] = int(record["chapter"]), int(record["verse"])
        rows.append(record)
    return tuple(rows)


def filter_by_length(
    corpus: datasets.DatasetDict, max_words: int | None, splits: Sequence[str] = ("train",)
) -> datasets.DatasetDict:
    """Drop pairs with more than ``max_words`` whitespace-separated words on either side."""
    if max_words is None:
        return corpus
    if max_words < 1:
        raise ValueError(f"max_words must be a positive integer or None, got {max_words!r}.")

    def short_enough(batch: dict[str, list[str]]) -> list[bool]:
        return [
            len(source.split()) <= max_words and len(target.split()) <= max_words
            for source, target in zip(batch["source"], batch["target"])
        ]

    filtered = datasets.DatasetDict(corpus)
    for split in splits:
        if split in corpus:
            filtered[split] = corpus[split].filter(short_enough, batched=True)
            if isinstance(corpus[split], datasets.IterableDataset):
                continue  # filtered as it is read; a stream has no count to report
            kept, total = len(filtered[split]), len(corpus[split])
            logger.info("%s: kept %d of %d pairs of at most %d words", split, kept, total, max_words)
    return filtered


def load_parallel_data(
    path: DataSource | Mapping[str, DataSource],
    *,
    source_key: str = "source",
    target_key: str = "target",
    source_lang: str | None = None,
    target_lang: str | None = None,
    name: str | None = None,
    header: bool | None = None,
    validation_size: int | float = 0.05,
    test_size: int | float = 0.05,
    seed: int = 0,
    max_words: int | None = None,
    streaming: bool = False,
) -> datasets.DatasetDict:
    """The user's own sentence pairs, in the same shape as :func:`load_bible_corpus`.

    ``path`` is one of: a ``.tsv`` file (source<TAB>target per line), a ``.jsonl`` file
    (one object per line with ``source_key``/``target_key``), either optionally gzipped; a
    directory written by ``Dataset``/``DatasetDict.save_to_disk`` (columns
    ``source_key``/``target_key``); a pair of line-aligned plain-text files, given as a
    tuple or as the string ``"SOURCE_FILE,TARGET_FILE"``; or a mapping from split name to
    any of these. A TSV header is recognised when its columns are ``source_key`` and
    ``target_key`` (``header=None``), or forced on or off.

    Any other file ``datasets.load_dataset`` reads (``.parquet``, ``.csv``, ``.arrow``), a
    folder of such files, or a Hub dataset id (with its config ``name``) goes through
    ``load_dataset``; ``source_lang``/``target_lang`` then pick the languages of a
    ``translation`` column (``{"en": ..., "es": ...}``, as wmt14 or opus-100 hold) instead
    of ``source_key``/``target_key``.

    Splits the data lacks are carved from ``train`` with a seeded shuffle:
    ``validation_size``/``test_size`` are counts (int) or fractions (float); 0 leaves the
    split out. ``max_words`` filters the training split as in :func:`load_bible_corpus`.

    With ``streaming`` the ``train`` split is a ``datasets.IterableDataset`` read (and checked)
    as it is iterated, never held whole in memory or the cache; the other splits are read
    into memory as usual. A stream cannot be carved, so the data must then name its
    ``validation`` split (``validation_size``/``test_size`` are ignored; a missing ``test``
    split stays missing).
    """
    if (source_lang is None) != (target_lang is None):
        raise ValueError("Give both `source_lang` and `target_lang` (the keys of a `translation` column), or neither.")
    columns = _Columns(source_key, target_key, source_lang, target_lang, name)
    if streaming:
        corpus = _load_streaming(path, columns, header)
    elif isinstance(path, Mapping):
        corpus = datasets.DatasetDict({split: _load_split(source, columns, header) for split, source in path.items()})
    else:
        corpus = _load_source(path, columns, header)
    if not streaming:
        corpus = _carve_missing_splits(corpus, validation_size, test_size, seed)
    return filter_by_length(corpus, max_words)


def _load_streaming(
    path: DataSource | Mapping[str, DataSource], columns: _Columns, header: bool | None
) -> datasets.DatasetDict:
    """``train`` as a stream, the other splits in memory; refused without a ``validation`` split to evaluate on."""
    streamed = dataclasses.replace(columns, streaming=True)
    if isinstance(path, Mapping):
        corpus = datasets.DatasetDict(
            {
                split: _load_split(source, streamed if split == "train" else columns, header)
                for split, source in path.items()
            }
        )
    else:
        corpus = datasets.DatasetDict(
            {
                split: dataset if split == "train" else _materialise(dataset)
                for split, dataset in _load_source(path, streamed, header).items()
            }
        )
    if "train" not in corpus:
        raise ValueError(f"The data has no 'train' split (splits: {', '.join(corpus)}).")
    if "validation" not in corpus:
        raise ValueError(
            f"`data.streaming` reads the training pairs as a stream, from which no validation split can be carved, "
            f"and the data has none (splits: {', '.join(corpus)}); name one, e.g. "
            "`data: {streaming: true, splits: {train: train.tsv, validation: dev.tsv}}`."
        )
    return corpus


def _materialise(split: datasets.Dataset | datasets.IterableDataset) -> datasets.Dataset:
    """An evaluation split of a stream, read into memory (they are small: the model is scored on a few hundred)."""
    if isinstance(split, datasets.Dataset):
        return split
    return datasets.Dataset.from_list(list(split), features=_PAIR_FEATURES)


def first_examples(
    split: datasets.Dataset | datasets.IterableDataset, count: int
) -> datasets.Dataset | datasets.IterableDataset:
    """The first ``count`` pairs of a split, or of a stream (``max_train_examples``)."""
    if isinstance(split, datasets.IterableDataset):
        return split.take(count)
    return split.select(range(min(count, len(split))))


@dataclass(frozen=True)
class _Columns:
    """Where the texts are: two columns, or two language keys of a ``translation`` column; a dataset config;
    and whether to read them as a stream (``datasets.IterableDataset``) instead of into an Arrow file."""

    source_key: str
    target_key: str
    source_lang: str | None = None
    target_lang: str | None = None
    name: str | None = None
    streaming: bool = False


# File suffixes read by the datasets packaged builder of the same role (TSV and JSONL have checked readers here).
LOAD_DATASET_BUILDERS = {"parquet": "parquet", "csv": "csv", "arrow": "arrow"}


def _load_split(source: DataSource, columns: _Columns, header: bool | None) -> datasets.Dataset:
    corpus = _load_source(source, columns, header)
    if list(corpus) != ["train"]:
        raise ValueError(
            f"{source} holds several splits ({', '.join(corpus)}); a split mapping needs one dataset per entry."
        )
    return corpus["train"]


def _load_source(source: DataSource, columns: _Columns, header: bool | None) -> datasets.DatasetDict:
    """Read one data source into a DatasetDict (a single file becomes the ``train`` split)."""
    path = Path(source) if not isinstance(source, (tuple, list)) else None
    streaming = columns.streaming
    if path is None or (not path.exists() and "," in str(source)):
        pair = source if path is None else str(source).split(",", 1)
        return _as_train(_load_text_pair(*(Path(p) for p in pair), streaming=streaming))
    source_key, target_key = columns.source_key, columns.target_key
    if not path.exists():
        if _looks_like_hub_id(str(source)):
            return _standardise_all(str(source), _load_hub_dataset(str(source), columns.name, streaming), columns)
        raise FileNotFoundError(f"No such file or directory: {path}")
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return _standardise_all(str(path), _load_saved(path, streaming), columns)
        try:
            loaded = _load_with_datasets(str(path), columns.name, streaming=streaming)
        except (datasets.data_files.EmptyDatasetError, FileNotFoundError) as error:
            raise ValueError(
                f"{path} is a directory but not a dataset written by save_to_disk, "
                f"nor a folder of data files load_dataset reads ({error})."
            ) from error
        return _standardise_all(str(path), loaded, columns)
    suffix = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    if suffix in LOAD_DATASET_BUILDERS:
        loaded = _load_with_datasets(LOAD_DATASET_BUILDERS[suffix], None, data_files=str(path), streaming=streaming)
        return _standardise_all(str(path), loaded, columns)
    keys = {"source_key": source_key, "target_key": target_key}
    if suffix in ("tsv", "tab"):
        return _as_train(_pairs_dataset(_read_tsv, path, streaming, **keys, header=header))
    if suffix in ("jsonl", "json"):
        return _as_train(_pairs_dataset(_read_jsonl, path, streaming, **keys))
    raise ValueError(
        f"Cannot tell the format of {path}: use a .tsv, .jsonl, .csv, .parquet or .arrow file, a dataset folder, "
        "or a pair of aligned plain-text files ('source.txt,target.txt')."
    )


def _load_text_pair(source_path: Path, target_path: Path, streaming: bool = False) -> datasets.Dataset:
    for path in (source_path, target_path):
        if not path.is_file():
            raise FileNotFoundError(f"No such file: {path}")
    return _pairs_dataset(_read_text_pair, source_path, streaming, target_path=target_path)


def _as_train(dataset: datasets.Dataset | datasets.IterableDataset) -> datasets.DatasetDict:
    return datasets.DatasetDict({"train": dataset})


Pair: TypeAlias = dict[str, str]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file (gzipped if named ``.gz``), read as a stream.

    Only one line is held at a time, so a file of millions of lines costs no memory here;
    a file with no text at all is refused once it has been read to its end.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    has_text = False
    leading: list[tuple[int, str]] = []
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as error:
                    raise ValueError(
                        f"{path} is not UTF-8 text ({error.reason} at byte {error.start} of line {number})."
                    ) from None
                line = line.removesuffix("\n").rstrip("\r")
                if not has_text:
                    # Blank lines before the first text are held back: an all-blank file is "empty".
                    leading.append((number, line))
                    has_text = bool(line.strip())
                    if has_text:
                        yield from leading
                    continue
                yield number, line
    except GeneratorExit:
        # A stream left unfinished (data.streaming) is closed here, possibly at interpreter exit, when the
        # module globals the next clause names may already be gone.
        raise
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(f"{path} is not a complete gzip file ({error}); it is damaged or truncated.") from None
    if not has_text:
        raise ValueError(f"{path} is empty.")


def _require_text(path: Path, number: int, text: str, what: str) -> None:
    if not text.strip():
        raise ValueError(f"{path}, line {number}: {what} is empty.")


# Rows per Arrow record batch of the files this package writes (pairs, tokenized pairs). Opening a memory-mapped
# file reads every batch's header, and each read maps about 64 KB around it (the kernel's fault-around): datasets'
# default of 1,000 rows made opening a 3M-pair corpus map ~170 MB; 10,000-row batches (~5 MB of text) map a tenth.
ROWS_PER_RECORD_BATCH = 10_000


def _pairs_dataset(
    reader: Callable[..., Iterator[Pair]], path: Path, streaming: bool = False, **reader_kwargs: object
) -> datasets.Dataset | datasets.IterableDataset:
    """Pairs streamed from ``reader`` into an Arrow file in the datasets cache, memory-mapped.

    The cache key covers the reader, its arguments and the files' size and modification time,
    so a second run (or another process) on unchanged files reuses the Arrow file and its
    tokenized ``map`` caches. Errors raised while reading keep their own message (file, line).
    With ``streaming`` the same generator feeds an ``IterableDataset`` instead: nothing is
    written, and a bad line fails when the stream reaches it, with the same message.
    """
    files = [Path(p) for p in (path, reader_kwargs.get("target_path")) if p is not None]
    # A string: datasets would shard a list-valued generator argument across jobs.
    stamp = ";".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    gen_kwargs = {"reader": reader, "path": path, "stamp": stamp, "reader_kwargs": reader_kwargs}
    if streaming:
        return datasets.IterableDataset.from_generator(_checked_pairs, features=_PAIR_FEATURES, gen_kwargs=gen_kwargs)
    try:
        dataset = datasets.Dataset.from_generator(
            _checked_pairs, features=_PAIR_FEATURES, gen_kwargs=gen_kwargs, writer_batch_size=ROWS_PER_RECORD_BATCH
        )
    except datasets.exceptions.DatasetGenerationError as error:
        cause = error.__cause__
        raise (cause if isinstance(cause, (ValueError, OSError)) else error) from None
    return dataset


def _checked_pairs(
    reader: Callable[..., Iterator[Pair]], path: Path, stamp: str, reader_kwargs: dict[str, object]
) -> Iterator[Pair]:
    """The reader's pairs, refusing a file that holds none (``stamp`` only keys the cache)."""
    empty = True
    for pair in reader(path, **reader_kwargs):
        empty = False
        yield pair
    if empty:
        raise ValueError(f"{path} has no sentence pairs.")


def _read_tsv(path: Path, source_key: str, target_key: str, header: bool | None) -> Iterator[Pair]:
    for number, line in _lines(path):
        _require_text(path, number, line, "the line")
        columns = line.split("\t")
        if number == 1 and (header or (header is None and [c.strip() for c in columns] == [source_key, target_key])):
            continue
        if len(columns) != 2:
            raise ValueError(
                f"{path}, line {number}: expected 2 tab-separated columns (source<TAB>target), found {len(columns)}."
            )
        _require_text(path, number, columns[0], "the source text")
        _require_text(path, number, columns[1], "the target text")
        yield {"id": f"{path.name}:{number}", "source": columns[0].strip(), "target": columns[1].strip()}


def _read_jsonl(path: Path, source_key: str, target_key: str) -> Iterator[Pair]:
    for number, line in _lines(path):
        _require_text(path, number, line, "the line")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: invalid JSON ({error.msg}).") from error
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, found {type(record).__name__}.")
        for key in (source_key, target_key):
            if key not in record:
                raise ValueError(f"{path}, line {number}: missing key {key!r} (keys: {', '.join(map(repr, record))}).")
            if not isinstance(record[key], str):
                found = type(record[key]).__name__
                raise ValueError(f"{path}, line {number}: {key!r} must be a string, found {found}.")
            _require_text(path, number, record[key], f"{key!r}")
        yield {
            "id": str(record.get("id", f"{path.name}:{number}")),
            "source": record[source_key].strip(),
            "target": record[target_key].strip(),
        }


def _read_text_pair(path: Path, target_path: Path) -> Iterator[Pair]:
    """Pairs of two line-aligned files, read side by side; a length mismatch names both counts."""
    missing = object()
    source_lines, target_lines = _lines(path), _lines(target_path)
    for number, (source, target) in enumerate(itertools.zip_longest(source_lines, target_lines, fillvalue=missing), 1):
        if source is missing or target is missing:
            source_count = number - 1 + (source is not missing) + sum(1 for _ in source_lines)
            target_count = number - 1 + (target is not missing) + sum(1 for _ in target_lines)
            raise ValueError(
                f"{path} has {source_count} lines but {target_path} has {target_count}: "
                "the two files must be aligned line by line."
            )
        _require_text(path, number, source[1], "the line")
        _require_text(target_path, number, target[1], "the line")
        yield {"id": f"{path.name}:{number}", "source": source[1].strip(), "target": target[1].strip()}


def _load_saved(path: Path, streaming: bool = False) -> datasets.DatasetDict:
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as error:
        raise ValueError(f"{path} is a directory but not a dataset written by save_to_disk ({error}).") from error
    corpus = loaded if isinstance(loaded, datasets.DatasetDict) else _as_train(loaded)
    if streaming:
        return datasets.DatasetDict({split: dataset.to_iterable_dataset() for split, dataset in corpus.items()})
    return corpus


def _looks_like_hub_id(text: str) -> bool:
    """``name`` or ``owner/name`` not naming a data file: what a Hub dataset id looks like."""
    parts = text.split("/")
    suffix = parts[-1].lower().removesuffix(".gz").rsplit(".", 1)[-1]
    data_suffixes = ("tsv", "tab", "jsonl", "json", "txt", *LOAD_DATASET_BUILDERS)
    return 1 <= len(parts) <= 2 and all(parts) and suffix not in data_suffixes


def _load_hub_dataset(dataset_id: str, name: str | None, streaming: bool = False) -> datasets.DatasetDict:
    """A Hub dataset through ``load_dataset``; a failure names the id and whether the Hub could be reached."""
    try:
        return _load_with_datasets(dataset_id, name, streaming=streaming)
    except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError) as error:
        raise ValueError(
            f"Cannot load {dataset_id!r}: it is no local file or folder, and as a Hugging Face Hub dataset it could "
            f"not be loaded: the Hub is unreachable or has no such dataset (offline, or a typo?): {error}"
        ) from error


def _load_with_datasets(path: str, name: str | None, **kwargs: object) -> datasets.DatasetDict:
    """``datasets.load_dataset`` of every split: Arrow files in the datasets cache, memory-mapped (or streams)."""
    loaded = datasets.load_dataset(path, name, **kwargs)
    if not isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        raise ValueError(f"{path}: expected a dataset of splits, got {type(loaded).__name__}.")
    return loaded


def _standardise_all(where: str, corpus: datasets.DatasetDict, columns: _Columns) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {split: _standardise(Path(where), split, dataset, columns) for split, dataset in corpus.items()}
    )


def _from_translation_column(path: Path, split: str, dataset: datasets.Dataset, columns: _Columns) -> datasets.Dataset:
    """``source``/``target`` taken from the ``translation`` column's ``source_lang``/``target_lang`` keys."""
    if "translation" not in dataset.column_names:
        raise ValueError(
            f"{path} ({split}): `source_lang`/`target_lang` need a 'translation' column; "
            f"columns are {', '.join(map(repr, dataset.column_names))}."
        )
    feature = dataset.features["translation"]
    available = list(getattr(feature, "languages", None) or (feature if isinstance(feature, dict) else []))
    if not available and len(dataset):
        available = list(dataset[0]["translation"])
    missing = [lang for lang in (columns.source_lang, columns.target_lang) if lang not in available]
    if missing:
        raise ValueError(
            f"{path} ({split}): language key(s) {', '.join(map(repr, missing))} not in the 'translation' column; "
            f"its languages are {', '.join(map(repr, available))}."
        )

    def split_languages(batch: dict[str, list]) -> dict[str, list[str]]:
        pairs = batch["translation"]
        return {"source": [p[columns.source_lang] for p in pairs], "target": [p[columns.target_lang] for p in pairs]}

    return dataset.map(split_languages, batched=True, remove_columns=["translation"], desc="Reading translation")


def _standardise(
    path: Path, split: str, dataset: datasets.Dataset | datasets.IterableDataset, columns: _Columns
) -> datasets.Dataset | datasets.IterableDataset:
    """Rename the text columns to source/target, add ids if missing, and check the texts."""
    if isinstance(dataset, datasets.IterableDataset):
        return _standardise_stream(path, split, dataset, columns)
    if columns.source_lang is not None:
        dataset = _from_translation_column(path, split, dataset, columns)
        source_key, target_key = "source", "target"
    else:
        source_key, target_key = columns.source_key, columns.target_key
    missing = [key for key in (source_key, target_key) if key not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{path} ({split}): missing column(s) {', '.join(map(repr, missing))}; "
            f"columns are {', '.join(map(repr, dataset.column_names))}."
        )
    dataset = dataset.rename_columns({k: v for k, v in ((source_key, "source"), (target_key, "target")) if k != v})
    _check_texts(path, split, dataset)
    if "id" not in dataset.column_names:
        dataset = dataset.add_column("id", [f"{split}:{row}" for row in range(len(dataset))])
    return dataset


def _standardise_stream(
    path: Path, split: str, dataset: datasets.IterableDataset, columns: _Columns
) -> datasets.IterableDataset:
    """:func:`_standardise` for a stream: each row is checked as it is read (a stream cannot be scanned first)."""

    def standard_pair(example: dict[str, object], row: int) -> Pair:
        if columns.source_lang is not None:
            translation = example.get("translation")
            if not isinstance(translation, dict):
                raise ValueError(
                    f"{path} ({split}): `source_lang`/`target_lang` need a 'translation' column; "
                    f"columns are {', '.join(map(repr, example))}."
                )
            keys, record = (columns.source_lang, columns.target_lang), translation
            problem = "language key(s) {} not in the 'translation' column; its languages are {}."
        else:
            keys, record = (columns.source_key, columns.target_key), example
            problem = "missing column(s) {}; columns are {}."
        missing = [key for key in keys if key not in record]
        if missing:
            listed = (", ".join(map(repr, names)) for names in (missing, record))
            raise ValueError(f"{path} ({split}): " + problem.format(*listed))
        texts = [record[key] for key in keys]
        if not all(isinstance(text, str) and text.strip() for text in texts):
            raise ValueError(f"{path} ({split}), row {row}: source and target must be non-empty strings.")
        identifier = str(example["id"]) if example.get("id") is not None else f"{split}:{row}"
        return {"id": identifier, "source": texts[0], "target": texts[1]}

    standard = dataset.map(standard_pair, with_indices=True)
    return standard.select_columns(list(_PAIR_FEATURES)).cast(_PAIR_FEATURES)


def _check_texts(path: Path, split: str, dataset: datasets.Dataset, batch_size: int = 100_000) -> None:
    """Refuse a row whose source or target is not a non-empty string, reading Arrow batches (bounded memory)."""
    for column in ("source", "target"):
        feature = dataset.features[column]
        if not isinstance(feature, datasets.Value) or feature.dtype not in ("string", "large_string"):
            raise ValueError(f"{path} ({split}): the {column} column must hold strings, found {feature}.")
    for start in range(0, len(dataset), batch_size):
        batch = dataset.with_format("arrow")[start : start + batch_size]
        bad = None
        for column in ("source", "target"):
            texts = batch[column]
            blank = pc.or_kleene(pc.is_null(texts), pc.equal(pc.utf8_trim_whitespace(texts), ""))
            blank = pc.fill_null(blank, True)
            bad = blank if bad is None else pc.or_(bad, blank)
        rows = pc.indices_nonzero(bad)
        if len(rows):
            raise ValueError(
                f"{path} ({split}), row {start + rows[0].as_py()}: source and target must be non-empty strings."
            )


def _carve_missing_splits(
    corpus: datasets.DatasetDict, validation_size: int | float, test_size: int | float, seed: int
) -> datasets.DatasetDict:
    """Take ``validation``/``test`` from ``train`` where the data does not provide them."""
    if "train" not in corpus:
        raise ValueError(f"The data has no 'train' split (splits: {', '.join(corpus)}).")
    corpus = datasets.DatasetDict(corpus)
    for split, size in (("validation", validation_size), ("test", test_size)):
        if split in corpus or not size:
            continue
        corpus["train"], corpus[split] = _hold_out(corpus["train"], split, size, seed)
    return datasets.DatasetDict({split: corpus[split] for split in (*SPLITS, *corpus) if split in corpus})


def _hold_out(
    train: datasets.Dataset, split: str, size: int | float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``train.train_test_split(test_size=size, seed=seed)``: the same rows in the same order, kept in memory.

    datasets' ``select`` turns the row numbers into a Python list (about 40 bytes a row: 120 MB at 3M pairs,
    1.6 GB at 40M, which the allocator keeps afterwards); here they stay one uint64 array (8 bytes a row).
    """
    total = len(train)
    count = math.ceil(size * total) if isinstance(size, float) else size
    if not (0 < size < (1 if isinstance(size, float) else total)) or count >= total:
        raise ValueError(
            f"Cannot take a {split} split of {size!r} from {total} training pairs: give a count of pairs below "
            f"{total} or a fraction in (0, 1) that leaves some for training."
        )
    order = np.random.default_rng(seed).permutation(total)  # train_test_split's permutation
    if train._indices is not None:  # rows of an earlier selection: map them back to rows of the table
        order = train._indices.column(0).to_numpy()[order]
    key = [train._fingerprint, split, size, seed]
    return _with_rows(train, order[count:], [*key, "train"]), _with_rows(train, order[:count], [*key, split])


def _with_rows(dataset: datasets.Dataset, rows: np.ndarray, key: list[object]) -> datasets.Dataset:
    """``dataset``'s table seen through the indices mapping ``rows``, fingerprinted by ``key`` (so map caches hit)."""
    indices = datasets.table.InMemoryTable(pa.table({"indices": pa.array(rows, type=pa.uint64())}))
    return datasets.Dataset(
        dataset.data,
        info=dataset.info.copy(),
        split=dataset.split,
        indices_table=indices,
        fingerprint=datasets.fingerprint.Hasher.hash(key),
    )


# The `data:` mapping of a training config, and the load_parallel_data argument each key sets (None: a key the
# streaming batcher reads, hf_attn.streaming).
DATA_SPEC_KEYS: dict[str, str | None] = {
    "path": "path",
    "splits": "path",
    "name": "name",
    "source_column": "source_key",
    "target_column": "target_key",
    "source_lang": "source_lang",
    "target_lang": "target_lang",
    "header": "header",
    "validation_size": "validation_size",
    "test_size": "test_size",
    "streaming": "streaming",
    "shuffle_buffer": None,
}


def check_data_spec(spec: str | Mapping[str, object]) -> None:
    """Refuse a ``data:`` value that cannot be loaded, before any model or data is built."""
    if isinstance(spec, str):
        return
    if not isinstance(spec, Mapping):
        raise ValueError(f"`data` must be a path, a Hub dataset id or a mapping, got {spec!r}.")
    unknown = [key for key in spec if key not in DATA_SPEC_KEYS]
    if unknown:
        raise ValueError(
            f"Unknown key(s) {', '.join(f'`data.{key}`' for key in unknown)}; `data` takes {', '.join(DATA_SPEC_KEYS)}."
        )
    if ("path" in spec) == ("splits" in spec):
        raise ValueError("`data` needs exactly one of `path` (a file, folder or Hub id) and `splits` (split: file).")
    if "splits" in spec and not isinstance(spec["splits"], Mapping):
        raise ValueError(f"`data.splits` must map split names to files, got {spec['splits']!r}.")
    _check_streaming_spec(spec)


def _check_streaming_spec(spec: Mapping[str, object]) -> None:
    """``streaming`` is a boolean; ``shuffle_buffer`` sizes a stream's; a stream cannot be carved into splits."""
    streaming = spec.get("streaming", False)
    if not isinstance(streaming, bool):
        raise ValueError(f"`data.streaming` must be true or false, got {streaming!r}.")
    if "shuffle_buffer" in spec:
        size = spec["shuffle_buffer"]
        if not streaming:
            raise ValueError("`data.shuffle_buffer` sizes the shuffle buffer of a stream: set `data.streaming: true`.")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"`data.shuffle_buffer` must be a positive number of pairs, got {size!r}.")
    carved = [key for key in ("validation_size", "test_size") if key in spec]
    if streaming and carved:
        raise ValueError(
            f"{' and '.join(f'`data.{key}`' for key in carved)} carve a split from the training pairs, which "
            "`data.streaming: true` cannot do (a stream is read once, in order); remove it and name an explicit "
            "validation split or file instead, e.g. `data: {streaming: true, splits: {train: train.tsv, "
            "validation: dev.tsv}}`, or a dataset that has a validation split."
        )


def data_streams(spec: str | Mapping[str, object] | None) -> bool:
    """Whether a training config's ``data:`` asks for the training pairs as a stream (``data.streaming``)."""
    return isinstance(spec, Mapping) and spec.get("streaming") is True


def load_data(spec: str | Mapping[str, object], seed: int = 0) -> datasets.DatasetDict:
    """The pairs a training config's ``data:`` names: a path or Hub id, or a mapping of :data:`DATA_SPEC_KEYS`."""
    check_data_spec(spec)
    if isinstance(spec, str):
        return load_parallel_data(spec, seed=seed)
    arguments = {DATA_SPEC_KEYS[key]: value for key, value in spec.items() if DATA_SPEC_KEYS[key] is not None}
    return load_parallel_data(seed=seed, **arguments)
