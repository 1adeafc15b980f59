"""The residual stream as a sum of components: the embeddings, each attention (or each head) and each MLP.

``decompose_resid`` returns the terms whose sum is the residual entering a layer; ``accumulated_resid``
the residual after each layer, ready for ``project_on_vocab`` (the logit lens). Terms are read through the
standardized accessors in the order the block's forward runs them (nnsight serves values in that order).
Architectures whose stream is not such a sum raise `NotDecomposable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable

import torch
from nnsight import save

from ...core.accessors import unwrap, walk
from ...errors import HeadsUnavailable, NotDecomposable, ToolkitInputError
from ...utils.positions import checked_position

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer
    from ...utils.positions import TokenLayout

# Largest relative max-abs error accepted where a sum of terms (or a fit) must equal what the model computed: 1e-3 in
# float32 and wider, TOLERANCE_EPS epsilons of a coarser working precision (`relative_tolerance`). Measured on the
# validating toys in bfloat16: at most 0.9 eps (the final norm's fit, a head split, the stream's sum); a structural
# miss (OLMo 2's norm after the output projection) is a relative error near 1 in every dtype.
IDENTITY_TOLERANCE = 1e-3
TOLERANCE_EPS = 8


def relative_tolerance(dtype: torch.dtype) -> float:
    """The relative error accepted in ``dtype``: IDENTITY_TOLERANCE, or TOLERANCE_EPS of its epsilon if larger
    (bfloat16: 0.0625, float16: 0.0078; float32: 1e-3 as always)."""
    return max(IDENTITY_TOLERANCE, TOLERANCE_EPS * torch.finfo(dtype).eps)


class ComponentKind(str, Enum):
    """What a residual-stream term is."""

    EMBEDDINGS = "embed"
    ATTENTION = "attn"
    HEAD = "head"
    ATTENTION_BIAS = "attn_bias"  # the output projection's bias, when split per head
    MLP = "mlp"
    EXTRA = "extra"  # another module the block adds to the stream (a registry row's residual_extra)


@dataclass(frozen=True)
class Component:
    """One term of the residual stream: its kind, layer, head (HEAD only) and module path (EXTRA only)."""

    kind: ComponentKind
    layer: int | None = None
    head: int | None = None
    path: str = ""

    @property
    def label(self) -> str:
        """``embed``, ``L3.attn``, ``L3.H2``, ``L3.attn_bias``, ``L3.mlp`` or ``L3.<module path>``."""
        if self.kind is ComponentKind.EMBEDDINGS:
            return "embed"
        suffix = {ComponentKind.HEAD: f"H{self.head}", ComponentKind.EXTRA: self.path}.get(self.kind, self.kind.value)
        return f"L{self.layer}.{suffix}"


@dataclass(frozen=True)
class ResidualDecomposition:
    """``components`` (n_components, batch, [seq,] hidden) summing to ``residual``, labelled by ``labels``."""

    components: torch.Tensor
    parts: tuple[Component, ...]
    residual: torch.Tensor

    @property
    def labels(self) -> list[str]:
        return [part.label for part in self.parts]

    def total(self) -> torch.Tensor:
        return self.components.sum(dim=0)


@dataclass(frozen=True)
class AccumulatedResidual:
    """The residual stream before the first layer and after each layer, (num_layers + 1, batch, [seq,] hidden).

    ``model.project_on_vocab(acc.residuals[i + 1])`` is the logit lens of layer i."""

    residuals: torch.Tensor
    labels: tuple[str, ...]


def check_additive(model: StandardizedTransformer) -> None:
    """Raise NotDecomposable unless every layer's output is its input plus its terms."""
    arch = model.architecture
    spec, why = arch.spec, ""
    if spec.layout.streams:
        why = f"its layers carry {model.num_streams} residual streams mixed by learned weights"
    elif spec.blocks.residual.value == "none":
        why = "its blocks have no additive residual (registry: residual=none)"
    elif spec.blocks.output_scale_attr:
        why = f"each block scales its whole output by `{spec.blocks.output_scale_attr}`"
    elif any(path is not None for path in arch.residual_input[1:]):
        why = "some layers renormalize the stream they receive (residual_input)"
    if why:
        raise NotDecomposable(f"[{arch.class_name}] the residual stream is not a sum of components: {why}"
                              + (f" ({spec.note})" if spec.note else "") + "; use layers_output / the logit lens "
                              "instead of a decomposition")


def position_selector(model: StandardizedTransformer, layout: TokenLayout | None, position: int | None,
                      prefixed: bool = True) -> Callable[[Any], Any]:
    """(batch, seq, ...) -> (batch, ...) at each prompt's own token ``position`` (None: every column), past the
    learned prefix positions hidden states have (CPM-Ant; ``prefixed=False`` for logits). The columns are
    planned here, on the client, from the batch's `TokenLayout`."""
    from ..activations import at_columns, token_columns

    prefix = model.num_prefix_positions if prefixed else 0
    if position is None:
        return lambda values: values[:, prefix:] if prefix else values
    columns = token_columns(layout, position, prefix)
    return lambda values: at_columns(values, columns)


def check_position(position: Any, layout: TokenLayout | None) -> int | None:
    """``position`` as None or an int inside the shortest prompt (`nnterp.utils.positions`)."""
    return None if position is None else checked_position(position, layout, "position")


# How a term is read inside a trace: (accessor name, layer, module path within the layer or "", factor).
# Plain tuples, planned on the client: a remote run ships them and the in-trace reader to the server.
TermRead = tuple[str, int, str, float]


def _layer_reads(model: StandardizedTransformer, index: int, per_head: bool) -> list[tuple[tuple[int, int], Any,
                                                                                          TermRead]]:
    """(where the forward reaches it, Component or ("heads", layer), how to read it) for each term of one layer,
    in run order."""
    from ...core.probing import call_order

    arch, layer = model.architecture, model.layers[index]
    order = call_order(layer._module.__class__)

    def at(path: str | None, phase: int) -> tuple[int, int]:
        return (order.get(path, order.get(path.split(".")[0], len(order))), phase) if path else (-1, phase)

    reads: list[tuple[tuple[int, int], Any, TermRead]] = []
    if arch.attention_output[index] is not None:
        if per_head and index in model.heads_output._splits.layers_with("projection"):
            reads.append((at(arch.attention[index], 0), ("heads", index), ("heads_output", index, "", 1.0)))
        reads.append((at(arch.attention_output[index], 1), Component(ComponentKind.ATTENTION, index),
                      ("attentions_output", index, "", 1.0)))
    if arch.mlp_output[index] is not None:
        reads.append((at(arch.mlp_output[index], 1), Component(ComponentKind.MLP, index),
                      ("mlps_output", index, "", 1.0)))
    extras = zip(arch.residual_extra[index] if arch.residual_extra else (),
                 arch.residual_extra_scale[index] if arch.residual_extra_scale else ())
    for path, scale in extras:
        reads.append((at(path, 1), Component(ComponentKind.EXTRA, index, path=path), ("", index, path, scale)))
    return sorted(reads, key=lambda read: read[0])


def plan_terms(model: StandardizedTransformer, upto: int, per_head: bool) -> tuple[list[Any], list[TermRead]]:
    """On the client: the keys of the stream's start and every term of layers ``0..upto-1`` (Component, or
    ("heads", layer)), and how `read_terms` reads each inside a trace, in run order."""
    if per_head:
        check_heads(model, upto)
    arch = model.architecture
    start = arch.residual_input[0] if arch.residual_input and arch.residual_input[0] is not None else ""
    keys: list[Any] = [Component(ComponentKind.EMBEDDINGS)]
    reads: list[TermRead] = [("layers_input", 0, start or "", 1.0)]  # layer 0 may norm its input first (RWKV)
    for index in range(upto):
        for _, key, read in _layer_reads(model, index, per_head):
            keys.append(key)
            reads.append(read)
    return keys, reads


def check_heads(model: StandardizedTransformer, upto: int) -> None:
    """``per_head=True`` needs a layer among ``0..upto-1`` that splits into heads: raise HeadsUnavailable (why the
    first layer does not, which layers do) where none does (Mamba), instead of ignoring the option. Layers without
    heads in a model that has some (a hybrid's Mamba mixers) keep one attention term."""
    splits = model.heads_output._splits
    if upto and not any(layer < upto for layer in splits.layers_with("projection")):
        first = splits.splits()[0]
        why = "has no softmax attention" if first is None else f"cannot be split: {first.reason}"
        raise HeadsUnavailable("heads_output", 0, [], f"{why} and no layer up to {upto - 1} splits into heads, so "
                               "per_head=True has nothing to split (pass per_head=False)",
                               architecture=model.architecture.class_name)


def read_terms(model: Any, reads: list, select: Callable) -> list:
    """Inside a trace (client or server): the values of the planned terms, selected, in run order."""
    values = []
    for accessor, layer, path, scale in reads:  # a module of the layer (times the block's factor), or an accessor
        value = unwrap(walk(model.layers[layer], path).output) * scale if path else getattr(model, accessor)[layer]
        values.append(select(value))
    return values


def split_heads(model: StandardizedTransformer, index: int, heads: torch.Tensor,
                attention: torch.Tensor) -> list[tuple[Component, torch.Tensor]]:
    """Layer ``index``'s attention output as one term per head plus the projection's bias, checked to sum to it."""
    projection = model.heads_output.projection(index)._module
    scale = model.architecture.attention_scale[index] if model.architecture.attention_scale else 1.0
    count, flat = heads.shape[-2], heads.flatten(-2)
    masks = torch.eye(count, dtype=flat.dtype, device=flat.device).repeat_interleave(heads.shape[-1], dim=1)
    with torch.no_grad():
        bias = projection(flat.new_zeros(1, flat.shape[-1]))[0] * scale
        per_head = projection(flat.unsqueeze(0) * masks.view(count, *[1] * (flat.ndim - 1), -1)) * scale - bias
    error, tolerance = _relative_error(per_head.sum(0) + bias, attention), relative_tolerance(attention.dtype)
    if error > tolerance:
        raise NotDecomposable(
            f"[{model.architecture.class_name}] attentions_output[{index}] is not the sum of its heads through the "
            f"output projection (relative error {error:.3g}, over the tolerance {tolerance:.3g} of "
            f"{attention.dtype}): the block changes it after the projection (a norm or a gate); use per_head=False")
    terms = [(Component(ComponentKind.HEAD, index, head), per_head[head]) for head in range(count)]
    if bias.abs().max() > 0:
        terms.append((Component(ComponentKind.ATTENTION_BIAS, index), bias.expand_as(attention)))
    return terms


def expand_terms(model: StandardizedTransformer, terms: list[tuple[Any, Any]]) -> list[tuple[Component, torch.Tensor]]:
    """The read terms with each layer's saved heads turned into per-head terms (replacing its attention term)."""
    heads = {key[1]: value for key, value in terms if isinstance(key, tuple)}
    expanded: list[tuple[Component, torch.Tensor]] = []
    for key, value in terms:
        if isinstance(key, tuple):
            continue
        if key.kind is ComponentKind.ATTENTION and key.layer in heads:
            expanded += split_heads(model, key.layer, heads[key.layer], value)
        else:
            expanded.append((key, value))
    return expanded


def check_sum(model: StandardizedTransformer, terms: list[tuple[Component, torch.Tensor]], residual: torch.Tensor,
              where: str) -> None:
    """Raise NotDecomposable if the terms do not add up to ``residual`` (the registry's facts are wrong)."""
    error = _relative_error(sum((value for _, value in terms), torch.zeros_like(residual)), residual)
    tolerance = relative_tolerance(residual.dtype)
    if error > tolerance:
        raise NotDecomposable(f"[{model.architecture.class_name}] the components do not sum to {where} (relative "
                              f"error {error:.3g}, over the tolerance {tolerance:.3g} of {residual.dtype}): the block "
                              "adds something no accessor reads; describe it in the registry row (residual_extra)")


def _relative_error(total: torch.Tensor, expected: torch.Tensor) -> float:
    return ((total - expected).abs().max() / expected.abs().max().clamp_min(1e-6)).item()


def decompose_resid(model: StandardizedTransformer, prompts: str | list[str], layer: int | None = None,
                    position: int | None = -1, per_head: bool = False, remote: bool | str = False
                    ) -> ResidualDecomposition:
    """The residual entering ``layer`` (None: after the last layer) as the sum of the terms before it, at each
    prompt's own token ``position`` (-1: its last real token, whatever the padding; None: every padded column).
    ``per_head=True`` splits each attention into heads (`HeadsUnavailable` where no layer has heads).

    Example::

        parts = decompose_resid(model, "The capital of France is", layer=10)
        parts.components.shape  # (1 + 2 * 10, batch, hidden): embed, then each layer's attn and mlp
    """
    from ..activations import _padded

    check_additive(model)
    upto = model.num_layers if layer is None else _layer_bound(model, layer)
    inputs, layout = _padded(model, prompts)
    select = position_selector(model, layout, check_position(position, layout))
    keys, reads = plan_terms(model, upto, per_head)
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        values = save(read_terms(model, reads, select))
        residual = select(model.layers_input[upto] if upto < model.num_layers
                          else model.layers_output[model.num_layers - 1]).save()
        tracer.stop()
    expanded = expand_terms(model, list(zip(keys, values)))
    check_sum(model, expanded, residual, f"the residual entering layer {upto}")
    return ResidualDecomposition(torch.stack([value for _, value in expanded]),
                                 tuple(part for part, _ in expanded), residual)


def _layer_bound(model: StandardizedTransformer, layer: int) -> int:
    from ...core.accessors import as_integer_index

    value = as_integer_index(layer)
    if not 0 <= value <= model.num_layers:
        raise ToolkitInputError(f"layer is {layer}, expected 0..{model.num_layers} (the residual entering that "
                                f"layer; {model.num_layers} or None is the residual after the last layer)")
    return value


def accumulated_resid(model: StandardizedTransformer, prompts: str | list[str], position: int | None = -1,
                      remote: bool | str = False) -> AccumulatedResidual:
    """The residual before layer 0 and after each layer (collapsed to one stream where there are several),
    at each prompt's own token ``position`` (-1: its last real token, whatever the padding; None: every padded
    column). ``project_on_vocab`` of entry ``i + 1`` is the logit lens of layer ``i``."""
    from ..activations import _padded

    inputs, layout = _padded(model, prompts)
    select = position_selector(model, layout, check_position(position, layout))
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        states = [select(model.layers_input[0])]
        states += [select(model.layers_output[i]) for i in range(model.num_layers)]
        residuals = model.collapse_streams(torch.stack(states)).save()
        tracer.stop()
    labels = ("embed",) + tuple(f"L{i}" for i in range(model.num_layers))
    return AccumulatedResidual(residuals, labels)
