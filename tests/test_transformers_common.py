"""transformers' own common model and config tests, run against both hf_attn models.

``ModelTesterMixin`` and ``ConfigTester`` are transformers' files, fetched for the installed
release by ``tests/transformers_suite.py``. Each model gets a ``ModelTester`` configured the
way transformers' ``tests/models/marian/test_modeling_marian.py`` configures Marian (vocabulary
99, batch 13, length 7, width 32, 2 + 2 layers, eos closing every source sentence), and
``MarianMTModel`` runs through the same harness as a control: if a Marian test fails, the
harness, not hf_attn, is at fault.

Where an hf_attn model differs from a Transformer by design, the test class says so with
transformers' own tester flags, each with its reason; no test is skipped to hide a failure.

Not marked slow: the module takes about 25 s on two cores, plus some 15 s the first time a
transformers release is seen, to fetch its sdist.
"""

from __future__ import annotations

import sys
import unittest

import torch
import transformers_suite
from transformers import MarianConfig, MarianModel, MarianMTModel
from transformers.models.auto import modeling_auto

from hf_attn import (
    RNNSeq2SeqConfig,
    RNNSeq2SeqForConditionalGeneration,
    RNNSeq2SeqModel,
    TransformerSeq2SeqConfig,
    TransformerSeq2SeqForConditionalGeneration,
    TransformerSeq2SeqModel,
)

test_modeling_common, test_configuration_common = transformers_suite.load()
ModelTesterMixin = test_modeling_common.ModelTesterMixin
ids_tensor = test_modeling_common.ids_tensor
ConfigTester = test_configuration_common.ConfigTester
GenerationTesterMixin = sys.modules[f"{transformers_suite.PACKAGE}.generation.test_utils"].GenerationTesterMixin


class Seq2SeqModelTester:
    """Inputs and sizes shared by the three testers (Marian's tester's values, width 32)."""

    def __init__(
        self,
        parent: unittest.TestCase,
        batch_size: int = 13,
        seq_length: int = 7,
        is_training: bool = True,
        use_labels: bool = True,
        vocab_size: int = 99,
        hidden_size: int = 32,
        num_hidden_layers: int = 2,
        hidden_dropout_prob: float = 0.1,
        eos_token_id: int = 2,
        pad_token_id: int = 1,
        bos_token_id: int = 0,
        decoder_start_token_id: int = 3,
    ) -> None:
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.use_labels = use_labels
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.hidden_dropout_prob = hidden_dropout_prob
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.decoder_start_token_id = decoder_start_token_id

    def get_config(self):
        raise NotImplementedError

    def prepare_config_and_inputs(self):
        """Config, the common inputs, and ``labels`` (with ``use_labels``) for the LM head."""
        # Source tokens avoid the special ids 0-2 and every sentence ends with eos, as in Marian's tester.
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        input_ids[:, -1] = self.eos_token_id
        decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size)
        labels = ids_tensor([self.batch_size, self.seq_length], self.vocab_size) if self.use_labels else None
        attention_mask = input_ids.ne(self.pad_token_id)
        inputs_dict = {
            "input_ids": input_ids,
            "decoder_input_ids": decoder_input_ids,
            "attention_mask": attention_mask,
            # Marian's tester passes the source mask here too (no target position is padded).
            "decoder_attention_mask": attention_mask,
        }
        return self.get_config(), inputs_dict, labels

    def prepare_config_and_inputs_for_common(self):
        config, inputs_dict, _ = self.prepare_config_and_inputs()
        return config, inputs_dict

    def create_and_check_lm_head(self, model_class, config, inputs_dict, labels) -> None:
        """Logits over the vocabulary for every target position, and a finite loss from ``labels``."""
        model = model_class(config).eval()
        with torch.no_grad():
            outputs = model(**inputs_dict, labels=labels)
        self.parent.assertEqual(outputs.logits.shape, (self.batch_size, self.seq_length, self.vocab_size))
        self.parent.assertTrue(torch.isfinite(outputs.loss))


class TransformerSeq2SeqModelTester(Seq2SeqModelTester):
    def __init__(
        self,
        parent,
        num_attention_heads: int = 4,
        intermediate_size: int = 37,
        hidden_act: str = "gelu",
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 20,
        **kwargs,
    ) -> None:
        super().__init__(parent, **kwargs)
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings

    def get_config(self) -> TransformerSeq2SeqConfig:
        return TransformerSeq2SeqConfig(
            vocab_size=self.vocab_size,
            d_model=self.hidden_size,
            encoder_layers=self.num_hidden_layers,
            decoder_layers=self.num_hidden_layers,
            encoder_attention_heads=self.num_attention_heads,
            decoder_attention_heads=self.num_attention_heads,
            encoder_ffn_dim=self.intermediate_size,
            decoder_ffn_dim=self.intermediate_size,
            activation_function=self.hidden_act,
            dropout=self.hidden_dropout_prob,
            attention_dropout=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            # Plain cross-entropy, as Marian's loss: label smoothing (the paper's 0.1, this config's
            # default) is a training choice, and test_encoder_decoder_loss_no_double_shift compares
            # the reported loss's gradient with that of the plain cross-entropy against `labels`.
            label_smoothing=0.0,
            eos_token_id=self.eos_token_id,
            bos_token_id=self.bos_token_id,
            pad_token_id=self.pad_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )


class RNNSeq2SeqModelTester(Seq2SeqModelTester):
    def __init__(
        self,
        parent,
        embedding_size: int = 32,
        rnn_type: str = "lstm",
        bidirectional_encoder: bool = True,
        attention_type: str = "bahdanau",
        input_feeding: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(parent, **kwargs)
        self.embedding_size = embedding_size
        self.rnn_type = rnn_type
        self.bidirectional_encoder = bidirectional_encoder
        self.attention_type = attention_type
        self.input_feeding = input_feeding

    def get_config(self) -> RNNSeq2SeqConfig:
        return RNNSeq2SeqConfig(
            vocab_size=self.vocab_size,
            rnn_type=self.rnn_type,
            hidden_size=self.hidden_size,
            embedding_size=self.embedding_size,
            encoder_layers=self.num_hidden_layers,
            decoder_layers=self.num_hidden_layers,
            bidirectional_encoder=self.bidirectional_encoder,
            attention_type=self.attention_type,
            input_feeding=self.input_feeding,
            dropout=self.hidden_dropout_prob,
            embedding_dropout=self.hidden_dropout_prob,
            label_smoothing=0.0,  # plain cross-entropy, as for the Transformer tester above
            eos_token_id=self.eos_token_id,
            bos_token_id=self.bos_token_id,
            pad_token_id=self.pad_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )


class MarianModelTester(TransformerSeq2SeqModelTester):
    """The same sizes for ``MarianConfig``: the control that shows the harness passes on a library model."""

    def get_config(self) -> MarianConfig:
        return MarianConfig(
            vocab_size=self.vocab_size,
            d_model=self.hidden_size,
            encoder_layers=self.num_hidden_layers,
            decoder_layers=self.num_hidden_layers,
            encoder_attention_heads=self.num_attention_heads,
            decoder_attention_heads=self.num_attention_heads,
            encoder_ffn_dim=self.intermediate_size,
            decoder_ffn_dim=self.intermediate_size,
            activation_function=self.hidden_act,
            dropout=self.hidden_dropout_prob,
            attention_dropout=self.attention_probs_dropout_prob,
            max_position_embeddings=self.max_position_embeddings,
            eos_token_id=self.eos_token_id,
            bos_token_id=self.bos_token_id,
            pad_token_id=self.pad_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )


class AutoNamesMixin:
    """Lists the tested classes in transformers' Auto name tables while the test class runs.

    ``import hf_attn`` registers the models with ``AutoModel``/``AutoModelForSeq2SeqLM``
    (the public ``register`` API), but several common tests decide what a class is from the
    static name tables a model inside transformers is listed in: ``MODEL_MAPPING_NAMES``
    (a base model: no training loss; its weights are the head's base weights) and
    ``MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES`` (a seq2seq LM head: labels for the
    training tests, the loss-shift check). Entries are added in ``setUpClass`` and removed in
    ``tearDownClass``, so other test modules see the tables unchanged.
    """

    auto_names: dict[str, tuple[str, type]] = {}
    """{table name in transformers.models.auto.modeling_auto: (model_type, class)}"""

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._added_names = []
        for table_name, (model_type, model_class) in cls.auto_names.items():
            table = getattr(modeling_auto, table_name)
            if model_type not in table:
                table[model_type] = model_class.__name__
                cls._added_names.append((table, model_type))

    @classmethod
    def tearDownClass(cls) -> None:
        for table, model_type in cls._added_names:
            table.pop(model_type, None)
        super().tearDownClass()


class TransformerSeq2SeqCommonTest(AutoNamesMixin, ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    # GenerationTesterMixin (an empty stand-in): test_generation_tester_mixin_inheritance requires it of every
    # tester whose classes can generate(); generation itself is tested in tests/test_generation_contract.py.
    all_model_classes = (TransformerSeq2SeqModel, TransformerSeq2SeqForConditionalGeneration)
    auto_names = {
        "MODEL_MAPPING_NAMES": ("transformer_seq2seq", TransformerSeq2SeqModel),
        "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES": (
            "transformer_seq2seq",
            TransformerSeq2SeqForConditionalGeneration,
        ),
    }
    is_encoder_decoder = True  # an encoder-decoder: outputs carry encoder_* and decoder_* fields
    # test_can_init_all_missing_weights dates a model by a "# Copyright YYYY" header, which hf_attn's files
    # lack (read as year 0, "not prioritized"); these models are new, so run it as for any model since 2023.
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self) -> None:
        self.model_tester = TransformerSeq2SeqModelTester(self)
        self.config_tester = ConfigTester(
            self,
            config_class=TransformerSeq2SeqConfig,
            common_properties=["hidden_size", "num_attention_heads", "num_hidden_layers", "d_model"],
            vocab_size=99,
            d_model=32,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
        )

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    def test_lm_head_with_labels(self) -> None:
        config, inputs_dict, labels = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_lm_head(
            TransformerSeq2SeqForConditionalGeneration, config, inputs_dict, labels
        )


class RNNSeq2SeqCommonTest(AutoNamesMixin, ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    # GenerationTesterMixin (an empty stand-in): as above.
    all_model_classes = (RNNSeq2SeqModel, RNNSeq2SeqForConditionalGeneration)
    auto_names = {
        "MODEL_MAPPING_NAMES": ("rnn_seq2seq", RNNSeq2SeqModel),
        "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES": ("rnn_seq2seq", RNNSeq2SeqForConditionalGeneration),
    }
    is_encoder_decoder = True  # an encoder-decoder: outputs carry encoder_* and decoder_* fields
    # test_can_init_all_missing_weights dates a model by a "# Copyright YYYY" header, which hf_attn's files
    # lack (read as year 0, "not prioritized"); these models are new, so run it as for any model since 2023.
    test_can_init_all_missing_weights_before_2023 = True
    # No self-attention and no multi-head attention layers: the only attention is one decoder-side
    # attention over the encoder states, so there are no encoder_attentions/decoder_attentions to check.
    has_attentions = False

    def setUp(self) -> None:
        self.model_tester = RNNSeq2SeqModelTester(self)
        self.config_tester = ConfigTester(
            self,
            config_class=RNNSeq2SeqConfig,
            common_properties=["hidden_size", "num_hidden_layers", "d_model", "embedding_size"],
            vocab_size=99,
            hidden_size=32,
            embedding_size=32,
        )

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    def test_lm_head_with_labels(self) -> None:
        config, inputs_dict, labels = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_lm_head(RNNSeq2SeqForConditionalGeneration, config, inputs_dict, labels)


class MarianControlCommonTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    """transformers' MarianMTModel through the same harness (it is in transformers' tables already).

    No flag of transformers' own MarianModelTest is needed here besides ``is_encoder_decoder``.
    """

    all_model_classes = (MarianModel, MarianMTModel)
    is_encoder_decoder = True  # as transformers' MarianModelTest declares

    def setUp(self) -> None:
        self.model_tester = MarianModelTester(self)
        # As transformers' MarianModelTest: a smaller vocab_size alone would put Marian's default pad id outside it.
        self.config_tester = ConfigTester(self, config_class=MarianConfig)

    def test_config(self) -> None:
        self.config_tester.run_common_tests()

    def test_lm_head_with_labels(self) -> None:
        config, inputs_dict, labels = self.model_tester.prepare_config_and_inputs()
        self.model_tester.create_and_check_lm_head(MarianMTModel, config, inputs_dict, labels)
