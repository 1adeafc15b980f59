"""Per-architecture facts, as rows of one table keyed by HuggingFace class name.

Most architectures need no row: the default spec lists, for every standardized name, the
native spellings it may have (``model.layers``, ``transformer.h``, ...) and the first one
present in the model wins. A row states only how an architecture differs ("like the
default, except its attention and MLP run in parallel").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from enum import Enum
from types import MappingProxyType
from typing import Any, Callable


class Residual(str, Enum):
    """How a block's attention and MLP contributions combine into its output."""

    SEQUENTIAL = "sequential"  # out = in + attn(in) + mlp(in + attn(in))
    PARALLEL = "parallel"  # out = in + attn(in) + mlp(in), both fed the same input
    NONE = "none"  # post-norm or gated blocks: no additive identity to check


class StreamLayout(str, Enum):
    """How a block's input and output hold several residual streams (hyper-connections, AltUp)."""

    STREAM_AXIS = "batch, seq, streams, hidden"
    CONCATENATED = "batch, seq, streams * hidden"
    LEADING = "streams, batch, seq, hidden"
    SEQUENCE = "batch, (1 + streams) * seq, hidden"  # a main stream, then predicting streams

    def shape(self, batch: int, seq: int, streams: int, hidden: int) -> tuple[int, ...]:
        """The native layer input/output shape under this layout."""
        return {StreamLayout.STREAM_AXIS: (batch, seq, streams, hidden),
                StreamLayout.CONCATENATED: (batch, seq, streams * hidden),
                StreamLayout.LEADING: (streams, batch, seq, hidden),
                StreamLayout.SEQUENCE: (batch, (1 + streams) * seq, hidden)}[self]

    def total_streams(self, streams: int) -> int:
        """How many streams a token carries: the config's count, plus the main stream for SEQUENCE."""
        return 1 + streams if self is StreamLayout.SEQUENCE else streams

    def to_canonical(self, value: Any, streams: int) -> Any:
        """A native layer input/output as a (batch, seq, streams, hidden) view: in-place edits reach the model."""
        if self is StreamLayout.CONCATENATED:
            return value.unflatten(-1, (streams, -1))
        if self is StreamLayout.LEADING:
            return value.permute(1, 2, 0, 3)
        if self is StreamLayout.SEQUENCE:
            return value.unflatten(1, (1 + streams, -1)).transpose(1, 2)
        return value

    def to_native(self, value: Any, streams: int) -> Any:
        """The inverse of `to_canonical`: a (batch, seq, streams, hidden) value in the model's own layout."""
        if self is StreamLayout.CONCATENATED:
            return value.flatten(-2)
        if self is StreamLayout.LEADING:
            return value.permute(2, 0, 1, 3)
        if self is StreamLayout.SEQUENCE:
            return value.transpose(1, 2).flatten(1, 2)
        return value


@dataclass(frozen=True)
class Streams:
    """How a block carries several residual streams (hyper-connections, AltUp, ProphetNet), or one.

    ``key`` is the text-config key giving their number (empty: a single stream). ``readout`` collapses
    them into the one hidden state the final norm reads, as (base model, streams (rows, 1, streams,
    hidden)) -> (rows, 1, hidden), the base model being the module holding ``layers`` (an envoy inside a
    trace); the logit lens goes through it.
    """

    key: str = ""
    layout: StreamLayout = StreamLayout.STREAM_AXIS
    readout: Callable[[Any, Any], Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.key)

    def count(self, config: Any) -> int | None:
        """The configured number of streams, None for single-stream models."""
        return getattr(config.get_text_config(), self.key) if self.key else None

    def total(self, config: Any) -> int:
        """Streams per token as ``layers_output`` serves them: 1, or the configured ones (plus the main stream)."""
        count = self.count(config)
        return 1 if count is None else self.layout.total_streams(count)

    def view(self, config: Any) -> Any:
        """The TensorView serving layer inputs/outputs as (batch, seq, streams, hidden); None for one stream."""
        from .accessors import TensorView

        count = self.count(config)
        return None if count is None else TensorView.streams(self.layout, count)

    def sublayer_shape(self, config: Any, batch: int, seq: int, hidden: int) -> tuple[int, ...]:
        """(batch, seq, hidden); streams laid along the sequence (ProphetNet) flow through every sublayer too."""
        count = self.count(config)
        if count is None or self.layout is not StreamLayout.SEQUENCE:
            return (batch, seq, hidden)
        return self.layout.shape(batch, seq, count, hidden)


@dataclass(frozen=True)
class Codebooks:
    """Several token ids per position (MusicGen): ``key`` is the config key of their number (empty: one).
    The token embeddings are the sum of one embedding per codebook (``embed_tokens[k]``), and one head per
    codebook (``lm_head[k]``) gives the logits, stacked as (batch * codebooks, seq, vocab): the trace-time
    members (``nnterp.core.trace_time``) do that wherever ``key`` is set."""

    key: str = ""

    def count(self, config: Any) -> int:
        return int(getattr(config, self.key, 1)) if self.key else 1


@dataclass(frozen=True)
class ModulePaths:
    """Where the standardized modules live. Every field is a tuple of candidates tried in order; a ``*``
    component matches any child. Top-level paths are from the model root, per-layer paths from one layer.
    ``attention_output`` / ``mlp_output`` name the module whose output is what the block adds to the
    residual stream, when that is not the attention / MLP itself (post-norms, blocks that add the
    residual inside the attention)."""

    layers: tuple[str, ...] = ()
    ln_final: tuple[str, ...] = ()
    attention: tuple[str, ...] = ()
    mlp: tuple[str, ...] = ()
    embed_tokens: tuple[str, ...] = ()  # empty: found through get_input_embeddings()
    lm_head: tuple[str, ...] = ()  # empty: found through get_output_embeddings()
    # A module the head applies between the final norm and the unembedding, when it is not part of
    # `lm_head` (ModernBERT decoder's prediction head): reachable as `head_transform`; the logit lens uses it.
    head_transform: tuple[str, ...] = ()
    attention_output: tuple[str, ...] = ()
    mlp_input: tuple[str, ...] = ()
    mlp_output: tuple[str, ...] = ()
    # Sibling modules whose outputs the block adds together with the MLP's, in run order (shared
    # experts beside the routed ones): mlps_output is their sum, the MLP's whole contribution.
    mlp_output_extra: tuple[str, ...] = ()
    # Other modules whose output the block adds to the stream besides attention and MLP
    # (Gemma 4's per-layer-input branch): part of the residual identity, in no accessor.
    residual_extra: tuple[str, ...] = ()
    # Module (where a layer has one) normalizing the block's input before it becomes the
    # residual stream (RWKV's layer-0 pre_ln): the residual identity starts from its output.
    residual_input: tuple[str, ...] = ()
    # Token mixers that are not attention (Mamba, linear attention, convolutions): reachable as
    # attentions[i], but never aliased to `self_attn`, which names softmax attention only.
    token_mixers: tuple[str, ...] = ()
    # Native spellings renamed on a model not built yet (`get_rename_dict()` without a model), beyond
    # the layers / ln_final candidates: embeddings and heads, and per-layer names no block has two of.
    embed_tokens_spellings: tuple[str, ...] = ()
    lm_head_spellings: tuple[str, ...] = ()
    attention_aliases: tuple[str, ...] = ()
    mlp_aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlockSemantics:
    """How a block's sublayer outputs make its output: the residual identity and what scales its terms."""

    residual: Residual = Residual.SEQUENTIAL
    # Config flag that, when present and False, makes the blocks post-norm (OPT's
    # do_layer_norm_before): the residual identity then does not hold.
    pre_norm_flag: str = ""
    # Layer attribute scaling each sublayer's output before the block adds it (Granite's
    # residual_multiplier, MiniCPM's residual_scale): attentions_output / mlps_output include it.
    residual_scale_attr: str = ""
    # (module path, layer attribute) pairs: the block multiplies that module's output by the
    # attribute before adding it (Falcon-H1's attn_out_multiplier / ssm_out_multiplier).
    output_scales: tuple[tuple[str, str], ...] = ()
    # Layer attribute multiplying the whole block output, residual included (Gemma 4's layer_scalar).
    output_scale_attr: str = ""
    # A skipped block hands its own extra inputs back in its output tuple's extra slots instead of
    # None (xLSTM blocks take and return their recurrent state, which the model then indexes).
    skip_passes_inputs: bool = False


@dataclass(frozen=True)
class TensorLayout:
    """How the model lays out the tensors nnterp serves as (batch, seq, ...): streams, codebooks,
    sequence-first states, folded batches, learned prefix positions."""

    streams: Streams = Streams()
    codebooks: Codebooks = Codebooks()
    # Accessors whose native tensor folds the batch into its leading dim: older attention code's
    # (batch*heads, q, k) softmax ("attention_probabilities"), OPT's (batch*seq, hidden) MLP
    # ("mlps_input", "mlps_output"). They are served unfolded, as (batch, -1, ...).
    batch_folded: tuple[str, ...] = ()
    # The MLP returns (batch*seq, hidden) (Llama 4's MoE): mlps_output views it as (batch, seq, hidden).
    mlp_output_flat: bool = False
    # Hidden states are (seq, batch, hidden) (XLNet): accessors serve them as (batch, seq, hidden).
    sequence_first: bool = False
    # Config key giving learned prefix positions the model prepends to every input (CPM-Ant's
    # prompt_length): hidden states have that many more positions than the input ids.
    prefix_positions_key: str = ""
    # The padding side the model needs when it ignores the attention mask and finds padding by id
    # (CPM-Ant: id 0, on the left); empty when the mask is honoured and either side works.
    padding_side: str = ""

    @property
    def batch_first_everywhere(self) -> bool:
        """Whether every value has the batch first, so nnsight can split one forward between invokes."""
        leading_streams = bool(self.streams) and self.streams.layout is StreamLayout.LEADING
        return not (self.mlp_output_flat or leading_streams or self.sequence_first)

    def hidden_view(self) -> Any:
        """The TensorView serving sublayer hidden states as (batch, seq, hidden); None where native."""
        from .accessors import TensorView

        return TensorView.sequence_first() if self.sequence_first else None

    def layer_view(self, config: Any) -> Any:
        """The TensorView serving layer inputs/outputs (streams included); None where native."""
        return self.hidden_view() if self.sequence_first else self.streams.view(config)

    def prefix_positions(self, config: Any) -> int:
        return int(getattr(config, self.prefix_positions_key, 0)) if self.prefix_positions_key else 0


@dataclass(frozen=True)
class AttentionFacts:
    """What the attention computes, where nnterp reads its probabilities, and how many heads it has."""

    softmax_attention: bool = True
    # Learned sink logits share the softmax but attend to nothing: the probabilities over
    # the real keys sum to at most 1, not exactly 1 (gpt-oss).
    attention_sinks: bool = False
    # Which of the attention forward's calls that reach a softmax computes the probabilities the model
    # uses, in source order (XLNet's one-stream path is its last call: -1).
    attn_prob_call: int = 0
    # Config key listing the number of heads of each layer, where it varies (Laguna).
    heads_per_layer_key: str = ""
    # Config key mapping layer types (config.layer_types) to compression rates: layers of those
    # types also attend to seq // rate compressed key blocks appended after the tokens (DeepSeek-V4's
    # compressed attention), so their probabilities are (batch, heads, seq, seq + seq // rate).
    compressed_key_rates_key: str = ""

    def probability_shapes(self, config: Any, num_layers: int, batch: int, heads: int,
                           seq: int) -> list[tuple[int, ...]]:
        """Each layer's (batch, heads, queries, keys): heads may vary by layer, compressed layers add keys."""
        text = config.get_text_config()
        per_layer = list(getattr(text, self.heads_per_layer_key, None) or []) if self.heads_per_layer_key else []
        rates = (getattr(text, self.compressed_key_rates_key, None) or {}) if self.compressed_key_rates_key else {}
        layer_types = getattr(text, "layer_types", None) or [None] * num_layers
        return [(batch, per_layer[i] if per_layer else heads, seq,
                 seq + (seq // rates[layer_types[i]] if layer_types[i] in rates else 0)) for i in range(num_layers)]


def _soft_cap(logits: Any, cap: float) -> Any:
    return (logits / cap).tanh() * cap


# Transforms some heads apply to the lm_head output, keyed by the (text) config attribute that
# switches them on; project_on_vocab applies them so that the logit lens of the last layer is the
# model's own logits. Each takes (logits, config value).
LOGIT_TRANSFORMS: tuple[tuple[str, Callable[[Any, float], Any]], ...] = (
    ("final_logit_softcapping", _soft_cap),  # Gemma 2/3
    ("logits_soft_cap", _soft_cap),  # RecurrentGemma
    ("output_logit_soft_cap", _soft_cap),  # xLSTM
    ("logits_mup_width_multiplier", lambda logits, multiplier: logits / multiplier),  # Inkling (head has no bias)
    ("logit_scale", lambda logits, scale: logits * scale),  # Cohere
    ("logits_scaling", lambda logits, scaling: logits / scaling),  # Granite
)


@dataclass(frozen=True)
class HeadFacts:
    """What turns the final hidden state into logits beyond norm and unembedding: config-switched logit
    transforms, and the config keys of the sizes nnterp reports."""

    logit_transforms: tuple[tuple[str, Callable[[Any, float], Any]], ...] = LOGIT_TRANSFORMS
    num_heads_keys: tuple[str, ...] = ("num_attention_heads", "n_head", "num_heads", "n_heads",
                                       "decoder_attention_heads", "encoder_attention_heads")
    hidden_size_keys: tuple[str, ...] = ("hidden_size", "n_embd", "d_model", "dim", "embed_dim")
    # A config whose embedding is padded past the tokenizer declares the head's width as unpadded_vocab_size.
    vocab_size_keys: tuple[str, ...] = ("unpadded_vocab_size", "vocab_size", "n_vocab")

    def active_transforms(self, config: Any, model_class: type | None = None) -> list[tuple[Callable[[Any, float], Any],
                                                                                             float]]:
        """The transforms this (text) config switches on, with their values; with ``model_class``, only those
        its forward applies (Aya Vision's text config has Cohere 2's logit_scale, which its forward never uses)."""
        text = config.get_text_config()
        source = _forward_source(model_class) if model_class is not None else None
        return [(transform, getattr(text, key)) for key, transform in self.logit_transforms
                if isinstance(getattr(text, key, None), (int, float)) and not isinstance(getattr(text, key), bool)
                and (source is None or key in source)]


@functools.lru_cache(maxsize=None)
def _forward_source(model_class: type) -> str | None:
    """The source of a model class's forward (None where it cannot be read: then nothing is filtered); read
    once per class, as reading it costs about a millisecond."""
    import inspect

    try:
        return inspect.getsource(model_class.forward)  # type: ignore[attr-defined]  # a torch module class
    except (OSError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class VisionFacts:
    """Where a vision-language model's image side is (``StandardizedVLM``). Candidates are tried in order;
    when none is present the vision tower is found by its config (the submodule built from the model's
    ``vision_config``) and its layers as the longest stack of identical blocks inside it."""

    vision_tower: tuple[str, ...] = ()
    vision_layers: tuple[str, ...] = ()
    # The module turning vision features into language-model inputs: its output is `image_embeddings`.
    projector: tuple[str, ...] = ()
    # Config keys (top level, then the text config) holding the id of the token each image feature replaces.
    image_token_keys: tuple[str, ...] = ()


_PARTS = {"paths": ModulePaths, "blocks": BlockSemantics, "layout": TensorLayout, "attention_facts": AttentionFacts,
          "head": HeadFacts, "vision": VisionFacts}


@dataclass(frozen=True)
class ArchitectureSpec:
    """One architecture's facts, in typed parts: where its modules are (``paths``), how its blocks add
    up (``blocks``), how its tensors are laid out (``layout``), its attention (``attention_facts``) and
    its head (``head``). ``unsupported`` says why it cannot be standardized, if it cannot.

    Rows are written flat, naming fields of any part: ``DEFAULT.like(residual=Residual.PARALLEL)``.
    """

    paths: ModulePaths = ModulePaths()
    blocks: BlockSemantics = BlockSemantics()
    layout: TensorLayout = TensorLayout()
    attention_facts: AttentionFacts = AttentionFacts()
    head: HeadFacts = HeadFacts()
    vision: VisionFacts = VisionFacts()
    unsupported: str = ""
    note: str = ""

    def like(self, **changes: Any) -> ArchitectureSpec:
        """A copy of this spec with some facts changed, each named by its field in whichever part holds it:
        how a row says "like X, except..."."""
        own = {key: changes.pop(key) for key in ("unsupported", "note") if key in changes}
        parts = {}
        for part_name, part_type in _PARTS.items():
            names = {item.name for item in fields(part_type)}
            mine = {key: changes.pop(key) for key in list(changes) if key in names}
            if mine:
                parts[part_name] = replace(getattr(self, part_name), **mine)
        if changes:
            from ..errors import InvalidArgument

            raise InvalidArgument(f"ArchitectureSpec has no fact named {sorted(changes)}; the facts are the fields "
                                  f"of {', '.join(part.__name__ for part in _PARTS.values())}, plus unsupported "
                                  "and note")
        return replace(self, **parts, **own)


DEFAULT = ArchitectureSpec().like(
    layers=("model.layers", "model.decoder.layers", "transformer.h", "transformer.blocks",
            "transformer.layer", "gpt_neox.layers", "gpt_neox_japanese.layers", "backbone.layers",
            "backbone.blocks", "model.language_model.layers", "model.text_model.layers", "biogpt.layers",
            "rwkv.blocks", "text_model.model.layers", "text_decoder.bert.encoder.layer",
            "language_model.model.decoder.layers", "*.encoder.layer",
            "*.encoder.layers", "model.L_module.layers",
            "language_model.model.layers"),
    ln_final=("model.norm", "transformer.ln_f", "model.decoder.final_layer_norm", "model.decoder.layer_norm",
              "model.final_layernorm", "model.language_model.final_layernorm", "gpt_neox.final_layer_norm",
              "gpt_neox_japanese.final_layer_norm", "backbone.norm_f", "backbone.out_norm", "model.final_norm",
              "model.norm_f",
              "model.language_model.norm", "model.text_model.norm", "transformer.norm_f", "transformer.layernorm",
              "rwkv.ln_out", "biogpt.layer_norm", "model.layer_norm", "model.embedding_norm",
              "model.L_module.final_norm", "cpmant.encoder.output_layernorm", "bert.encoder.ln"),
    attention=("self_attn", "attn", "self_attention", "attention", "linear_attn", "mamba", "mixer",
               "temporal_block", "multi_head_attention", "rel_attn", "self_att", "conv", "mlstm_layer"),
    mlp=("mlp", "feed_forward", "ffn", "block_sparse_moe", "mlp_block", "ff", "mlps"),
    token_mixers=("linear_attn", "mamba", "mixer", "temporal_block", "conv", "mlstm_layer"),
    embed_tokens_spellings=("model.embed_tokens", "transformer.wte", "gpt_neox.embed_in", "model.decoder.embed_tokens",
                            "transformer.word_embeddings", "backbone.embeddings"),
    lm_head_spellings=("embed_out", "output_projection", "proj_out"),
    attention_aliases=("attn", "self_attention", "attention"),
    mlp_aliases=("feed_forward", "ffn", "block_sparse_moe"),
    projector=("model.multi_modal_projector", "multi_modal_projector", "model.visual.merger", "visual.merger",
               "model.connector", "model.mm_projector", "model.aligner", "model.vision_projection",
               "model.visual_projection", "model.image_projection", "model.projector", "model.vision_proj",
               "model.language_projection", "language_projection", "model.vision_tower.merger",
               "image_to_text_projection"),
    image_token_keys=("image_token_id", "image_token_index", "image_token"),
)

_SANDWICH = DEFAULT.like(attention_output=("post_attention_layernorm",),
                         mlp_output=("post_feedforward_layernorm",),
                         note="post-norms on both sublayer outputs (sandwich norm)")
_PARALLEL = DEFAULT.like(residual=Residual.PARALLEL, note="attention and MLP read the same input")
_POST_NORM = _SANDWICH.like(note="norms after attention and MLP (no pre-norms), before each residual add")
_GLM4 = DEFAULT.like(attention_output=("post_self_attn_layernorm",), mlp_output=("post_mlp_layernorm",),
                     note="sandwich norm; post_attention_layernorm is the pre-MLP norm")
_GRANITE = DEFAULT.like(residual_scale_attr="residual_multiplier", mlp_output_extra=("shared_mlp",),
                        note="each sublayer output is scaled by residual_multiplier; a shared MLP beside the "
                             "routed experts is part of the MLP contribution")
_GEMMA4 = _SANDWICH.like(residual_extra=("post_per_layer_input_norm",), output_scale_attr="layer_scalar",
                         note="sandwich norm; the per-layer-input branch adds a third term; layer_scalar "
                              "scales the whole block output")
_SINKS = DEFAULT.like(attention_sinks=True, note="learned attention sinks: probabilities over keys sum to <= 1")
_BART = DEFAULT.like(mlp=(), mlp_input=("fc1",), mlp_output=("fc2",), residual=Residual.NONE,
                     note="MLP is fc1/fc2 inline in the layer; post-norm blocks")
_BART_PRENORM = _BART.like(residual=Residual.SEQUENTIAL, note="MLP is fc1/fc2 inline in the layer; pre-norm blocks")
_MUSICGEN = _BART_PRENORM.like(
    codebooks=Codebooks("num_codebooks"),
    note="MLP is fc1/fc2 inline; pre-norm blocks; token embeddings sum one embedding per codebook and one head "
         "per codebook gives the logits, (batch * codebooks, seq, vocab)")
_BERT = DEFAULT.like(attention_output=("attention.output.dense",), mlp=("intermediate",),
                     mlp_output=("output.dense",), residual=Residual.NONE,
                     note="post-norm encoder blocks used as decoders; residual added inside sublayers")
_BERT_PRENORM = _BERT.like(residual=Residual.SEQUENTIAL,
                           note="pre-norm BERT blocks: the residual is added inside attention.output / output, "
                                "after their dense layer, with no norm after it")

# Stream readouts: how each multi-stream family turns its streams into one hidden state after the
# last layer, written with the model's own modules so that the logit lens of the last layer is the
# model's logits (a load check verifies it). Inputs and outputs as Streams.readout says.


def _hyper_head_readout(base: Any, streams: Any) -> Any:
    """DeepSeek-V4, HY-V4: ``hc_head`` weighs the streams by input-dependent gates and sums them."""
    return base.hc_head(streams)


def _gated_mixer_readout(base: Any, streams: Any) -> Any:
    """Qwen4-Exp: ``hyper_connection_mixer`` reads the streams side by side in the hidden axis."""
    return base.hyper_connection_mixer(streams.flatten(-2))


def _altup_readout(base: Any, streams: Any) -> Any:
    """Gemma 3n: predicted streams are unembedded, rescaled to the active stream's magnitude, averaged."""
    active = streams[..., 0, :]
    magnitude = active.pow(2).mean(dim=-1, keepdim=True).sqrt()
    collapsed = [active]
    for index, unembed in enumerate(base.altup_unembed_projections, start=1):
        stream = unembed(streams[..., index, :])
        collapsed.append(stream * magnitude / stream.pow(2).mean(dim=-1, keepdim=True).clamp(min=1e-5).sqrt())
    return sum(collapsed) / len(collapsed)


def _first_predicting_stream(base: Any, streams: Any) -> Any:
    """ProphetNet as a causal LM: its logits come from the first n-gram predicting stream (after the main one)."""
    return streams[..., 1, :]


_HYPER_CONCATENATED = DEFAULT.like(
    residual=Residual.NONE, streams=Streams("hc_count", StreamLayout.CONCATENATED, _gated_mixer_readout),
    note="hyper-connections: layers carry hc_count residual streams side by side in the hidden axis, mixed "
         "by learned input-dependent weights, so there is no additive identity over one stream")

_ZAMBA_HYBRID = DEFAULT.like(
    attention=("mamba", "mamba_decoder.mamba"), mlp=(),
    token_mixers=DEFAULT.paths.token_mixers + ("mamba_decoder.mamba",),
    note="every layer is a Mamba mixer added to the stream; in hybrid layers the mixer's input also gets a "
         "shared transformer block's output (through `linear`), which is not itself added to the stream and "
         "whose attention (over the stream and the embeddings) is not exposed per layer")

_INKLING2 = DEFAULT.like(
    attention_output=("post_attention_convolution",), mlp_output=("post_mlp_convolution",),
    attention_sinks=True, residual=Residual.NONE,
    note="learned per-token attention sinks; each sublayer reads a learned softmax over depth of the completed "
         "block sums and the current partial sum, not the stream; a short convolution (with its own skip) "
         "follows each sublayer; at block-boundary layers the input leaves the stream for the block states "
         "and the output is attention + MLP alone, so there is no additive identity on every layer")

_ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "DbrxForCausalLM": DEFAULT.like(attention=("norm_attn_norm.attn",), mlp=("ffn",),
                                    note="attention sits inside norm_attn_norm, which also applies both norms"),
    "ZambaForCausalLM": _ZAMBA_HYBRID,
    "Zamba2ForCausalLM": _ZAMBA_HYBRID,
    "GPTJForCausalLM": _PARALLEL,
    "CodeGenForCausalLM": _PARALLEL,
    "PhiForCausalLM": _PARALLEL,
    "GPTNeoXForCausalLM": _PARALLEL,
    "CohereForCausalLM": _PARALLEL,
    "Cohere2ForCausalLM": _PARALLEL,
    "FalconForCausalLM": _PARALLEL,
    "BloomForCausalLM": DEFAULT.like(attention_output=("self_attention.dense",), mlp_output=("mlp.dense_4h_to_h",),
                                     batch_folded=("attention_probabilities",),
                                     note="attention and MLP add the residual themselves; probabilities are "
                                          "multiplied as (batch*heads, q, k)"),
    "Gemma2ForCausalLM": _SANDWICH,
    "Gemma3ForCausalLM": _SANDWICH,
    "BartForCausalLM": _BART,
    "BlenderbotSmallForCausalLM": _BART,
    "MarianForCausalLM": _BART,
    "PLBartForCausalLM": _BART,
    "MvpForCausalLM": _BART.like(batch_folded=("attention_probabilities",)),
    "TrOCRForCausalLM": _BART.like(batch_folded=("attention_probabilities",)),
    "MBartForCausalLM": _BART_PRENORM,
    "PegasusForCausalLM": _BART_PRENORM,
    "BlenderbotForCausalLM": _BART_PRENORM,
    "WhisperForCausalLM": _BART_PRENORM,
    "BioGptForCausalLM": _BART_PRENORM,
    "BigBirdPegasusForCausalLM": _BART_PRENORM.like(
        ln_final=("model.decoder.layernorm_embedding",),
        note="MLP is fc1/fc2 inline; pre-norm blocks; the decoder's final norm is named layernorm_embedding"),
    "XGLMForCausalLM": _BART_PRENORM.like(batch_folded=("attention_probabilities",)),
    "OPTForCausalLM": _BART_PRENORM.like(pre_norm_flag="do_layer_norm_before",
                                         batch_folded=("mlps_input", "mlps_output"),
                                         note="MLP is fc1/fc2 inline, on (batch*seq, hidden) rows; pre-norm "
                                              "unless do_layer_norm_before=False"),
    "ModernBertDecoderForCausalLM": DEFAULT.like(
        lm_head=("decoder",), head_transform=("lm_head",),
        note="the head is a prediction transform (natively `lm_head`: dense, activation, norm) then the unembedding "
             "(natively `decoder`): they are served as `head_transform` and `lm_head`"),
    "MusicgenForCausalLM": _MUSICGEN,
    "MusicgenMelodyForCausalLM": _MUSICGEN,
    "LongcatFlashForCausalLM": DEFAULT.like(
        attention=("self_attn.0",), mlp=("mlps.0",), residual_extra=("mlp", "self_attn.1", "mlps.1"),
        note="each layer is two attention + MLP sub-blocks (self_attn[0], mlps[0], then self_attn[1], mlps[1]) "
             "plus a shortcut MoE (`mlp`) fed by the first post-attention norm and added at the end: attentions[i] "
             "and mlps[i] are the first pair, the shortcut and the second pair are the other residual terms"),
    "XLNetLMHeadModel": DEFAULT.like(
        sequence_first=True, attn_prob_call=-1, residual=Residual.NONE,
        note="hidden states are (seq, batch, hidden), served as (batch, seq, hidden); post-norm blocks whose "
             "attention and feed-forward add the residual and norm inside (their outputs include both); as a "
             "causal LM only the content stream runs (the query stream is for permutation pretraining)"),
    "OpenAIGPTLMHeadModel": DEFAULT.like(residual=Residual.NONE,
                                         note="post-norm blocks: ln_1 / ln_2 follow the residual adds"),
    "XLMWithLMHeadModel": DEFAULT.like(unsupported=(
        "XLM has no per-layer block: its attentions, FFNs and layer norms live in separate parallel "
        "ModuleLists (transformer.attentions, transformer.ffns, transformer.layer_norm1/2) and the loop in "
        "XLMModel.forward wires them, so no module's input/output is a layer's residual stream")),
    "ProphetNetForCausalLM": DEFAULT.like(
        layers=("prophetnet.decoder.layers",), residual=Residual.NONE,
        streams=Streams("ngram", StreamLayout.SEQUENCE, _first_predicting_stream),
        note="post-norm layers run the main stream and its n-gram predicting streams concatenated along the "
             "sequence: layer inputs/outputs are (batch, (1 + ngram) * seq, hidden)"),
    "CpmAntForCausalLM": DEFAULT.like(attention_output=("self_att.self_attention",), mlp_input=("ffn.ffn",),
                                      mlp_output=("ffn.ffn",), prefix_positions_key="prompt_length",
                                      padding_side="left",
                                      note="pre-norm blocks whose self_att / ffn wrappers add the residual; the "
                                           "stream carries prompt_length learned prompt positions before the input; "
                                           "attention is bidirectional and ignores the attention mask: positions "
                                           "with id 0 are padding, expected on the left"),
    "GitForCausalLM": _BERT,
    "BertLMHeadModel": _BERT,
    # BLIP captions with a BERT decoder (cross-attending to the image), its head is the decoder's own
    "BlipForConditionalGeneration": _BERT.like(lm_head=("text_decoder.cls",)),
    "BertGenerationDecoder": _BERT,
    "BigBirdForCausalLM": _BERT,
    "CamembertForCausalLM": _BERT,
    "Data2VecTextForCausalLM": _BERT,
    "ErnieForCausalLM": _BERT,
    "RemBertForCausalLM": _BERT,
    "RoCBertForCausalLM": _BERT,
    "RoFormerForCausalLM": _BERT,
    "RobertaForCausalLM": _BERT,
    "XLMRobertaForCausalLM": _BERT,
    "XmodForCausalLM": _BERT.like(note="post-norm BERT blocks; the MLP output also runs a per-language adapter "
                                       "after the residual add"),
    "ElectraForCausalLM": _BERT.like(ln_final=("generator_predictions",),
                                     note="post-norm BERT blocks; generator_predictions (dense, activation, "
                                          "LayerNorm) is the transform before the unembedding"),
    "MegatronBertForCausalLM": _BERT_PRENORM,
    "RobertaPreLayerNormForCausalLM": _BERT_PRENORM.like(ln_final=("roberta_prelayernorm.LayerNorm",)),
    "XLMRobertaXLForCausalLM": _BERT_PRENORM.like(ln_final=("roberta.encoder.LayerNorm",)),
    "AfmoeForCausalLM": DEFAULT.like(attention_output=("post_attention_layernorm",), mlp_output=("post_mlp_layernorm",),
                                     note="sandwich norm (pre_mlp_layernorm / post_mlp_layernorm around the MLP)"),
    "BeamForCausalLM": _SANDWICH.like(
        residual=Residual.NONE,
        note="sandwich norm; depth-scaled residual: each add is sqrt((k-1)/k)*stream + sublayer/sqrt(k), "
             "which rescales the stream, so there is no additive identity"),
    "DoryForCausalLM": DEFAULT.like(
        residual=Residual.NONE,
        note="nGPT on the unit sphere: every norm is a weightless L2 norm; the stream moves towards each "
             "sublayer's normed output, stream + rate * (normed - stream) at a learned per-channel rate, so there "
             "is no additive identity (attentions_output / mlps_output are the sublayers' own outputs, before "
             "that norm); the middle layers run n_recurrent_loops times, each loop starting from the normed "
             "stream plus the input section's normed output: their accessors and interventions reach the first "
             "loop. The model itself renorms the stream between sections (the final norm module also runs there, "
             "so ln_final's output is its first call), so skipping every layer does not pass the stream through"),
    "ErgoForCausalLM": _SANDWICH.like(
        residual=Residual.NONE,
        note="sandwich norm; each sublayer joins the stream through a learned per-channel gate "
             "(attention_residual_gate, feedforward_residual_gate): sigmoid(w) * normed sublayer + "
             "sqrt(1 + sigmoid(w)) * exp(-softplus(w) / 2) * stream, which rescales the stream, so there is no "
             "additive identity (attentions_output / mlps_output are the normed sublayer outputs, before the gate)"),
    "Exaone4ForCausalLM": _POST_NORM,
    "FlexOlmoForCausalLM": _POST_NORM,
    "Olmo2ForCausalLM": _POST_NORM,
    "Olmo3ForCausalLM": _POST_NORM,
    "OlmoHybridForCausalLM": _POST_NORM.like(
        attention_output=("linear_attn", "post_attention_layernorm"), mlp_output=("post_feedforward_layernorm", "mlp"),
        note="attention layers are post-norm (norms after each sublayer); linear-attention layers are pre-norm, "
             "their post_attention_layernorm being the pre-MLP norm"),
    "Gemma3ForConditionalGeneration": _SANDWICH,
    "Gemma4ForCausalLM": _GEMMA4,
    "Gemma4ForConditionalGeneration": _GEMMA4,
    "Gemma4UnifiedForCausalLM": _GEMMA4,
    "Gemma4UnifiedForConditionalGeneration": _GEMMA4,
    "Glm4ForCausalLM": _GLM4,
    # GLM-4's sandwich-normed blocks under a vision tower
    "Glm4vForConditionalGeneration": _GLM4,
    "Glm46VForConditionalGeneration": _GLM4,
    "GlmOcrForConditionalGeneration": _GLM4,
    "Kolibri1ForCausalLM": _GLM4,
    "Kolibri1_1ForCausalLM": _GLM4,
    "HyperCLOVAXForCausalLM": DEFAULT.like(attention_output=("post_norm1",), mlp_output=("post_norm2",),
                                           residual_scale_attr="residual_multiplier",
                                           note="optional post-norms (Identity when off); outputs scaled by "
                                                "residual_multiplier"),
    "Lfm3ForCausalLM": DEFAULT.like(attention_output=("post_operator_norm",), mlp_output=("post_ffn_norm",),
                                    note="sandwich norm around the operator (attention or conv) and the MLP"),
    "GraniteForCausalLM": _GRANITE,
    "GraniteDoclingForConditionalGeneration": _GRANITE,  # Granite's scaled residual under a vision tower
    "GraniteMoeForCausalLM": _GRANITE,
    "GraniteMoeSharedForCausalLM": _GRANITE,
    "GraniteMoeSWAForCausalLM": _GRANITE,
    "GraniteMoeHybridForCausalLM": _GRANITE,
    "MiniCPM3ForCausalLM": DEFAULT.like(residual_scale_attr="residual_scale",
                                        note="each sublayer output is scaled by scale_depth / sqrt(num_layers)"),
    "MiniMaxForCausalLM": DEFAULT.like(
        residual=Residual.NONE,
        note="the stream is re-normed before each sublayer and each add is alpha*residual + beta*sublayer: "
             "post-norm mixing with no additive identity"),
    "MptForCausalLM": DEFAULT.like(mlp_output=("ffn.down_proj",), note="the MLP adds the residual itself"),
    "InklingForCausalLM": DEFAULT.like(attention_output=("attn_sconv",), mlp_output=("mlp_sconv",),
                                       note="a short convolution (with its own skip) follows each sublayer"),
    "Inkling2ForCausalLM": _INKLING2,
    "Inkling2LoopForCausalLM": _INKLING2.like(
        note=_INKLING2.note + "; the layers from loop_layer_index_start to loop_layer_index_end run "
             "loop_num_passes times, each later pass restarting from the pre-loop states and gated by messages "
             "from the previous pass: their accessors and interventions reach the first pass"),
    "GptOssForCausalLM": _SINKS,
    "FlintForCausalLM": _SINKS,
    "MiMoV2FlashForCausalLM": _SINKS,
    "LagunaForCausalLM": DEFAULT.like(heads_per_layer_key="num_attention_heads_per_layer",
                                      note="the number of heads varies by layer"),
    "FalconH1ForCausalLM": DEFAULT.like(
        attention=("self_attn",), residual_extra=("mamba",),
        output_scales=(("self_attn", "attn_out_multiplier"), ("mamba", "ssm_out_multiplier")),
        note="attention and a Mamba mixer run in parallel on the same normed input; attentions_output is "
             "the attention's scaled output, the mixer's is the third residual term"),
    "Llama4ForCausalLM": DEFAULT.like(mlp_output_flat=True, note="MoE layers return (batch*seq, hidden)"),
    "Llama4ForConditionalGeneration": DEFAULT.like(mlp_output_flat=True, note="MoE layers return (batch*seq, hidden)"),
    "DeepseekV4ForCausalLM": _SINKS.like(
        residual=Residual.NONE, streams=Streams("hc_mult", readout=_hyper_head_readout),
        compressed_key_rates_key="compress_rates",
        note="attention sinks; manifold hyper-connections (mHC): layers carry hc_mult residual streams mixed by "
             "input-dependent learned matrices, so there is no additive identity over one stream; compressed "
             "attention layers also attend to compressed key blocks"),
    "HYV4ForCausalLM": _SINKS.like(
        residual=Residual.NONE, streams=Streams("hc_mult", readout=_hyper_head_readout),
        note="attention sinks; hyper-connections: layers carry several residual streams mixed by learned, "
             "input-dependent matrices, so there is no additive identity over one stream"),
    # HY-V4's text model under a vision tower
    "HYV4VLForConditionalGeneration": _SINKS.like(
        residual=Residual.NONE, streams=Streams("hc_mult", readout=_hyper_head_readout),
        note="HY-V4's blocks (attention sinks, hyper-connections) under a vision tower"),
    "Glm5NextForConditionalGeneration": DEFAULT.like(
        residual=Residual.NONE, streams=Streams("hc_mult", readout=_hyper_head_readout),
        note="hyper-connections (attn_hc / ffn_hc, read out by hc_head): several residual streams mixed by "
             "learned, input-dependent matrices, so there is no additive identity over one stream"),
    "Qwen4ExpForCausalLM": _HYPER_CONCATENATED,
    "Qwen4ExpForConditionalGeneration": _HYPER_CONCATENATED,
    "Gemma3nForCausalLM": _SANDWICH.like(
        residual=Residual.NONE, streams=Streams("altup_num_inputs", StreamLayout.LEADING, _altup_readout),
        note="AltUp: layers carry altup_num_inputs predicted streams, corrected by learned mixing; only the "
             "active stream goes through attention and MLP, so there is no additive identity"),
    "RwkvForCausalLM": DEFAULT.like(softmax_attention=False, residual_input=("pre_ln",),
                                    note="RWKV time mixing is no softmax attention; layer 0 norms its input "
                                         "(pre_ln) before the residual stream starts"),
    "xLSTMForCausalLM": DEFAULT.like(skip_passes_inputs=True,
                                     note="each block takes and returns its recurrent state beside the stream"),
    "MambaForCausalLM": DEFAULT.like(mlp=(), softmax_attention=False, note="a mixer per block, no MLP"),
}

ARCHITECTURES = MappingProxyType(_ARCHITECTURES)

def spec_for(model_class: type, config: Any = None) -> ArchitectureSpec:
    """The row for a model class, inherited along its MRO; else, for a multimodal model whose class has no
    row, the row of the causal LM of its text config's model type (a LLaVA over Cohere 2 blocks is
    Cohere 2's row); else the default spec."""
    for klass in model_class.__mro__:
        if klass.__name__ in _ARCHITECTURES:
            return _ARCHITECTURES[klass.__name__]
    text_config = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else None
    if text_config is not None and text_config is not config:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(getattr(text_config, "model_type", ""))
        if causal in _ARCHITECTURES:
            return _ARCHITECTURES[causal]
    return DEFAULT


def register_architecture(class_name: str, spec: ArchitectureSpec, *, override: bool = False) -> None:
    """Add a row for an architecture nnterp does not know; refuses to shadow a row silently."""
    if class_name in _ARCHITECTURES and not override:
        from ..errors import ArchitectureAlreadyRegistered

        raise ArchitectureAlreadyRegistered(class_name)
    _ARCHITECTURES[class_name] = spec
