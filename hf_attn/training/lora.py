"""LoRA adapters for hf_attn models through ``peft`` (``pip install "hf_attn[peft]"``).

LoRA adds a trainable low-rank update ``B @ A`` beside a frozen ``nn.Linear``. The default
``target_modules="all-linear"`` lets peft find every linear layer except the output
projection, which for the two models means:

* Transformer: ``qkv_proj`` (fused self-attention Q/K/V), ``q_proj`` and ``kv_proj``
  (cross-attention), ``out_proj`` (both attentions), ``fc1``/``fc2`` (feed-forward).
* RNN: ``bridge`` (encoder final state -> decoder initial state), ``attentional_layer``
  (the tanh layer over [h_t; c_t]), and the attention scorer's ``query_projection``,
  ``key_projection`` and ``energy`` (Bahdanau/concat; "luong_general" has only
  ``key_projection``, "luong_dot" and "none" none).

LoRA does not reach inside ``nn.LSTM``/``nn.GRU``: the recurrent weights stay frozen unless
named in ``modules_to_save`` (e.g. ``["rnn"]`` trains the decoder RNN fully). Pass a list of
the names above as ``target_modules`` to adapt fewer layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from transformers import PreTrainedModel

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel


def lora_config(
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: str | Sequence[str] = "all-linear",
    modules_to_save: Sequence[str] | None = None,
) -> LoraConfig:
    """A seq2seq ``LoraConfig`` (rank ``r``, scaling ``alpha / r``) for either hf_attn model."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        modules_to_save=None if modules_to_save is None else list(modules_to_save),
    )


def add_lora(model: PreTrainedModel, config: LoraConfig | None = None) -> PeftModel:
    """Freeze ``model`` and wrap it with LoRA adapters (``lora_config()`` unless given); modifies it in place."""
    from peft import get_peft_model

    return get_peft_model(model, config or lora_config())


def adapted_module_names(model: PeftModel) -> list[str]:
    """The distinct short names of the layers that carry an adapter (what ``target_modules`` matched)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")})


__all__ = ["adapted_module_names", "add_lora", "lora_config"]
