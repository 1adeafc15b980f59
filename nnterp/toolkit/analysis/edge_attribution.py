"""Edge attribution patching: `path_patching`'s effect of each (sender, receiver) edge estimated to first order,
``(clean - corrupted sender term) . d metric / d (the stream the receiver reads)``, for every edge at once.

The gradients come from one backward of the corrupted run (of the metric averaged over prompts), read at the
residual stream around each sublayer: on a block running attention then MLP, what the attention of layer ``l``
reads has the gradient ``d/d layers_input[l] - d/d attentions_output[l]`` (the stream entering the layer is read by
the attention and carried on unchanged into the stream after it, whose gradient is the attention output's), and
what its MLP reads ``d/d attentions_output[l] - d/d mlps_output[l]``; the residual entering a layer and the final
residual are read whole. Receivers are per layer (``"L5.attn"``, ``"L5.mlp"``, ``"L5.resid"``, ``"final"``), which
covers grouped-query attention as any other: path patching scores single heads' queries, keys or values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from nnsight import save

from ...errors import NotDecomposable, ToolkitInputError
from ...utils.gradients import activation_gradients
from .node_attribution import node_gradients, read_for_gradient
from .patching import _alignment, _metric, _metric_value
from .path_patches import _changes, sender_pair
from .paths import Node, parallel_blocks, parse_receivers, parse_senders, reaches

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer


@dataclass(frozen=True)
class EdgeAttribution:
    """``scores`` (senders, receivers): each edge's estimated change of the metric (0 where the sender does not
    reach the receiver, ``edges`` False there); ``senders`` and ``receivers`` are their labels."""

    scores: torch.Tensor
    edges: torch.Tensor
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float

    def top(self, count: int = 10) -> list[tuple[str, float]]:
        """The ``count`` edges with the largest estimated change in size, as ("sender -> receiver", change)."""
        flat = self.scores.flatten()
        order = flat.abs().argsort(descending=True)[:count]
        width = len(self.receivers)
        return [(f"{self.senders[int(i) // width]} -> {self.receivers[int(i) % width]}", float(flat[i]))
                for i in order]


def edge_attribution_patching(model: StandardizedTransformer, clean_prompts: str | Sequence[str],
                              corrupted_prompts: str | Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                              senders: Sequence[str] | None = None, receivers: Sequence[str] | None = None,
                              positions: int | Sequence[int] | None = None, remote: bool | str = False
                              ) -> EdgeAttribution:
    """Every (sender, receiver) edge's first-order estimate of `path_patching` with that sender and receiver:
    ``(clean - corrupted term of the sender) . gradient of the metric at what the receiver reads``, summed over
    positions and prompts, from 2 forwards (clean, corrupted) and one forward with one backward. ``senders``
    default to every head (labels as `path_patching`'s, ``"embed"``, ``"L3.mlp"`` too); ``receivers`` to every
    layer's ``"L<l>.attn"`` and ``"L<l>.mlp"`` and ``"final"``. No ``.grad`` is left on any parameter. Example::

        edges = edge_attribution_patching(model, clean, corrupted, metric, senders=["embed", "L0.H1", "L0.mlp"])
        edges.top(3)  # [("L0.H1 -> L4.attn", 0.8), ...]
    """
    from .residual import check_additive

    check_additive(model)
    chosen_senders = parse_senders(model, senders)
    chosen_receivers = parse_receivers(model, receivers if receivers is not None else _every_receiver(model))
    _check_receivers(model, chosen_receivers)
    with activation_gradients(model, "edge_attribution_patching"):
        pair, mask = sender_pair(model, clean_prompts, corrupted_prompts, positions)
        changes, clean_metric, corrupted_metric = _changes(model, pair, mask, chosen_senders, metric, remote)
        reads = _gradient_reads(model, chosen_receivers)
        with model.trace(pair.corrupted, remote=remote):
            model.track_activation_gradients()
            nodes = [read_for_gradient(model, read) for read in reads]
            value = _metric(metric, model.logits, _alignment(pair.corrupted_layout))
            grads = save(node_gradients(value, nodes))
            value = save(value.detach())
    _metric_value(value, len(pair.corrupted_layout.lengths), "the corrupted run", pair.corrupted_layout)
    by_read = dict(zip(reads, grads))
    received = [_received(model, node, by_read) for node in chosen_receivers]
    edges = torch.tensor([[reaches(sender, receiver, model) for receiver in chosen_receivers]
                          for sender in chosen_senders])
    scores = torch.stack([torch.stack([(change * grad.to(change)).sum() for grad in received]) for change in changes])
    return EdgeAttribution(scores.float().cpu() * edges, edges, tuple(node.label for node in chosen_senders),
                           tuple(node.label for node in chosen_receivers), clean_metric, corrupted_metric)


def _every_receiver(model: StandardizedTransformer) -> list[str]:
    return [f"L{layer}.{part}" for layer in range(model.num_layers) for part in ("attn", "mlp")] + ["final"]


def _check_receivers(model: StandardizedTransformer, receivers: list[Node]) -> None:
    per_head = [node.label for node in receivers if node.kind in ("q", "k", "v")]
    if per_head:
        raise ToolkitInputError(f"edge attribution patching scores receivers per layer ('L5.attn', 'L5.mlp', "
                                f"'L5.resid', 'final'), got {per_head}: use path_patching for one head's queries, "
                                "keys or values")
    split = [node.label for node in receivers if node.kind in ("attn", "mlp")]
    if split and parallel_blocks(model):
        raise NotDecomposable(f"[{model.architecture.class_name}] attention and MLP read the same input in each "
                              f"block, so the gradient of what one reads is not separable from the other's: receivers "
                              f"{split} cannot be scored; use 'L<l>.resid' and 'final'")


def _gradient_reads(model: StandardizedTransformer, receivers: list[Node]) -> list[tuple[str, int]]:
    """The accessors whose gradients give the receivers', in run order."""
    needs = {"resid": ("layers_input",), "attn": ("layers_input", "attentions_output"),
             "mlp": ("attentions_output", "mlps_output"), "final": ("layers_output",)}
    reads: set[tuple[str, int]] = set()
    for node in receivers:
        layer = model.num_layers - 1 if node.kind == "final" else int(node.layer or 0)
        reads |= {(accessor, layer) for accessor in needs[node.kind]}
    rank = {"layers_input": 0, "attentions_output": 1, "mlps_output": 2, "layers_output": 3}
    return sorted(reads, key=lambda read: (read[1], rank[read[0]]))


def _received(model: StandardizedTransformer, node: Node, grads: dict) -> torch.Tensor:
    """The gradient of the metric at what ``node`` reads, (batch, seq, hidden)."""
    if node.kind == "final":
        return grads[("layers_output", model.num_layers - 1)]
    if node.kind == "resid":
        return grads[("layers_input", node.layer)]
    if node.kind == "attn":
        return grads[("layers_input", node.layer)] - grads[("attentions_output", node.layer)]
    return grads[("attentions_output", node.layer)] - grads[("mlps_output", node.layer)]
