"""LoRA through peft on both models: what it adapts, that only adapters train, merging, saving and reloading."""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest
import torch
from peft import AutoPeftModelForSeq2SeqLM, PeftModel
from tiny_seq2seq import (
    MODEL_TYPES,
    one_torch_thread,  # noqa: F401 - applies the fixture to this module
    save_tiny_model,
    short_pairs,
    small_tokenizer,
)
from transformers import AutoModelForSeq2SeqLM

from hf_attn.training.finetune import build_trainer, finetune, tokenize_pairs, training_arguments
from hf_attn.training.lora import adapted_module_names, add_lora, lora_config

# What hf_attn/lora.py documents that "all-linear" adapts (the output projection never is).
DOCUMENTED_TARGETS = {
    "transformer_seq2seq": ["fc1", "fc2", "kv_proj", "out_proj", "q_proj", "qkv_proj"],
    "rnn_seq2seq": ["attentional_layer", "bridge", "energy", "key_projection", "query_projection"],
}


def probe_batch() -> dict[str, torch.Tensor]:
    pairs = short_pairs("test", 3)
    return small_tokenizer()(
        list(pairs["source"]), text_target=list(pairs["target"]), padding=True, return_tensors="pt"
    )


def outputs(model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits under teacher forcing and greedy generations: what a merged or reloaded model must reproduce."""
    batch = probe_batch()
    model.eval()
    with torch.no_grad():
        logits = model(**{**batch, "labels": batch["labels"].masked_fill(batch["labels"] == 0, -100)}).logits
        generated = model.generate(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=8
        )
    return logits, generated


def assert_same_outputs(model: torch.nn.Module, reference: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, generated = outputs(model)
    torch.testing.assert_close(logits, reference[0], rtol=0, atol=1e-5)
    assert torch.equal(generated, reference[1])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_all_linear_adapts_the_documented_layers(model_type: str, tmp_path: Path):
    save_tiny_model(model_type, tmp_path)
    adapted = add_lora(AutoModelForSeq2SeqLM.from_pretrained(tmp_path))
    assert adapted_module_names(adapted) == DOCUMENTED_TARGETS[model_type]
    trainable = {name for name, parameter in adapted.named_parameters() if parameter.requires_grad}
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    subset = add_lora(AutoModelForSeq2SeqLM.from_pretrained(tmp_path), lora_config(target_modules=["fc1", "bridge"]))
    assert adapted_module_names(subset) == [
        name for name in ("bridge", "fc1") if name in DOCUMENTED_TARGETS[model_type]
    ]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_lora_trains_only_adapters_merges_saves_and_reloads(model_type: str, tmp_path: Path):
    base_dir = tmp_path / "base"
    save_tiny_model(model_type, base_dir)
    base = AutoModelForSeq2SeqLM.from_pretrained(base_dir)
    original = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    model = add_lora(base, lora_config(r=4, alpha=8))
    initial_adapters = {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}

    tokenizer = small_tokenizer()
    args = training_arguments(
        tmp_path / "run", max_steps=5, learning_rate=1e-2, per_device_train_batch_size=8, eval_strategy="no",
        save_strategy="no", load_best_model_at_end=False, disable_tqdm=True, logging_steps=1,
    )  # fmt: skip
    build_trainer(model, tokenizer, args, tokenize_pairs(short_pairs("train", 64), tokenizer)).train()

    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" not in name:
            assert torch.equal(tensor, original[name.replace(".base_layer.", ".")]), f"base weight {name} changed"
    changed = [
        name for name, p in model.named_parameters() if "lora_" in name and not torch.equal(p, initial_adapters[name])
    ]
    assert sorted(changed) == sorted(initial_adapters), "every adapter matrix should have trained"

    adapted = outputs(model)
    assert not torch.allclose(adapted[0], outputs(AutoModelForSeq2SeqLM.from_pretrained(base_dir))[0])
    model.save_pretrained(tmp_path / "adapter")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (tmp_path / "adapter").iterdir()}
    reloaded = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base_dir), tmp_path / "adapter")
    assert_same_outputs(reloaded, adapted)
    assert_same_outputs(AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "adapter"), adapted)  # base found by path

    merged = model.merge_and_unload()
    assert type(merged) is type(AutoModelForSeq2SeqLM.from_pretrained(base_dir))
    assert not any("lora_" in name for name in merged.state_dict())
    assert_same_outputs(merged, adapted)
    merged.save_pretrained(tmp_path / "merged")
    assert_same_outputs(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "merged"), adapted)


def test_finetune_with_lora_saves_the_adapter_and_a_merged_model(tmp_path: Path):
    base_dir = tmp_path / "base"
    save_tiny_model("transformer_seq2seq", base_dir)
    data = datasets.DatasetDict(train=short_pairs("train", 64), validation=short_pairs("validation", 4))
    result = finetune(
        base_dir, tmp_path / "run", data=data, lora=lora_config(r=4), eval_examples=4, max_steps=4, eval_steps=2,
        save_steps=2, learning_rate=1e-2, per_device_train_batch_size=8, generation_num_beams=1,
        generation_max_length=12, disable_tqdm=True,
    )  # fmt: skip
    best = Path(result.best_model_dir)
    assert (best / "adapter_model.safetensors").is_file() and not (best / "model.safetensors").exists()
    adapted = outputs(AutoPeftModelForSeq2SeqLM.from_pretrained(best))
    assert_same_outputs(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "merged"), adapted)
    base = AutoModelForSeq2SeqLM.from_pretrained(base_dir)
    merged = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "merged")
    untouched = [name for name in base.state_dict() if "shared" in name or "layer_norm" in name]
    assert untouched and all(torch.equal(base.state_dict()[n], merged.state_dict()[n]) for n in untouched)
