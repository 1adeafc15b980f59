"""Build tiny, deterministic, randomly initialised causal LMs from config classes alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fixes import TOY_FIXES, ToyFix
from .tokenizer import toy_tokenizer

SEED = 0

# Every (sub)config attribute of these names is set to the small value when the
# config class has it. Head sizes are chosen so that hidden = heads * head_dim.
SMALL_SIZES: dict[str, Any] = {
    "hidden_size": 64, "n_embd": 64, "d_model": 64, "dim": 64, "embed_dim": 64, "n_embed": 64,
    "word_embed_proj_dim": 64, "embedding_size": 64,
    "num_hidden_layers": 2, "n_layer": 2, "n_layers": 2, "num_layers": 2, "decoder_layers": 2,
    "encoder_layers": 2,
    "num_attention_heads": 4, "n_head": 4, "n_heads": 4, "num_heads": 4, "decoder_attention_heads": 4,
    "encoder_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16,
    "intermediate_size": 128, "n_inner": 128, "ffn_dim": 128, "d_ff": 128, "decoder_ffn_dim": 128,
    "encoder_ffn_dim": 128, "ffn_hidden_size": 128, "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "num_experts": 4, "num_local_experts": 4, "n_routed_experts": 4, "moe_num_experts": 4,
    "num_experts_per_tok": 2, "moe_k": 2, "top_k": 2,
    "max_position_embeddings": 256, "n_positions": 256, "n_ctx": 256, "max_seq_len": 256,
}

# Token ids in a config must point inside the toy vocabulary.
TOKEN_ID_FIELDS = {"pad_token_id": "pad_token", "bos_token_id": "bos_token", "eos_token_id": "eos_token",
                   "decoder_start_token_id": "bos_token"}


@dataclass(frozen=True)
class ToyModel:
    """A toy model with the tokenizer it was built for."""

    model: Any
    tokenizer: Any
    model_type: str
    class_name: str


def causal_lm_classes() -> dict[str, str]:
    """Every model type of the installed transformers' causal-LM auto mapping -> class name."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return dict(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def resolve_model_type(name: str) -> str:
    """Accept a model type ("llama") or a class name ("LlamaForCausalLM")."""
    classes = causal_lm_classes()
    if name in classes:
        return name
    matches = [model_type for model_type, class_name in classes.items() if class_name == name]
    if not matches:
        raise KeyError(
            f"{name!r} is neither a model type nor a class name of transformers' causal-LM mapping; "
            "run `python -m nnterp toy --list` to see the toy models on offer."
        )
    return matches[0]


def _shrunk_fields(config: Any, tokenizer: Any) -> dict[str, Any]:
    fields = {key: value for key, value in SMALL_SIZES.items() if key in config.__dict__}
    if "vocab_size" in config.__dict__:
        fields["vocab_size"] = len(tokenizer)
    for field, token in TOKEN_ID_FIELDS.items():
        if field in config.__dict__:
            fields[field] = tokenizer.convert_tokens_to_ids(getattr(tokenizer, token))
    for name in getattr(config, "sub_configs", {}):
        sub = getattr(config, name, None)
        if hasattr(sub, "to_dict"):
            fields[name] = {**sub.to_dict(), **_shrunk_fields(sub, tokenizer)}
    return fields


def toy_config(model_type: str, tokenizer: Any = None) -> Any:
    """The small config of one model type: defaults, shrunk, then its row of TOY_FIXES."""
    from transformers import CONFIG_MAPPING

    tokenizer = tokenizer or toy_tokenizer()
    config_class = CONFIG_MAPPING[model_type]
    fix = TOY_FIXES.get(model_type, ToyFix())
    fields = _shrunk_fields(config_class(), tokenizer)
    fields = fix.apply(fields)
    return config_class(**fields)


def build_toy_model(name: str) -> ToyModel:
    """A tiny, seeded, eval-mode model of one architecture, with an in-code tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    model_type = resolve_model_type(name)
    tokenizer = toy_tokenizer()
    config = toy_config(model_type, tokenizer)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    model.eval()
    return ToyModel(model, tokenizer, model_type, type(model).__name__)
