"""Path patching: a sender's effect on the metric only through chosen receivers.

The corrupted run, with each receiver reading the residual stream it reads there plus the sender's change
(clean minus corrupted, `nnterp.toolkit.analysis.paths`): every other path from the sender is left at the corrupted
run, and what the receivers compute from there on runs freely. With the receivers at one layer this is Wang et al.'s
path patching (IOI, 2022), from the corrupted run towards the clean one as `activation_patching` goes: swap the
prompts for theirs (the clean run patched with the corrupted sender). With every reader of the stream after the
sender as receivers (the rest of its layer and ``"L<next>.resid"``, or ``"final"`` after the last layer), it is
activation patching of the sender at every position; with no receiver, the corrupted run.

A receiver that reads only part of what a layer reads (an attention's input, one head's queries, one key/value
head's keys or values, an MLP's input) is patched from a second copy of the corrupted rows run in the same batch,
whose residual entering that layer is the first copy's plus the sender's change: the receiver's input is copied
from there, so it went through the layer's own norm and projections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from nnsight import save

from ...errors import NonFiniteValue, PositionAlignmentError
from .patching import (
    DEFAULT_PATCHES_PER_FORWARD,
    _alignment,
    _metric,
    _metric_value,
    _pair,
    _Pair,
    _repeated,
)
from .paths import (
    Node,
    parallel_blocks,
    parse_receivers,
    parse_senders,
    reaches,
    run_reads,
    sender_changes,
    sender_reads,
)

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

PARTIAL = ("attn", "q", "k", "v", "mlp")  # receivers reading part of what their layer reads: a second copy


@dataclass(frozen=True)
class PathPatchingResult:
    """``values`` (senders,): the metric of the corrupted run with each sender patched through the receivers.
    ``senders`` and ``receivers`` are their labels."""

    values: torch.Tensor
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float

    def normalized(self) -> torch.Tensor:
        """0 where the path leaves the corrupted metric, 1 where it restores the clean one."""
        span = self.clean_metric - self.corrupted_metric
        if span == 0:
            raise NonFiniteValue("normalized() divides by clean_metric - corrupted_metric = 0: the metric does not "
                                 "tell the clean run from the corrupted one; read .values instead")
        return (self.values - self.corrupted_metric) / span

    def by_head(self, num_layers: int, num_heads: int) -> torch.Tensor:
        """``values`` as (layers, heads), where the senders are every head (the default)."""
        return self.values.view(num_layers, num_heads)


class Plan:
    """What one forward patches, as plain values (it ships with a remote request, so a plain class, which needs no
    dataclasses on the server): the layers whose residual input is set (a resid receiver, or a second copy to run),
    per layer the receivers there, and per copy and layer whether its sender reaches the residual entering the layer
    (``before``) and whether it is that layer's attention or one of its heads (``mid``)."""

    def __init__(self, *, copies: int, shadow: bool, input_layers: tuple[int, ...], resid: frozenset, attn: frozenset,
                 heads: dict, mlp: frozenset, final: bool, last: int, sequential: bool, before: dict, mid: dict):
        self.copies, self.shadow, self.input_layers = copies, shadow, input_layers
        self.resid, self.attn, self.heads, self.mlp = resid, attn, heads, mlp  # heads: layer -> ((accessor, head),)
        self.final, self.last = final, last
        self.sequential = sequential  # the MLP reads the attention's output (not the layer's input: parallel blocks)
        self.before, self.mid = before, mid


def path_patching(model: StandardizedTransformer, clean_prompts: str | Sequence[str],
                  corrupted_prompts: str | Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                  receivers: Sequence[str], senders: Sequence[str] | None = None,
                  positions: int | Sequence[int] | None = None,
                  patches_per_forward: int = DEFAULT_PATCHES_PER_FORWARD, remote: bool | str = False,
                  progress: bool = True) -> PathPatchingResult:
    """The metric of the corrupted run with each sender's change reaching only ``receivers`` (labels, see
    `nnterp.toolkit.analysis.paths`: ``"L5.H2.q"``, ``"L5.KV1.k"``, ``"L5.attn"``, ``"L5.mlp"``, ``"L5.resid"``,
    ``"final"``). ``senders`` default to every head; a sender reaches the receivers reading after it writes.
    Clean and corrupted prompts pair up with equal token lengths (the change is taken at every position, or at
    ``positions`` only). Works on grouped-query attention: keys and values are received per key/value head.
    Example::

        result = path_patching(model, clean, corrupted, metric, receivers=["L20.H3.q", "L20.H5.q"])
        result.normalized().view(model.num_layers, -1)  # (layers, heads): each head through those queries

    ``progress`` shows a progress bar over the patched forwards (tqdm; ``progress=False`` to silence it).
    """
    from .residual import check_additive

    check_additive(model)
    chosen_senders, chosen_receivers = parse_senders(model, senders), parse_receivers(model, receivers)
    pair, mask = sender_pair(model, clean_prompts, corrupted_prompts, positions)
    batch = len(pair.clean_layout.lengths)
    changes, clean_metric, corrupted_metric = _changes(model, pair, mask, chosen_senders, metric, remote)
    alignment = _alignment(pair.corrupted_layout)
    values: list[float] = []
    step = max(1, patches_per_forward)
    starts: Iterable[int] = range(0, len(chosen_senders), step)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="path patching", unit="forward")
    for start in starts:
        chunk = chosen_senders[start:start + step]
        plan = _plan(model, chunk, chosen_receivers)
        width = 2 if plan.shadow else 1  # (the block names plain values only: they ship with a remote request)
        chunk_changes, blocks = changes[start:start + step], len(chunk) * width
        with torch.no_grad(), model.trace(_repeated(pair.corrupted, blocks), remote=remote):
            patch_paths(model, plan, chunk_changes, batch)
            logits = model.logits
            metrics = save([_metric(metric, logits[block * batch:(block + 1) * batch], alignment)
                            for block in range(0, blocks, width)])
        values += [_metric_value(value.detach().cpu(), batch, f"the corrupted run with {node.label} patched",
                                 pair.corrupted_layout) for node, value in zip(chunk, metrics)]
    return PathPatchingResult(torch.tensor(values), tuple(node.label for node in chosen_senders),
                              tuple(node.label for node in chosen_receivers), clean_metric, corrupted_metric)


def sender_pair(model: StandardizedTransformer, clean_prompts: Any, corrupted_prompts: Any,
                positions: int | Sequence[int] | None) -> tuple[_Pair, torch.Tensor]:
    """The prompt pair, and (batch, seq) True where each sender's change is taken: each prompt's ``positions``, or
    every one of its tokens (None; prompts of different lengths too), never the padding or a learned prefix."""
    pair = _pair(model, clean_prompts, corrupted_prompts, -1 if positions is None else positions)
    if not torch.equal(pair.clean_layout.lengths, pair.corrupted_layout.lengths):
        lengths = pair.clean_layout.lengths.tolist(), pair.corrupted_layout.lengths.tolist()
        raise PositionAlignmentError(f"path patching takes each sender's change at every position, so each clean "
                                     f"prompt and its corrupted partner need equal token lengths, got {lengths[0]} "
                                     f"and {lengths[1]}: reword them to tokenize alike")
    layout, prefix = pair.corrupted_layout, model.num_prefix_positions
    columns = torch.arange(layout.width)
    if positions is None:
        chosen = (columns >= layout.starts[:, None]) & (columns < (layout.starts + layout.lengths)[:, None])
    else:
        chosen = (columns == pair.corrupted_columns.T[..., None]).any(dim=1)
    return pair, torch.cat([torch.zeros(len(layout.lengths), prefix, dtype=torch.bool), chosen], dim=1)


def _changes(model: StandardizedTransformer, pair: _Pair, mask: torch.Tensor, senders: list[Node], metric: Any,
             remote: bool | str) -> tuple[list[torch.Tensor], float, float]:
    """Each sender's change (clean - corrupted, where ``mask``), and the clean and corrupted metrics."""
    batch = len(pair.clean_layout.lengths)
    reads = sender_reads(senders)
    clean, clean_value = run_reads(model, pair.clean, reads, metric, _alignment(pair.clean_layout), remote)
    corrupted, corrupted_value = run_reads(model, pair.corrupted, reads, metric, _alignment(pair.corrupted_layout),
                                           remote)
    clean_metric = _metric_value(clean_value, batch, "the clean run", pair.clean_layout)
    corrupted_metric = _metric_value(corrupted_value, batch, "the corrupted run", pair.corrupted_layout)
    return sender_changes(model, senders, clean, corrupted, mask), clean_metric, corrupted_metric


def _plan(model: StandardizedTransformer, senders: list[Node], receivers: list[Node]) -> Plan:
    """The receivers of one forward, and per copy what its sender reaches."""
    def layers(*kinds: str) -> frozenset:
        return frozenset(node.layer for node in receivers if node.kind in kinds)

    shadow_layers = layers(*PARTIAL)
    heads: dict[int, list] = {}
    for node in receivers:
        if node.kind in ("q", "k", "v"):
            heads.setdefault(node.layer, []).append(({"q": "queries", "k": "keys", "v": "values"}[node.kind],  # type: ignore
                                                     node.head))
    resid = layers("resid")
    before = {(copy, layer): reaches(sender, Node("resid", layer), model) for copy, sender in enumerate(senders)
              for layer in resid | shadow_layers}
    mid = {(copy, layer): sender.kind in ("attn", "head") and sender.layer == layer
           for copy, sender in enumerate(senders) for layer in layers("mlp")}
    return Plan(copies=len(senders), shadow=bool(shadow_layers), input_layers=tuple(sorted(resid | shadow_layers)),
                resid=resid, attn=layers("attn"), heads={layer: tuple(found) for layer, found in heads.items()},
                mlp=layers("mlp"), final=any(node.kind == "final" for node in receivers), last=model.num_layers - 1,
                sequential=not parallel_blocks(model), before=before, mid=mid)


def patch_paths(model: Any, plan: Plan, changes: list[torch.Tensor], batch: int) -> None:
    """Inside a trace over ``plan.copies`` blocks of the corrupted rows (two per sender with a second copy, the
    first measured): each receiver's input moved by its sender's change, layer by layer in run order."""
    width = 2 if plan.shadow else 1
    for layer in plan.input_layers:
        stream = model.layers_input[layer]
        patched = stream.clone()
        for copy, change in enumerate(changes):
            base = stream[copy * width * batch:(copy * width + 1) * batch]
            moved = base + change.to(base) if plan.before[(copy, layer)] else base
            if layer in plan.resid:
                patched[copy * width * batch:(copy * width + 1) * batch] = moved
            if plan.shadow:
                patched[(copy * width + 1) * batch:(copy * width + 2) * batch] = moved
        model.layers_input[layer] = patched
        if layer in plan.attn:
            model.attentions_input[layer] = _from_shadow(model.attentions_input[layer], plan.copies, batch, None)
        for accessor, head in plan.heads.get(layer, ()):
            target = getattr(model, accessor)
            target[layer] = _from_shadow(target[layer], plan.copies, batch, head)
        if layer in plan.mlp:
            _shadow_middle(model, plan, changes, layer, batch)
            model.mlps_input[layer] = _from_shadow(model.mlps_input[layer], plan.copies, batch, None)
    if plan.final:
        stream = model.layers_output[plan.last]
        patched = stream.clone()
        for copy, change in enumerate(changes):
            rows = slice(copy * width * batch, (copy * width + 1) * batch)
            patched[rows] = stream[rows] + change.to(stream)
        model.layers_output[plan.last] = patched


def _shadow_middle(model: Any, plan: Plan, changes: list[torch.Tensor], layer: int, batch: int) -> None:
    """Inside a trace: each second copy's attention output set to the first copy's (plus the sender's change where
    the sender is this attention or one of its heads), so its MLP reads the first copy's stream moved by the
    change. Blocks running attention and MLP on the same input need nothing: their MLP reads the layer's input."""
    if not plan.sequential:
        return
    output = model.attentions_output[layer]
    patched = output.clone()
    for copy, change in enumerate(changes):
        base = output[2 * copy * batch:(2 * copy + 1) * batch]
        patched[(2 * copy + 1) * batch:(2 * copy + 2) * batch] = base + change.to(base) if plan.mid[(copy, layer)] \
            else base
    model.attentions_output[layer] = patched


def _from_shadow(value: torch.Tensor, copies: int, batch: int, head: int | None) -> torch.Tensor:
    """``value`` with each first copy's rows (at one head: axis 1, (batch, heads, seq, head_dim)) taken from its
    second copy."""
    patched = value.clone()
    for copy in range(copies):
        rows, shadow = slice(2 * copy * batch, (2 * copy + 1) * batch), slice((2 * copy + 1) * batch,
                                                                             (2 * copy + 2) * batch)
        if head is None:
            patched[rows] = value[shadow]
        else:
            patched[rows, head] = value[shadow, head]
    return patched
