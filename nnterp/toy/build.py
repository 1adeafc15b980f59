"""Build tiny, deterministic, randomly initialised causal LMs from config classes alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ToyConfigRejected, ToyModelUnsupported
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
    # above the pad id (256): RoBERTa-style position embeddings use it as padding_idx
    "max_position_embeddings": 512, "n_positions": 512, "n_ctx": 512, "max_seq_len": 512,
    "rotary_dim": 8,
    # multi-head latent attention (DeepSeek-style): small low-rank and per-head dims
    "q_lora_rank": 32, "kv_lora_rank": 32, "qk_rope_head_dim": 16, "qk_nope_head_dim": 16, "v_head_dim": 16,
    "o_lora_rank": 32, "index_head_dim": 16, "index_n_heads": 4,
    # mixture of experts: routing groups and top-k under the expert count
    "n_group": 1, "topk_group": 1, "num_expert_group": 1, "num_experts_per_token": 2, "moe_topk": 2,
    "moe_top_k": 2,
    # linear attention and state-space layers
    "linear_num_heads": 4, "linear_head_dim": 16, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
    "linear_key_head_dim": 16, "linear_value_head_dim": 16,
    "state_size": 16, "ssm_state_size": 16, "mamba_d_state": 16, "mamba_dt_rank": 8, "time_step_rank": 8,
    "n_groups": 1, "mamba_n_groups": 1, "mamba_num_heads": 8, "mamba_head_dim": 16,
    # scan chunk: short prompts are padded up to one chunk, so a long one is slow on CPU
    "mamba_chunk_size": 16, "chunk_size": 16,
    # mixture of experts: expert widths and counts
    "n_shared_experts": 1, "zero_expert_num": 2, "router_hidden_size": 32, "expert_ffn_hidden_size": 32,
    "shared_experts_intermediate_size": 32, "moe_shared_expert_intermediate_size": 32,
    "shared_intermediate_size": 32, "dense_intermediate_size": 128,
    # keep one dense layer ahead of the MoE ones, so a 2-layer toy still routes
    "first_k_dense_replace": 1, "num_dense_layers": 1,
    # other widths and depths that default to full size
    "emb_dim": 64, "embedding_dim": 64, "input_embedding_size": 64, "output_embedding_size": 64,
    "hidden_size_global": 64, "dff": 128, "d_inner": 128, "dim_ff": 128, "mlp_dim": 128, "dim_head": 16,
    "kv_channels": 16, "swa_num_attention_heads": 4, "swa_num_key_value_heads": 2, "swa_head_dim": 16,
    "laurel_rank": 8, "adapter_rank": 8, "hc_lowrank": 16, "hidden_size_per_layer_input": 16,
    "pronunciation_embed_dim": 16, "shape_embed_dim": 16, "encoder_hash_byte_group_vocab": 512,
    "num_encoder_layers": 2, "num_decoder_layers": 2, "num_blocks": 2,
    # vision and audio towers of multimodal configs, and their adapters to the text width
    "output_channels": 16, "nemo_conv_channels": 16, "ext_pw_out_channel": 64,
    "depthwise_separable_out_channel": 64, "adapter_in_dim": 64, "adapter_out_dim": 64, "adapter_input_size": 64,
}

# Sizes a config must also take when it has the trigger field: MLA shares one latent
# across all heads, so its key/value heads equal the query heads.
IMPLIED_SIZES: dict[str, dict[str, Any]] = {
    "kv_lora_rank": {"num_key_value_heads": SMALL_SIZES["num_attention_heads"]},
}

# A shrunk config its class's validators reject (a field the shrink does not know, left at its default, breaks
# a relation with the shrunk ones: Kolibri 1.1 allows at most num_attention_heads // num_key_value_heads
# index_num_heads) is repaired by halving one such integer field, in declaration order, down to this floor.
REPAIR_FLOOR = 1

# The config field holding the number of decoder layers, first match wins.
LAYER_COUNT_FIELDS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers", "decoder_layers")
# Per-layer kind lists (cycled when shorter than the layer count); the toy keeps the
# shortest prefix of layers that still holds every kind of each list.
LAYER_KIND_FIELDS = ("layer_types", "mlp_layer_types", "layers_block_type", "block_types", "attention_layers",
                     "attn_layers", "indexer_types")
# Per-layer kinds written as runs, [[kinds, repeats], ...] (GPT-Neo's attention_types, from which the
# class derives its per-layer list): the toy keeps its prefix of layers as one run.
LAYER_RUN_FIELDS = ("attention_types",)
# Lists of layer indices; indices past the kept prefix are dropped.
LAYER_INDEX_FIELDS = ("hybrid_layer_ids", "cross_attention_layers", "mlp_only_layers", "attn_layer_indices",
                      "full_attn_idxs", "moe_layers", "local_layer_ids", "ple_layer_ids")
MIN_LAYERS = 2

# Vocabulary sizes, set to the toy tokenizer's. A config whose checkpoint pads its embedding matrix
# (Inkling 2 from transformers 5.24) declares the head's real width as unpadded_vocab_size.
VOCAB_FIELDS = ("vocab_size", "unpadded_vocab_size", "vocab_size_per_layer_input")
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


def types_named(name: str, classes: dict[str, str]) -> list[str]:
    """The model types ``name`` stands for in a type -> class mapping: itself, or those of the class it names."""
    return [name] if name in classes else [model_type for model_type, class_name in classes.items()
                                           if class_name == name]


def resolve_model_type(name: str) -> str:
    """Accept a model type ("llama") or a class name ("LlamaForCausalLM")."""
    classes = causal_lm_classes()
    if name in classes:
        return name
    matches = types_named(name, classes)
    if not matches:
        raise KeyError(
            f"{name!r} is neither a model type nor a class name of transformers' causal-LM mapping; "
            "run `python -m nnterp toy --list` to see the toy models on offer."
        )
    return _canonical_type(name, matches)


def _canonical_type(class_name: str, model_types: list[str]) -> str:
    """Among model types sharing a class (llama, internlm3, ...), the one its config class declares."""
    import transformers

    declared = getattr(getattr(transformers, class_name, None), "config_class", None)
    declared_type = getattr(declared, "model_type", None)
    return declared_type if declared_type in model_types else model_types[0]


def _layer_count_field(config: Any) -> str | None:
    """The field holding the number of decoder layers of a (sub)config, if it has one."""
    return next((name for name in LAYER_COUNT_FIELDS if isinstance(config.__dict__.get(name), int)), None)


def _expanded_runs(runs: list | tuple) -> list:
    """The per-layer kinds of a LAYER_RUN_FIELDS value: [[["global", "local"], 2]] -> global, local, global, local."""
    return [kind for kinds, repeats in runs for _ in range(repeats) for kind in kinds]


def _layer_kinds(config: Any) -> list[list | tuple]:
    """The per-layer kind lists of a config, runs expanded."""
    found: list[Any] = [config.__dict__.get(name) for name in LAYER_KIND_FIELDS]
    found += [_expanded_runs(config.__dict__[name]) for name in LAYER_RUN_FIELDS if config.__dict__.get(name)]
    return [kinds for kinds in found if isinstance(kinds, (list, tuple)) and kinds]


def _kept_layers(config: Any, total: int) -> int:
    """Shortest layer prefix holding every kind of every per-layer kind list (at least MIN_LAYERS)."""
    kept = MIN_LAYERS
    for kinds in _layer_kinds(config):
        layers = [kinds[i % len(kinds)] for i in range(total)]
        kept = max(kept, max(layers.index(kind) for kind in set(layers)) + 1)
    return min(kept, max(total, MIN_LAYERS))


def _layer_fields(config: Any, layers: int | None = None) -> dict[str, Any]:
    """Layer count and per-layer lists cut to the kept prefix, so hybrids keep every layer kind.

    Per-layer lists named in SMALL_SIZES are left to it (they get the small value per layer).
    """
    count_field = _layer_count_field(config)
    if count_field is None:
        return {}
    total = config.__dict__[count_field]
    kept = layers or _kept_layers(config, total)
    fields: dict[str, Any] = {count_field: kept}
    for name, value in config.__dict__.items():
        if not isinstance(value, (list, tuple)) or name in SMALL_SIZES:
            continue
        if name in LAYER_INDEX_FIELDS:
            fields[name] = [index for index in value if index < kept]
        elif name in LAYER_RUN_FIELDS:
            fields[name] = [[_expanded_runs(value)[:kept], 1]]
        elif len(value) == total and total > kept:
            fields[name] = list(value[:kept])
    return fields


def _small_size(value: Any, default: Any, layers: int | None) -> Any:
    """The small value, repeated per layer where the default is a per-layer list."""
    if isinstance(default, (list, tuple)) and layers is not None:
        return [value] * layers
    return value


def _small_values(defaults: dict[str, Any], layers: int | None = None) -> dict[str, Any]:
    """SMALL_SIZES and IMPLIED_SIZES for the names a config (or a per-layer override) defines."""
    fields = {key: _small_size(value, defaults[key], layers)
              for key, value in SMALL_SIZES.items() if key in defaults}
    for trigger, implied in IMPLIED_SIZES.items():
        if trigger in defaults:
            fields.update(implied)
    return fields


def _per_layer_overrides(config: Any, kept: int) -> dict[str, Any]:
    """Heterogeneous configs: per-layer overrides of the kept layers, shrunk like the config."""
    spec = config.__dict__.get("_heterogeneity_spec")
    if spec is None:
        return {}
    overrides = {index: {**layer, **_small_values(layer)} for index, layer in spec.per_layer_overrides.items()
                 if index < kept}
    return {"per_layer_config": overrides}


def _shrunk_fields(config: Any, tokenizer: Any, layers: int | None = None) -> dict[str, Any]:
    """The small fields of a config and, recursively, of its sub-configs."""
    layer_fields = _layer_fields(config, layers)
    kept = layer_fields.get(_layer_count_field(config) or "")
    fields = {**_small_values(config.__dict__, kept), **layer_fields}
    fields.update(_per_layer_overrides(config, kept or MIN_LAYERS))
    fields.update({name: len(tokenizer) for name in VOCAB_FIELDS if name in config.__dict__})
    fields.update(_token_ids(config.__dict__, tokenizer))
    for name in getattr(config, "sub_configs", {}):
        sub: Any = getattr(config, name, None)
        if hasattr(sub, "to_diff_dict"):
            # the fields a checkpoint's config.json holds: to_dict also lists every generic config
            # attribute, which some sub-config classes (transformers 5.0's DBRX ones) reject
            fields[name] = {**sub.to_diff_dict(), **_shrunk_fields(sub, tokenizer)}
    return fields


def _token_ids(declared: dict[str, Any], tokenizer: Any) -> dict[str, int]:
    """The toy tokenizer's ids for the token-id fields among ``declared``."""
    return {field: tokenizer.convert_tokens_to_ids(getattr(tokenizer, token))
            for field, token in TOKEN_ID_FIELDS.items() if field in declared}


def _default_config(config_class: type, fix: ToyFix) -> Any:
    """The class's default config, with the nested configs the row overrides built where the defaults
    leave them None (transformers 5.0's Phi-4 multimodal has no default vision config)."""
    config = config_class()
    for name in fix.sub_configs:
        sub_class = getattr(config, "sub_configs", {}).get(name)
        if getattr(config, name, None) is None and sub_class is not None:
            setattr(config, name, sub_class())
    return config


def toy_fix(model_type: str) -> ToyFix:
    """The TOY_FIXES row of a model type's causal-LM class, as it applies to the installed transformers and to
    the type's own config (nested in ``text_config`` when the class is a multimodal type's text model)."""
    import transformers

    class_name = causal_lm_classes().get(model_type, "")
    fix = TOY_FIXES.get(class_name, ToyFix()).on(transformers.__version__)
    if fix.unsupported or fix == ToyFix():
        return fix
    config_class = transformers.CONFIG_MAPPING[model_type]
    text_config_class = getattr(config_class, "sub_configs", {}).get("text_config")
    takes = getattr(getattr(transformers, class_name, None), "config_class", None)
    return fix.within("text_config") if takes is not None and takes is text_config_class else fix


def toy_config(model_type: str, tokenizer: Any = None) -> Any:
    """The small config of one model type: defaults, shrunk, then its class's row of TOY_FIXES as it applies
    to the installed transformers.

    Raises ToyModelUnsupported for a type whose row says no toy model can run here, ToyConfigRejected for one
    whose config class's validators reject the shrunk config and every repair of it (``validated_config``).
    """
    import transformers

    tokenizer = tokenizer or toy_tokenizer()
    fix = toy_fix(model_type)
    if fix.unsupported:
        raise ToyModelUnsupported(model_type, fix.unsupported)
    config_class = transformers.CONFIG_MAPPING[model_type]
    if fix.config_class:
        config_class = getattr(transformers, fix.config_class)
    default = _default_config(config_class, fix)
    fields = fix.apply(_shrunk_fields(default, tokenizer, fix.layers))
    fields.update(_token_ids(fix.config, tokenizer))
    for name, overrides in fix.sub_configs.items():
        fields[name].update(_token_ids(overrides, tokenizer))
    return validated_config(model_type, config_class, fields, default)


def _rejections() -> tuple[type[Exception], ...]:
    """The errors a config class's validators raise: ValueError from ``__init__`` and ``validate_architecture``,
    the strict dataclass errors that wrap them (huggingface_hub's ``@strict`` configs)."""
    from huggingface_hub.errors import StrictDataclassError

    return ValueError, StrictDataclassError


def _accepted(config_class: type, fields: dict[str, Any]) -> Any:
    """The config of ``fields``, or None where the class's validators reject it."""
    try:
        return config_class(**fields)
    except _rejections():
        return None


def _halvings(value: int) -> list[int]:
    """Smaller values to try for an integer field: halved down to REPAIR_FLOOR (12 -> 6, 3, 1)."""
    found = []
    while value > REPAIR_FLOOR:
        value = max(value // 2, REPAIR_FLOOR)
        found.append(value)
    return found


def _repairs(fields: dict[str, Any], default: Any) -> Iterator[dict[str, Any]]:
    """``fields`` with one integer field they leave at the class default halved, for each field (in declaration
    order, then those of the sub-configs ``fields`` shrinks) and each halving."""
    for name, value in default.__dict__.items():
        if name not in fields and type(value) is int:
            yield from ({**fields, name: smaller} for smaller in _halvings(value))
    for name in getattr(default, "sub_configs", {}):
        sub = getattr(default, name, None)
        if isinstance(fields.get(name), dict) and hasattr(sub, "__dict__"):
            yield from ({**fields, name: repaired} for repaired in _repairs(fields[name], sub))


def validated_config(model_type: str, config_class: type, fields: dict[str, Any], default: Any) -> Any:
    """The config of the shrunk ``fields``, which the class's own validators accept: where they reject it,
    the first repair (``_repairs``) they accept. The shrink sets the fields it knows and leaves the others at
    their defaults, which may break a relation the class checks between them.

    Raises ToyConfigRejected with the validators' message when no single halved field satisfies them.
    """
    try:
        return config_class(**fields)
    except _rejections() as rejection:
        accepted = (_accepted(config_class, candidate) for candidate in _repairs(fields, default))
        repaired = next((config for config in accepted if config is not None), None)
        if repaired is None:
            raise ToyConfigRejected(model_type, " ".join(str(rejection).split())) from rejection
        return repaired


def _model_from_config(model_type: str, config: Any, attn_implementation: str | None) -> Any:
    """The causal LM of a config; the auto class knows only the model type's own config class."""
    import transformers

    options = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model_class = getattr(transformers, causal_lm_classes()[model_type])
    text_config_class = getattr(config, "sub_configs", {}).get("text_config")
    if text_config_class is not None and getattr(model_class, "config_class", None) is text_config_class:
        # a text-only causal LM of a multimodal type (Llama 4, Emu3, Qwen 3.5) takes the text config, which
        # from_pretrained picks out in every release, from_config only in later ones than 5.0 and 5.5
        return model_class._from_config(config.get_text_config(), **options)
    if type(config) is transformers.CONFIG_MAPPING[model_type]:
        return transformers.AutoModelForCausalLM.from_config(config, **options)
    return model_class._from_config(config, **options)


def build_toy_model(name: str, attn_implementation: str | None = None) -> ToyModel:
    """A tiny, seeded, eval-mode model of one architecture, with an in-code tokenizer.

    By default attention is whatever transformers picks for a model a user builds (sdpa where the
    class supports it), so the toys exercise the path users take; pass ``"eager"`` to build eager.
    """
    import torch

    model_type = resolve_model_type(name)
    tokenizer = toy_tokenizer(pad_first=toy_fix(model_type).pad_first)
    config = toy_config(model_type, tokenizer)
    torch.manual_seed(SEED)
    model = _model_from_config(model_type, config, attn_implementation)
    model.eval()
    return ToyModel(model, tokenizer, model_type, type(model).__name__)
