"""`data.streaming: true`: the training split as an IterableDataset, sharded per process, batched from a buffer,
resumed exactly from the position saved in each checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_multinode import checkpoint_step, launch_nodes, sigterm_second_node_after_a_checkpoint, wait_all
from test_training import (
    assert_same_weights,
    final_weights,
    tiny_config,
    tokenizer_dir,  # noqa: F401 (a fixture)
    training_curve,
    write_config,
)
from transformers import AutoTokenizer, DataCollatorForSeq2Seq

from hf_attn.data import load_bible_corpus, load_data
from hf_attn.streaming import StreamingBatches
from hf_attn.training.checkpointing import CheckpointError, checkpoint_dir
from hf_attn.training.config import TrainingConfig
from hf_attn.training.loop import train


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> tuple[Path, Path]:
    """A 150-pair training TSV and a 20-pair dev TSV of real verses, each source numbered (so no two are alike)."""
    folder = tmp_path_factory.mktemp("stream_data")
    corpus = load_bible_corpus()
    files = (folder / "train.tsv", folder / "dev.tsv")
    for path, rows in zip(files, (corpus["train"].select(range(150)), corpus["validation"].select(range(20)))):
        lines = (f"{number} {row['source']}\t{row['target']}\n" for number, row in enumerate(rows))
        path.write_text("".join(lines), encoding="utf-8")
    return files


def streaming_data(pair_files: tuple[Path, Path], **extra) -> dict:
    train_file, dev_file = pair_files
    return {"splits": {"train": str(train_file), "validation": str(dev_file)}, "streaming": True, **extra}


def stream_batches(pairs: datasets.IterableDataset, tokenizer_dir: Path, **settings) -> StreamingBatches:  # noqa: F811
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
    limits = {"max_tokens": 256, "max_source_tokens": 64, "max_target_tokens": 64, "seed": 3, "shuffle_buffer": 40}
    return StreamingBatches(pairs, tokenizer, collator, **{**limits, **settings})


def rows(batch) -> list[tuple[int, ...]]:
    """Each pair of a collated batch as its unpadded source ids."""
    return [tuple(ids[mask.bool()].tolist()) for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]


def first_epoch_rows(batches: StreamingBatches) -> list[tuple[int, ...]]:
    seen, iterator = [], iter(batches)
    while True:
        batch = next(iterator)
        if batches.position.epoch > 0:
            return seen
        seen.extend(rows(batch))


def test_a_streamed_tsv_reads_lazily_and_keeps_line_numbered_errors(pair_files, tmp_path):
    lines = pair_files[0].read_text(encoding="utf-8").splitlines()[:6]
    lines[4] = "only one column"
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = load_data({"splits": {"train": str(bad), "validation": str(pair_files[1])}, "streaming": True})
    assert isinstance(corpus["train"], datasets.IterableDataset)
    assert isinstance(corpus["validation"], datasets.Dataset) and len(corpus["validation"]) == 20
    stream = iter(corpus["train"])
    assert next(stream)["source"] == lines[0].split("\t")[0]
    with pytest.raises(ValueError, match=rf"{bad}, line 5: expected 2 tab-separated columns"):
        list(stream)


def test_a_streamed_parquet_translation_column_gives_pairs_and_names_missing_languages(tmp_path):
    records = [{"translation": {"en": f"word {i}", "es": f"palabra {i}"}} for i in range(30)]
    for split, part in (("train", records[:25]), ("validation", records[25:])):
        (tmp_path / "wmt").mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part), tmp_path / "wmt" / f"{split}.parquet")
    corpus = load_data({"path": str(tmp_path / "wmt"), "source_lang": "es", "target_lang": "en", "streaming": True})
    assert isinstance(corpus["train"], datasets.IterableDataset)
    first = next(iter(corpus["train"]))
    assert (first["source"], first["target"], first["id"]) == ("palabra 0", "word 0", "train:0")
    assert list(corpus["validation"]["target"]) == [f"word {i}" for i in range(25, 30)]

    # The validation split is read at once, so a wrong key fails before training; in the stream, when it is read.
    wrong = {"path": str(tmp_path / "wmt"), "source_lang": "de", "target_lang": "en", "streaming": True}
    with pytest.raises(ValueError, match=r"\(validation\): language key\(s\) 'de' not in .* languages are 'en', 'es'"):
        load_data(wrong)
    (tmp_path / "wmt" / "validation.parquet").unlink()
    dev = tmp_path / "dev.tsv"
    dev.write_text("uno\tone\n", encoding="utf-8")
    wrong = {**wrong, "path": None, "splits": {"train": str(tmp_path / "wmt"), "validation": str(dev)}}
    del wrong["path"]
    with pytest.raises(ValueError, match=r"\(train\): language key\(s\) 'de' not in .* languages are 'en', 'es'"):
        next(iter(load_data(wrong)["train"]))


def test_a_streamed_save_to_disk_folder_keeps_its_columns_and_splits(tmp_path):
    rows = {"en": [f"word {i}" for i in range(12)], "es": [f"palabra {i}" for i in range(12)]}
    pairs = datasets.Dataset.from_dict(rows)
    datasets.DatasetDict({"train": pairs, "validation": pairs.select(range(3))}).save_to_disk(tmp_path / "saved")
    spec = {"path": str(tmp_path / "saved"), "source_column": "en", "target_column": "es", "streaming": True}
    corpus = load_data(spec)
    assert isinstance(corpus["train"], datasets.IterableDataset)
    assert [(p["id"], p["source"], p["target"]) for p in corpus["train"]][-1] == ("train:11", "word 11", "palabra 11")
    assert len(corpus["validation"]) == 3
    with pytest.raises(ValueError, match=r"\(validation\): missing column\(s\) 'src'; columns are 'en', 'es'"):
        load_data({**spec, "source_column": "src"})


def test_streaming_refuses_carved_splits_a_missing_validation_split_and_an_epoch_budget(pair_files, tokenizer_dir):  # noqa: F811
    with pytest.raises(ValueError, match=r"`data.validation_size` carve a split .* name an explicit validation split"):
        load_data({"path": str(pair_files[0]), "streaming": True, "validation_size": 10})
    with pytest.raises(ValueError, match=r"no validation split can be carved.*splits: train"):
        load_data({"path": str(pair_files[0]), "streaming": True})
    with pytest.raises(ValueError, match=r"`data.shuffle_buffer` .* set `data.streaming: true`"):
        load_data({"path": str(pair_files[0]), "shuffle_buffer": 10})
    with pytest.raises(ValueError, match=r"`data.streaming` must be true or false"):
        load_data({"path": str(pair_files[0]), "streaming": "yes"})
    settings = {"tokenizer": str(tokenizer_dir), "data": streaming_data(pair_files)}
    with pytest.raises(ValueError, match=r"`data.streaming: true` needs a step budget: set `max_steps`"):
        TrainingConfig.from_dict({**settings, "num_epochs": 2})
    TrainingConfig.from_dict({**settings, "max_steps": 2})


def test_stream_batches_are_deterministic_disjoint_per_process_and_resume_exactly(
    pair_files,
    tokenizer_dir,  # noqa: F811
    monkeypatch,
):
    pairs = load_data(streaming_data(pair_files))["train"]
    one = first_epoch_rows(stream_batches(pairs, tokenizer_dir))
    assert one == first_epoch_rows(stream_batches(pairs, tokenizer_dir))  # same (seed, epoch, rank): same batches
    monkeypatch.setattr("hf_attn.streaming.TOKENIZER_CHUNK", 7)  # a pool tokenized in chunks: the same batches
    assert one == first_epoch_rows(stream_batches(pairs, tokenizer_dir))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    every = [(p["source"], p["target"]) for p in pairs]
    encoded = tokenizer([source for source, _ in every], text_target=[target for _, target in every])
    fitting = {
        tuple(source)
        for source, target in zip(encoded["input_ids"], encoded["labels"])
        if len(source) <= 64 and len(target) <= 64
    }
    assert len(one) == len(set(one)) and set(one) == fitting and len(fitting) > 90  # each pair within limits, once
    shards = [first_epoch_rows(stream_batches(pairs, tokenizer_dir, rank=r, world_size=2)) for r in (0, 1)]
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(one)

    uninterrupted = stream_batches(pairs, tokenizer_dir)
    batches = iter(uninterrupted)
    for _ in range(7):  # into the third pool of 40 pairs
        next(batches)
    saved = json.loads(json.dumps(uninterrupted.state_dict()))
    assert saved["pool"] >= 1 and saved["dataset_state"] is not None
    expected = [rows(next(batches)) for _ in range(20)]  # past the end of the epoch
    assert uninterrupted.position.epoch == 1
    resumed = stream_batches(pairs, tokenizer_dir)
    resumed.load_state_dict(saved)
    assert [rows(batch) for batch, _ in zip(resumed, range(20))] == expected

    for change, message in (({"world_size": 2}, "world_size 1 -> 2"), ({"shuffle_buffer": 30}, "shuffle_buffer")):
        with pytest.raises(ValueError, match=rf"another layout \(.*{message}"):
            stream_batches(pairs, tokenizer_dir, **change).load_state_dict(saved)


def test_an_interrupted_streaming_run_resumes_to_the_same_weights(pair_files, tokenizer_dir, tmp_path):  # noqa: F811
    """Stopped at step 13 and restarted, a streaming run ends as the uninterrupted one (across an epoch)."""

    def config(name: str, **overrides) -> TrainingConfig:
        data = streaming_data(pair_files, shuffle_buffer=40)
        settings = {"data": data, "max_train_examples": None, "max_tokens": 256, "max_steps": 30, "eval_every": 100}
        return tiny_config("rnn_seq2seq", tmp_path / name, tokenizer_dir, **{**settings, **overrides})

    uninterrupted = train(config("whole"))
    assert uninterrupted.steps == 30
    position = json.loads((tmp_path / "whole" / "checkpoints" / "step-00000030" / "stream_state_0.json").read_text())
    assert position["epoch"] >= 1  # 30 batches of at most 256 tokens cover more than the 150 pairs

    train(config("resumed", max_steps=13))
    assert train(config("resumed")).steps == 30
    assert_same_weights(final_weights(tmp_path / "whole"), final_weights(tmp_path / "resumed"))
    assert training_curve(tmp_path / "resumed") == training_curve(tmp_path / "whole")

    # A map-style run cannot resume a streaming checkpoint (nor the reverse): the positions mean different things.
    map_style = tiny_config("rnn_seq2seq", tmp_path / "resumed", tokenizer_dir, max_steps=40)
    with pytest.raises(CheckpointError, match=r"written by a run with `data.streaming: true`"):
        train(map_style)


@pytest.mark.slow
def test_two_streaming_processes_train_and_a_signal_to_one_stops_both(pair_files, tokenizer_dir, tmp_path):  # noqa: F811
    """Two gloo processes (torchrun "nodes"), each reading its own half of the stream: SIGTERM to rank 1 only stops
    both at one step with both positions saved, and running again resumes them and finishes."""
    data = streaming_data(pair_files, shuffle_buffer=40)
    overrides = {"data": data, "max_train_examples": None, "max_steps": 400, "save_every": 2, "eval_every": 1000}
    config = write_config(tiny_config("rnn_seq2seq", tmp_path / "run", tokenizer_dir, **overrides), tmp_path / "a.json")
    logs = sigterm_second_node_after_a_checkpoint(launch_nodes(config, tmp_path), tmp_path / "run", tmp_path)
    stopped_at = checkpoint_step(tmp_path / "run")
    assert stopped_at < 400
    for log in logs:  # rank 0 was never signalled
        assert f"training stopped by SIGTERM at step {stopped_at}" in log, log[-3000:]
    checkpoint = checkpoint_dir(tmp_path / "run" / "checkpoints", stopped_at)
    positions = [json.loads((checkpoint / f"stream_state_{rank}.json").read_text()) for rank in (0, 1)]
    assert [p["rank"] for p in positions] == [0, 1] and all(p["world_size"] == 2 for p in positions)

    budget = {**overrides, "max_steps": stopped_at + 2}
    finish = write_config(tiny_config("rnn_seq2seq", tmp_path / "run", tokenizer_dir, **budget), tmp_path / "b.json")
    codes = wait_all(launch_nodes(finish, tmp_path))
    assert codes == [0, 0], (tmp_path / "node0.log").read_text()[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["steps"] == stopped_at + 2
