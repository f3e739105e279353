"""`hf-attn push` against the local Hub stand-in: card first, whole folder up, and the card's usage code runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from hub_server import LocalHub, run_python
from test_hub import BLOCK_HF_ATTN, repo_files
from tiny_seq2seq import (
    MODEL_TYPES,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    train_tiny_run,
)

from hf_attn.cli import main as cli_main
from hf_attn.inference import load_model_and_tokenizer

OWN_CARD = "---\nlicense: mit\n---\n# My own card\n"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.DOTALL)


def push_command(model_dir: Path, repo_id: str, *extra: str) -> str:
    """A client script running `hf-attn push` (a fresh interpreter: the Hub endpoint is read at import)."""
    return f"""
from hf_attn.cli import main
assert main(["push", {str(model_dir)!r}, {repo_id!r}, *{list(extra)!r}]) == 0
"""


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_push_writes_a_card_uploads_the_folder_and_the_card_code_runs(
    local_hub: LocalHub, tmp_path: Path, model_type: str
):
    run = train_tiny_run(model_type, tmp_path / "run")
    best = run / "best"
    repo_id = f"user/tiny-{model_type.replace('_', '-')}"
    assert not (best / "README.md").exists()
    # One client pushes, then runs the card's usage code as a reader with hf_attn would (Auto classes, pipeline).
    script = (
        push_command(best, repo_id, "--message", "First upload")
        + f"""
import re
card = open({str(best / "README.md")!r}, encoding="utf-8").read()
blocks = re.findall(r"```python\\n(.*?)```", card, re.DOTALL)
print("=== card code ===", flush=True)
exec(blocks[0] + blocks[2])
# A folder that already has a card keeps it.
open({str(best / "README.md")!r}, "w", encoding="utf-8").write({OWN_CARD!r})
"""
        + push_command(best, f"{repo_id}-own-card", "--private")
    )
    pushed = run_python(script, local_hub.env, cwd=tmp_path).stdout.strip().splitlines()

    repo = local_hub.store.get(repo_id)
    assert pushed[0] == f"{local_hub.endpoint}/{repo_id}/commit/{repo.main}"
    assert repo.commits[repo.main].message == "First upload"
    card = local_hub.store.blob_path(repo.commits[repo.main].files["README.md"]).read_text(encoding="utf-8")
    assert card.startswith("---\n") and f"# {repo_id}\n" in card
    remote = {name: local_hub.store.blob_path(oid).read_bytes() for name, oid in repo.commits[repo.main].files.items()}
    local = repo_files(best)
    assert local.pop("README.md") == OWN_CARD.encode()  # the script replaced the written card after the push
    assert {name: remote[name] for name in local} == local  # every file of the folder, byte for byte
    assert {"README.md", "learning_curve.png", "bleu_by_length.png", "model.safetensors", "tokenizer.json"} <= set(
        remote
    )

    # The card's remote-code route, where hf_attn cannot be imported.
    _, without_hf_attn, _ = python_blocks(card)
    assert "trust_remote_code=True" in without_hf_attn and "import hf_attn" not in without_hf_attn
    remote_code = run_python(f"{BLOCK_HF_ATTN}\n{without_hf_attn}", local_hub.env_for(tmp_path / "bare"), cwd=tmp_path)

    model, tokenizer = load_model_and_tokenizer(best)
    inputs = tokenizer(["In the beginning God created the heaven and the earth."], return_tensors="pt")
    with torch.no_grad():
        expected = tokenizer.batch_decode(
            model.generate(**inputs, num_beams=4, max_new_tokens=64), skip_special_tokens=True
        )
    assert pushed[1:3] == ["=== card code ===", str(expected)]
    assert remote_code.stdout.strip().splitlines() == [str(expected)]  # and no trust_remote_code prompt
    assert pushed[3].startswith("[{'translation_text': ") and len(pushed) == 5

    own = local_hub.store.get(f"{repo_id}-own-card")
    assert own.private and local_hub.store.blob_path(own.commits[own.main].files["README.md"]).read_text() == OWN_CARD


def test_push_checks_the_repo_id_and_the_folder_before_writing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    folder = tmp_path / "model"
    save_tiny_model("transformer_seq2seq", folder)
    assert cli_main(["push", str(folder), "not a repo"]) == 2
    assert re.search(r"error: Invalid Hub repo id 'not a repo'", capsys.readouterr().err)
    assert cli_main(["push", str(tmp_path), "user/empty"]) == 2
    assert re.search(r"error: Model folder .* has no config.json", capsys.readouterr().err)
    assert not (folder / "README.md").exists() and not (tmp_path / "README.md").exists()
