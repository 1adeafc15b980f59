"""What `run_with_cache` reads for each cached name, planned on the client before its forward.

Module sides become a `Recipe`: the envoys whose input or output nnsight's ``tracer.cache`` records, and how the
served value is made from those records. Operations inside the attention forwards become an `OperationRead`
(`cache_reads`). Names are chosen by a names filter, as TransformerLens' ``names_filter``: a name, a list of names,
or a predicate on names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import torch

from ...core.accessors import unwrap, walk
from ...errors import AttentionProbabilitiesUnavailable, AttentionScoresUnavailable, ToolkitInputError
from .cache_reads import OPERATION_KINDS, OperationRead

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

MODULE_KINDS = ("layers_input", "layers_output", "attentions_input", "attentions_output", "mlps_input", "mlps_output",
                "heads_output", "neurons")
CACHEABLE = MODULE_KINDS + OPERATION_KINDS
# Where each name's sequence axis is (``positions=`` picks along it): the query axis of scores and probabilities.
SEQUENCE_AXIS = {**{name: 1 for name in MODULE_KINDS}, **{name: 2 for name in OPERATION_KINDS}}

NamesFilter = Union[str, Sequence[str], Callable[[str], bool]]


def chosen_names(names_filter: NamesFilter) -> list[str]:
    """The cacheable names a filter keeps, in `CACHEABLE` order for a predicate, as given for a list;
    ToolkitInputError for an unknown name or a filter keeping nothing."""
    if callable(names_filter) and not isinstance(names_filter, str):
        names = [name for name in CACHEABLE if names_filter(name)]
    else:
        names = [names_filter] if isinstance(names_filter, str) else list(names_filter)
    unknown = [name for name in names if name not in CACHEABLE]
    if unknown or not names:
        raise ToolkitInputError(f"cannot cache {unknown or 'nothing'}: the names filter keeps "
                                f"{unknown or 'no name'}; the cacheable names are {list(CACHEABLE)}")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Recipe:
    """The module sides one accessor value is made of, and how to make it from their recorded values."""

    reads: tuple[tuple[Any, str], ...]  # (envoy, "input" | "output")
    make: Callable[[list[Any]], torch.Tensor]


def recipe(model: StandardizedTransformer, name: str, layer: int) -> Recipe:
    """How to cache module-side ``name`` at ``layer``."""
    if name == "neurons":
        return _neurons(model, layer)
    accessor = getattr(model, name)
    if name == "heads_output":
        projection = accessor.projection(layer)  # HeadsUnavailable where the layer has no heads
        heads = accessor._splits.num_heads(layer)
        return Recipe(((projection, "input"),), lambda values: values[0].unflatten(-1, (heads, -1)))
    view = getattr(accessor, "view", None)
    canonical = view.canonical if view else (lambda value: value)
    if name in ("attentions_output", "mlps_output"):
        envoys = accessor._locate(layer)
        scale = accessor._scales[layer] if accessor._scales else 1.0
        flat = accessor._flat_input(layer) if accessor._flat_input else None

        def contribution(values: list[Any]) -> torch.Tensor:
            total = sum(unwrap(value) for value in values[:len(envoys)])
            if flat is not None:
                total = total.view(*unwrap(values[-1]).shape[:-1], total.shape[-1])
            total = canonical(total)
            return total if scale == 1.0 else total * scale
        reads = tuple((envoy, "output") for envoy in envoys) + (((flat, "input"),) if flat is not None else ())
        return Recipe(_checked(reads, name), contribution)
    return Recipe(_checked(((accessor._locate(layer), accessor._side),), name),
                  lambda values: canonical(unwrap(values[0])))


def _neurons(model: StandardizedTransformer, layer: int) -> Recipe:
    """The input of layer ``layer``'s MLP down projection: the candidate linear child (`neurons`) whose output,
    recorded in the same run, equals ``mlps_output[layer]``."""
    from .neurons import down_projection, projection_candidates

    path, candidates = projection_candidates(model, layer)
    output = recipe(model, "mlps_output", layer)
    mlp = walk(model.layers[layer], path)
    envoys = [walk(mlp, name) for name, _ in candidates]
    sides = tuple((envoy, side) for envoy in envoys for side in ("input", "output"))
    count = len(output.reads)

    def make(values: list[Any]) -> torch.Tensor:
        total = output.make(values[:count])
        recorded = values[count:]
        outputs = [unwrap(value) for value in recorded[1::2]]
        return unwrap(recorded[2 * down_projection(model, layer, candidates, outputs, total)])
    return Recipe(output.reads + _checked(sides, "neurons"), make)


def _checked(reads: tuple[tuple[Any, str], ...], name: str) -> tuple[tuple[Any, str], ...]:
    """Refuse values that are not a module's own input or output (batch-folded ones, OPT's MLP)."""
    for envoy, _ in reads:
        if not isinstance(getattr(envoy, "path", None), str):
            raise ToolkitInputError(f"{name} is not a module's plain input or output on this architecture (it is "
                                    "served unfolded from a batch-folded tensor): read it inside a trace instead")
    return reads


def operation_read(model: StandardizedTransformer, name: str, layer: int) -> OperationRead:
    """How to read operation ``name`` at ``layer`` in the trace, checked on the client: HeadsUnavailable for
    queries / keys / values of a layer that does not split into heads, AttentionProbabilitiesUnavailable for
    probabilities that are off or not found, AttentionScoresUnavailable where no tensor holds the scores."""
    if name in ("queries", "keys", "values"):
        getattr(model, name)._call(layer)  # HeadsUnavailable, naming the layers that split
        return (name, layer, "", ())
    probabilities = model.attention_probabilities
    try:
        location = probabilities._location(layer)
    except AttentionProbabilitiesUnavailable as error:
        if name == "attention_probabilities":
            raise
        raise AttentionScoresUnavailable(f"[{model.architecture.class_name}] no tensor holds layer {layer}'s "
                                         f"pre-softmax scores: {error}") from None
    if name == "attention_probabilities":
        return (name, layer, "", ())
    return _scores_read(model, layer, location)


def _scores_read(model: StandardizedTransformer, layer: int, location: Any) -> OperationRead:
    """The softmax call whose result holds the probabilities: its first input is the scores."""
    from ...core.attention_probs import softmax_input_label

    label, why = softmax_input_label(location.function)
    if label is None or model.attention_probabilities._batch_folded:
        why = why or "its scores fold the batch into the heads"
        raise AttentionScoresUnavailable(f"[{model.architecture.class_name}] no tensor holds layer {layer}'s "
                                         f"pre-softmax scores: {why}; cache attention_probabilities instead")
    return ("attention_scores", layer, location.submodule, location.ops[:-1] + (label,))
