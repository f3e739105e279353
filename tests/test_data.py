"""The bundled corpus is clean, aligned and split by chapter; user data loads or fails clearly.

Expected counts are read from the shipped file itself (plain gzip + split, not through
hf_attn.data), so the tests check the loader against the file rather than against numbers
typed in here.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import pytest
import yaml
from hub_server import run_python
from tiny_seq2seq import TINY_CONFIGS

from hf_attn.data import BIBLE_CORPUS_PATH, SPLITS, load_bible_corpus, load_parallel_data
from hf_attn.tokenization import load_tokenizer
from research import corpus_build


@pytest.fixture(scope="module")
def shipped_rows() -> list[dict[str, str]]:
    with gzip.open(BIBLE_CORPUS_PATH, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@pytest.fixture(scope="module")
def corpus() -> datasets.DatasetDict:
    return load_bible_corpus()


@pytest.fixture(scope="module")
def verses(corpus) -> dict[str, dict]:
    return {row["id"]: row for split in corpus.values() for row in split}


# --- the bundled corpus --------------------------------------------------------------


def test_corpus_has_the_shipped_counts(corpus, shipped_rows):
    shipped = Counter(row["split"] for row in shipped_rows)
    assert {split: len(corpus[split]) for split in SPLITS} == {split: shipped[split] for split in SPLITS}
    assert 30_000 < len(shipped_rows) < 32_000
    for split in ("validation", "test"):
        assert 950 <= len(corpus[split]) <= 1050


def test_corpus_columns_and_types(corpus):
    for split in SPLITS:
        assert isinstance(corpus[split], datasets.Dataset)
        assert corpus[split].column_names == ["id", "book", "chapter", "verse", "source", "target"]
        assert corpus[split].features["chapter"].dtype == "int32"
    assert len({row_id for split in corpus.values() for row_id in split["id"]}) == sum(map(len, corpus.values()))


def test_no_chapter_is_in_two_splits(corpus):
    chapters = {split: set(zip(corpus[split]["book"], corpus[split]["chapter"])) for split in SPLITS}
    assert not chapters["train"] & chapters["validation"]
    assert not chapters["train"] & chapters["test"]
    assert not chapters["validation"] & chapters["test"]


def test_held_out_chapters_are_spread_over_the_bible(corpus):
    old_testament = {book.code for book in corpus_build.KJV_BOOKS[: corpus_build.OLD_TESTAMENT_BOOK_COUNT]}
    for split in ("validation", "test"):
        books = set(corpus[split]["book"])
        assert len(books) >= 15
        assert books & old_testament and books - old_testament


def test_splits_are_deterministic(corpus, shipped_rows):
    sizes = Counter(f"{row['book']}.{row['chapter']}" for row in shipped_rows)
    assignment = corpus_build.assign_splits(sizes, validation_size=1000, test_size=1000, seed=0)
    assert all(assignment[f"{row['book']}.{row['chapter']}"] == row["split"] for row in shipped_rows)
    again = load_bible_corpus()
    assert all(list(again[split]["id"]) == list(corpus[split]["id"]) for split in SPLITS)


@pytest.mark.parametrize(
    ("verse_id", "english", "spanish"),
    [
        ("GEN.1.1", "In the beginning God created", "En el principio crió Dios"),
        ("JHN.3.16", "For God so loved the world", "Porque de tal manera amó Dios al mundo"),
        ("PSA.23.1", "A Psalm of David. The LORD is my shepherd", "Salmo de David. Jehová es mi pastor"),
        ("REV.22.21", "The grace of our Lord Jesus Christ", "La gracia de nuestro Señor Jesucristo"),
    ],
)
def test_known_verses_are_aligned(verses, verse_id, english, spanish):
    assert verses[verse_id]["source"].startswith(english)
    assert verses[verse_id]["target"].startswith(spanish)


def test_text_has_no_markup_or_stray_spaces(corpus):
    problems = re.compile(r"[<>\\¶]|  |^ | $| [,.;:!?)]|[(¿¡] ")
    bad = [
        (row_id, text)
        for split in corpus.values()
        for row_id, source, target in zip(split["id"], split["source"], split["target"])
        for text in (source, target)
        if not text or problems.search(text)
    ]
    assert bad == []


def test_spanish_accents_are_decoded(corpus):
    spanish = " ".join(corpus["validation"]["target"])
    assert all(letter in spanish for letter in "áéíóúñ¿")
    assert "Ã" not in spanish


def test_reverse_direction_swaps_the_columns(corpus):
    reverse = load_bible_corpus(source_lang="es", target_lang="en")
    assert list(reverse["test"]["source"]) == list(corpus["test"]["target"])
    with pytest.raises(ValueError, match="'en' and 'es'"):
        load_bible_corpus(source_lang="en", target_lang="fr")


def test_max_words_filters_training_only_unless_asked(corpus):
    filtered = load_bible_corpus(max_words=20)
    assert 0 < len(filtered["train"]) < len(corpus["train"])
    kept = zip(filtered["train"]["source"], filtered["train"]["target"])
    assert all(len(source.split()) <= 20 and len(target.split()) <= 20 for source, target in kept)
    assert len(filtered["test"]) == len(corpus["test"])
    assert len(load_bible_corpus(max_words=20, filter_eval_splits=True)["test"]) < len(corpus["test"])


# --- the user's own data -----------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def pairs(corpus: datasets.DatasetDict, split: str = "train") -> list[tuple[str, str]]:
    return list(zip(corpus[split]["source"], corpus[split]["target"]))


NO_SPLITS = {"validation_size": 0, "test_size": 0}


def test_tsv_with_and_without_header(tmp_path):
    with_header = write(tmp_path / "a.tsv", "source\ttarget\nHello.\tHola.\nBye\tAdiós\n")
    without = write(tmp_path / "b.tsv", "Hello.\tHola.\nBye\tAdiós\n")
    for path in (with_header, without):
        corpus = load_parallel_data(path, **NO_SPLITS)
        assert pairs(corpus) == [("Hello.", "Hola."), ("Bye", "Adiós")]
        assert list(corpus) == ["train"] and corpus["train"].column_names == ["id", "source", "target"]
    assert list(load_parallel_data(with_header, **NO_SPLITS)["train"]["id"]) == ["a.tsv:2", "a.tsv:3"]
    assert len(load_parallel_data(with_header, header=False, **NO_SPLITS)["train"]) == 3


def test_gzipped_tsv(tmp_path):
    path = tmp_path / "a.tsv.gz"
    path.write_bytes(gzip.compress(b"Hello.\tHola.\n"))
    assert pairs(load_parallel_data(path, **NO_SPLITS)) == [("Hello.", "Hola.")]


def test_jsonl_with_custom_keys(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"en": "Hello.", "es": "Hola."}\n{"en": "Bye", "es": "Adiós", "id": "x"}\n')
    corpus = load_parallel_data(path, source_key="en", target_key="es", **NO_SPLITS)
    assert pairs(corpus) == [("Hello.", "Hola."), ("Bye", "Adiós")]
    assert list(corpus["train"]["id"]) == ["a.jsonl:1", "x"]


def test_aligned_text_files_as_tuple_or_comma_string(tmp_path):
    source = write(tmp_path / "src.txt", "Hello.\nBye\n")
    target = write(tmp_path / "tgt.txt", "Hola.\r\nAdiós\r\n")
    expected = [("Hello.", "Hola."), ("Bye", "Adiós")]
    assert pairs(load_parallel_data((source, target), **NO_SPLITS)) == expected
    assert pairs(load_parallel_data(f"{source},{target}", **NO_SPLITS)) == expected


def test_saved_dataset_directories(tmp_path):
    dataset = datasets.Dataset.from_dict({"en": ["Hello.", "Bye"], "es": ["Hola.", "Adiós"]})
    datasets.DatasetDict({"train": dataset, "validation": dataset.select([0])}).save_to_disk(str(tmp_path / "dict"))
    dataset.save_to_disk(str(tmp_path / "single"))
    corpus = load_parallel_data(tmp_path / "dict", source_key="en", target_key="es", test_size=0)
    assert list(corpus) == ["train", "validation"]
    assert pairs(corpus, "validation") == [("Hello.", "Hola.")]
    assert list(corpus["train"]["id"]) == ["train:0", "train:1"]
    single = load_parallel_data(tmp_path / "single", source_key="en", target_key="es", **NO_SPLITS)
    assert pairs(single) == [("Hello.", "Hola."), ("Bye", "Adiós")]


def test_split_mapping_and_carved_splits(tmp_path):
    lines = "".join(f"s{i}\tt{i}\n" for i in range(40))
    train = write(tmp_path / "train.tsv", lines)
    dev = write(tmp_path / "dev.tsv", "a\tb\n")
    mapped = load_parallel_data({"train": train, "validation": dev}, test_size=0)
    assert list(mapped) == ["train", "validation"] and pairs(mapped, "validation") == [("a", "b")]
    carved = load_parallel_data(train, validation_size=4, test_size=0.1, seed=3)
    assert {split: len(carved[split]) for split in carved} == {"train": 32, "validation": 4, "test": 4}
    everything = sorted(pair for split in carved for pair in pairs(carved, split))
    assert everything == sorted((f"s{i}", f"t{i}") for i in range(40))
    again = load_parallel_data(train, validation_size=4, test_size=0.1, seed=3)
    assert list(again["test"]["id"]) == list(carved["test"]["id"])
    # The same rows as datasets' train_test_split gives (hf_attn carves without its Python list of row numbers).
    first = load_parallel_data(train, **NO_SPLITS)["train"].train_test_split(test_size=4, seed=3)
    second = first["train"].train_test_split(test_size=0.1, seed=3)
    expected = {"train": second["train"], "validation": first["test"], "test": second["test"]}
    assert {split: list(carved[split]["id"]) for split in carved} == {k: list(v["id"]) for k, v in expected.items()}
    assert all(len(s.split()) <= 1 for s in load_parallel_data(train, max_words=1, **NO_SPLITS)["train"]["source"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.tsv", "", r"empty\.tsv is empty"),
        ("blank.tsv", "\n\n", r"blank\.tsv is empty"),
        ("columns.tsv", "a\tb\nc\td\te\n", r"columns\.tsv, line 2: expected 2 tab-separated columns .* found 3"),
        ("one.tsv", "a\tb\nc\n", r"one\.tsv, line 2: expected 2 tab-separated columns .* found 1"),
        ("gap.tsv", "a\tb\n\nc\td\n", r"gap\.tsv, line 2: the line is empty"),
        ("side.tsv", "a\t \n", r"side\.tsv, line 1: the target text is empty"),
        ("header.tsv", "source\ttarget\n", r"header\.tsv has no sentence pairs"),
        ("json.jsonl", '{"source": "a", "target": "b"}\n{"source": "a",\n', r"json\.jsonl, line 2: invalid JSON"),
        ("list.jsonl", '["a", "b"]\n', r"list\.jsonl, line 1: expected a JSON object, found list"),
        ("key.jsonl", '{"source": "a", "tgt": "b"}\n', r"key\.jsonl, line 1: missing key 'target'"),
        ("type.jsonl", '{"source": "a", "target": 3}\n', r"type\.jsonl, line 1: 'target' must be a string, found int"),
        ("format.xyz", "a,b\n", r"Cannot tell the format of .*format\.xyz"),
    ],
)
def test_malformed_files_name_the_file_and_line(tmp_path, name, content, message):
    with pytest.raises(ValueError, match=message):
        load_parallel_data(write(tmp_path / name, content))


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("señor\tsir\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.tsv is not UTF-8"):
        load_parallel_data(path)


def test_misaligned_text_files(tmp_path):
    source = write(tmp_path / "src.txt", "a\nb\nc\n")
    target = write(tmp_path / "tgt.txt", "A\nB\n")
    with pytest.raises(ValueError, match=r"src\.txt has 3 lines but .*tgt\.txt has 2"):
        load_parallel_data((source, target))
    hole = write(tmp_path / "hole.txt", "A\n\nC\n")
    with pytest.raises(ValueError, match=r"hole\.txt, line 2: the line is empty"):
        load_parallel_data((source, hole))


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.tsv"):
        load_parallel_data(tmp_path / "nope.tsv")
    with pytest.raises(FileNotFoundError, match=r"tgt\.txt"):
        load_parallel_data((write(tmp_path / "src.txt", "a\n"), tmp_path / "tgt.txt"))


def test_bad_directories_and_columns(tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a dataset written by save_to_disk"):
        load_parallel_data(tmp_path / "plain")
    datasets.Dataset.from_dict({"en": ["a"], "fr": ["b"]}).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match=r"missing column\(s\) 'source', 'target'; columns are 'en', 'fr'"):
        load_parallel_data(tmp_path / "saved")


def test_too_small_to_split(tmp_path):
    with pytest.raises(ValueError, match="Cannot take a validation split"):
        load_parallel_data(write(tmp_path / "one.jsonl", json.dumps({"source": "a", "target": "b"}) + "\n"))


# --- Formats read through datasets.load_dataset --------------------------------------------------------------------


def test_parquet_csv_and_folders_go_through_load_dataset(tmp_path):
    table = datasets.Dataset.from_dict({"en": ["Hello.", "Bye"], "es": ["Hola.", "Adiós"]})
    table.to_parquet(str(tmp_path / "pairs.parquet"))
    table.to_csv(str(tmp_path / "pairs.csv"), index=False)
    (tmp_path / "folder").mkdir()
    table.to_parquet(str(tmp_path / "folder" / "train.parquet"))
    for path in (tmp_path / "pairs.parquet", tmp_path / "pairs.csv", tmp_path / "folder"):
        corpus = load_parallel_data(path, source_key="en", target_key="es", **NO_SPLITS)
        assert pairs(corpus) == [("Hello.", "Hola."), ("Bye", "Adiós")], path
        assert corpus["train"].cache_files, "load_dataset keeps the data as Arrow files on disk"


def test_translation_column_by_language(tmp_path):
    rows = [{"de": "Hallo.", "en": "Hello."}, {"de": "Tschüss", "en": "Bye"}]
    datasets.Dataset.from_dict({"translation": rows}).to_parquet(str(tmp_path / "wmt.parquet"))
    corpus = load_parallel_data(tmp_path / "wmt.parquet", source_lang="en", target_lang="de", **NO_SPLITS)
    assert pairs(corpus) == [("Hello.", "Hallo."), ("Bye", "Tschüss")]
    with pytest.raises(ValueError, match=r"language key\(s\) 'es' not in the 'translation' column; .*'de', 'en'"):
        load_parallel_data(tmp_path / "wmt.parquet", source_lang="en", target_lang="es", **NO_SPLITS)
    with pytest.raises(ValueError, match="both `source_lang` and `target_lang`"):
        load_parallel_data(tmp_path / "wmt.parquet", source_lang="en")


def test_unknown_column_lists_the_available_ones(tmp_path):
    datasets.Dataset.from_dict({"en": ["a"], "es": ["b"]}).to_parquet(str(tmp_path / "pairs.parquet"))
    with pytest.raises(ValueError, match=r"missing column\(s\) 'fr'; columns are 'en', 'es'"):
        load_parallel_data(tmp_path / "pairs.parquet", source_key="en", target_key="fr")


def test_an_unreachable_hub_id_is_named(tmp_path):
    """The real load_dataset, offline: the error names the id and the Hub."""
    code = (
        "from hf_attn.data import load_parallel_data\n"
        "try:\n    load_parallel_data('someone/no-such-corpus')\n"
        "except ValueError as error:\n    print(error)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "'someone/no-such-corpus'" in result.stdout and "Hub is unreachable" in result.stdout, result


@pytest.mark.slow
def test_hf_attn_train_on_a_hub_dataset_id_served_by_the_local_hub(local_hub, tmp_path):
    """A `translation`-format dataset repo goes through the real load_dataset over HTTP (HF_ENDPOINT) into training.

    The repo is made with the real client; its sentences carry a made-up word, so the BPE the
    run trains shows the pairs came from the repo and not from the bundled corpus.
    """
    folder = tmp_path / "repo" / "data"
    folder.mkdir(parents=True)
    for split, count in (("train", 120), ("validation", 6)):
        rows = [{"en": f"The zorblax {i} flies home.", "es": f"El zorblax {i} vuela a casa."} for i in range(count)]
        datasets.Dataset.from_dict({"translation": rows}).to_parquet(str(folder / f"{split}-00000-of-00001.parquet"))
    upload = (
        "from huggingface_hub import HfApi\n"
        "api = HfApi()\n"
        "api.create_repo('user/zorblax-en-es', repo_type='dataset')\n"
        f"api.upload_folder(folder_path={str(folder.parent)!r}, repo_id='user/zorblax-en-es', repo_type='dataset')\n"
    )
    run_python(upload, local_hub.env)
    config = {
        "model_type": "transformer_seq2seq",
        "model": {**TINY_CONFIGS["transformer_seq2seq"], "dropout": 0.1},
        "data": {"path": "user/zorblax-en-es", "source_lang": "en", "target_lang": "es", "test_size": 0},
        "output_dir": str(tmp_path / "run"),
        "vocab_size": 300,
        "max_tokens": 256,
        "max_steps": 2,
        "eval_every": 2,
        "save_every": 2,
        "eval_examples": 2,
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = f"from hf_attn.cli import main; raise SystemExit(main(['train', {str(tmp_path / 'config.yaml')!r}]))"
    run_python(command, {**local_hub.env, "TOKENIZERS_PARALLELISM": "false"}, timeout=300)

    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 2
    tokenizer = load_tokenizer(tmp_path / "run" / "tokenizer")
    assert "▁zorblax" in tokenizer.tokenize("The zorblax flies."), "the BPE learnt the repo's word: it read the repo"
    fetched = {path for method, path in local_hub.requests if method == "GET" and "/resolve/" in path}
    assert {path.rsplit("/", 1)[-1] for path in fetched} >= {"train-00000-of-00001.parquet"}


def test_training_config_data_mapping(tmp_path):
    from hf_attn.training.builders import load_corpus
    from hf_attn.training.config import TrainingConfig

    rows = [{"en": f"Hello {i}.", "es": f"Hola {i}."} for i in range(20)]
    datasets.Dataset.from_dict({"translation": rows}).to_parquet(str(tmp_path / "opus.parquet"))
    spec = {"path": str(tmp_path / "opus.parquet"), "source_lang": "es", "target_lang": "en", "validation_size": 2}
    corpus = load_corpus(TrainingConfig(data={**spec, "test_size": 0}))
    assert {split: len(corpus[split]) for split in corpus} == {"train": 18, "validation": 2}
    assert all(source.startswith("Hola") for source in corpus["train"]["source"])
    with pytest.raises(ValueError, match=r"Unknown key\(s\) `data.source_colum`; `data` takes path, splits"):
        TrainingConfig(data={"path": "x.tsv", "source_colum": "en"})
    with pytest.raises(ValueError, match="exactly one of `path`"):
        TrainingConfig(data={"name": "de-en"})


def test_blank_or_non_text_rows_of_loaded_files_are_named(tmp_path):
    datasets.Dataset.from_dict({"en": ["a", "b", " "], "es": ["x", None, "z"]}).to_parquet(
        str(tmp_path / "gap.parquet")
    )
    with pytest.raises(ValueError, match=r"gap\.parquet \(train\), row 1: source and target must be non-empty"):
        load_parallel_data(tmp_path / "gap.parquet", source_key="en", target_key="es")
    datasets.Dataset.from_dict({"en": ["a"], "es": [3]}).to_parquet(str(tmp_path / "int.parquet"))
    with pytest.raises(ValueError, match=r"int\.parquet \(train\): the target column must hold strings"):
        load_parallel_data(tmp_path / "int.parquet", source_key="en", target_key="es")
