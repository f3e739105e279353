"""Bad input through the hf-attn command: a one-line message and a non-zero exit, or the right output.

The command turns the library's errors into ``hf-attn COMMAND: error: ...`` with exit code 2
(argparse's own checks exit 2 too), Ctrl-C into exit 130; what the library answers for empty
or over-long input, the command answers the same way.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file
from tiny_seq2seq import MODEL_TYPES, one_torch_thread, save_tiny_model  # noqa: F401 - fixture

from hf_attn.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    folders = {model_type: tmp_path_factory.mktemp(model_type) for model_type in MODEL_TYPES}
    save_tiny_model("transformer_seq2seq", folders["transformer_seq2seq"], max_position_embeddings=24)
    save_tiny_model("rnn_seq2seq", folders["rnn_seq2seq"])
    return folders


def error_of(argv: list[str], capsys, code: int = 2) -> str:
    """Run the command, expecting ``code``; returns stderr, checked to be free of tracebacks."""
    with pytest.raises(SystemExit) as exit_info:
        result = main(argv)
        raise SystemExit(result)
    assert exit_info.value.code == code
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["translate", "{model}", "Hi", "--num-beams", "0"], "argument --num-beams: must be a positive integer, got 0"),
        (["translate", "{model}", "Hi", "--num-beams", "-3"], "argument --num-beams: must be a positive integer"),
        (["translate", "{model}", "Hi", "--num-beams", "four"], "argument --num-beams: expected a positive integer"),
        (["evaluate", "{model}", "--num-beams", "0"], "argument --num-beams: must be a positive integer"),
        (["evaluate", "{model}", "--batch-size", "0"], "argument --batch-size: must be a positive integer"),
        (["evaluate", "{model}", "--max-examples", "-1"], "argument --max-examples: must be a positive integer"),
        (["quickstart", "--minutes-per-model", "-1"], "argument --minutes-per-model: must be a positive number"),
        (["quickstart", "--minutes-per-model", "nan"], "argument --minutes-per-model: must be a positive number"),
        (["quickstart", "--test-examples", "0"], "argument --test-examples: must be a positive integer"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(argv, message, saved, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [arg.format(model=saved["rnn_seq2seq"]) for arg in argv]
    assert message in error_of(argv, capsys)
    assert list(tmp_path.iterdir()) == [], "nothing may be written before the arguments are checked"


@pytest.mark.parametrize(
    ("config", "overrides", "message"),
    [
        ("model_type: rnn_seq2seq\nmodel: {hidden_size: 64\n", [], "config.yaml is not valid YAML (line 3, column 1)"),
        ("max_steps: 3\n", ["--set", "model.d_model=[1, 2"], "The value of override 'model.d_model=[1, 2' is not"),
        (
            "model_type: rnn_seq2seq\n",
            ["--set", "model.attenton_type=luong_dot"],
            "did you mean `model.attention_type`",
        ),
        ("model_type: rnn_seq2seq\n", ["--set", "max_stesp=3"], "Unknown training config keys: max_stesp"),
    ],
)
def test_bad_training_configs_are_one_line_errors(config, overrides, message, capsys, tmp_path):
    (tmp_path / "config.yaml").write_text(config)
    error = error_of(["train", str(tmp_path / "config.yaml"), *overrides], capsys)
    assert message in error and error.count("\n") == 1


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_empty_sentences_translate_to_empty_lines(model_type, saved, capsys):
    assert main(["translate", str(saved[model_type]), "", "   ", "--num-beams", "1"]) == 0
    assert capsys.readouterr().out == "\n\n"


def test_blank_lines_on_stdin_keep_their_place(saved, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("In the beginning.\n\nAnd God said.\n"))
    assert main(["translate", str(saved["rnn_seq2seq"]), "-", "--num-beams", "1"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""


def test_over_long_input_is_truncated_with_a_warning(saved, capsys, caplog):
    long = " ".join(["In the beginning God created the heaven and the earth."] * 8)
    assert main(["translate", str(saved["transformer_seq2seq"]), long, "--num-beams", "1"]) == 0
    assert "limit of 24 tokens (max_position_embeddings)" in caplog.text


def drop_a_tensor(folder: Path, saved: dict[str, Path]) -> None:
    weights = load_file(folder / "model.safetensors")
    del weights[sorted(weights)[0]]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f, _: (f / "tokenizer.json").write_text("{"), "tokenizer.json is damaged: not valid JSON"),
        (lambda f, _: (f / "tokenizer_config.json").write_text("[1,"), "tokenizer_config.json is damaged"),
        (lambda f, _: (f / "model.safetensors").write_bytes(b"\x00" * 64), "model.safetensors is damaged"),
        (drop_a_tensor, "do not fit the model its config.json describes (1 missing tensor(s)"),
        (lambda f, s: shutil.copy(s["transformer_seq2seq"] / "model.safetensors", f), "unexpected tensor(s)"),
    ],
    ids=["tokenizer-json", "tokenizer-config", "weights-header", "missing-tensor", "other-architecture"],
)
def test_a_damaged_model_folder_is_a_one_line_error(damage, message, saved, capsys, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(saved["rnn_seq2seq"], folder)
    damage(folder, saved)
    error = error_of(["translate", str(folder), "Hello"], capsys)
    assert message in error and str(folder) in error


def test_a_bare_name_that_is_no_folder_names_both_possibilities(capsys, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    error = error_of(["translate", "my-model", "Hello"], capsys)
    assert "'my-model' is neither a local model folder" in error and "nor a reachable Hub repository" in error


def test_a_corrupt_data_file_is_named(saved, capsys, tmp_path):
    (tmp_path / "pairs.tsv.gz").write_bytes(gzip.compress(b"a\tb\n" * 100)[:-12])
    error = error_of(["evaluate", str(saved["rnn_seq2seq"]), "--data", str(tmp_path / "pairs.tsv.gz")], capsys)
    assert "pairs.tsv.gz is not a complete gzip file" in error


def test_ctrl_c_is_a_short_message_and_exit_130(saved, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("hf_attn.inference.load_model_and_tokenizer", interrupted)
    error = error_of(["translate", str(saved["rnn_seq2seq"]), "Hello"], capsys, code=130)
    assert error == "hf-attn translate: interrupted\n"


def test_long_decoding_shows_a_progress_bar(saved, capsys, tmp_path):
    """Test decoding (evaluate, and quickstart through the same evaluate_model) reports its progress."""
    argv = ["evaluate", str(saved["rnn_seq2seq"]), "--max-examples", "3", "--num-beams", "1"]
    assert main([*argv, "--output-dir", str(tmp_path / "eval")]) == 0
    error = capsys.readouterr().err
    assert "translate: 100%" in error and "3/3" in error
