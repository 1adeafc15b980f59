"""Attribution patching of every node kind in one call: the token embeddings, each head's output, each attention's
and each MLP's output and the residual stream after each layer, at every position, from one clean forward, one
corrupted forward and one backward.

Each node's score is `attribution_patching`'s: ``(clean - corrupted) . d metric / d node``, the gradient taken on
the corrupted run (of the metric averaged over prompts), summed over the prompts and the node's features. One
backward gives every gradient at once (``torch.autograd.grad`` on the nodes read), so scoring five kinds of nodes
costs what scoring one does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from nnsight import save

from ...core.accessors import select_layers
from ...errors import ToolkitInputError
from ...utils.gradients import activation_gradients
from .patching import (
    PatchingResult,
    _alignment,
    _check_finite,
    _metric,
    _metric_value,
    _pair,
    _Pair,
    check_gradients_served,
    read_for_gradient,
    read_node,
)

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

EMBEDDINGS = "token_embeddings"
# Every node kind, in the order a layer computes them; token_embeddings precede every layer.
NODE_KINDS = (EMBEDDINGS, "layers_input", "heads_output", "attentions_output", "mlps_output", "layers_output")
DEFAULT_KINDS = (EMBEDDINGS, "heads_output", "attentions_output", "mlps_output", "layers_output")
SHORT = {"layers_input": "resid_pre", "attentions_output": "attn", "mlps_output": "mlp", "layers_output": "resid"}

Node = tuple[str, "int | None"]  # (kind, layer; None for the token embeddings)


@dataclass(frozen=True)
class NodeAttribution:
    """One grid per node kind, as `attribution_patching` gives it (corrupted metric + estimated change):
    ``values["token_embeddings"]`` (positions,), ``values["heads_output"]`` (layers, heads, positions), every
    other kind (layers, positions). ``layers`` label the rows, ``positions`` and ``tokens`` the columns."""

    values: dict[str, torch.Tensor]
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    tokens: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float

    def __getitem__(self, kind: str) -> torch.Tensor:
        if kind not in self.values:
            hint = (f" (by default a kind is scored only where every chosen layer has it: pass kinds=[{kind!r}, ...] "
                    "and layers= of layers that have it)") if kind in NODE_KINDS else ""
            raise ToolkitInputError(f"no grid for {kind!r}: this result holds {list(self.values)}{hint}")
        return self.values[kind]

    def result(self, kind: str) -> PatchingResult:
        """The grid of a per-layer kind as a `PatchingResult` (what `attribution_patching(accessor=kind)` gives;
        `nnterp.display.plot_patching` draws it)."""
        if kind == EMBEDDINGS:
            raise ToolkitInputError("the token embeddings have no layers: read result['token_embeddings'], one "
                                    "value per position")
        return PatchingResult(self[kind], kind, self.layers, self.positions, self.tokens, self.clean_metric,
                              self.corrupted_metric)

    def top(self, count: int = 10) -> list[tuple[str, float]]:
        """The ``count`` nodes whose estimated change of the metric is largest in size, as (label, change):
        labels like ``L23.H4@ is`` (layer 23, head 4, at the token " is"), ``L5.mlp@ France``, ``embed@ is``."""
        ranked: list[tuple[str, float]] = []
        for kind, grid in self.values.items():
            change = (grid - self.corrupted_metric).flatten().tolist()
            ranked += zip(_labels(kind, tuple(grid.shape), self.layers, self.tokens), change)
        return sorted(ranked, key=lambda item: -abs(item[1]))[:count]


def _labels(kind: str, shape: tuple[int, ...], layers: tuple[int, ...], tokens: tuple[str, ...]) -> list[str]:
    """One label per cell of a grid of ``kind``, in its flattened order."""
    if kind == EMBEDDINGS:
        return [f"embed@{token}" for token in tokens]
    if kind == "heads_output":
        return [f"L{layer}.H{head}@{token}" for layer in layers for head in range(shape[1]) for token in tokens]
    return [f"L{layer}.{SHORT[kind]}@{token}" for layer in layers for token in tokens]


def attribution_patching_nodes(model: StandardizedTransformer, clean_prompts: str | Sequence[str],
                               corrupted_prompts: str | Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                               kinds: Sequence[str] | None = None, layers: int | Iterable[int] | None = None,
                               positions: int | Sequence[int] | None = None, remote: bool | str = False
                               ) -> NodeAttribution:
    """`attribution_patching` of every node kind in ``kinds`` (default: token embeddings, heads, attentions, MLPs
    and the residual after each layer; heads, attentions or MLPs left out where a chosen layer has none, as a
    hybrid model's recurrent layers have no heads and a Mamba layer no MLP; add ``"layers_input"`` for the
    residual entering each layer) at every layer of ``layers`` and every position, from 2 forwards and 1
    backward. A kind asked for by name at a layer without it is refused before any forward (HeadsUnavailable for
    heads). Each grid equals
    ``attribution_patching(model, ..., accessor=kind)``'s; the call leaves no ``.grad`` on any parameter and works
    under ``torch.no_grad`` and with frozen parameters. Example::

        scores = attribution_patching_nodes(model, "The capital of France is", "The capital of Italy is",
                                            lambda logits: logits[:, -1, paris] - logits[:, -1, rome])
        scores["heads_output"]  # (layers, heads, positions)
        scores.top(5)           # [("L15.H1@ is", 2.1), ...]
    """
    chosen = select_layers(layers, model.num_layers)
    chosen_kinds = _checked_kinds(model, kinds, chosen)
    with activation_gradients(model, "attribution_patching_nodes"):
        pair = _pair(model, clean_prompts, corrupted_prompts, positions)
        return _node_grids(model, pair, metric, chosen_kinds, chosen, remote)


def _checked_kinds(model: StandardizedTransformer, kinds: Sequence[str] | None, layers: list[int]
                   ) -> tuple[str, ...]:
    """The kinds to score, in run order, checked on the client: ToolkitInputError for an unknown kind, the typed
    refusal of a kind asked for at a layer without it (HeadsUnavailable, RenamingError); by default DEFAULT_KINDS,
    each where every chosen layer has it."""
    from .paths import check_available, is_available

    if kinds is None:
        return tuple(kind for kind in DEFAULT_KINDS
                     if kind == EMBEDDINGS or all(is_available(model, layer, kind) for layer in layers))
    chosen = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = [kind for kind in chosen if kind not in NODE_KINDS]
    if unknown or not chosen:
        raise ToolkitInputError(f"node kinds {unknown or list(chosen)} cannot be scored: pass a non-empty list of "
                                f"{list(NODE_KINDS)}")
    for kind in chosen:
        for layer in layers if kind != EMBEDDINGS else ():
            check_available(model, layer, kind)
    return tuple(kind for kind in NODE_KINDS if kind in chosen)


def node_plan(kinds: tuple[str, ...], layers: list[int]) -> list[Node]:
    """Every node to read, in the order the model computes them (nnsight serves values in that order)."""
    plan: list[Node] = [(EMBEDDINGS, None)] if EMBEDDINGS in kinds else []
    return plan + [(kind, layer) for layer in sorted(set(layers)) for kind in kinds if kind != EMBEDDINGS]


def node_gradients(metric_value: torch.Tensor, nodes: list[Any]) -> list[Any]:
    """Inside a trace, once the metric is computed: its gradient (averaged over prompts) with respect to each
    node, zeros for a node it does not depend on. One backward, through the activations only. Where the trace is
    served copies of the model's values (ndif's sandbox), no gradient can come back: SandboxBackwardUnsupported."""
    check_gradients_served()
    grads = torch.autograd.grad(metric_value.float().mean(), nodes, allow_unused=True)
    return [torch.zeros_like(node) if grad is None else grad for node, grad in zip(nodes, grads)]


def _node_grids(model: StandardizedTransformer, pair: _Pair, metric: Callable[[torch.Tensor], torch.Tensor],
                kinds: tuple[str, ...], layers: list[int], remote: bool | str) -> NodeAttribution:
    """attribution_patching_nodes' body, in grad mode with the parameters frozen (nnterp.utils.gradients)."""
    plan = node_plan(kinds, layers)
    batch = len(pair.clean_layout.lengths)
    clean_alignment, corrupted_alignment = _alignment(pair.clean_layout), _alignment(pair.corrupted_layout)
    with torch.no_grad(), model.trace(pair.clean, remote=remote):
        clean = save([read_node(model, node) for node in plan])
        clean_value = save(_metric(metric, model.logits, clean_alignment))
    clean_metric = _metric_value(clean_value, batch, "the clean run", pair.clean_layout)
    with model.trace(pair.corrupted, remote=remote):
        model.track_activation_gradients()
        nodes = [read_for_gradient(model, node) for node in plan]
        corrupted_value = _metric(metric, model.logits, corrupted_alignment)
        grads = save(node_gradients(corrupted_value, nodes))
        corrupted = save([node.detach() for node in nodes])
        corrupted_value = save(corrupted_value.detach())
    corrupted_metric = _metric_value(corrupted_value, batch, "the corrupted run", pair.corrupted_layout)
    changes = {node: _change(model, pair, node, *values) for node, *values in zip(plan, clean, corrupted, grads)}
    values = {}
    for kind in kinds:
        rows = [changes[(kind, None)]] if kind == EMBEDDINGS else [changes[(kind, layer)] for layer in layers]
        grid = torch.stack(rows).float().cpu() + corrupted_metric
        _check_finite(grid, layers, pair.positions)
        values[kind] = grid[0] if kind == EMBEDDINGS else grid
    return NodeAttribution(values, tuple(layers), pair.positions, pair.tokens, clean_metric, corrupted_metric)


def _change(model: StandardizedTransformer, pair: _Pair, node: Node, clean: torch.Tensor, corrupted: torch.Tensor,
            grad: torch.Tensor) -> torch.Tensor:
    """``(clean - corrupted) . grad`` at each chosen position (each prompt's own columns), summed over the prompts
    and every axis after the position, the head's excepted: (positions,), or (positions, heads) per head -> as a
    grid row, (heads, positions)."""
    kind, layer = node
    prefix = 0 if layer is None else model.num_prefix_positions  # the embeddings have no learned prefix positions
    clean_columns, corrupted_columns = (prefix + pair.clean_columns).T, (prefix + pair.corrupted_columns).T
    rows = torch.arange(grad.shape[0], device=grad.device)[:, None]
    at = corrupted_columns.to(grad.device)
    change = ((clean[rows, clean_columns.to(grad.device)] - corrupted[rows, at]) * grad[rows, at]).sum(dim=0)
    return change.flatten(2).sum(dim=-1).T if kind == "heads_output" else change.flatten(1).sum(dim=-1)
