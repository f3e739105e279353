"""Hub push/pull round trips against the local Hub stand-in (tests/hub_server.py).

Every Hub client runs in a fresh interpreter (``run_python``), because ``huggingface_hub``
reads ``HF_ENDPOINT`` at import. A round trip must reproduce the tokenizer's ids, the
forward logits and the generations of the model that was pushed. Models come from
``MODEL_CASES``, so each hf_attn model family is checked the same way as Marian.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from hub_server import LocalHub, last_json_line, run_python
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    MarianConfig,
    MarianMTModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

TESTS_DIR = Path(__file__).resolve().parent
SENTENCES = ["the cat sat on the mat", "a dog ran home", "the dog sat", "a cat ran on the mat"]
PROBE_SENTENCES = ["the cat sat on the mat", "a dog ran home"]
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
# Put at the top of a client script, this makes `import hf_attn` fail there, as on a machine without it.
BLOCK_HF_ATTN = "import sys\nsys.modules['hf_attn'] = None"


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer trained on four sentences: ids pad=0, bos=1, eos=2, unk=3."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        SENTENCES, trainers.WordLevelTrainer(special_tokens=["<pad>", "<s>", "</s>", "<unk>"])
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_marian(tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
        init_std=0.5,  # large enough that generations depend on the input
    )
    return MarianMTModel(config)


def tiny_transformer_seq2seq(tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    from hf_attn import TransformerSeq2SeqConfig, TransformerSeq2SeqForConditionalGeneration

    config = TransformerSeq2SeqConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=32,
        dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    return TransformerSeq2SeqForConditionalGeneration(config)


def tiny_rnn_seq2seq(tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    from hf_attn import RNNSeq2SeqConfig, RNNSeq2SeqForConditionalGeneration

    config = RNNSeq2SeqConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        embedding_size=16,
        dropout=0.0,
        embedding_dropout=0.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
    )
    return RNNSeq2SeqForConditionalGeneration(config)


@dataclass(frozen=True)
class ModelCase:
    """One model family for the round trips: a tiny builder, and whether loading it needs hf_attn."""

    name: str
    build: Callable[[PreTrainedTokenizerFast], PreTrainedModel]
    needs_hf_attn: bool = False

    @property
    def client_preamble(self) -> str:
        """What a client script runs first so that the Auto classes know the model type."""
        return "import hf_attn" if self.needs_hf_attn else ""


MARIAN = ModelCase("marian", tiny_marian)
TRANSFORMER = ModelCase("transformer_seq2seq", tiny_transformer_seq2seq, needs_hf_attn=True)
RNN = ModelCase("rnn_seq2seq", tiny_rnn_seq2seq, needs_hf_attn=True)
MODEL_CASES = [MARIAN, TRANSFORMER, RNN]


def probe(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """What a pulled model and tokenizer must reproduce: weights bit for bit, token ids, logits, generations.

    Client scripts import this function, so both sides compute it the same way.
    """
    model.eval()
    weights = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        weights.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    batch = tokenizer(PROBE_SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch, decoder_input_ids=batch["input_ids"]).logits
        greedy = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=1)
        beams = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=3)
    return {
        "weights_sha256": weights.hexdigest(),
        "input_ids": batch["input_ids"].tolist(),
        "decoded_inputs": tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=True),
        "logits": logits.tolist(),
        "greedy": greedy.tolist(),
        "beams": beams.tolist(),
    }


def assert_same_behaviour(pulled: dict[str, Any], reference: dict[str, Any]) -> None:
    for key in ("weights_sha256", "input_ids", "decoded_inputs", "greedy", "beams"):
        assert pulled[key] == reference[key], key
    torch.testing.assert_close(torch.tensor(pulled["logits"]), torch.tensor(reference["logits"]), rtol=0, atol=1e-5)


@dataclass(frozen=True)
class SavedModel:
    path: Path
    reference: dict[str, Any]


def save_tiny_model(case: ModelCase, path: Path) -> SavedModel:
    """Build ``case`` with seeded random weights, save it with its tokenizer, and probe it."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = case.build(tokenizer).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return SavedModel(path, probe(model, tokenizer))


def pull_script(repo_id: str, *, preamble: str, trust_remote_code: bool = False) -> str:
    """A client that loads ``repo_id`` with the Auto classes and prints its probe as JSON."""
    return f"""{preamble}
import json, sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from test_hub import probe
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained({repo_id!r}, trust_remote_code={trust_remote_code})
tokenizer = AutoTokenizer.from_pretrained({repo_id!r}, trust_remote_code={trust_remote_code})
print(json.dumps({{**probe(model, tokenizer), "model_module": type(model).__module__}}))
"""


def repo_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative POSIX path, skipping the client's ``.cache``."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and ".cache" not in path.relative_to(folder).parts
    }


def resolved_downloads(hub: LocalHub, repo_id: str) -> set[str]:
    """File names the hub served to ``GET .../resolve/...`` for ``repo_id``."""
    pattern = re.compile(rf"/{re.escape(repo_id)}/resolve/[^/]+/(.+)")
    return {match.group(1) for method, path in hub.requests if method == "GET" and (match := pattern.fullmatch(path))}


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda case: case.name)
def test_push_to_hub_then_from_pretrained_in_a_fresh_process(local_hub: LocalHub, tmp_path: Path, case: ModelCase):
    saved = save_tiny_model(case, tmp_path / "model")
    push = f"""{case.client_preamble}
import json
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained({str(saved.path)!r})
tokenizer = AutoTokenizer.from_pretrained({str(saved.path)!r})
print(json.dumps([model.push_to_hub("user/tiny").oid, tokenizer.push_to_hub("user/tiny").oid]))
"""
    commits = last_json_line(run_python(push, local_hub.env, cwd=tmp_path))
    assert all(COMMIT_SHA.fullmatch(sha) for sha in commits) and commits[0] != commits[1], commits
    assert local_hub.store.get("user/tiny").main == commits[1]

    # An hf_attn model is pulled where hf_attn cannot be imported, from the repo's own code (the
    # harder case); loading it with hf_attn installed is covered by the push_model_folder test.
    if case.needs_hf_attn:
        pull = pull_script("user/tiny", preamble=BLOCK_HF_ATTN, trust_remote_code=True)
    else:
        pull = pull_script("user/tiny", preamble=case.client_preamble)
    local_hub.requests.clear()
    pulled = last_json_line(run_python(pull, local_hub.env_for(tmp_path / "cold_home"), cwd=tmp_path))
    assert_same_behaviour(pulled, saved.reference)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= resolved_downloads(local_hub, "user/tiny")
    if case.needs_hf_attn:
        assert pulled["model_module"].startswith("transformers_modules."), pulled["model_module"]


def test_push_model_folder_uploads_the_whole_folder(local_hub: LocalHub, tmp_path: Path):
    saved = save_tiny_model(TRANSFORMER, tmp_path / "model")  # its folder also holds remote-code .py files
    (saved.path / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- translation\n---\n# Tiny model\n")
    (saved.path / "plots").mkdir()
    (saved.path / "plots" / "attention.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (saved.path / "__pycache__").mkdir()
    (saved.path / "__pycache__" / "modeling.cpython-311.pyc").write_bytes(b"stale bytecode")
    (saved.path / "checkpoint-10").mkdir()
    (saved.path / "checkpoint-10" / "optimizer.pt").write_bytes(b"training state")
    download = tmp_path / "download"
    push = f"""
import json
from huggingface_hub import snapshot_download
from hf_attn.hub import push_model_folder
commit = push_model_folder(
    {str(saved.path)!r}, "user/folder-model", commit_message="Add tiny model", token={local_hub.token!r}
)
snapshot_download("user/folder-model", local_dir={str(download)!r})
print(json.dumps({{"url": commit, "oid": commit.oid, "repo_url": commit.repo_url}}))
"""
    # No HF_TOKEN in the environment: the upload is authorised only by the token argument.
    pushed = last_json_line(run_python(push, {**local_hub.env, "HF_TOKEN": ""}, cwd=tmp_path))

    repo = local_hub.store.get("user/folder-model")
    assert pushed["oid"] == repo.main and repo.commits[repo.main].message == "Add tiny model"
    assert pushed["url"] == f"{local_hub.endpoint}/user/folder-model/commit/{repo.main}"
    assert pushed["repo_url"] == f"{local_hub.endpoint}/user/folder-model"
    skipped = ("__pycache__/", "checkpoint-10/")
    local = {name: data for name, data in repo_files(saved.path).items() if not name.startswith(skipped)}
    remote = repo_files(download)
    assert remote.pop(".gitattributes")  # the Hub's initial commit
    assert remote == local
    assert {"modeling_transformer_seq2seq.py", "README.md", "plots/attention.png", "tokenizer.json"} <= set(remote)
    model = AutoModelForSeq2SeqLM.from_pretrained(download)
    assert_same_behaviour(probe(model, AutoTokenizer.from_pretrained(download)), saved.reference)


@pytest.mark.parametrize("repo_id", ["owner/name/extra", "has space", "-leading-dash", "x--y", "name.git", ""])
def test_push_model_folder_rejects_bad_repo_ids(tmp_path: Path, repo_id: str):
    from hf_attn.hub import push_model_folder

    with pytest.raises(
        ValueError, match=f"Invalid Hub repo id {re.escape(repr(repo_id))}: expected 'name' or 'owner/name'"
    ):
        push_model_folder(tmp_path, repo_id)


def test_push_model_folder_names_what_the_folder_lacks(tmp_path: Path):
    from hf_attn.hub import push_model_folder

    folder = save_tiny_model(MARIAN, tmp_path / "model").path
    with pytest.raises(FileNotFoundError, match="does not exist or is not a directory"):
        push_model_folder(tmp_path / "nowhere", "user/x")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no \*\.safetensors weight file \(found: config.json, "):
        push_model_folder(folder, "user/x")
    (folder / "config.json").write_text("[]")
    with pytest.raises(ValueError, match="is not a transformers config: it has no 'model_type'"):
        push_model_folder(folder, "user/x")
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        push_model_folder(folder, "user/x")


def test_pulling_an_unknown_repo_fails_clearly(local_hub: LocalHub, tmp_path: Path):
    script = """
import json
from huggingface_hub import snapshot_download
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
errors = {}
for name, load in [
    ("snapshot", lambda: snapshot_download("user/missing")),
    ("model", lambda: AutoModelForSeq2SeqLM.from_pretrained("user/missing")),
    ("tokenizer", lambda: AutoTokenizer.from_pretrained("user/missing")),
]:
    try:
        load()
        errors[name] = "no error"
    except Exception as err:
        errors[name] = f"{type(err).__name__}: {err}"
print(json.dumps(errors))
"""
    errors = last_json_line(run_python(script, local_hub.env, cwd=tmp_path))
    assert errors["snapshot"].startswith("RepositoryNotFoundError: 404 Client Error."), errors["snapshot"]
    assert "Repository Not Found for url: " in errors["snapshot"]
    for name in ("model", "tokenizer"):
        assert errors[name].startswith(
            "OSError: user/missing is not a local folder and is not a valid model identifier"
        ), errors[name]


def test_local_hub_keeps_revisions_lists_trees_and_types_errors(local_hub: LocalHub, tmp_path: Path):
    """The stand-in itself, through the real client: what the round trips above rely on."""
    script = """
import json
from huggingface_hub import CommitOperationAdd, HfApi

api = HfApi()
api.create_repo("user/notes")
first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id="user/notes").oid
operations = [CommitOperationAdd("a.txt", b"v2"), CommitOperationAdd("sub/dir/b.txt", b"b")]
second = api.create_commit("user/notes", operations, commit_message="second").oid
unchanged = api.upload_file(path_or_fileobj=b"v2", path_in_repo="a.txt", repo_id="user/notes").oid
api.create_repo("user/secret", private=True)

def read(filename, revision=None):
    return open(api.hf_hub_download("user/notes", filename, revision=revision)).read()

def error(call):
    try:
        call()
        return "no error"
    except Exception as err:
        return type(err).__name__

print(json.dumps({
    "first": first, "second": second, "unchanged": unchanged, "main_sha": api.model_info("user/notes").sha,
    "main": read("a.txt"), "at_first": read("a.txt", first), "nested": read("sub/dir/b.txt", second),
    "recursive": sorted((e.path, type(e).__name__) for e in api.list_repo_tree("user/notes", recursive=True)),
    "top": sorted(e.path for e in api.list_repo_tree("user/notes")),
    "sub": sorted(e.path for e in api.list_repo_tree("user/notes", path_in_repo="sub", recursive=True)),
    "errors": {
        "missing_file": error(lambda: read("nope.txt")),
        "missing_folder": error(lambda: list(api.list_repo_tree("user/notes", path_in_repo="nope"))),
        "missing_revision": error(lambda: read("a.txt", "f" * 40)),
        "missing_repo": error(lambda: api.model_info("user/missing")),
        "existing_repo": error(lambda: api.create_repo("user/notes")),
        "wrong_token": error(lambda: HfApi(token="hf_wrong").create_repo("user/other")),
        "private_anonymous": error(lambda: HfApi(token=False).model_info("user/secret")),
        "private_with_token": error(lambda: api.model_info("user/secret")),
    },
}))
"""
    seen = last_json_line(run_python(script, local_hub.env, cwd=tmp_path))
    assert COMMIT_SHA.fullmatch(seen["first"]) and seen["first"] != seen["second"]
    assert seen["unchanged"] == seen["second"] == seen["main_sha"]  # no empty commit for an unchanged file
    assert (seen["main"], seen["at_first"], seen["nested"]) == ("v2", "v1", "b")
    assert seen["recursive"] == [
        [".gitattributes", "RepoFile"],
        ["a.txt", "RepoFile"],
        ["sub", "RepoFolder"],
        ["sub/dir", "RepoFolder"],
        ["sub/dir/b.txt", "RepoFile"],
    ]
    assert seen["top"] == [".gitattributes", "a.txt", "sub"]
    assert seen["sub"] == ["sub/dir", "sub/dir/b.txt"]
    assert seen["errors"] == {
        "missing_file": "RemoteEntryNotFoundError",
        "missing_folder": "RemoteEntryNotFoundError",
        "missing_revision": "RevisionNotFoundError",
        "missing_repo": "RepositoryNotFoundError",
        "existing_repo": "HfHubHTTPError",
        "wrong_token": "HfHubHTTPError",
        "private_anonymous": "RepositoryNotFoundError",
        "private_with_token": "no error",
    }
