"""Decoding options, n-best lists, alignments and forced-decoding scores, on both models and both engines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_seq2seq import (
    MODEL_TYPES,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
)

from hf_attn.cli import main as cli_main
from hf_attn.decoding import DecodingOptions, decode
from hf_attn.scoring import score

SOURCES = ["In the beginning God created the heaven and the earth.", "", "And God said, Let there be light."]
TARGETS = ["En el principio crió Dios los cielos y la tierra.", "", "Y dijo Dios: Sea la luz."]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("decoding")
    dirs = {}
    for model_type in MODEL_TYPES:
        save_tiny_model(model_type, root / model_type, label_smoothing=0.0)
        dirs[model_type] = root / model_type
    return dirs


@pytest.fixture(scope="module")
def ctranslate2_dir(model_dirs, tmp_path_factory) -> Path:
    pytest.importorskip("ctranslate2")
    from hf_attn.deploy import export_model

    return export_model(
        model_dirs["transformer_seq2seq"], tmp_path_factory.mktemp("ct2") / "f32", quantization="float32"
    )


def _loaded(path: Path):
    from hf_attn.inference import load_model_and_tokenizer

    return load_model_and_tokenizer(path)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_scores_are_the_models_own_loss(model_dirs, model_type):
    model, tokenizer = _loaded(model_dirs[model_type])
    assert model.config.label_smoothing == 0.0
    results = score(model, tokenizer, SOURCES, TARGETS, batch_size=2, per_token=True)
    for source, target, result in zip(SOURCES, TARGETS, results):
        encoded = tokenizer([source], text_target=[target], return_tensors="pt")
        with torch.inference_mode():
            loss = model(**encoded).loss
        tokens = encoded["labels"].shape[1]
        assert result.tokens == tokens == len(result.token_log_probs) == len(result.target_tokens)
        assert result.log_prob == pytest.approx(-loss.item() * tokens, rel=1e-4)
        assert result.mean_log_prob == pytest.approx(-loss.item(), rel=1e-4)
        assert result.target_tokens[-1] == tokenizer.eos_token


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_n_best_lists_with_scores_and_alignments(model_dirs, model_type):
    model, tokenizer = _loaded(model_dirs[model_type])
    options = DecodingOptions(num_beams=3, n_best=3, alignment="hard", max_length_ratio=1.0)
    results = decode(model, tokenizer, SOURCES, options, batch_size=2)
    assert results[1].hypotheses == []  # a blank source is not translated
    for result in (results[0], results[2]):
        scores = [hypothesis.score for hypothesis in result.hypotheses]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        source_words = len(result.source_tokens) - 1  # the source's EOS is not aligned
        for hypothesis in result.hypotheses:
            assert len(hypothesis.target_tokens) <= len(result.source_tokens)  # --max-length-ratio 1
            for pair in hypothesis.alignment.split():
                i, j = map(int, pair.split("-"))
                assert 0 <= i < source_words and 0 <= j < len(hypothesis.target_tokens)
    soft = decode(model, tokenizer, SOURCES[:1], DecodingOptions(num_beams=1, alignment="soft"))[0]
    matrix = soft.hypotheses[0].alignment
    assert len(matrix) == len(soft.hypotheses[0].target_tokens) and len(matrix[0]) == len(soft.source_tokens)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-3) for row in matrix)


def test_sampling_repeats_with_a_seed_and_varies_without(model_dirs):
    model, tokenizer = _loaded(model_dirs["transformer_seq2seq"])

    def sample(seed):
        options = DecodingOptions(num_beams=1, sample=True, n_best=4, seed=seed, top_k=50, temperature=1.5)
        return [h.text for h in decode(model, tokenizer, SOURCES[:1], options)[0].hypotheses]

    first = sample(3)
    assert first == sample(3)
    assert len(set(first)) > 1  # four samples of an untrained model differ


def test_no_repeat_ngram_size_is_obeyed(model_dirs):
    model, tokenizer = _loaded(model_dirs["transformer_seq2seq"])
    plain = decode(model, tokenizer, SOURCES[:1], DecodingOptions(num_beams=1))[0].hypotheses[0].target_tokens
    assert len(plain) != len(set(plain))  # the untrained model repeats itself
    tokens = decode(model, tokenizer, SOURCES[:1], DecodingOptions(num_beams=1, no_repeat_ngram_size=1))[0]
    pieces = tokens.hypotheses[0].target_tokens
    assert len(pieces) == len(set(pieces))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_beams": 2, "n_best": 3}, "n_best (3) must not exceed num_beams (2)"),
        ({"num_beams": 4, "sample": True}, "num_beams must be 1"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": 0}, "temperature"),
        ({"alignment": "diagonal"}, "alignment must be one of hard, soft"),
        ({"max_length_ratio": -1.0}, "max_length_ratio"),
        ({"n_best": "2"}, "n_best"),
    ],
)
def test_bad_options_name_the_field(fields, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        DecodingOptions(**fields)


def test_ctranslate2_engine_matches_torch(model_dirs, ctranslate2_dir):
    from hf_attn.deploy.ctranslate2_translate import CTranslate2Model

    model, tokenizer = _loaded(model_dirs["transformer_seq2seq"])
    exported = CTranslate2Model(ctranslate2_dir)
    ours, theirs = score(model, tokenizer, SOURCES, TARGETS), exported.score(SOURCES, TARGETS)
    for a, b in zip(ours, theirs):
        assert a.tokens == b.tokens and a.log_prob == pytest.approx(b.log_prob, rel=1e-3, abs=1e-3)
    options = DecodingOptions(num_beams=4, n_best=2, alignment="hard", coverage_penalty=0.2, no_repeat_ngram_size=2)
    result = exported.decode(SOURCES, options)
    assert result[1].hypotheses == [] and len(result[0].hypotheses) == 2
    assert result[0].hypotheses[0].score >= result[0].hypotheses[1].score
    assert all("-" in pair for pair in result[0].hypotheses[0].alignment.split())
    greedy = DecodingOptions(num_beams=1)
    assert [h.text for h in exported.decode(SOURCES, greedy)[0].hypotheses] == [
        h.text for h in decode(model, tokenizer, SOURCES, greedy)[0].hypotheses
    ]


def test_cli_refuses_what_an_engine_lacks(model_dirs, capsys):
    assert cli_main(["translate", str(model_dirs["rnn_seq2seq"]), "x", "--coverage-penalty", "0.2"]) == 2
    assert "coverage_penalty is supported by the ctranslate2 engine only" in capsys.readouterr().err
    assert cli_main(["translate", str(model_dirs["rnn_seq2seq"]), "x", "--n-best", "5"]) == 2
    assert "n_best (5) must not exceed num_beams (4)" in capsys.readouterr().err
    assert cli_main(["translate", str(model_dirs["rnn_seq2seq"]), "x", "--alignment", "soft"]) == 2
    assert "--format json" in capsys.readouterr().err


def test_cli_score_and_translate_write_json_lines(model_dirs, tmp_path, capsys):
    import json

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{s}\t{t}\n" for s, t in zip(SOURCES, TARGETS)), encoding="utf-8")
    assert cli_main(["score", str(model_dirs["rnn_seq2seq"]), "--tsv", str(tsv), "--per-token"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3 and all(line["log_prob"] < 0 and "token_log_probs" in line for line in lines)
    source_file, output = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source_file.write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    argv = ["translate", str(model_dirs["transformer_seq2seq"]), "--input", str(source_file), "--output", str(output)]
    assert cli_main([*argv, "--format", "json", "--n-best", "2", "--alignment", "hard"]) == 0
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert [row["source"] for row in rows] == SOURCES and len(rows[0]["translations"]) == 2


def test_stdin_pipe_gets_the_first_translation_before_stdin_closes(model_dirs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_attn.cli", "translate", str(model_dirs["rnn_seq2seq"]), "-", "--num-beams", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        process.stdin.write(SOURCES[0] + "\n")
        process.stdin.flush()
        began = time.monotonic()
        first = process.stdout.readline()  # blocks until the first translation is printed
        assert first.strip() and process.poll() is None  # stdin is still open and the command still running
        assert time.monotonic() - began < 120
        process.stdin.write(SOURCES[2] + "\n")
        process.stdin.close()
        assert process.stdout.readline().strip()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def test_evaluate_takes_the_decoding_options_on_both_engines(model_dirs, ctranslate2_dir, tmp_path, capsys):
    import json

    data = tmp_path / "pairs.tsv"
    data.write_text("".join(f"{SOURCES[0]} {i}\t{TARGETS[0]} {i}\n" for i in range(40)), encoding="utf-8")
    for folder, engine, option, field, value in (
        (model_dirs["transformer_seq2seq"], "torch", ["--no-repeat-ngram-size", "2"], "no_repeat_ngram_size", 2),
        (ctranslate2_dir, "ctranslate2", ["--coverage-penalty", "0.2"], "coverage_penalty", 0.2),
    ):
        out = tmp_path / engine
        argv = ["evaluate", str(folder), "--data", str(data), "--split", "train", "--engine", engine, *option]
        assert cli_main([*argv, "--num-beams", "2", "--max-examples", "2", "--output-dir", str(out)]) == 0
        metrics = json.loads(capsys.readouterr().out)
        assert metrics["n"] == 2 and metrics["num_beams"] == 2 and metrics["decoding"][field] == value
        assert len((out / "hypotheses.txt").read_text(encoding="utf-8").splitlines()) == 2
