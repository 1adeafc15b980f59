"""An activation cache keyed by standardized names: ``cache["layers_output", 5]``, from one forward.

Module sides (layer, attention and MLP inputs and outputs, per-head outputs, the MLP's neurons) are recorded with
nnsight's ``tracer.cache``: it records the modules behind the chosen names as the run reaches them, and each value is
then rebuilt from those records the way its accessor serves it (the hidden part of tuple outputs, several modules
summed and scaled for ``attentions_output`` / ``mlps_output``, streams and sequence-first states in nnterp's layout,
heads split out of the output projection's input). Operations inside the attention forwards (queries, keys, values,
the scores handed to the softmax, its probabilities) are read in the trace, in the order the forward runs them
(`cache_reads`). A names filter picks what is read: nothing else is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from nnsight import save

from ...core.accessors import select_layers
from ...errors import CacheKeyError, ToolkitInputError
from ...utils.positions import TokenLayout, position_index, position_list
from ..activations import at_columns
from .cache_plan import (
    CACHEABLE,
    MODULE_KINDS,
    SEQUENCE_AXIS,
    NamesFilter,
    Recipe,
    chosen_names,
    operation_read,
    recipe,
)
from .cache_reads import OPERATION_KINDS, OperationRead, read_operations

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

__all__ = ["CACHEABLE", "ActivationCache", "run_with_cache"]


class ActivationCache(Mapping):
    """Accessor values from one forward, keyed ``(accessor, layer)``: ``cache["layers_output", 5]``.

    ``stack(name)`` gives every cached layer of one accessor as (layers, batch, seq, ...)."""

    def __init__(self, values: dict[tuple[str, int], torch.Tensor], num_layers: int):
        self._values = values
        self.num_layers = num_layers

    def __getitem__(self, key: tuple[str, int]) -> torch.Tensor:
        """``cache[accessor, layer]``; a negative layer counts from the model's last layer, as for the accessors.
        A key that names nothing cached raises CacheKeyError (a KeyError) naming what is cached."""
        if not (isinstance(key, tuple) and len(key) == 2):
            raise CacheKeyError(f"cache key {key!r}: index the cache with (accessor, layer), e.g. "
                                f"cache[{(self.accessors or ['layers_output'])[0]!r}, 0]; cached: {self.accessors}")
        name, layer = key
        if isinstance(layer, int) and not isinstance(layer, bool) and -self.num_layers <= layer < 0:
            layer += self.num_layers
        if (name, layer) not in self._values:
            raise CacheKeyError(f"{key!r} is not cached; cached: {self.accessors} for layers {self.layers(name)}"
                                if name in self.accessors else f"{key!r} is not cached; cached: {self.accessors}")
        return self._values[name, layer]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def accessors(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self._values))

    def layers(self, name: str) -> list[int]:
        return [layer for accessor, layer in self._values if accessor == name]

    def stack(self, name: str) -> torch.Tensor:
        return torch.stack([self[name, layer] for layer in self.layers(name)])


def run_with_cache(model: StandardizedTransformer, prompts: Any, accessors: NamesFilter | None = None,
                   layers: int | Iterable[int] | None = None, positions: int | slice | Sequence[int] | None = None,
                   device: str | torch.device | None = "cpu", remote: bool | str = False, *,
                   names_filter: NamesFilter | None = None, batch_size: int | None = None,
                   progress: bool = True) -> ActivationCache:
    """One forward over ``prompts`` (right-padded), caching the chosen names at ``layers`` (None: all).

    The names (``accessors``, or ``names_filter`` as TransformerLens calls it: a name, a list of names or a
    predicate on names; ``"layers_output"`` when neither is given) are any of `CACHEABLE`: the accessors'
    module sides (``layers_output``, ``attentions_output``, ``mlps_output``, ``heads_output``...), ``neurons`` (the
    input of each MLP's down projection, (batch, seq, neurons)), and the attention's ``queries``, ``keys``,
    ``values`` (batch, heads or key/value heads, seq, head_dim), ``attention_scores`` (what the softmax is
    handed: scaled, masked, (batch, heads, query, key)) and ``attention_probabilities``. Only those are read.

    ``positions`` keeps only those token positions, counted in each prompt's own tokens (negative from its
    last real token), whatever the padding side and whoever tokenized (a pre-tokenized mapping's
    ``attention_mask`` says where its tokens are), along each value's sequence axis (the query axis of scores and
    probabilities): an int drops that axis, a list or a slice keeps it with k entries; None keeps every padded
    column. ``device`` is where the values are copied ("cpu" by default; None leaves them where they are).
    ``batch_size`` runs that many prompts per forward, slices of one padded batch (so the values concatenate and
    equal one forward's), with a progress bar over the forwards (tqdm; ``progress=False`` silences it); None (the
    default) runs one forward. Example::

        cache = run_with_cache(model, "The capital of France is", ["attention_probabilities", "mlps_output"])
        cache["attention_probabilities", 5].shape  # (1, heads, seq, seq)
    """
    from ..activations import _padded

    if accessors is not None and names_filter is not None:
        raise ToolkitInputError("pass the names to cache once: as accessors= or as names_filter=, not both")
    chosen = names_filter if names_filter is not None else accessors if accessors is not None else "layers_output"
    names = chosen_names(chosen)
    selected = select_layers(layers, model.num_layers)
    recipes, operations = _plan(model, names, selected)
    inputs, layout = _padded(model, prompts)
    columns = None if positions is None or layout is None else _position_columns(positions, layout)
    batches = _batches(inputs, layout, batch_size)
    if progress and len(batches) > 1:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="caching activations", unit="batch")
    parts = [_one_forward(model, batch, recipes, operations, device, remote) for batch in batches]
    values = {}
    for key in [(name, layer) for name in names for layer in selected]:
        value = parts[0][key] if len(parts) == 1 else torch.cat([part[key] for part in parts])
        if positions is not None:
            prefix = model.num_prefix_positions
            axis = SEQUENCE_AXIS[key[0]]
            if columns is None:  # strings the model tokenized itself: nothing is padded
                columns = _position_columns(positions, TokenLayout.full(value.shape[0], value.shape[axis] - prefix))
            value = _at(value.movedim(axis, 1), prefix + columns)
            value = value.movedim(1, axis) if columns.ndim == 2 else value
        values[key] = value
    return ActivationCache(values, model.num_layers)


KEPT_PLANS = 16  # run_with_cache plans kept per model (each a few envoys per layer and name)


def _plan(model: StandardizedTransformer, names: list[str], selected: list[int]
          ) -> tuple[dict[tuple[str, int], Recipe], list[OperationRead]]:
    """What to read for ``names`` at the ``selected`` layers: the module recipes, and the operation reads in run
    order. Planned once per model, names, layers and attention implementation, and kept on the model: planning walks
    the module tree and the attention forwards' operations (2.2 ms for SmolLM2's 30 layers and every name, measured:
    2% of its forward), and depends on nothing else."""
    key = (tuple(names), tuple(selected), getattr(model._module.config, "_attn_implementation", None))
    plans = model.__dict__.setdefault("_client_memo", {}).setdefault("run_with_cache", {})  # never shipped
    if key not in plans:
        if len(plans) >= KEPT_PLANS:
            plans.pop(next(iter(plans)))  # the oldest
        recipes = {(name, layer): recipe(model, name, layer) for name in names if name in MODULE_KINDS
                   for layer in selected}
        operations = sorted((operation_read(model, name, layer) for name in names if name in OPERATION_KINDS
                             for layer in selected), key=lambda read: (read[1], OPERATION_KINDS.index(read[0])))
        plans[key] = recipes, operations
    return plans[key]


def _batches(inputs: Any, layout: TokenLayout | None, batch_size: int | None) -> list[Any]:
    """``inputs`` (one padded batch) as consecutive slices of ``batch_size`` rows, each padded to the whole batch's
    length, so their values concatenate; one slice where batch_size is None or the model tokenizes itself."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ToolkitInputError(f"batch_size is {batch_size!r}: pass an int >= 1, or None for one forward")
    if batch_size is None or layout is None or len(layout.lengths) <= batch_size:
        return [inputs]
    total = len(layout.lengths)

    def rows(value: Any, start: int) -> Any:
        return value[start:start + batch_size] if isinstance(value, torch.Tensor) and value.shape[:1] == (total,) \
            else value
    if isinstance(inputs, torch.Tensor):
        return [rows(inputs, start) for start in range(0, total, batch_size)]
    return [{key: rows(value, start) for key, value in inputs.items()} for start in range(0, total, batch_size)]


def _one_forward(model: StandardizedTransformer, inputs: Any, recipes: dict[tuple[str, int], Recipe],
                 operations: list[OperationRead], device: str | torch.device | None, remote: bool | str
                 ) -> dict[tuple[str, int], torch.Tensor]:
    """One forward recording the recipes' module sides and reading the planned operations."""
    envoys = {envoy.path: envoy for planned in recipes.values() for envoy, _ in planned.reads}
    with_inputs = any(side == "input" for planned in recipes.values() for _, side in planned.reads)
    recorded: Any = None  # set in the trace where a recipe records modules (a traced body ships no annotation)
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        if envoys:
            recorded = tracer.cache(modules=list(envoys.values()), device=device, include_inputs=with_inputs)
        read = save(read_operations(model, operations, device))
    values = dict(read)
    for key, planned in recipes.items():
        values[key] = planned.make([first_visit(recorded[envoy.path], side) for envoy, side in planned.reads])
    return values


def first_visit(view: Any, side: str) -> Any:
    """A recorded module's input or output at its first call, as the accessors read it (a looped model calls its
    modules several times, and nnsight's cache then holds one value per call)."""
    value = getattr(view, side)
    return value if len(view) == 1 else value[0]


def _position_columns(positions: int | slice | Sequence[int], layout: TokenLayout) -> torch.Tensor:
    """Where each prompt's own token ``positions`` sit: (batch,) for an int, (batch, k) for a list or a slice
    (resolved in each prompt's tokens, so negative bounds count from its end)."""
    if isinstance(positions, slice):
        return _slice_columns(positions, layout)
    if isinstance(positions, (list, tuple)):
        return torch.stack([layout.columns(layout.check(position, "positions"))
                            for position in position_list(positions, "positions")], dim=1)
    return layout.columns(layout.check(positions, "positions"))


def _slice_columns(positions: slice, layout: TokenLayout) -> torch.Tensor:
    """(batch, k): the columns of ``positions`` in each prompt's own tokens, the same number in every prompt."""
    bounds = [None if bound is None else position_index(bound, f"positions.{name}")
              for name, bound in (("start", positions.start), ("stop", positions.stop), ("step", positions.step))]
    ranges = [range(*slice(*bounds).indices(int(length))) for length in layout.lengths]
    if len({len(chosen) for chosen in ranges}) > 1:
        raise ToolkitInputError(f"positions {positions} selects {[len(chosen) for chosen in ranges]} tokens of "
                                f"prompts of {layout.lengths.tolist()} tokens: the cache needs the same number per "
                                "prompt; pass a slice every prompt covers, a list of positions, or None (every padded "
                                "column)")
    return torch.stack([start + torch.tensor(list(chosen), dtype=torch.long)
                        for start, chosen in zip(layout.starts, ranges)])


def _at(value: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """Row ``b`` of (batch, seq, ...) ``value`` at ``columns[b]``: a column, or a row of them."""
    if columns.ndim == 1:
        return at_columns(value, columns)
    return value[torch.arange(value.shape[0], device=value.device)[:, None], columns.to(value.device)]
