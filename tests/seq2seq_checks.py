"""Model-agnostic checks that every hf_attn seq2seq model must pass.

Both models' test files call these, so "behaves like a transformers seq2seq model" means
the same thing for the RNN and the Transformer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, PreTrainedModel

PAD, BOS, EOS = 0, 1, 2
FIRST_CONTENT_ID = 3

GENERATION_SETTINGS = {
    "greedy": {},
    "beam4_nbest2": {"num_beams": 4, "num_return_sequences": 2, "length_penalty": 0.8},
    "sampling": {"do_sample": True, "top_k": 0, "temperature": 1.0},
}


def make_padded_batch(
    vocab_size: int,
    batch_size: int = 3,
    max_len: int = 7,
    pad_token_id: int = PAD,
    eos_token_id: int = EOS,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A right-padded batch of random sentences of different lengths, each ending in EOS."""
    generator = torch.Generator().manual_seed(seed)
    lengths = [max_len - (i * 2) % max(max_len - 2, 1) for i in range(batch_size)]
    input_ids = torch.full((batch_size, max_len), pad_token_id, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, : length - 1] = torch.randint(FIRST_CONTENT_ID, vocab_size, (length - 1,), generator=generator)
        input_ids[row, length - 1] = eos_token_id
    return input_ids, (input_ids != pad_token_id).long()


def _generate(
    model: PreTrainedModel, input_ids, attention_mask, setting: str, use_cache: bool, **extra
) -> torch.Tensor:
    torch.manual_seed(1234)
    return model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        max_new_tokens=8,
        use_cache=use_cache,
        **GENERATION_SETTINGS[setting],
        **extra,
    )


def assert_cached_generation_matches_uncached(model: PreTrainedModel, input_ids, attention_mask) -> None:
    """Greedy, beam search (n-best) and seeded sampling give identical tokens with and without the cache."""
    model.eval()
    for setting in GENERATION_SETTINGS:
        cached = _generate(model, input_ids, attention_mask, setting, use_cache=True)
        uncached = _generate(model, input_ids, attention_mask, setting, use_cache=False)
        assert torch.equal(cached, uncached), f"{setting}: cached {cached.tolist()} != uncached {uncached.tolist()}"


def assert_beam_search_independent_of_batch(model: PreTrainedModel, input_ids, attention_mask) -> None:
    """Each sentence's logits and beam output are the same alone (unpadded) as inside the padded batch."""
    model.eval()
    batch_logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids).logits
    batch_beams = _generate(model, input_ids, attention_mask, "beam4_nbest2", use_cache=True)
    per_sentence = GENERATION_SETTINGS["beam4_nbest2"]["num_return_sequences"]
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        alone = input_ids[row : row + 1, :length]
        alone_logits = model(input_ids=alone, decoder_input_ids=input_ids[row : row + 1]).logits
        torch.testing.assert_close(alone_logits, batch_logits[row : row + 1], atol=1e-5, rtol=1e-5)
        alone_beams = _generate(model, alone, torch.ones_like(alone), "beam4_nbest2", use_cache=True)
        expected = batch_beams[row * per_sentence : (row + 1) * per_sentence, : alone_beams.shape[1]]
        assert torch.equal(alone_beams, expected), f"row {row}: {alone_beams.tolist()} != {expected.tolist()}"
        rest = batch_beams[row * per_sentence : (row + 1) * per_sentence, alone_beams.shape[1] :]
        # transformers 5.23 fills finished beams with `pad_token_id or eos_token_id`, i.e. EOS when pad is 0.
        filler = torch.tensor([model.generation_config.pad_token_id, model.generation_config.eos_token_id])
        assert bool(torch.isin(rest, filler).all()), "batched beam kept going past the lone one"


def assert_save_load_roundtrip(model: PreTrainedModel, tmp_path: Path, input_ids, attention_mask) -> PreTrainedModel:
    """save_pretrained writes safetensors + generation config; reloading via Auto gives identical logits."""
    model.eval()
    save_dir = tmp_path / "saved"
    model.save_pretrained(save_dir)
    assert (save_dir / "model.safetensors").is_file()
    assert (save_dir / "generation_config.json").is_file()
    assert not list(save_dir.glob("*.bin")), "weights must be saved as safetensors only"
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(save_dir).eval()
    assert type(reloaded) is type(model)
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask, "decoder_input_ids": input_ids}
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**kwargs).logits, model(**kwargs).logits, atol=0, rtol=0)
    return reloaded


BLOCK_HF_ATTN = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockHfAttn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_attn" or name.startswith("hf_attn."):
                raise ImportError("hf_attn is deliberately not importable in this process")
            return None

    sys.meta_path.insert(0, BlockHfAttn())
    """
)

REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

    model_dir, inputs_file, output_file = sys.argv[1:4]
    inputs = json.load(open(inputs_file))
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(model_dir, trust_remote_code=True)
    assert "hf_attn" not in sys.modules, "remote code imported hf_attn"
    ids = torch.tensor(inputs["input_ids"])
    mask = torch.tensor(inputs["attention_mask"])
    greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8)
    beams = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, num_beams=4, num_return_sequences=2)
    json.dump(
        {
            "greedy": greedy.tolist(),
            "beams": beams.tolist(),
            "config_class": type(config).__name__,
            "model_module": type(model).__module__,
            "base_class": type(base).__name__,
        },
        open(output_file, "w"),
    )
    """
)


def run_without_hf_attn(script: str, args: list[Path], tmp_path: Path) -> None:
    """Run ``script`` with ``args`` in a fresh offline Python where hf_attn cannot be imported."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_HF_ATTN + script, *map(str, args)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def assert_remote_code_roundtrip(model: PreTrainedModel, tmp_path: Path, input_ids, attention_mask) -> None:
    """A saved checkpoint loads with trust_remote_code in a process where hf_attn cannot be imported."""
    model.eval()
    save_dir = tmp_path / "remote"
    model.save_pretrained(save_dir)
    auto_map = json.loads((save_dir / "config.json").read_text())["auto_map"]
    assert {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"} <= set(auto_map), auto_map
    inputs_file, output_file = tmp_path / "inputs.json", tmp_path / "outputs.json"
    inputs_file.write_text(json.dumps({"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist()}))
    run_without_hf_attn(REMOTE_CODE_SCRIPT, [save_dir, inputs_file, output_file], tmp_path)
    remote = json.loads(output_file.read_text())
    assert remote["config_class"] == type(model.config).__name__
    assert not remote["model_module"].startswith("hf_attn"), remote["model_module"]
    assert remote["base_class"] == type(model).__name__.replace("ForConditionalGeneration", "Model")
    greedy = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8)
    beams = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8, num_beams=4, num_return_sequences=2
    )
    assert remote["greedy"] == greedy.tolist()
    assert remote["beams"] == beams.tolist()


def assert_every_parameter_gets_gradient(model: PreTrainedModel, input_ids, attention_mask) -> None:
    """One backward pass reaches every trainable parameter with a finite, non-zero gradient."""
    model.train()
    model.zero_grad()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(parameter.grad).all(), f"non-finite gradient in {name}"
        assert parameter.grad.abs().sum() > 0, f"zero gradient in {name}"


def reverse_task_batch(
    batch_size: int, min_len: int, max_len: int, num_symbols: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random symbol strings and their reversal: (input_ids, attention_mask, labels), EOS-terminated, padded."""
    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=generator)
    width = int(lengths.max()) + 1
    input_ids = torch.full((batch_size, width), PAD, dtype=torch.long)
    labels = torch.full((batch_size, width), -100, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        symbols = torch.randint(FIRST_CONTENT_ID, FIRST_CONTENT_ID + num_symbols, (length,), generator=generator)
        input_ids[row, :length] = symbols
        input_ids[row, length] = EOS
        labels[row, :length] = symbols.flip(0)
        labels[row, length] = EOS
    return input_ids, (input_ids != PAD).long(), labels


def reverse_task_accuracy(
    model: PreTrainedModel, min_len: int, max_len: int, num_symbols: int, num_examples: int = 200, seed: int = 10_000
) -> float:
    """Exact-match accuracy of greedy decoding on freshly drawn (held-out) sequences."""
    model.eval()
    input_ids, attention_mask, labels = reverse_task_batch(
        num_examples, min_len, max_len, num_symbols, torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        generated = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=labels.shape[1] + 1, num_beams=1
        )[:, 1:]
    correct = 0
    for row in range(num_examples):
        target = labels[row][labels[row] != -100].tolist()
        hypothesis = generated[row].tolist()
        correct += hypothesis[: len(target)] == target
    return correct / num_examples


def train_and_score_reverse_task(
    model: PreTrainedModel,
    steps: int = 300,
    batch_size: int = 64,
    min_len: int = 3,
    max_len: int = 10,
    num_symbols: int = 10,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> float:
    """Train on the string-reversal task with AdamW, then return held-out greedy exact-match accuracy."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
    model.train()
    for _ in range(steps):
        input_ids, attention_mask, labels = reverse_task_batch(batch_size, min_len, max_len, num_symbols, generator)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    return reverse_task_accuracy(model, min_len, max_len, num_symbols)
