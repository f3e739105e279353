"""The "hf-attn-translation" pipeline: same text as generate + decode, batching, alignments, Hub ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import LocalHub, last_json_line, run_python
from tiny_seq2seq import (
    MODEL_TYPES,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    short_pairs,
    small_tokenizer,
)
from transformers import Pipeline, pipeline

from hf_attn.generation import translate
from hf_attn.pipelines import TASK, HfAttnTranslationPipeline

SOURCES = list(short_pairs("test", 5)["source"])
GENERATION = {"num_beams": 2, "max_new_tokens": 12}


@pytest.fixture(scope="module", params=MODEL_TYPES)
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A tiny model of each family saved with its tokenizer: (folder, the model object)."""
    path = tmp_path_factory.mktemp(request.param)
    return path, save_tiny_model(request.param, path)


def generate_and_decode(model: torch.nn.Module, source: str, **generate_kwargs) -> list[str]:
    """What a user would write by hand: tokenize one sentence, generate, decode without the start token."""
    tokenizer = small_tokenizer()
    with torch.no_grad():
        output = model.generate(**tokenizer(source, return_tensors="pt"), **generate_kwargs)
    return [text.strip() for text in tokenizer.batch_decode(output[:, 1:], skip_special_tokens=True)]


def test_single_string_gives_the_text_of_generate_and_decode(saved):
    path, model = saved
    translator = pipeline(TASK, model=str(path))
    assert isinstance(translator, HfAttnTranslationPipeline) and isinstance(translator, Pipeline)
    assert type(translator.model) is type(model)
    for source in SOURCES[:2]:
        expected = generate_and_decode(model, source, **GENERATION)
        assert translator(source, **GENERATION) == [{"translation_text": expected[0]}]
    texts = [translator(source, **GENERATION)[0]["translation_text"] for source in SOURCES]
    assert any(texts) and len(set(texts)) > 1, texts  # a constant or empty output would make the checks vacuous


def test_list_input_with_batching_gives_one_translation_per_sentence(saved):
    path, model = saved
    translator = pipeline(TASK, model=str(path), batch_size=3)
    expected = [generate_and_decode(model, source, **GENERATION)[0] for source in SOURCES]
    assert translator(SOURCES, **GENERATION) == [{"translation_text": text} for text in expected]
    assert translator(SOURCES, batch_size=1, **GENERATION) == [{"translation_text": text} for text in expected]


def test_several_sequences_per_input(saved):
    path, model = saved
    translator = pipeline(TASK, model=str(path))
    expected = generate_and_decode(model, SOURCES[0], num_return_sequences=2, **GENERATION)
    single = translator(SOURCES[0], num_return_sequences=2, **GENERATION)
    assert single == [{"translation_text": text} for text in expected]
    batched = translator(SOURCES[:2], num_return_sequences=2, batch_size=2, **GENERATION)
    assert len(batched) == 2 and batched[0] == single and all(len(item) == 2 for item in batched)


def test_default_length_bound_matches_hf_attn_translate(saved):
    """Without a length setting each sentence is bounded by its own length, as `hf-attn translate` does."""
    path, model = saved
    translator = pipeline(TASK, model=str(path), batch_size=4)
    expected = translate(model, small_tokenizer(), SOURCES, num_beams=1)
    assert [item["translation_text"] for item in translator(SOURCES)] == expected


@pytest.mark.parametrize("batch_size", [1, 2])
def test_return_alignment(saved, batch_size):
    path, _ = saved
    translator = pipeline(TASK, model=str(path))
    plain = translator(SOURCES[:2], num_beams=2)
    results = translator(SOURCES[:2], return_alignment=True, num_beams=2, batch_size=batch_size)
    tokenizer = small_tokenizer()
    for result, without, source in zip(results, plain, SOURCES):
        assert result["translation_text"] == without["translation_text"]
        found = result["alignment"]
        assert found["source_tokens"] == tokenizer.convert_ids_to_tokens(tokenizer(source)["input_ids"])
        attention = found["attention"]
        # (layers, target, source); both tiny models have one decoder layer.
        assert attention.shape == (1, len(found["target_tokens"]), len(found["source_tokens"]))
        assert found["attention_per_head"].shape[0] == attention.shape[0]
        np.testing.assert_allclose(attention.sum(axis=-1), 1.0, atol=1e-5)
        text = tokenizer.convert_tokens_to_string(
            [t for t in found["target_tokens"] if t not in tokenizer.all_special_tokens]
        )
        assert text.strip() == result["translation_text"]


def test_return_alignment_refuses_settings_it_cannot_follow(saved):
    path, _ = saved
    translator = pipeline(TASK, model=str(path))
    with pytest.raises(
        ValueError, match=r"return_alignment=True supports only \['max_new_tokens', 'num_beams'\].*do_sample"
    ):
        translator(SOURCES[0], return_alignment=True, do_sample=True)


def test_rejects_non_strings(saved):
    translator = pipeline(TASK, model=str(saved[0]))
    with pytest.raises(TypeError, match="hf-attn-translation translates strings, got int"):
        translator(3)


def test_pipeline_from_a_local_hub_repo_id(local_hub: LocalHub, tmp_path: Path):
    expected, repos = {}, {}
    for model_type in MODEL_TYPES:
        model = save_tiny_model(model_type, tmp_path / model_type)
        expected[model_type] = [generate_and_decode(model, source, **GENERATION)[0] for source in SOURCES[:2]]
        repos[model_type] = f"user/tiny-{model_type.replace('_', '-')}"
    script = f"""
import json
import hf_attn
from hf_attn.hub import push_model_folder
from transformers import pipeline
found = {{}}
for model_type, repo_id in {repos!r}.items():
    push_model_folder({str(tmp_path)!r} + "/" + model_type, repo_id)
    translator = pipeline("hf-attn-translation", model=repo_id)
    found[model_type] = [translator({SOURCES[:2]!r}, batch_size=2, **{GENERATION!r}), translator.model.name_or_path]
print(json.dumps(found))
"""
    found = last_json_line(run_python(script, local_hub.env, cwd=tmp_path))
    for model_type, repo_id in repos.items():
        assert found[model_type] == [[{"translation_text": text} for text in expected[model_type]], repo_id]
        downloads = {
            path.rsplit("/", 1)[-1]
            for method, path in local_hub.requests
            if method == "GET" and f"/{repo_id}/resolve/" in path
        }
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= downloads
