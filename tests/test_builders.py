"""Each builder alone: what it takes from the config, and that the training loader follows the batch plan."""

from __future__ import annotations

import datasets
import pytest
from accelerate import Accelerator
from tiny_seq2seq import TINY_CONFIGS

from hf_attn.batching import TokenBatchSampler, plan_token_batches
from hf_attn.tokenization import train_bpe_tokenizer
from hf_attn.training.builders import (
    build_collator,
    build_model,
    build_optimizer,
    build_scheduler,
    build_train_loader,
    build_training_data,
    select_subsets,
)
from hf_attn.training.config import TrainingConfig


def pairs(count: int, start: int = 0) -> datasets.Dataset:
    numbers = range(start, start + count)
    return datasets.Dataset.from_dict(
        {
            "source": [f"word {i} " * (1 + i % 5) for i in numbers],
            "target": [f"palabra {i} " * (1 + i % 4) for i in numbers],
        }
    )


@pytest.fixture(scope="module")
def corpus() -> datasets.DatasetDict:
    return datasets.DatasetDict({"train": pairs(120), "validation": pairs(10, start=500)})


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_bpe_tokenizer(corpus, vocab_size=300)


def test_subsets_cap_train_and_dev_without_touching_the_corpus(corpus):
    subsets = select_subsets(TrainingConfig(max_train_examples=50, eval_examples=4), corpus)
    assert (len(subsets["train"]), len(subsets["validation"])) == (50, 4)
    assert subsets["train"]["source"] == corpus["train"]["source"][:50], "the first pairs, in corpus order"
    assert (len(corpus["train"]), len(corpus["validation"])) == (120, 10), "the loaded corpus is left whole"
    whole = select_subsets(TrainingConfig(eval_examples=100), corpus)
    assert (len(whole["train"]), len(whole["validation"])) == (120, 10)


def test_train_loader_yields_the_planned_batches_collated(corpus, tokenizer):
    config = TrainingConfig(max_tokens=64, max_source_tokens=32, max_target_tokens=32, seed=3, eval_examples=4)
    data = build_training_data(config, select_subsets(config, corpus), tokenizer, Accelerator(cpu=True))
    assert data.train.column_names == ["input_ids", "labels"] and len(data.dev_sources) == 4
    loader = build_train_loader(config, data, build_collator(tokenizer), Accelerator(cpu=True))
    assert isinstance(loader.batch_sampler, TokenBatchSampler)
    loader.batch_sampler.set_epoch(1)
    plan = plan_token_batches(data.train_lengths, 64, seed=3, epoch=1)
    batches = list(loader)
    assert len(batches) == len(plan)
    for batch, indices in zip(batches, plan):
        assert batch["input_ids"].shape[0] == len(indices)
        first = data.train[int(indices[0])]["input_ids"]
        assert batch["input_ids"][0, : len(first)].tolist() == first


def test_optimizer_and_schedule_follow_the_config(tokenizer):
    config = TrainingConfig(
        model_type="transformer_seq2seq",
        model=TINY_CONFIGS["transformer_seq2seq"],
        learning_rate=2e-3,
        adam_beta2=0.9,
        weight_decay=0.01,
        warmup_steps=4,
    )
    model = build_model(config, tokenizer)
    optimizer = build_optimizer(config, model)
    group = optimizer.param_groups[0]
    assert (group["betas"], group["weight_decay"]) == ((config.adam_beta1, 0.9), 0.01)
    assert sum(p.numel() for p in group["params"]) == sum(p.numel() for p in model.parameters())
    scheduler = build_scheduler(config, optimizer)
    rates = []
    for _ in range(8):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[:5] == pytest.approx([0.0, 5e-4, 1e-3, 1.5e-3, 2e-3]), "linear warm-up over warmup_steps"
    assert rates[5] == pytest.approx(2e-3 * (4 / 5) ** 0.5), "then the inverse square root of the step"
