"""nnterp against TransformerLens (TL) 4.3 on SmolLM2: one table of the quantities both compute.

Each `Comparison` names a quantity, nnterp's computation, TL's and the largest absolute difference accepted.
``tests/test_vs_transformerlens.py`` checks every row (``nox -s vs_transformerlens`` installs TL beside
nnterp); ``benchmarks/run.py`` times the rows marked ``timed`` (nnterp's time / TL's, alternated rounds).
``python -m benchmarks.transformerlens`` prints each row's largest difference. A new toolkit function is one more
row.

Both libraries get the same weights: the GGUF is loaded once through transformers and each side wraps its own
deep copy (TL's bridge switches the model to eager attention and its compatibility mode rewrites weights). nnterp
runs eager attention too (``enable_attention_probs=True``), so both compute the same forward. TL reads
``raw``, its bridge on the unprocessed weights; its direct logit attribution refuses those (the final norm's
weight must be folded into the unembedding), so the DLA rows read ``processed``, a second bridge in compatibility
mode with the unembedding left uncentred (centring shifts every logit of a position by the same amount, which a
single-token DLA would see). TL's weight folding reorders float sums: the DLA rows differ by up to 1e-5 on logits
near 17, hence their tolerance of 5e-5. The patching grids are bit-identical on one thread; on several, nnterp's
batches of 32 patched runs and TL's single runs round differently (measured up to 1.2e-5 on metrics near 10), hence
5e-5 there too. Every other row is bit-identical or within 1e-6.

The cache kinds read from the attention call are compared with TL's hooks of the same values: nnterp's ``queries``
and ``keys`` are what the attention function is handed, after rotary (TL's ``hook_rot_q`` / ``hook_rot_k``;
``hook_q`` / ``hook_k`` precede rotary); keys and values stay per key/value head on both sides; masked scores hold
the float32 minimum on both sides (not -inf), so whole score tensors are compared. Path patching is compared with
TL's direct path patching into queries only: TL refuses keys and values on grouped-query models. Weights and circuits
are compared on the unprocessed weights (``raw``), the processed copy's folded weights with ``processed``'s.

TL's ``all_composition_scores`` scores all 270 x 270 head pairs at once and did not fit in this machine's 24 GiB, so
the composition row calls TL's ``utilities.matrix.composition_scores`` on the two layers' circuits.

Prompts are token tensors for TL (its tokenizer call prepends BOS, nnterp's does not) and strings for nnterp,
tokenized alike and of equal length, so no padding enters either side, except in the ``detect_heads`` row. TL's
``detect_head`` takes strings, prepends BOS and runs each prompt alone; nnterp gets the same ids, BOS first, as one
left-padded batch of prompts of different lengths, so the row also checks that padding changes nothing.
``detect_heads(average="all_positions")`` is TL's score (``error_measure="mul"``): per prompt the pattern's mass on
the targets over its whole mass, then the mean over prompts. Both count key q as an induction target of query q
after an immediate repeat ("no no no" in the row's prompts). nnterp's ``exclude_first_token`` leaves out each
prompt's first real token, TL's ``exclude_bos`` position 0: the same BOS here.
"""

from __future__ import annotations

import argparse
import copy
import itertools
from dataclasses import dataclass
from typing import Any, Callable

import torch

from benchmarks.subject import GGUF, smollm2_folder
from benchmarks.timing import Row

TL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # TL's architecture lookup key; the weights are passed in
PROMPTS = ["The capital of France is", "The capital of Italy is"]
CLEAN, CORRUPTED = PROMPTS
ANSWERS = (" Paris", " Rome")
NEURON_LAYER = 29
# the patching grids but the timed one patch these layers only: TL runs one forward per cell (about 0.3 s each here)
PATCH_LAYERS = (0, 14, 29)
HEAD_PATCH_LAYERS = (14,)  # 9 heads x 5 positions
RUN_LAYERS_SPLIT = 10


def transformerlens_missing() -> str | None:
    """Why TransformerLens cannot be used here (the import error, as measured), or None where it can."""
    try:
        import transformer_lens  # noqa: F401
        from transformer_lens.model_bridge import TransformerBridge  # noqa: F401
    except Exception as error:  # any failure to import is the reason, reported verbatim
        return f"transformer_lens is not importable: {type(error).__name__}: {error}"
    return None


@dataclass
class Sides:
    """nnterp's model and TL's two bridges over copies of one loaded SmolLM2, with the shared inputs."""

    model: Any  # StandardizedTransformer, eager attention
    raw: Any  # TransformerBridge on the unprocessed weights
    processed: Any  # TransformerBridge in compatibility mode (final norm folded, unembedding uncentred)
    ids: torch.Tensor  # (2, seq): PROMPTS' tokens, no BOS
    answers: tuple[int, int]

    @property
    def clean(self) -> torch.Tensor:
        return self.ids[:1]

    @property
    def corrupted(self) -> torch.Tensor:
        return self.ids[1:]

    def metric(self, logits: torch.Tensor) -> torch.Tensor:
        """Per prompt, the " Paris" - " Rome" logit difference at the last position: (batch,)."""
        right, wrong = self.answers
        return logits[:, -1, right] - logits[:, -1, wrong]

    def scalar_metric(self, logits: torch.Tensor) -> torch.Tensor:
        """The metric of a one-prompt batch as a scalar, as TL's patching functions want it."""
        return self.metric(logits)[0]


def load_sides() -> Sides:
    """SmolLM2 loaded once, wrapped by nnterp and by two TL bridges, each over its own copy of the weights."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nnterp import StandardizedTransformer

    folder = smollm2_folder()
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    model = StandardizedTransformer(copy.deepcopy(hf), tokenizer=tokenizer, enable_attention_probs=True)
    raw = TransformerBridge.boot_transformers(TL_NAME, hf_model=copy.deepcopy(hf), tokenizer=tokenizer, device="cpu")
    processed = TransformerBridge.boot_transformers(TL_NAME, hf_model=hf, tokenizer=tokenizer, device="cpu")
    processed.enable_compatibility_mode(disable_warnings=True, center_unembed=False)
    ids = model.tokenizer(PROMPTS, return_tensors="pt")["input_ids"]
    answers = tuple(model.tokenizer(answer, add_special_tokens=False)["input_ids"][0] for answer in ANSWERS)
    return Sides(model, raw, processed, ids, answers)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Comparison:
    """One quantity both compute: nnterp's and TL's computation of it (each a tensor of the same shape) and the
    largest absolute difference accepted. ``timed`` rows are toolkit operations, timed by benchmarks/run.py."""

    name: str
    ours: Callable[[Sides], torch.Tensor]
    theirs: Callable[[Sides], torch.Tensor]
    atol: float
    timed: bool = True
    what: str = ""
    rounds: int | None = None  # the benchmark's rounds for this row where TL's side takes minutes (default: --rounds)


def max_abs_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The largest absolute difference, in float64; a shape mismatch is an error, not a difference."""
    if tuple(ours.shape) != tuple(theirs.shape):
        raise AssertionError(f"shapes differ: nnterp {tuple(ours.shape)}, TransformerLens {tuple(theirs.shape)}")
    return (ours.detach().double().cpu() - theirs.detach().double().cpu()).abs().max().item()


# -- the forward and what it caches ------------------------------------------------------------------------

CACHED = {  # nnterp accessor -> TL hook name within block i
    "layers_input": "hook_resid_pre", "layers_output": "hook_resid_post", "attentions_input": "ln1.hook_out",
    "attentions_output": "hook_attn_out", "mlps_input": "ln2.hook_out", "mlps_output": "hook_mlp_out",
    "heads_output": "attn.hook_z"}


def _logits_ours(sides: Sides) -> torch.Tensor:
    with torch.no_grad(), sides.model.trace(PROMPTS):
        logits = sides.model.logits.save()
    return logits


def _logits_theirs(sides: Sides) -> torch.Tensor:
    with torch.no_grad():
        return sides.raw(sides.ids)


def _probabilities_ours(sides: Sides) -> torch.Tensor:
    from nnsight import save

    model = sides.model
    with torch.no_grad(), model.trace(PROMPTS) as tracer:
        probs = save([model.attention_probabilities[layer] for layer in range(model.num_layers)])
        tracer.stop()
    return torch.stack(probs)


def _probabilities_theirs(sides: Sides) -> torch.Tensor:
    with torch.no_grad():
        _, cache = sides.raw.run_with_cache(sides.ids, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    return torch.stack([cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(sides.raw.cfg.n_layers)])


def _cache_ours(accessors: list[str]) -> Callable[[Sides], torch.Tensor]:
    def ours(sides: Sides) -> torch.Tensor:
        from nnterp import run_with_cache

        cache = run_with_cache(sides.model, PROMPTS, accessors)
        return torch.cat([cache.stack(name).flatten(2) for name in accessors])
    return ours


def _cache_theirs(accessors: list[str]) -> Callable[[Sides], torch.Tensor]:
    def theirs(sides: Sides) -> torch.Tensor:
        layers = range(sides.raw.cfg.n_layers)
        names = [f"blocks.{layer}.{CACHED[name]}" for name in accessors for layer in layers]
        with torch.no_grad():
            _, cache = sides.raw.run_with_cache(sides.ids, names_filter=names)
        return torch.stack([cache[name].flatten(1) for name in names])
    return theirs


# the kinds run_with_cache reads from the attention call and the MLP: nnterp name -> (TL hook within block i, the
# permutation taking TL's layout to nnterp's). nnterp's queries and keys are what the attention function is handed,
# after rotary: TL's hook_rot_q / hook_rot_k (hook_q / hook_k precede rotary). Keys and values stay per key/value
# head on both sides (3 for SmolLM2's 9 query heads). Masked scores hold the dtype's minimum on both sides, so the
# whole score tensor is compared.
KINDS = {"queries": ("attn.hook_rot_q", (0, 2, 1, 3)), "keys": ("attn.hook_rot_k", (0, 2, 1, 3)),
         "values": ("attn.hook_v", (0, 2, 1, 3)), "attention_scores": ("attn.hook_attn_scores", None),
         "attention_probabilities": ("attn.hook_pattern", None), "heads_output": ("attn.hook_z", None),
         "neurons": ("mlp.hook_post", None)}


def _kinds_ours(kinds: tuple[str, ...]) -> Callable[[Sides], torch.Tensor]:
    def ours(sides: Sides) -> torch.Tensor:
        from nnterp import run_with_cache

        cache = run_with_cache(sides.model, PROMPTS, names_filter=lambda name: name in kinds, progress=False)
        return torch.cat([cache.stack(kind).flatten() for kind in kinds])
    return ours


def _kinds_theirs(kinds: tuple[str, ...]) -> Callable[[Sides], torch.Tensor]:
    def theirs(sides: Sides) -> torch.Tensor:
        hooks = tuple(KINDS[kind][0] for kind in kinds)
        with torch.no_grad():
            _, cache = sides.raw.run_with_cache(sides.ids, names_filter=lambda name: name.endswith(hooks))
        parts = []
        for kind in kinds:
            hook, order = KINDS[kind]
            values = [cache[f"blocks.{layer}.{hook}"] for layer in range(sides.raw.cfg.n_layers)]
            parts.append(torch.stack([value if order is None else value.permute(*order) for value in values]).flatten())
        return torch.cat(parts)
    return theirs


def _kind_rows() -> tuple[Comparison, ...]:
    rows = [Comparison(f"run_with_cache[{kind}]", _kinds_ours((kind,)), _kinds_theirs((kind,)), 1e-5, timed=False,
                       what=f"{kind} of every layer vs blocks.*.{hook}")
            for kind, (hook, _) in KINDS.items() if kind != "heads_output"]  # heads_output: a CACHED row
    every = tuple(KINDS)
    rows.append(Comparison("run_with_cache[names_filter]", _kinds_ours(every), _kinds_theirs(every), 1e-5,
                           what="q, k, v (after rotary), scores, probabilities, per-head outputs and neurons of every "
                                "layer, one call with a names_filter predicate each"))
    return tuple(rows)


# -- lenses and decompositions -----------------------------------------------------------------------------

def _logit_lens_ours(sides: Sides) -> torch.Tensor:
    from nnterp import logit_lens

    return logit_lens(sides.model, PROMPTS).transpose(0, 1)  # (layers, batch, vocab)


def _logit_lens_theirs(sides: Sides) -> torch.Tensor:
    from transformer_lens.tools.analysis import logit_lens

    layers = list(range(1, sides.raw.cfg.n_layers + 1))  # entry 0 is the embeddings, i + 1 is layer i's output
    return logit_lens(sides.raw, sides.ids, layers=layers, return_type="probs").values


def _accumulated_ours(sides: Sides) -> torch.Tensor:
    from nnterp import accumulated_resid

    return accumulated_resid(sides.model, PROMPTS).residuals


def _accumulated_theirs(sides: Sides) -> torch.Tensor:
    with torch.no_grad():
        _, cache = sides.raw.run_with_cache(sides.ids, names_filter=lambda name: "resid" in name)
    return cache.accumulated_resid(pos_slice=-1)


def _decomposed_ours(sides: Sides) -> torch.Tensor:
    from nnterp import decompose_resid

    return decompose_resid(sides.model, PROMPTS).components  # embed, then per layer attn, mlp


def _decomposed_theirs(sides: Sides) -> torch.Tensor:
    wanted = ("hook_embed", "hook_attn_out", "hook_mlp_out", "hook_resid_pre", "hook_resid_post")
    with torch.no_grad():
        _, cache = sides.raw.run_with_cache(sides.ids, names_filter=lambda name: name.endswith(wanted))
    return cache.decompose_resid(pos_slice=-1)


def _run_layers_ours(sides: Sides) -> torch.Tensor:
    from nnterp import run_layers

    middle = run_layers(sides.model, PROMPTS, stop_at_layer=RUN_LAYERS_SPLIT)
    logits = run_layers(sides.model, PROMPTS, start_at_layer=RUN_LAYERS_SPLIT, residual=middle)
    return torch.cat([middle.flatten(1), logits.flatten(1)], dim=1)


def _run_layers_theirs(sides: Sides) -> torch.Tensor:
    with torch.no_grad():
        middle = sides.raw(sides.ids, stop_at_layer=RUN_LAYERS_SPLIT)
        logits = sides.raw(middle, start_at_layer=RUN_LAYERS_SPLIT)
    return torch.cat([middle.flatten(1), logits.flatten(1)], dim=1)


# -- direct logit attribution ------------------------------------------------------------------------------

def _dla_ours(per_head: bool) -> Callable[[Sides], torch.Tensor]:
    def ours(sides: Sides) -> torch.Tensor:
        from nnterp import direct_logit_attribution

        result = direct_logit_attribution(sides.model, PROMPTS, ANSWERS[0], per_head=per_head)
        if not per_head:
            return result.contributions.T  # (components, batch): embed, then per layer attn, mlp
        heads = [index for index, part in enumerate(result.parts) if part.head is not None]
        rest = [index for index in range(len(result.parts)) if index not in heads]
        # TL's head unit: every head, then "remainder" (embeddings, MLPs and the rest of the stream)
        return torch.cat([result.contributions[:, heads].T, result.contributions[:, rest].sum(-1)[None]])
    return ours


def _dla_theirs(unit: str) -> Callable[[Sides], torch.Tensor]:
    def theirs(sides: Sides) -> torch.Tensor:
        from transformer_lens.tools.analysis import direct_logit_attribution

        with torch.no_grad():
            return direct_logit_attribution(sides.processed, sides.ids, answer_tokens=sides.answers[0],
                                            unit=unit).attribution
    return theirs


def _neurons_ours(sides: Sides) -> torch.Tensor:
    from nnterp import neuron_attribution

    return neuron_attribution(sides.model, PROMPTS, ANSWERS[0], layer=NEURON_LAYER).contributions


def _neurons_theirs(sides: Sides) -> torch.Tensor:
    bridge = sides.processed
    wanted = ("mlp.hook_post", "ln_final.hook_scale")
    with torch.no_grad():
        _, cache = bridge.run_with_cache(sides.ids, names_filter=lambda name: name.endswith(wanted))
        stack = cache.stack_neuron_results(NEURON_LAYER + 1, pos_slice=-1, apply_ln=True,
                                           project_output_onto=bridge.W_U[:, sides.answers[0]])
    return stack[-bridge.cfg.d_mlp:].T  # layer NEURON_LAYER's neurons: (batch, neurons)


# -- patching ----------------------------------------------------------------------------------------------

PATCHED = {"layers_input": "resid_pre", "layers_output": "resid_post", "attentions_output": "attn_out",
           "mlps_output": "mlp_out", "heads_output": "z"}


def _patching_ours(accessor: str, layers: tuple[int, ...] | None) -> Callable[[Sides], torch.Tensor]:
    def ours(sides: Sides) -> torch.Tensor:
        from nnterp import activation_patching

        grid = activation_patching(sides.model, CLEAN, CORRUPTED, sides.metric, accessor=accessor,
                                   layers=None if layers is None else list(layers), progress=False).values
        return grid.permute(0, 2, 1) if accessor == "heads_output" else grid  # TL's (layer, pos, head)
    return ours


def _patching_theirs(activation: str, layers: tuple[int, ...] | None) -> Callable[[Sides], torch.Tensor]:
    """TL's generic activation patching of ``activation`` over (layer, pos[, head]) cells: every layer's, or
    those of ``layers`` (given as a table of cells, which TL returns flat)."""
    def theirs(sides: Sides) -> torch.Tensor:
        import pandas as pd
        from transformer_lens import patching

        chosen = range(sides.raw.cfg.n_layers) if layers is None else layers
        axes = [chosen, range(sides.ids.shape[1])] + ([range(sides.raw.cfg.n_heads)] if activation == "z" else [])
        cells = pd.DataFrame(list(itertools.product(*axes)), columns=["layer", "pos", "head_index"][:len(axes)])
        setter = patching.layer_pos_head_vector_patch_setter if activation == "z" else patching.layer_pos_patch_setter
        with torch.no_grad():
            _, clean = sides.raw.run_with_cache(sides.clean, names_filter=lambda name: name.endswith(activation))
            values = patching.generic_activation_patch(sides.raw, sides.corrupted, clean, sides.scalar_metric, setter,
                                                       activation, index_df=cells)
        return values.view(*map(len, axes))
    return theirs


def _patching_row(accessor: str, activation: str) -> Comparison:
    """The grid of ``accessor`` against TL's of ``activation``: every layer for the timed ``layers_output``,
    PATCH_LAYERS (HEAD_PATCH_LAYERS for the heads) for the others."""
    layers = None if accessor == "layers_output" else HEAD_PATCH_LAYERS if activation == "z" else PATCH_LAYERS
    where = "every layer" if layers is None else f"layers {layers}"
    heads = ", every head" if activation == "z" else ""
    return Comparison(f"activation_patching[{accessor}]", _patching_ours(accessor, layers),
                      _patching_theirs(activation, layers), 5e-5, timed=layers is None, rounds=3,
                      what=f"{accessor} at every position of {where}{heads} vs TL patching of {activation}")


# Queries and attention patterns per head by position, vs TL's get_act_patch_attn_head_{q,pattern}_by_pos (restricted
# to HEAD_PATCH_LAYERS by a table of cells). Keys and values are left out: nnterp patches them per key/value head
# (3 on SmolLM2), and which heads TL's hook_k / hook_v hold under grouped-query attention is not the same quantity.
HEAD_FIRST_PATCHED = {"queries": ("q", ("layer", "pos", "head")),
                      "attention_probabilities": ("pattern", ("layer", "head_index", "dest_pos"))}


def _head_patching_ours(accessor: str) -> Callable[[Sides], torch.Tensor]:
    def ours(sides: Sides) -> torch.Tensor:
        from nnterp import activation_patching

        grid = activation_patching(sides.model, CLEAN, CORRUPTED, sides.metric, accessor=accessor,
                                   layers=list(HEAD_PATCH_LAYERS), progress=False).values  # (layer, head, pos)
        return grid.permute(0, 2, 1) if accessor == "queries" else grid  # TL's q: (layer, pos, head)
    return ours


def _head_patching_theirs(accessor: str) -> Callable[[Sides], torch.Tensor]:
    def theirs(sides: Sides) -> torch.Tensor:
        import pandas as pd
        from transformer_lens import patching

        activation, names = HEAD_FIRST_PATCHED[accessor]
        ranges = {"layer": HEAD_PATCH_LAYERS, "pos": range(sides.ids.shape[1]), "dest_pos": range(sides.ids.shape[1]),
                  "head": range(sides.raw.cfg.n_heads), "head_index": range(sides.raw.cfg.n_heads)}
        axes = [ranges[name] for name in names]
        cells = pd.DataFrame(list(itertools.product(*axes)), columns=list(names))
        function = patching.get_act_patch_attn_head_q_by_pos if activation == "q" else \
            patching.get_act_patch_attn_head_pattern_by_pos
        with torch.no_grad():
            _, clean = sides.raw.run_with_cache(sides.clean,
                                                names_filter=lambda name: name.endswith(f"hook_{activation}"))
            values = function(sides.raw, sides.corrupted, clean, sides.scalar_metric, index_axis_names=None,
                              index_df=cells)
        return values.view(*map(len, axes))
    return theirs


def _head_patching_row(accessor: str) -> Comparison:
    activation = HEAD_FIRST_PATCHED[accessor][0]
    return Comparison(f"activation_patching[{accessor}]", _head_patching_ours(accessor),
                      _head_patching_theirs(accessor), 5e-5, rounds=3,
                      what=f"{accessor} of every head at every position of layers {HEAD_PATCH_LAYERS} vs "
                           f"patching.get_act_patch_attn_head_{activation}_by_pos")


# -- attribution patching: TL's node scores (embeddings, every head, every MLP, at every position) ---------------

def _attribution_ours(sides: Sides) -> torch.Tensor:
    """TL's node scores from one `attribution_patching_nodes` call (2 forwards, 1 backward); each grid is the
    corrupted metric plus the estimate, so the estimate is the grid minus it. TL orders its nodes embeddings (per
    position), heads (layer, position, head), MLPs (layer, position)."""
    from nnterp import attribution_patching_nodes

    result = attribution_patching_nodes(sides.model, CLEAN, CORRUPTED, sides.metric,
                                        kinds=("token_embeddings", "heads_output", "mlps_output"))
    embed, heads, mlps = (result[kind] - result.corrupted_metric
                          for kind in ("token_embeddings", "heads_output", "mlps_output"))
    # embed (positions,); heads (layers, heads, positions) -> TL's (layers, positions, heads); mlps (layers, positions)
    return torch.cat([embed.flatten(), heads.permute(0, 2, 1).flatten(), mlps.flatten()])


def _attribution_theirs(sides: Sides) -> torch.Tensor:
    from transformer_lens.tools.analysis import Node, attribution_patch

    scores = attribution_patch(sides.raw, sides.clean, sides.corrupted, sides.scalar_metric).node_scores
    layers, positions, heads = sides.raw.cfg.n_layers, sides.ids.shape[1], sides.raw.cfg.n_heads
    order = [Node("embed", position) for position in range(positions)]
    order += [Node("attn_head_out", position, layer, head) for layer in range(layers)
              for position in range(positions) for head in range(heads)]
    order += [Node("mlp_out", position, layer) for layer in range(layers) for position in range(positions)]
    return torch.tensor([scores[node] for node in order])


# -- path patching: TL's direct path patching (Wang et al.) into each later head's queries --------------------------

PATH_SENDER_LAYER = 28  # TL patches one (sender, receiver head) pair per forward: 9 x 9 pairs into layer 29


def _path_ours(sides: Sides) -> torch.Tensor:
    """(sender head, receiver head): one path_patching call per receiver's queries, the 9 senders batched."""
    from nnterp import path_patching

    heads = range(sides.model.num_heads)
    senders = [f"L{PATH_SENDER_LAYER}.H{head}" for head in heads]
    receivers = [f"L{PATH_SENDER_LAYER + 1}.H{head}.q" for head in heads]
    return torch.stack([path_patching(sides.model, CLEAN, CORRUPTED, sides.metric, receivers=[receiver],
                                      senders=senders, progress=False).values for receiver in receivers], dim=1)


def _path_theirs(sides: Sides) -> torch.Tensor:
    """TL's get_act_patch_direct_path from each head of PATH_SENDER_LAYER, its row of the next layer. TL refuses
    component "k" and "v" on grouped-query models such as SmolLM2, so the queries only."""
    from transformer_lens.patching import get_act_patch_direct_path

    bridge, name = sides.raw, f"blocks.{PATH_SENDER_LAYER}.attn.hook_z"
    with torch.no_grad():
        _, clean = bridge.run_with_cache(sides.clean, names_filter=[name])
        _, corrupted = bridge.run_with_cache(sides.corrupted, names_filter=[name])
        rows = [get_act_patch_direct_path(bridge, sides.corrupted, clean, corrupted, sides.scalar_metric,
                                          PATH_SENDER_LAYER, head, "q", verbose=False)
                for head in range(bridge.cfg.n_heads)]
    return torch.stack([row[PATH_SENDER_LAYER + 1] for row in rows])


# -- weights and circuits: the raw bridge's W_Q, W_K, W_V, W_O (unprocessed; keys and values per key/value head) ----

CIRCUIT_LAYERS = (0, 14, 29)


def _weights_ours(sides: Sides) -> torch.Tensor:
    from nnterp import head_weights

    found = head_weights(sides.model)
    return torch.cat([torch.stack([getattr(found[layer], part) for layer in range(sides.model.num_layers)]).flatten()
                      for part in ("queries", "keys", "values", "output")])


def _weights_theirs(sides: Sides) -> torch.Tensor:
    bridge = sides.raw
    return torch.cat([getattr(bridge, name).detach().flatten() for name in ("W_Q", "W_K", "W_V", "W_O")])


def _circuits_ours(sides: Sides) -> torch.Tensor:
    from nnterp import ov_circuit, qk_circuit

    return torch.stack([torch.stack([ov_circuit(sides.model, layer).full(), qk_circuit(sides.model, layer).full()])
                        for layer in CIRCUIT_LAYERS])


def _circuits_theirs(sides: Sides) -> torch.Tensor:
    """TL's OV and QK expand the key/value heads per query head (repeat_interleave), as nnterp's do."""
    with torch.no_grad():
        ov, qk = sides.raw.OV, sides.raw.QK
        return torch.stack([torch.stack([ov[layer].AB, qk[layer].AB]) for layer in CIRCUIT_LAYERS])


COMPOSED = ((3, 4), (14, 20))  # (earlier, later) layer pairs


def _composition_ours(sides: Sides) -> torch.Tensor:
    from nnterp import composition_scores

    return torch.stack([composition_scores(sides.model, kind, earlier, later) for kind in ("q", "k", "v")
                        for earlier, later in COMPOSED])


def _composition_theirs(sides: Sides) -> torch.Tensor:
    """TL's composition_scores on its OV / QK of the two layers (bridge.all_composition_scores scores every pair of
    the 270 heads at once, and ran out of this machine's 24 GiB on SmolLM2)."""
    from transformer_lens.utilities.matrix import composition_scores

    with torch.no_grad():
        ov, qk = sides.raw.OV, sides.raw.QK
        readers = {"q": lambda layer: qk[layer], "k": lambda layer: qk[layer].T, "v": lambda layer: ov[layer]}
        return torch.stack([composition_scores(ov[earlier], readers[kind](later)) for kind in ("q", "k", "v")
                            for earlier, later in COMPOSED])


# -- processed weights: the folded weights of process_weights' copy vs TL's processed bridge ----------------------

def _processed_ours(sides: Sides) -> torch.Tensor:
    """Each head's W_Q, W_K, W_V, the MLPs' gate and up projections (ln2's gain folded in) and the unembedding (the
    final norm's folded in), of process_weights' copy with the unembedding uncentred (as ``processed``)."""
    from nnterp import head_weights, process_weights

    copy_ = process_weights(sides.model, center_unembed=False).model
    found = head_weights(copy_)
    module = copy_._module
    heads = [torch.stack([getattr(found[layer], part) for layer in range(copy_.num_layers)]).flatten()
             for part in ("queries", "keys", "values")]
    mlps = [torch.stack([getattr(layer.mlp, part).weight.T for layer in module.model.layers]).flatten()
            for part in ("gate_proj", "up_proj")]
    return torch.cat(heads + mlps + [module.lm_head.weight.T.flatten()]).detach()


def _processed_theirs(sides: Sides) -> torch.Tensor:
    bridge = sides.processed
    names = ("W_Q", "W_K", "W_V", "W_gate", "W_in", "W_U")
    return torch.cat([getattr(bridge, name).detach().flatten() for name in names])


# -- head detectors: TL's detect_head scores every head on each prompt alone, nnterp on one padded batch -----------

DETECT_PROMPTS = ["The cat sat on the mat. The cat sat on the mat.", "I said no no no. I said no no no."]
DETECTORS = {"previous_token": "previous_token_head", "duplicate_token": "duplicate_token_head",
             "induction": "induction_head"}  # nnterp's name -> TL's


def _detect_inputs(sides: Sides) -> dict[str, torch.Tensor]:
    """DETECT_PROMPTS as TL's ``to_tokens`` gives them (BOS first), left-padded to one batch with its mask."""
    tokenizer = sides.model.tokenizer
    rows = [[tokenizer.bos_token_id, *tokenizer(prompt)["input_ids"]] for prompt in DETECT_PROMPTS]
    width = max(map(len, rows))
    return {"input_ids": torch.tensor([[tokenizer.pad_token_id] * (width - len(row)) + row for row in rows]),
            "attention_mask": torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])}


def _detect_ours(exclude: bool) -> Callable[[Sides], torch.Tensor]:
    def ours(sides: Sides) -> torch.Tensor:
        from nnterp import detect_heads

        detection = detect_heads(sides.model, _detect_inputs(sides), kinds=tuple(DETECTORS), average="all_positions",
                                 exclude_first_token=exclude, exclude_current_token=exclude)
        return torch.stack([detection.scores[kind] for kind in DETECTORS])  # (detectors, layers, heads)
    return ours


def _detect_theirs(exclude: bool) -> Callable[[Sides], torch.Tensor]:
    def theirs(sides: Sides) -> torch.Tensor:
        from transformer_lens.head_detector import detect_head

        with torch.no_grad():
            return torch.stack([detect_head(sides.raw, DETECT_PROMPTS, name, exclude_bos=exclude,
                                            exclude_current_token=exclude) for name in DETECTORS.values()])
    return theirs


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("logits", _logits_ours, _logits_theirs, 1e-5, what="a traced forward's logits"),
    Comparison("attention_probabilities", _probabilities_ours, _probabilities_theirs, 1e-6,
               what="attention_probabilities of every layer vs hook_pattern"),
    *(Comparison(f"run_with_cache[{name}]", _cache_ours([name]), _cache_theirs([name]), 1e-5, timed=False,
                 what=f"{name} of every layer vs blocks.*.{hook}") for name, hook in CACHED.items()),
    Comparison("run_with_cache", _cache_ours(list(CACHED)), _cache_theirs(list(CACHED)), 1e-5,
               what="all 7 cacheable accessors of every layer in one call vs run_with_cache(names_filter)"),
    Comparison("logit_lens", _logit_lens_ours, _logit_lens_theirs, 1e-6,
               what="last-position probabilities of every layer vs tools.analysis.logit_lens"),
    Comparison("accumulated_resid", _accumulated_ours, _accumulated_theirs, 1e-5,
               what="embeddings + every layer's output at the last position vs cache.accumulated_resid"),
    Comparison("decompose_resid", _decomposed_ours, _decomposed_theirs, 1e-5,
               what="embed, attn and mlp of every layer at the last position vs cache.decompose_resid"),
    Comparison("run_layers", _run_layers_ours, _run_layers_theirs, 1e-5,
               what=f"stop_at_layer={RUN_LAYERS_SPLIT}, then start_at_layer={RUN_LAYERS_SPLIT} from it: residual "
                    "and logits"),
    Comparison("dla_components", _dla_ours(False), _dla_theirs("component"), 5e-5,
               what="direct_logit_attribution per attn / mlp vs tools.analysis.direct_logit_attribution"),
    Comparison("dla_per_head", _dla_ours(True), _dla_theirs("head"), 5e-5,
               what="direct_logit_attribution per head (+ remainder) vs unit='head'"),
    Comparison("neuron_attribution", _neurons_ours, _neurons_theirs, 5e-5,
               what=f"layer {NEURON_LAYER}'s 1,536 neurons vs cache.stack_neuron_results(apply_ln=True, projected)"),
    *(_patching_row(name, hook) for name, hook in PATCHED.items()),
    *(_head_patching_row(name) for name in HEAD_FIRST_PATCHED),
    *_kind_rows(),
    Comparison("path_patching", _path_ours, _path_theirs, 5e-5, rounds=3,
               what=f"each head of layer {PATH_SENDER_LAYER} through each head's queries of layer "
                    f"{PATH_SENDER_LAYER + 1} (9 x 9 paths) vs patching.get_act_patch_direct_path"),
    Comparison("head_weights", _weights_ours, _weights_theirs, 0.0, timed=False,
               what="every layer's W_Q, W_K, W_V (per key/value head), W_O vs the bridge's"),
    Comparison("ov_qk_circuits", _circuits_ours, _circuits_theirs, 1e-5, timed=False,
               what=f"ov_circuit / qk_circuit .full() of layers {CIRCUIT_LAYERS} vs bridge.OV / bridge.QK .AB"),
    Comparison("composition_scores", _composition_ours, _composition_theirs, 1e-5, timed=False,
               what=f"q, k, v composition of layer pairs {COMPOSED} vs utilities.matrix.composition_scores"),
    Comparison("process_weights", _processed_ours, _processed_theirs, 1e-6, timed=False,
               what="folded W_Q, W_K, W_V, W_gate, W_in, W_U of process_weights(center_unembed=False) vs the "
                    "compatibility-mode bridge's"),
    Comparison("attribution_patching", _attribution_ours, _attribution_theirs, 1e-5,
               what="node scores of the embeddings, every head and every MLP at every position (one "
                    "attribution_patching_nodes call) vs tools.analysis.attribution_patch"),
    Comparison("detect_heads", _detect_ours(False), _detect_theirs(False), 1e-6,
               what="previous-token, duplicate-token and induction scores of every head, average='all_positions', "
                    "on two repeated prompts of different lengths (one padded batch) vs head_detector.detect_head"),
    Comparison("detect_heads[exclude]", _detect_ours(True), _detect_theirs(True), 1e-6, timed=False,
               what="the same with exclude_first_token and exclude_current_token vs exclude_bos and "
                    "exclude_current_token"),
)


def transformerlens_rows(args: argparse.Namespace, device: torch.device) -> tuple[list[Row], str]:
    """Every timed row of COMPARISONS: nnterp's time over TL's (goal <= 1x), on one torch thread unless
    ``--threads`` says otherwise, after checking that the two agree within the row's tolerance. Returns the rows
    and, where they cannot run here, why (TL not importable, a device other than the CPU, --quick's toy model)."""
    from benchmarks.timing import compare

    why = transformerlens_missing() or ("" if device.type == "cpu" else f"CPU only (asked for {device})") or \
        ("SmolLM2 only (not with --quick / --model toy)" if args.model != "smollm2" else "")
    if why:
        return [], why
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or 1)
    try:
        sides = load_sides()
        return [compare(f"tl[{row.name}]", lambda row=row: row.ours(sides), lambda row=row: row.theirs(sides),
                        (row.name, "TransformerLens 4.3"), rounds=row.rounds or args.rounds, device=device, goal=1.0,
                        check=lambda ours, theirs, name, row=row: _agree(ours, theirs, name, row.atol),
                        note=f"SmolLM2, fp32, {torch.get_num_threads()} thread(s): {row.what}")
                for row in COMPARISONS if row.timed], ""
    finally:
        torch.set_num_threads(threads)


def _agree(ours: torch.Tensor, theirs: torch.Tensor, name: str, atol: float) -> None:
    difference = max_abs_difference(ours, theirs)
    if difference > atol:
        raise AssertionError(f"{name}: nnterp and TransformerLens differ by {difference:.3g}, over {atol:g}")


def main() -> int:
    """``python -m benchmarks.transformerlens``: every row's largest absolute difference against its tolerance,
    one line each, as a table (exit status 1 where a row is over its tolerance)."""
    from tabulate import tabulate

    why = transformerlens_missing()
    if why:
        print(why)
        return 2
    sides, table, over = load_sides(), [], 0
    for row in COMPARISONS:
        difference = max_abs_difference(row.ours(sides), row.theirs(sides))
        over += difference > row.atol
        table.append([row.name, f"{difference:.3g}", f"{row.atol:g}", "ok" if difference <= row.atol else "OVER",
                      row.what])
    print(tabulate(table, headers=["quantity", "max |nnterp - TL|", "tolerance", "", "compared"]))
    return 1 if over else 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
