"""Edge attribution patching: `path_patching`'s effect of each (sender, receiver) edge estimated to first order,
``(clean - corrupted sender term) . d metric / d (the stream the receiver reads)``, for every edge at once.

The gradients come from one backward of the corrupted run (of the metric averaged over prompts), read at the
residual stream around each sublayer: on a block running attention then MLP, what the attention of layer ``l``
reads has the gradient ``d/d layers_input[l] - d/d attentions_output[l]`` (the stream entering the layer is read by
the attention and carried on unchanged into the stream after it, whose gradient is the attention output's), and
what its MLP reads ``d/d attentions_output[l] - d/d mlps_output[l]``; the residual entering a layer and the final
residual are read whole. A head's queries (``"L5.H2.q"``) or a key/value head's keys or values (``"L5.KV1.k"``: grouped-
query attention as any other) are read through a copy of the corrupted rows, as `path_patching` reads them: its
residual entering the layer is the first copy's plus a zero that requires grad, whose gradient is the receiver's;
one backward per forward of up to ``patches_per_forward`` such receivers (with a progress bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from nnsight import save

from ...errors import NotDecomposable
from ...utils.gradients import activation_gradients
from .node_attribution import node_gradients
from .patching import (
    DEFAULT_PATCHES_PER_FORWARD,
    _alignment,
    _metric,
    _metric_value,
    _Pair,
    _repeated,
    read_for_gradient,
)
from .path_patches import _changes, sender_pair
from .paths import Node, parallel_blocks, parse_receivers, parse_senders, reaches

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

HEAD_PARTS = {"q": "queries", "k": "keys", "v": "values"}  # receivers read per head, through a copy of the rows


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
                              positions: int | Sequence[int] | None = None,
                              patches_per_forward: int = DEFAULT_PATCHES_PER_FORWARD, remote: bool | str = False,
                              progress: bool = True) -> EdgeAttribution:
    """Every (sender, receiver) edge's first-order estimate of `path_patching` with that sender and receiver:
    ``(clean - corrupted term of the sender) . gradient of the metric at what the receiver reads``, summed over
    positions and prompts, from 2 forwards (clean, corrupted) and one forward with one backward. ``senders``
    default to every head (labels as `path_patching`'s, ``"embed"``, ``"L3.mlp"`` too); ``receivers`` to every
    layer's ``"L<l>.attn"`` and ``"L<l>.mlp"`` and ``"final"`` (per-head ``"L5.H2.q"``, ``"L5.KV1.k"``, ``"L5.KV1.v"``
    cost one more forward and backward per ``patches_per_forward`` of them). No ``.grad`` is left on any parameter.
    Example::

        edges = edge_attribution_patching(model, clean, corrupted, metric, senders=["embed", "L0.H1", "L0.mlp"])
        edges.top(3)  # [("L0.H1 -> L4.attn", 0.8), ...]
    """
    from .residual import check_additive

    check_additive(model)
    chosen_senders = parse_senders(model, senders)
    chosen_receivers = parse_receivers(model, receivers if receivers is not None else _every_receiver(model))
    _check_receivers(model, chosen_receivers)
    per_layer = [node for node in chosen_receivers if node.kind not in HEAD_PARTS]
    per_head = [node for node in chosen_receivers if node.kind in HEAD_PARTS]
    with activation_gradients(model, "edge_attribution_patching"):
        pair, mask = sender_pair(model, clean_prompts, corrupted_prompts, positions)
        changes, clean_metric, corrupted_metric = _changes(model, pair, mask, chosen_senders, metric, remote)
        received = _layer_gradients(model, pair, metric, per_layer, remote) if per_layer else {}
        if per_head:
            received |= _head_gradients(model, pair, metric, per_head, patches_per_forward, remote, progress)
    edges = torch.tensor([[reaches(sender, receiver, model) for receiver in chosen_receivers]
                          for sender in chosen_senders])
    scores = torch.stack([torch.stack([(change * received[node].to(change)).sum() for node in chosen_receivers])
                          for change in changes])
    return EdgeAttribution(scores.float().cpu() * edges, edges, tuple(node.label for node in chosen_senders),
                           tuple(node.label for node in chosen_receivers), clean_metric, corrupted_metric)


def _layer_gradients(model: StandardizedTransformer, pair: _Pair, metric: Callable[[torch.Tensor], torch.Tensor],
                     receivers: list[Node], remote: bool | str) -> dict[Node, torch.Tensor]:
    """The gradient at what each per-layer receiver reads, from one backward of the corrupted run."""
    reads, alignment = _gradient_reads(model, receivers), _alignment(pair.corrupted_layout)
    with model.trace(pair.corrupted, remote=remote):  # the block names plain values only (a remote request)
        model.track_activation_gradients()
        nodes = [read_for_gradient(model, read) for read in reads]
        value = _metric(metric, model.logits, alignment)
        grads = save(node_gradients(value, nodes))
        value = save(value.detach())
    _metric_value(value, len(pair.corrupted_layout.lengths), "the corrupted run", pair.corrupted_layout)
    by_read = dict(zip(reads, grads))
    return {node: _received(model, node, by_read) for node in receivers}


def _head_gradients(model: StandardizedTransformer, pair: _Pair, metric: Callable[[torch.Tensor], torch.Tensor],
                    receivers: list[Node], patches_per_forward: int, remote: bool | str, progress: bool
                    ) -> dict[Node, torch.Tensor]:
    """The gradient at what each head's queries (or a key/value head's keys or values) read: per receiver, a copy
    of the corrupted rows whose residual entering the layer is the first copy's (detached) plus a zero that
    requires grad, and whose queries (keys, values) at that head the first copy takes; one backward per forward."""
    batch = len(pair.corrupted_layout.lengths)
    alignment = _alignment(pair.corrupted_layout)
    step = max(1, patches_per_forward)
    starts: Iterable[int] = range(0, len(receivers), step)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="edge attribution (per-head receivers)", unit="forward")
    found: dict[Node, torch.Tensor] = {}
    for start in starts:
        chunk = receivers[start:start + step]
        plan = [(int(node.layer or 0), HEAD_PARTS[node.kind], int(node.head or 0)) for node in chunk]
        with model.trace(_repeated(pair.corrupted, len(chunk) + 1), remote=remote):
            grads = save(shadow_gradients(model, plan, batch, metric, alignment))
        found |= dict(zip(chunk, grads))
    return found


def shadow_gradients(model: Any, plan: list[tuple[int, str, int]], batch: int, metric: Any, alignment: Any) -> list:
    """Inside a trace over 1 + len(plan) blocks of the corrupted rows: block i + 1 feeds receiver i (layer, accessor,
    head) of block 0; the gradient of block 0's metric at each receiver's residual, (batch, seq, hidden)."""
    zeros = {}
    for layer in sorted({at for at, _, _ in plan}):
        stream = model.layers_input[layer]
        patched = stream.clone()
        for index, (at, _, _) in enumerate(plan):
            if at == layer:
                zeros[index] = torch.zeros_like(stream[:batch]).requires_grad_(True)
                patched[(index + 1) * batch:(index + 2) * batch] = stream[:batch].detach() + zeros[index]
        model.layers_input[layer] = patched
        for accessor in ("queries", "keys", "values"):
            wanted = [(index, head) for index, (at, name, head) in enumerate(plan) if at == layer and name == accessor]
            if wanted:
                target = getattr(model, accessor)
                value = target[layer]
                taken = value.clone()
                for index, head in wanted:
                    taken[:batch, head] = value[(index + 1) * batch:(index + 2) * batch, head]
                target[layer] = taken
    value = _metric(metric, model.logits[:batch], alignment)
    return node_gradients(value, [zeros[index] for index in range(len(plan))])


def _every_receiver(model: StandardizedTransformer) -> list[str]:
    """Every layer's attention and MLP input (where the layer has that sublayer), and the final residual."""
    from .paths import is_available

    return [f"L{layer}.{part}" for layer in range(model.num_layers) for part in ("attn", "mlp")
            if is_available(model, layer, part)] + ["final"]


def _check_receivers(model: StandardizedTransformer, receivers: list[Node]) -> None:
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
