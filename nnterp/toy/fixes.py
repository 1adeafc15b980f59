"""Per-architecture corrections to the generic shrink: one row per causal-LM class, keyed by its HuggingFace
class name like the registry (``nnterp.core.registry``) and the known failures (``tests/known_failures.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class UpstreamBug:
    """A bug of the transformers releases before ``fixed_in`` that a toy model meets.

    ``workaround`` holds the config fields that avoid it, as a user of those releases would set them;
    a bug without one means no toy model of the type can run on those releases, for ``reason``.
    """

    fixed_in: str
    reason: str
    workaround: dict[str, Any] = field(default_factory=dict)

    def affects(self, version: str) -> bool:
        """Whether transformers ``version`` still has the bug."""
        from packaging.version import Version

        return Version(version) < Version(self.fixed_in)


@dataclass(frozen=True)
class ToyFix:
    """What one causal-LM class needs beyond the generic shrink.

    A row states the fields of the config the class takes. A multimodal model type whose causal LM is
    its text model (``qwen4_exp`` and ``qwen4_exp_text`` share ``Qwen4ExpForCausalLM``) nests that
    config as ``text_config``: ``within`` moves the row there.

    ``config`` overrides top-level config fields (a token-id field named there, such as
    ``pad_token_id``, is declared: it takes the toy tokenizer's id whatever the value given);
    ``sub_configs`` overrides fields of a nested config (e.g. ``{"text_config": {...}}``), and
    builds one the default config leaves None from its class's defaults; ``drop`` removes shrunk
    fields the class must derive itself (``"text_config.name"`` reaches into a nested config);
    ``layers`` replaces the generic number of kept layers; ``config_class`` names the
    transformers config class to build when the causal-LM class takes another one than
    the model type's own, which does not nest it. ``pad_first`` gives the toy tokenizer's pad
    token id 0, for models that take id 0 as padding. ``unsupported`` names why no toy model can
    run here; ``upstream_bugs`` are bugs of older transformers releases, applied by ``on``.
    """

    config: dict[str, Any] = field(default_factory=dict)
    sub_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    layers: int | None = None
    config_class: str | None = None
    pad_first: bool = False
    unsupported: str | None = None
    upstream_bugs: tuple[UpstreamBug, ...] = ()

    def on(self, version: str) -> ToyFix:
        """This row for transformers ``version``: with the workarounds of the bugs it still has, and
        unsupported where one of them has no workaround."""
        bugs = [bug for bug in self.upstream_bugs if bug.affects(version)]
        workarounds = {key: value for bug in bugs for key, value in bug.workaround.items()}
        unsupported = self.unsupported or next(
            (f"a bug of transformers {version}: {bug.reason} (fixed in {bug.fixed_in})"
             for bug in bugs if not bug.workaround), None)
        return replace(self, config={**self.config, **workarounds}, unsupported=unsupported, upstream_bugs=())

    def within(self, name: str) -> ToyFix:
        """This row for a config that nests the class's own config as the sub-config ``name``."""
        if self.sub_configs or self.layers:
            raise NotImplementedError(f"a row with sub_configs or layers cannot be moved into {name} (the config "
                                      "of a multimodal type whose text model is the class): state those fields "
                                      "in the row's config, or teach ToyFix.within to nest them")
        if not self.config and not self.drop:
            return self
        return replace(self, config={}, sub_configs={name: dict(self.config)},
                       drop=tuple(f"{name}.{path}" for path in self.drop))

    def apply(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The shrunk fields with this row's drops and overrides applied."""
        for path in self.drop:
            fields = _dropped(fields, path)
        fields = {**fields, **self.config}
        for name, overrides in self.sub_configs.items():
            fields[name] = {**fields.get(name, {}), **overrides}
        return fields


def _dropped(fields: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of fields without the (dotted) path, so nested configs can lose a key too."""
    head, _, rest = path.partition(".")
    if not rest:
        return {key: value for key, value in fields.items() if key != head}
    return {**fields, head: _dropped(fields.get(head, {}), rest)}


# Bugs of transformers 5.0 that several toys meet.
UNDECLARED_PAD = UpstreamBug(
    "5.1.0", "reads config.pad_token_id, which its config class does not declare (transformers#43572)",
    workaround={"pad_token_id": None})
# The Mamba mixer raises without the CUDA kernels instead of taking its PyTorch path; the config
# flag that selects that path is the workaround transformers' own error names.
_MAMBA_KERNELS_REQUIRED = "raises without the CUDA Mamba kernels instead of falling back to the PyTorch path"

# Inkling 2 Loop loops layers 6 to 18 by default, past the toy's six layers: blocks of two layers (sliding,
# then full, as each real block of six ends on a full layer) and the middle block looped.
_INKLING2_LOOP = {"n_layers_per_attn_res_block": 2, "loop_layer_index_start": 2, "loop_layer_index_end": 4,
                  "layer_types": ["hybrid_sliding", "hybrid"] * 3}

_ASSISTANT = ("speculative-decoding draft model: its forward needs the target model's inputs_embeds and "
              "shared_kv_states and cannot run from input_ids alone")

TOY_FIXES: dict[str, ToyFix] = {
    # default is all-Mamba; the 9B checkpoint interleaves attention layers
    "BambaForCausalLM": ToyFix(config={"attn_layer_indices": [1]}),
    # block-sparse attention is not causal and swaps itself for full attention on short inputs mid-forward
    "BigBirdForCausalLM": ToyFix(config={"attention_type": "original_full"}),
    # BltModel builds DynamicCache(config=BltConfig), which has no num_hidden_layers
    "BltForCausalLM": ToyFix(config={"use_cache": False}),
    # the rotary embedding reads rope_parameters per layer type, the default has none; its M-RoPE sections
    # must sum to head_dim / 2, and the class's default ones fit head_dim 128, not the toy's 16 (transformers
    # 5.20 splits the frequencies by them when built, later releases only index with them)
    "CohereCompassForCausalLM": ToyFix(config={"rope_parameters": {"full_attention": {
        "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [3, 3, 2]}}}),
    # CPM-Ant ignores the attention mask and masks the positions whose id is 0, as its own tokenizer pads
    "CpmAntForCausalLM": ToyFix(pad_first=True),
    # DbrxAttention reads attn_config.rope_theta, which DbrxAttentionConfig does not define, and
    # clamps q/k/v with clip_qkv even when it is None (DBRX checkpoints use 8)
    "DbrxForCausalLM": ToyFix(sub_configs={"attn_config": {"rope_theta": 10000.0, "clip_qkv": 8.0}},
                              upstream_bugs=(UpstreamBug(
        "5.15.0", "DBRX's MoE block mixes up hidden_size and ffn_hidden_size (the router takes ffn_hidden_size "
                  "inputs) and transposes its expert weights wrongly, so every DBRX model fails there "
                  "(transformers#47671)"),)),
    # the input and output sections default to 8 layers each, more than the toy keeps: one each leaves two
    # recurrent layers to loop
    "DoryForCausalLM": ToyFix(config={"n_input_layers": 1, "n_output_layers": 1}),
    # the text model of dots3_note and dots3_note_text: the class's own aliases for the sliding-window layers, at
    # toy size, from which it derives its per-layer config (head_dim must equal qk_nope + qk_rope)
    "Dots3NoteForCausalLM": ToyFix(drop=("per_layer_config",), config={
        "swa_num_attention_heads": 4, "swa_num_key_value_heads": 4, "swa_q_lora_rank": 32, "swa_kv_lora_rank": 32,
        "swa_head_dim": 32, "swa_qk_nope_head_dim": 16, "swa_v_head_dim": 16}),
    "Exaone4ForCausalLM": ToyFix(upstream_bugs=(UNDECLARED_PAD,)),
    # the last layers reuse the KV cache of earlier ones: keep one sharing layer after
    # a sliding and a full one
    "Gemma3nForCausalLM": ToyFix(layers=6, config={"num_kv_shared_layers": 1}),
    "Gemma3nForConditionalGeneration": ToyFix(unsupported="its vision tower is a TimmWrapperModel, which needs the "
                                                          "timm and Pillow packages (not installed)"),
    "Gemma4AssistantForCausalLM": ToyFix(unsupported=_ASSISTANT),
    "Gemma4UnifiedAssistantForCausalLM": ToyFix(unsupported=_ASSISTANT),
    # default is all-Mamba; real checkpoints interleave attention layers (named as in their config.json:
    # transformers 5.0 accepts only these names, later releases rename them)
    "GraniteMoeHybridForCausalLM": ToyFix(config={"layer_types": ["mamba", "attention"]}),
    "Inkling2LoopForCausalLM": ToyFix(config=_INKLING2_LOOP),
    # attention every 8th layer by default: make it every other layer
    "JambaForCausalLM": ToyFix(config={"attn_layer_period": 2, "attn_layer_offset": 1}, upstream_bugs=(
        UpstreamBug("5.2.0", _MAMBA_KERNELS_REQUIRED, {"use_mamba_kernels": False}),)),
    "JetMoeForCausalLM": ToyFix(upstream_bugs=(UNDECLARED_PAD,)),
    # default layer_types is None; the 8B-A1B checkpoint mixes conv and attention layers
    "Lfm2MoeForCausalLM": ToyFix(config={"layer_types": ["conv", "full_attention"], "num_dense_layers": 1}),
    # hidden_size * expand must equal num_heads * head_dim
    "Mamba2ForCausalLM": ToyFix(config={"num_heads": 8}),
    # the causal LM is the decoder alone; one codebook so a (1, seq) batch of ids fits
    "MusicgenForCausalLM": ToyFix(config_class="MusicgenDecoderConfig", config={"num_codebooks": 1}),
    "MusicgenMelodyForCausalLM": ToyFix(config_class="MusicgenMelodyDecoderConfig", config={"num_codebooks": 1}),
    "PhiForCausalLM": ToyFix(upstream_bugs=(UNDECLARED_PAD,)),
    # transformers 5.0 leaves the default vision config None, which the model reads: build it
    "Phi4MultimodalForCausalLM": ToyFix(sub_configs={"vision_config": {}}),
    # the text model of qwen4_exp and qwen4_exp_text: its indexed-attention layers need the QSA indexer sizes,
    # which default to None
    "Qwen4ExpForCausalLM": ToyFix(config={"indexer_n_heads": 4, "indexer_kv_heads": 1, "indexer_head_dim": 16,
                                          "indexer_budget": 8, "indexer_compress_ratio": 4}),
    # the causal LM must be a decoder; axial position embeddings split hidden_size and
    # max_position_embeddings into factors
    "ReformerModelWithLMHead": ToyFix(config={"is_decoder": True, "axial_pos_embds_dim": [16, 48],
                                              "axial_pos_shape": [16, 32]}),
    "StableLmForCausalLM": ToyFix(upstream_bugs=(UNDECLARED_PAD,)),
    # the model sizes q/k as hidden * qk_dim_factor, the state cache rounds it up to 64
    "xLSTMForCausalLM": ToyFix(config={"qk_dim_factor": 1.0}, upstream_bugs=(UpstreamBug(
        "5.2.0", "its forward fails on any input longer than one chunk (chunk_size tokens): the native "
                 "chunkwise kernel views the queries with the whole qk width, not one chunk's (transformers#43208)"),)),
    # adapters are per language: forward needs a default one
    "XmodForCausalLM": ToyFix(config={"default_language": "en_XX"}),
    # the shared transformer block is tied across hybrid layers, so keep two of them
    "ZambaForCausalLM": ToyFix(config={"num_hidden_layers": 4, "layers_block_type": [
        "linear_attention", "hybrid", "linear_attention", "hybrid"]}, upstream_bugs=(
        UpstreamBug("5.15.0", _MAMBA_KERNELS_REQUIRED, {"use_mamba_kernels": False}),)),
    # the checkpoints rotate the shared attention's queries and keys (and transformers 5.0 calls the
    # rotary embedding whether or not the config enables it)
    "Zamba2ForCausalLM": ToyFix(config={"use_mem_rope": True}),
    "ZayaForCausalLM": ToyFix(config={"num_experts_per_tok": 1}),
}
