"""An activation cache keyed by standardized names: ``cache["layers_output", 5]``, from one forward.

Built on nnsight's ``tracer.cache``: it records the modules behind the chosen accessors as the run reaches
them, and each accessor's value is then rebuilt from those records the way the accessor serves it (the
hidden part of tuple outputs, several modules summed and scaled for ``attentions_output`` / ``mlps_output``,
streams and sequence-first states in nnterp's layout, heads split out of the output projection's input).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch

from ...core.accessors import select_layers, unwrap
from ...errors import CacheKeyError, ToolkitInputError
from ...utils.positions import TokenLayout, position_index, position_list
from ..activations import at_columns

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

CACHEABLE = ("layers_input", "layers_output", "attentions_input", "attentions_output", "mlps_input", "mlps_output",
             "heads_output")


@dataclass(frozen=True)
class _Recipe:
    """The module sides one accessor value is made of, and how to make it from their recorded values."""

    reads: tuple[tuple[Any, str], ...]  # (envoy, "input" | "output")
    make: Callable[[list[Any]], torch.Tensor]


def _recipe(model: StandardizedTransformer, name: str, layer: int) -> _Recipe:
    accessor = getattr(model, name)
    if name == "heads_output":
        projection = accessor.projection(layer)  # HeadsUnavailable where the layer has no heads
        heads = accessor._splits.num_heads(layer)
        return _Recipe(((projection, "input"),), lambda values: values[0].unflatten(-1, (heads, -1)))
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
        return _Recipe(_checked(reads, name), contribution)
    return _Recipe(_checked(((accessor._locate(layer), accessor._side),), name),
                   lambda values: canonical(unwrap(values[0])))


def _checked(reads: tuple[tuple[Any, str], ...], name: str) -> tuple[tuple[Any, str], ...]:
    """Refuse values that are not a module's own input or output (batch-folded ones, OPT's MLP)."""
    for envoy, _ in reads:
        if not isinstance(getattr(envoy, "path", None), str):
            raise ToolkitInputError(f"{name} is not a module's plain input or output on this architecture (it is "
                                    "served unfolded from a batch-folded tensor): read it inside a trace instead")
    return reads


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


def run_with_cache(model: StandardizedTransformer, prompts: Any, accessors: str | Sequence[str] = "layers_output",
                   layers: int | Iterable[int] | None = None, positions: int | slice | Sequence[int] | None = None,
                   device: str | torch.device | None = "cpu", remote: bool | str = False) -> ActivationCache:
    """One forward over ``prompts`` (right-padded), caching ``accessors`` at ``layers`` (None: all).

    ``positions`` keeps only those token positions, counted in each prompt's own tokens (negative from its
    last real token), whatever the padding side and whoever tokenized (a pre-tokenized mapping's
    ``attention_mask`` says where its tokens are): an int gives (batch, ...), a list or a slice (batch, k, ...);
    None keeps every padded column. ``device`` is where the values are copied ("cpu" by default; None leaves
    them where they are). Example::

        cache = run_with_cache(model, "The capital of France is", ["attentions_output", "mlps_output"])
        cache["mlps_output", 5].shape  # (1, seq, hidden)
    """
    from ..activations import _padded

    names = [accessors] if isinstance(accessors, str) else list(accessors)
    unknown = [name for name in names if name not in CACHEABLE]
    if unknown or not names:
        raise ToolkitInputError(f"cannot cache {unknown or names}: the cacheable accessors are {list(CACHEABLE)} "
                                "(read queries / keys / values / attention_probabilities inside a trace)")
    recipes = {(name, layer): _recipe(model, name, layer) for name in names
               for layer in select_layers(layers, model.num_layers)}
    envoys = {envoy.path: envoy for recipe in recipes.values() for envoy, _ in recipe.reads}
    with_inputs = any(side == "input" for recipe in recipes.values() for _, side in recipe.reads)
    inputs, layout = _padded(model, prompts)
    columns = None if positions is None or layout is None else _position_columns(positions, layout)
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        recorded = tracer.cache(modules=list(envoys.values()), device=device, include_inputs=with_inputs)
    values = {}
    for key, recipe in recipes.items():
        value = recipe.make([getattr(recorded[envoy.path], side) for envoy, side in recipe.reads])
        if positions is not None:
            prefix = model.num_prefix_positions
            if columns is None:  # strings the model tokenized itself: nothing is padded
                columns = _position_columns(positions, TokenLayout.full(value.shape[0], value.shape[1] - prefix))
            value = _at(value, prefix + columns)
        values[key] = value
    return ActivationCache(values, model.num_layers)


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
