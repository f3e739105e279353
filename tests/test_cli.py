"""The hf-attn command: every subcommand documents itself, and bad input is a one-line error, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hf_attn.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def test_the_documented_subcommands_exist():
    assert {"quickstart", "train", "evaluate", "translate", "card", "push"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_has_help(subcommand, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: hf-attn {subcommand}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (REPO / "scripts").glob("*.py") if not p.name.startswith("_"))
)
def test_every_script_has_help(script):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_console_command_is_installed():
    result = subprocess.run(["hf-attn", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "quickstart" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["translate", "/no/such/model", "Hello"], "No model folder at /no/such/model"),
        (["evaluate", "./missing-model"], "No model folder at missing-model"),
        (["train", "no_such_preset"], "no preset named 'no_such_preset'"),
        (["train", "transformer_small", "--set", "max_tokens=abc"], "`max_tokens` must be a positive integer"),
        (["train", "transformer_small", "--set", "learnin_rate=1"], "Unknown training config keys: learnin_rate"),
        (
            ["train", "rnn_small", "--set=separate_vocabularies=true"]
            + ["--set=model.share_encoder_decoder_embeddings=true"],
            "`model.share_encoder_decoder_embeddings` cannot be true",
        ),
    ],
)
def test_bad_input_is_a_clear_error_with_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_incomplete_model_folder_names_the_missing_files(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")
    assert main(["translate", str(tmp_path), "Hello"]) == 2
    assert "missing tokenizer.json, model.safetensors" in capsys.readouterr().err
