"""Folders saved before the package was split into hf_attn/models/, hf_attn/training/ … still load and decode the same.

`tests/fixtures/checkpoints_0.1/` holds tiny checkpoints written by the flat-layout code
(its remote-code files and `auto_map` included) and what that code generated. Users have
such folders: they must load with today's package installed, and with `trust_remote_code`
where it is not, and give the same tokens and losses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from seq2seq_checks import run_without_hf_attn

FIXTURES = Path(__file__).parent / "fixtures" / "checkpoints_0.1"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
NAMES = ("transformer", "rnn")

# Loads a fixture folder (argv[1]) with whatever AutoModelForSeq2SeqLM resolves, decodes the
# fixture's sentences as the flat-layout code did, and writes the results to argv[2].
DECODE = """
import json, sys
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

folder, expected_file, output_file = sys.argv[1:4]
expected = json.load(open(expected_file))
remote = {"trust_remote_code": True} if "--remote" in sys.argv else {}
torch.set_num_threads(1)
model = AutoModelForSeq2SeqLM.from_pretrained(folder, **remote).eval()
tokenizer = AutoTokenizer.from_pretrained(folder, **remote)
batch = tokenizer(expected["sources"], return_tensors="pt", padding=True)
labels = tokenizer(text_target=expected["targets"], return_tensors="pt", padding=True)["input_ids"]
labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100)
with torch.no_grad():
    forced = model(**batch, labels=labels)
    result = {
        "module": type(model).__module__,
        "greedy": model.generate(**batch, max_new_tokens=12).tolist(),
        "beam3": model.generate(**batch, max_new_tokens=12, num_beams=3).tolist(),
        "teacher_forced_loss": forced.loss.item(),
        "teacher_forced_argmax": forced.logits.argmax(-1).tolist(),
    }
json.dump(result, open(output_file, "w"))
"""


def assert_decodes_as_saved(result: dict, name: str) -> None:
    expected = EXPECTED[name]
    assert result["greedy"] == expected["greedy"]
    assert result["beam3"] == expected["beam3"]
    assert result["teacher_forced_argmax"] == expected["teacher_forced_argmax"]
    assert result["teacher_forced_loss"] == pytest.approx(expected["teacher_forced_loss"], abs=1e-5)


def decode_in_fresh_python(name: str, tmp_path: Path, remote: bool) -> dict:
    """Run DECODE on a fixture folder in a new process: with hf_attn imported, or where it cannot be imported."""
    output = tmp_path / "result.json"
    args = [FIXTURES / name, FIXTURES / "expected.json", output]
    if remote:
        run_without_hf_attn(DECODE, [*args, "--remote"], tmp_path)
    else:
        env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "-c", "import hf_attn\n" + DECODE, *map(str, args)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(output.read_text())


@pytest.mark.parametrize("name", NAMES)
def test_flat_layout_checkpoint_loads_with_the_installed_package(name, tmp_path):
    assert "auto_map" in json.loads((FIXTURES / name / "config.json").read_text())
    result = decode_in_fresh_python(name, tmp_path, remote=False)
    assert result["module"].startswith("hf_attn.models."), result["module"]
    assert_decodes_as_saved(result, name)


@pytest.mark.parametrize("name", NAMES)
def test_flat_layout_checkpoint_loads_its_own_code_without_hf_attn(name, tmp_path):
    result = decode_in_fresh_python(name, tmp_path, remote=True)
    assert not result["module"].startswith("hf_attn"), result["module"]
    assert_decodes_as_saved(result, name)
