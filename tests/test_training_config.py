"""Training configs load from presets/files with overrides, and bad values name the field."""

from __future__ import annotations

import pytest

from hf_attn.training.config import TrainingConfig, load_training_config


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
    # The budgets are updates, calibrated so each model trains about 8 minutes on 2 idle cores.
    assert differing == {"model_type", "model", "output_dir", "max_steps"}
    assert transformer["max_minutes"] is None and rnn["max_minutes"] is None


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


@pytest.mark.parametrize(
    ("model_type", "field", "nearest"),
    [
        ("rnn_seq2seq", "attenton_type", "attention_type"),
        ("transformer_seq2seq", "d_modle", "d_model"),
        ("transformer_seq2seq", "encoder_layer", "encoder_layers"),
    ],
)
def test_a_typo_in_the_model_block_names_the_nearest_field(model_type, field, nearest):
    """transformers configs keep unknown kwargs, so a typo would be stored and ignored: refuse it at once."""
    with pytest.raises(ValueError, match=f"`model.{field}` is not a field.*`model.{nearest}`"):
        TrainingConfig(model_type=model_type, model={field: 1})


def test_model_block_is_checked_before_any_work(tmp_path, monkeypatch):
    """`--set model.x=…` errors come from building the training config, before data or BPE are touched."""
    import hf_attn.training.builders as builders

    monkeypatch.setattr(builders, "load_corpus", lambda config: pytest.fail("the corpus was loaded"))
    with pytest.raises(ValueError, match="encoder_attention_heads"):
        load_training_config("transformer_small", ["model.encoder_attention_heads=5"])
    with pytest.raises(ValueError, match="model.attenton_type"):
        load_training_config("rnn_small", ["model.attenton_type=luong_dot"])


def test_known_model_fields_include_transformers_aliases():
    """`num_hidden_layers`/`hidden_size` are attribute-map aliases transformers users may write."""
    config = TrainingConfig(
        model_type="transformer_seq2seq",
        model={"hidden_size": 64, "encoder_attention_heads": 4, "decoder_attention_heads": 4},
    )
    assert config.model["hidden_size"] == 64


def test_the_shortened_reference_recipe_is_refused_before_any_work(tmp_path, capsys):
    """Issue 25: 500 updates saving every 250 write 2 checkpoints, but the recipe averages 5: refuse it up front."""
    from hf_attn.cli import main

    run_dir = tmp_path / "run"
    argv = ["train", "transformer_reference", "--output-dir", str(run_dir)]
    argv += ["--set", "max_steps=500", "--set", "eval_every=250", "--set", "save_every=250"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "`average_last_checkpoints` (5) is more than the 2 checkpoint(s) this budget writes" in error
    assert "`max_steps` 500 with `save_every` 250" in error and "set it to null" in error
    assert not run_dir.exists()  # nothing was built, let alone trained
    for fix in ("average_last_checkpoints=2", "average_last_checkpoints=null", "save_every=100"):
        load_training_config("transformer_reference", [*argv[5::2], fix])  # each suggested fix is accepted


@pytest.mark.parametrize(
    ("max_steps", "save_every", "keep", "written"),
    [(500, 250, 8, 2), (501, 250, 8, 3), (4000, 250, 8, 8), (6, 3, 2, 2), (10, 20, 4, 1)],
)
def test_checkpoints_written_counts_the_periodic_saves_and_the_last(max_steps, save_every, keep, written):
    config = TrainingConfig(max_steps=max_steps, save_every=save_every, keep_checkpoints=keep)
    assert config.checkpoints_written() == written
    assert TrainingConfig(max_steps=max_steps, save_every=save_every, keep_checkpoints=keep,
                          average_last_checkpoints=written).average_last_checkpoints == written  # fmt: skip
    if written < keep:
        with pytest.raises(
            ValueError, match=rf"`average_last_checkpoints` \({written + 1}\) is more than the {written}"
        ):
            TrainingConfig(
                max_steps=max_steps, save_every=save_every, keep_checkpoints=keep, average_last_checkpoints=written + 1
            )


def test_without_a_step_budget_the_count_is_unknown_and_not_refused():
    config = TrainingConfig(num_epochs=1, save_every=1000, keep_checkpoints=5, average_last_checkpoints=5)
    assert config.checkpoints_written() is None


@pytest.mark.parametrize("name", ["build_model", "load_corpus", "tokenize_split", "TOKENIZER_DIR"])
def test_names_of_the_old_setup_module_import_from_builders_with_a_future_warning(name):
    """training/setup.py became training/builders.py; the old path warns until 0.3.0 (README deprecation policy)."""
    import hf_attn.training.builders as builders
    import hf_attn.training.setup as setup

    message = rf"`hf_attn.training.setup.{name}` moved to `hf_attn.training.builders.{name}`.*hf_attn 0\.3\.0"
    with pytest.warns(FutureWarning, match=message):
        assert getattr(setup, name) is getattr(builders, name)
    with pytest.raises(AttributeError, match="has no attribute 'build_optimizer'"):
        setup.build_optimizer  # noqa: B018 - a name the old module never had is not served
