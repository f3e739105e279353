"""The dynamic batcher on a real (tiny) CTranslate2 export: backlogs become one batch, parallel batches overlap."""

from __future__ import annotations

import asyncio
import threading

import pytest
from tiny_seq2seq import save_tiny_model

from hf_attn.decoding import DecodingOptions
from hf_attn.engines import load_engine
from hf_attn.serving.batching import DynamicBatcher

SENTENCES = ["In the beginning God created the heaven and the earth.", "And God said", "Let there be light", "Amen"]
OPTIONS = DecodingOptions(num_beams=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    pytest.importorskip("ctranslate2")
    from hf_attn.deploy import export_model

    root = tmp_path_factory.mktemp("batching")
    save_tiny_model("transformer_seq2seq", root / "model")
    return export_model(root / "model", root / "ct2", quantization="float32")


def test_requests_queued_while_the_engine_works_become_one_batch(exported):
    engine = load_engine(exported, "ctranslate2", threads=1)
    sizes: list[int] = []
    busy, release = threading.Event(), threading.Event()

    def decode(texts, options):
        sizes.append(len(texts))
        busy.set()
        assert release.wait(60), "the test never let the first batch finish"
        return engine.decode(texts, options)

    async def scenario():
        batcher = DynamicBatcher(decode, max_batch=8, max_wait=0.05)
        batcher.start()
        first = asyncio.create_task(batcher.translate(SENTENCES[:1], OPTIONS))
        await asyncio.get_running_loop().run_in_executor(None, busy.wait, 60)
        rest = [asyncio.create_task(batcher.translate([text], OPTIONS)) for text in SENTENCES[1:]]
        await asyncio.sleep(0.2)  # all three queued, and older than max_wait, before the engine is free
        release.set()
        answers = await asyncio.gather(first, *rest)
        await batcher.stop()
        return answers, batcher.stats.to_json(batcher.workers)

    answers, stats = asyncio.run(scenario())
    assert sizes == [1, 3]
    assert [answer[0].source for answer in answers] == SENTENCES and all(a[0].hypotheses for a in answers)
    assert (stats["batches"], stats["texts"], stats["largest_batch"], stats["mean_batch"]) == (2, 4, 3, 2.0)
    assert 0 < stats["engine_busy"] <= 1


def test_parallel_batches_run_at_once_and_answer_like_one_at_a_time(exported):
    engine = load_engine(exported, "ctranslate2", threads=1, parallel=2)
    both_in_flight = threading.Barrier(2, timeout=60)  # broken (an error) unless two engine calls overlap

    def decode(texts, options):
        both_in_flight.wait()
        return engine.decode(texts, options)

    async def scenario():
        batcher = DynamicBatcher(decode, max_batch=1, max_wait=0.0, workers=2)
        batcher.start()
        answers = await asyncio.gather(*(batcher.translate([text], OPTIONS) for text in SENTENCES[:2]))
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    alone = [engine.decode([text], OPTIONS)[0] for text in SENTENCES[:2]]
    assert [answer[0].hypotheses[0].text for answer in answers] == [result.hypotheses[0].text for result in alone]


def test_a_backlog_is_shared_among_free_workers_instead_of_landing_on_one(exported):
    """Closed-loop clients come back together: with two workers free, four queued texts become two calls of two."""
    engine = load_engine(exported, "ctranslate2", threads=1, parallel=2)
    sizes: list[int] = []
    both_in_flight = threading.Barrier(2, timeout=60)  # broken (an error) unless the two halves overlap

    def decode(texts, options):
        sizes.append(len(texts))
        both_in_flight.wait()
        return engine.decode(texts, options)

    async def scenario():
        batcher = DynamicBatcher(decode, max_batch=8, max_wait=0.05, workers=2)
        batcher.start()
        answers = await asyncio.gather(*(batcher.translate([text], OPTIONS) for text in SENTENCES))
        await batcher.stop()
        return answers

    answers = asyncio.run(scenario())
    assert sizes == [2, 2]
    assert [answer[0].source for answer in answers] == SENTENCES  # each request got its own slice, in order


@pytest.mark.parametrize(
    ("engine", "settings", "message"),
    [
        ("torch", {"parallel": 2}, "parallel 2 needs the ctranslate2 engine"),
        ("ctranslate2", {"threads": -1}, "`threads` must be"),
        ("ctranslate2", {"parallel": 0}, "`parallel` must be a positive integer"),
    ],
)
def test_engine_thread_settings_are_checked_by_name(tmp_path, engine, settings, message):
    with pytest.raises(ValueError, match=message):
        load_engine(tmp_path, engine, **settings)


def test_serve_and_translate_refuse_bad_thread_flags_by_name(tmp_path, capsys):
    from hf_attn.cli import main as cli_main

    assert cli_main(["serve", str(tmp_path), "--parallel-batches", "2"]) == 2
    assert "parallel 2 needs the ctranslate2 engine" in capsys.readouterr().err
    assert cli_main(["serve", str(tmp_path), "--parallel-batches", "0"]) == 2
    assert "--parallel-batches must be a positive integer, got 0" in capsys.readouterr().err
    assert cli_main(["translate", str(tmp_path), "x", "--engine", "ctranslate2", "--threads", "-2"]) == 2
    assert "`threads` must be" in capsys.readouterr().err


def test_serve_defaults_to_one_single_threaded_ctranslate2_call_per_usable_core(monkeypatch):
    from hf_attn.serving import cli as serve_cli

    monkeypatch.setattr(serve_cli.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert serve_cli.default_engine_threads("ctranslate2", None, None) == (1, 3)
    assert serve_cli.default_engine_threads("ctranslate2", None, 2) == (1, 2)
    assert serve_cli.default_engine_threads("ctranslate2", 4, None) == (4, 1)  # threads chosen: calls one at a time
    assert serve_cli.default_engine_threads("torch", None, None) == (0, 1)
