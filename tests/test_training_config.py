"""Training configs load from presets/files with overrides, and bad values name the field."""

from __future__ import annotations

import pytest

from hf_attn.training_config import TrainingConfig, load_training_config


@pytest.mark.parametrize("preset", ["transformer_small", "rnn_small"])
def test_presets_load_and_build_valid_model_configs(preset):
    from transformers import AutoConfig

    config = load_training_config(preset)
    model_config = AutoConfig.for_model(config.model_type, **config.model)
    assert model_config.model_type == config.model_type


def test_presets_share_everything_but_the_model():
    transformer = load_training_config("transformer_small").to_dict()
    rnn = load_training_config("rnn_small").to_dict()
    differing = {key for key in transformer if transformer[key] != rnn[key]}
    assert differing == {"model_type", "model", "output_dir"}


def test_overrides_reach_training_and_model_fields(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model_type: transformer_seq2seq\nmodel: {d_model: 64}\nmax_steps: 10\n")
    config = load_training_config(path, ["max_steps=3", "model.encoder_layers=1", "log_with=null"])
    assert config.max_steps == 3
    assert config.model == {"d_model": 64, "encoder_layers": 1}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"model_type": "lstm"}, "model_type"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"mixed_precision": "fp8"}, "mixed_precision"),
        ({"adam_beta2": 1.0}, "adam_beta2"),
        ({"max_minutes": 0}, "max_minutes"),
        ({"max_tokens": 64, "max_source_tokens": 128}, "max_tokens"),
        ({"log_with": "wandb"}, "log_with"),
        ({"keep_freed_memory": "yes"}, "keep_freed_memory"),
    ],
)
def test_bad_values_name_the_field(values, field):
    with pytest.raises(ValueError, match=f"`{field}`"):
        TrainingConfig.from_dict(values)


def test_unknown_keys_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="learnin_rate"):
        TrainingConfig.from_dict({"learnin_rate": 0.1})
    with pytest.raises(FileNotFoundError, match="no preset named"):
        load_training_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="key=value"):
        load_training_config("transformer_small", ["max_steps"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_training_config(bad)


def test_exponent_floats_read_as_numbers_like_json(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("adam_epsilon: 1e-09\nlearning_rate: 5e-4\n")
    config = load_training_config(path, ["max_grad_norm=2e0"])
    assert (config.adam_epsilon, config.learning_rate, config.max_grad_norm) == (1e-9, 5e-4, 2.0)
