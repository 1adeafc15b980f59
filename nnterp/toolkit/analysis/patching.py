"""Activation patching and its gradient estimate (attribution patching), over layers x positions.

``activation_patching`` runs the corrupted prompts with one accessor value (a layer, a position, a head for
``heads_output``, ``queries``, ``keys``, ``values`` and ``attention_probabilities``) taken from the clean
run, and records the metric of each patched run: several patches per
forward, each on its own copy of the corrupted rows in one batch, patched through the accessor's
(batch, seq, ...) view, so layouts whose native tensors do not lead with the batch (streams first, as Gemma
3n's AltUp; sequence first) patch the right rows. ``attribution_patching`` estimates the same grid from one
clean forward, one corrupted forward and one backward: ``(clean - corrupted) . d metric / d activation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from nnsight import save

from ...core.accessors import select_layers, served_as_copies
from ...errors import (
    MetricError,
    NonFiniteValue,
    PositionAlignmentError,
    PromptError,
    SandboxBackwardUnsupported,
    ToolkitInputError,
)
from ...utils.gradients import activation_gradients
from ...utils.positions import TokenLayout, position_list

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

# The accessors served (batch, seq, ...), and those served (batch, heads, seq, ...): the head before the position (a
# query position for attention_probabilities, whose whole row over the keys is patched).
SEQUENCE_SECOND = ("layers_output", "layers_input", "attentions_output", "mlps_output", "heads_output")
HEAD_FIRST = ("queries", "keys", "values", "attention_probabilities")
PATCHABLE = SEQUENCE_SECOND + HEAD_FIRST
PER_HEAD = ("heads_output",) + HEAD_FIRST  # patched per head: a (layers, heads, positions) grid
# The kind of node (nnterp.toolkit.analysis.paths) whose availability a per-head accessor needs at a layer.
_NODE_KIND = {"heads_output": "head", "queries": "q", "keys": "k", "values": "v", "attention_probabilities": "q"}
DEFAULT_PATCHES_PER_FORWARD = 32


@dataclass(frozen=True)
class PatchingResult:
    """``values`` (layers, positions), or (layers, heads, positions) for the accessors patched per head
    (``heads_output``, ``queries``, ``keys``, ``values``, ``attention_probabilities``; key/value heads for keys and
    values): the metric of each
    patched run (activation patching) or its first-order estimate (attribution patching, as a change from
    the corrupted metric added to it). ``positions`` labels the columns (counted from the start where every
    prompt has the same length, else as given: negative ones from each prompt's end); ``tokens`` are those of
    the first clean prompt there."""

    values: torch.Tensor
    accessor: str
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    tokens: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float

    def normalized(self) -> torch.Tensor:
        """0 where the patch leaves the corrupted metric, 1 where it restores the clean one; a NonFiniteValue
        where the two metrics are equal (the normaliser, their difference, is 0)."""
        span = self.clean_metric - self.corrupted_metric
        if span == 0 or not math.isfinite(span):
            raise NonFiniteValue(f"normalized() divides by clean_metric - corrupted_metric = {self.clean_metric} - "
                                 f"{self.corrupted_metric} = {span}: the metric does not tell the clean run from the "
                                 "corrupted one; choose a metric (or prompts) on which they differ, or read .values "
                                 "(plot_patching(result, normalized=False))")
        return (self.values - self.corrupted_metric) / span


@dataclass(frozen=True)
class _Pair:
    """Clean and corrupted inputs (padded as `nnterp.toolkit.activations._padded` pads), the positions with their
    labels, and per position the column of each prompt's token in the clean and the corrupted batch, (positions, batch),
    before any learned prefix positions."""

    clean: dict
    corrupted: dict
    clean_layout: TokenLayout
    corrupted_layout: TokenLayout
    positions: tuple[int, ...]
    tokens: tuple[str, ...]
    clean_columns: torch.Tensor
    corrupted_columns: torch.Tensor


def _pair(model: StandardizedTransformer, clean_prompts: Any, corrupted_prompts: Any,
          positions: int | Sequence[int] | None) -> _Pair:
    from ..activations import _padded

    clean, clean_layout = _padded(model, clean_prompts)
    corrupted, corrupted_layout = _padded(model, corrupted_prompts)
    if clean_layout is None or corrupted_layout is None:
        raise ToolkitInputError("activation patching needs prompts as strings, tokenized by the model's tokenizer")
    if clean_layout.lengths.shape != corrupted_layout.lengths.shape:
        raise PromptError(f"{len(clean_layout.lengths)} clean prompts and {len(corrupted_layout.lengths)} corrupted "
                          "prompts: they pair up one to one, pass as many of each")
    chosen = _chosen_positions(positions, clean_layout, corrupted_layout)
    same = torch.equal(clean_layout.lengths, corrupted_layout.lengths) and not clean_layout.padded
    labels = tuple(position % clean_layout.shortest for position in chosen) if same else tuple(chosen)
    clean_columns = torch.stack([clean_layout.columns(position) for position in chosen])
    ids = clean["input_ids"][0]
    tokens = tuple(model.tokenizer.decode([int(ids[column])]) for column in clean_columns[:, 0])
    return _Pair(clean, corrupted, clean_layout, corrupted_layout, labels, tokens, clean_columns,
                 torch.stack([corrupted_layout.columns(position) for position in chosen]))


def _chosen_positions(positions: int | Sequence[int] | None, clean: TokenLayout, corrupted: TokenLayout
                      ) -> list[int]:
    """The positions to patch, each inside every prompt; refused where a clean and a corrupted prompt of
    different lengths would not agree on which token a position names (a position counted from the start)."""
    aligned = torch.equal(clean.lengths, corrupted.lengths)
    if positions is None:
        if not aligned:
            raise _misaligned(clean, corrupted, "every position (positions=None)")
        if clean.padded:
            raise PromptError(f"prompts of different token lengths ({clean.lengths.tolist()}) have no one list of "
                              "every position: pass explicit positions=, counted in each prompt's own tokens "
                              "(negative from its last token)")
        return list(range(clean.shortest))
    chosen = [clean.check(position, "positions") for position in position_list(positions, "positions")]
    for position in chosen:
        corrupted.check(position, "positions")
    from_start = [position for position in chosen if position >= 0]
    if not aligned and from_start:
        raise _misaligned(clean, corrupted, f"positions {from_start}, counted from the start")
    return chosen


def _misaligned(clean: TokenLayout, corrupted: TokenLayout, what: str) -> PositionAlignmentError:
    return PositionAlignmentError(
        f"clean and corrupted prompts must have equal token lengths to patch {what}, got {clean.lengths.tolist()} "
        f"and {corrupted.lengths.tolist()}: a position counted from the start names different tokens in prompts of "
        "different lengths. Reword them to tokenize alike, or patch positions counted from each prompt's end only "
        "(positions=-1, or [-3, -2, -1])")


def _check_accessor(model: StandardizedTransformer, accessor: str, patchable: tuple[str, ...] = PATCHABLE) -> None:
    if accessor not in patchable:
        raise ToolkitInputError(f"accessor {accessor!r} cannot be patched here; pass one of {list(patchable)}")


def _chosen_layers(model: StandardizedTransformer, accessor: str, layers: int | Iterable[int] | None) -> list[int]:
    """The layers to patch. A per-head accessor needs heads at each (HeadsUnavailable naming the layers that have
    them) and attention_probabilities needs the model loaded with them (AttentionProbabilitiesUnavailable), both
    refused here, on the client, before any forward; ``layers=None`` then means every layer that has them."""
    if accessor not in PER_HEAD:
        return select_layers(layers, model.num_layers)
    from .paths import check_available, is_available

    probabilities = model.attention_probabilities if accessor == "attention_probabilities" else None
    if probabilities is not None and not probabilities.enabled:
        probabilities._location(0)  # raises AttentionProbabilitiesUnavailable: the model was loaded without them
    kind = _NODE_KIND[accessor]
    if layers is None:
        chosen = [layer for layer in range(model.num_layers) if is_available(model, layer, kind) and
                  (probabilities is None or probabilities.locations[layer] is not None)]
        chosen = chosen or [0]  # none has them: refused below, naming what there is
    else:
        chosen = select_layers(layers, model.num_layers)
    for layer in chosen:
        check_available(model, layer, kind)
        if probabilities is not None:
            probabilities._location(layer)
    return chosen


def _check_keys_align(accessor: str, pair: _Pair) -> None:
    """attention_probabilities patches a query position's whole row over the keys, so a clean prompt and its
    corrupted one must have their keys at the same columns: a PositionAlignmentError unless each pair has one
    token length (then both batches pad them alike)."""
    if accessor == "attention_probabilities" and not torch.equal(pair.clean_layout.lengths,
                                                                 pair.corrupted_layout.lengths):
        raise PositionAlignmentError(
            "attention_probabilities patches a head's whole row of probabilities over the keys, which needs each "
            "clean prompt and its corrupted prompt to have equal token lengths (the keys of one then sit where "
            f"those of the other do), got {pair.clean_layout.lengths.tolist()} and "
            f"{pair.corrupted_layout.lengths.tolist()}: reword the prompts to tokenize alike, or patch "
            "accessor='queries' (one position each), which prompts of different lengths allow")


def read_node(model: Any, node: tuple[str, int | None]) -> Any:
    """Inside a trace: a node's value, an accessor at a layer (``(kind, layer)``), or the token embeddings
    (``(kind, None)``)."""
    kind, layer = node
    return model.token_embeddings if layer is None else getattr(model, kind)[layer]


def read_for_gradient(model: Any, node: tuple[str, int | None]) -> Any:
    """Inside a trace: a node's value, written back so the model computes on from that tensor itself (a value
    served as a view or a sum of the native tensors, as streams first or scaled or summed contributions are, is
    otherwise not in the metric's graph, and its gradient never arrives: nnsight's OutOfOrderError)."""
    kind, layer = node
    value = read_node(model, node)
    if layer is None:
        model.token_embeddings = value
    else:
        getattr(model, kind)[layer] = value
    return value


def _alignment(layout: TokenLayout) -> tuple[torch.Tensor, torch.Tensor] | None:
    """How `_metric` right-aligns the logits of a batch with this layout (None: no prompt is padded)."""
    return layout.right_aligned() if layout.padded else None


def _metric(metric: Callable[[torch.Tensor], Any], logits: torch.Tensor,
            alignment: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """Inside a trace: ``metric`` of (batch, seq, vocab) ``logits``, as a tensor. Where prompts have different
    lengths the metric sees them right-aligned: each prompt's tokens end at the last column, so ``-1`` is every
    prompt's last token, and the columns before a prompt's first token hold NaN (a metric reading one is caught)."""
    if alignment is not None:
        index, pads = alignment
        rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
        logits = logits[rows, index.to(logits.device)].masked_fill(pads.to(logits.device)[..., None], float("nan"))
    value = metric(logits)
    return value if isinstance(value, torch.Tensor) else torch.as_tensor(float(value))


def _metric_value(value: torch.Tensor, batch: int, where: str, layout: TokenLayout) -> float:
    """The metric of a run as one number, the mean of its per-prompt values; a MetricError unless it is a scalar
    or one number per prompt, a NonFiniteValue unless every number is finite."""
    if value.ndim != 0 and tuple(value.shape) != (batch,):
        raise MetricError(f"the metric returned shape {tuple(value.shape)} on {where} ({batch} prompts): expected a "
                          f"scalar or one number per prompt, shape ({batch},); reduce it in the metric, e.g. "
                          "lambda logits: logits[:, -1, paris] - logits[:, -1, rome]")
    if not bool(torch.isfinite(value).all()):
        padded = ("; the prompts have different token lengths, so the metric sees the logits right-aligned (-1 is "
                  "each prompt's last token) with NaN before each prompt's first token: read positions counted from "
                  "the end") if layout.padded else ""
        raise NonFiniteValue(f"the metric is {value.tolist()} on {where}: expected finite numbers{padded}")
    return float(value.detach().float().mean())


def check_gradients_served() -> None:
    """Inside a trace, before a backward: SandboxBackwardUnsupported where the block is served copies of the model's
    values (ndif's sandbox runner), since no gradient can come back to them."""
    if served_as_copies():
        raise SandboxBackwardUnsupported(
            "this request runs in NDIF's sandbox, which serves the traced block copies of the model's values, so no "
            "gradient can flow back to them: run the gradient feature here (remote=False) or as a trusted request")


def _cells(accessor: str, clean: dict[int, torch.Tensor], layers: list[int], count: int
           ) -> list[tuple[int, int | None, int]]:
    """Every (layer, head or None, index of the position) to patch, in grid order; the heads of a layer are those of
    its clean value (key/value heads for keys and values, fewer than the query heads with grouped-query attention)."""
    if accessor not in PER_HEAD:
        return [(layer, None, position) for layer in layers for position in range(count)]
    axis = 1 if accessor in HEAD_FIRST else 2
    return [(layer, head, position) for layer in layers for head in range(clean[layer].shape[axis])
            for position in range(count)]


Patch = tuple[int, "int | None", torch.Tensor, torch.Tensor]  # (copy, head or None, clean columns, corrupted columns)


def _plan(cells: list[tuple[int, int | None, int]], pair: _Pair, prefix: int) -> list[tuple[int, list[Patch]]]:
    """One forward's patches, cell k on the k-th copy of the corrupted batch: per layer in execution order,
    (copy, head or None, each prompt's clean column, its corrupted column)."""
    by_layer: dict[int, list[Patch]] = {}
    for copy, (layer, head, position) in enumerate(cells):
        by_layer.setdefault(layer, []).append((copy, head, prefix + pair.clean_columns[position],
                                               prefix + pair.corrupted_columns[position]))
    return sorted(by_layer.items())


def _patched(value: torch.Tensor, clean: torch.Tensor, patches: list, copies: int, head_first: bool = False
             ) -> torch.Tensor:
    """``value`` (copies * batch, seq, ...) with each patch's copy, at each prompt's column (and head), taken from
    ``clean`` (batch, seq, ...) at that prompt's clean column; with ``head_first`` both are (batch, heads, seq,
    ...) (queries, keys, values; attention probabilities, whose query row is patched whole)."""
    value = value.clone()
    rows = value.shape[0] // copies
    batch = torch.arange(rows, device=value.device)
    for copy, head, source, target in patches:
        source, target = source.to(value.device), target.to(value.device)
        if head is None:
            value[copy * rows + batch, target] = clean[batch, source].to(value)
        elif head_first:
            value[copy * rows + batch, head, target] = clean[batch, head, source].to(value)
        else:
            value[copy * rows + batch, target, head] = clean[batch, source, head].to(value)
    return value


def _set_positions(target: Any, layer: int, value: torch.Tensor, rows: torch.Tensor | None,
                   columns: torch.Tensor | None) -> None:
    """Inside a trace: accessor ``target``'s value at ``layer`` set to ``value`` at ``[rows, columns]`` (index
    tensors, broadcast together), or everywhere where ``rows`` is None, ``value`` broadcast to what it replaces."""
    patched = target[layer].clone()
    if rows is None:
        patched[...] = value.to(patched)
    else:
        patched[rows, columns] = value.to(patched)
    target[layer] = patched


def _repeated(inputs: dict, copies: int) -> dict:
    """The tokenized batch stacked ``copies`` times along the batch."""
    return {key: value.repeat(copies, *[1] * (value.dim() - 1)) for key, value in inputs.items()}


def activation_patching(model: StandardizedTransformer, clean_prompts: str | Sequence[str],
                        corrupted_prompts: str | Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                        accessor: str = "layers_output", layers: int | Iterable[int] | None = None,
                        positions: int | Sequence[int] | None = None,
                        patches_per_forward: int = DEFAULT_PATCHES_PER_FORWARD, remote: bool | str = False,
                        progress: bool = True) -> PatchingResult:
    """The metric of the corrupted run with each (layer, position) of ``accessor`` patched from the clean run.

    ``metric`` maps logits (batch, seq, vocab) to a scalar or one number per prompt, shape (batch,) (averaged);
    any other shape raises `MetricError`, a NaN or an infinity `NonFiniteValue`. Positions count each prompt's own
    tokens, negative ones from its last token, and default to every position (prompts of one length). Clean and
    corrupted prompts pair up; a pair of different token lengths can only be patched at positions counted from
    the end (`PositionAlignmentError` otherwise). Prompts of different lengths run right-padded, and the metric
    sees the logits right-aligned: each prompt's tokens end at the last column, so ``logits[:, -1]`` is every
    prompt's last token; the columns before a shorter prompt's first token hold NaN, so a metric reading them
    (a position counted from the start) raises `NonFiniteValue` instead of reading padding. Example::

        paris, rome = model.tokenizer(" Paris")["input_ids"][0], model.tokenizer(" Rome")["input_ids"][0]
        result = activation_patching(model, "The capital of France is", "The capital of Italy is",
                                     lambda logits: logits[:, -1, paris] - logits[:, -1, rome])
        result.normalized()  # (layers, positions): 1 where the patch restores the clean answer

    Per-head accessors give a (layers, heads, positions) grid: ``heads_output``; ``queries``, ``keys``, ``values``
    (what the attention function is handed; keys and values per key/value head, fewer than the query heads with
    grouped-query attention); ``attention_probabilities`` (a head's whole row over the keys at a query position,
    so each clean prompt and its corrupted one must have equal token lengths, `PositionAlignmentError` otherwise;
    the model loaded with ``enable_attention_probs=True``). Layers without heads (hybrid models) raise
    `HeadsUnavailable` before any forward; ``layers=None`` then means the layers that have them.

    ``progress`` shows a progress bar over the patched forwards (tqdm; ``progress=False`` to silence it).
    """
    from .cache import run_with_cache

    _check_accessor(model, accessor)
    chosen = _chosen_layers(model, accessor, layers)
    pair = _pair(model, clean_prompts, corrupted_prompts, positions)
    _check_keys_align(accessor, pair)
    batch = len(pair.clean_layout.lengths)
    cached = run_with_cache(model, dict(pair.clean), accessor, chosen, device=None, remote=remote)
    clean = {layer: cached[accessor, layer] for layer in chosen}  # plain tensors: shipped with a remote request
    clean_alignment, corrupted_alignment = _alignment(pair.clean_layout), _alignment(pair.corrupted_layout)
    with torch.no_grad(), model.trace(pair.clean, remote=remote):
        clean_value = save(_metric(metric, model.logits, clean_alignment))
    clean_metric = _metric_value(clean_value, batch, "the clean run", pair.clean_layout)
    with torch.no_grad(), model.trace(pair.corrupted, remote=remote):
        corrupted_value = save(_metric(metric, model.logits, corrupted_alignment))
    corrupted_metric = _metric_value(corrupted_value, batch, "the corrupted run", pair.corrupted_layout)
    cells = _cells(accessor, clean, chosen, len(pair.positions))
    head_first = accessor in HEAD_FIRST
    values: list[float] = []
    starts: Iterable[int] = range(0, len(cells), max(1, patches_per_forward))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="activation patching", unit="forward")
    for start in starts:
        # One invoke over copies of the corrupted batch, not one invoke per patch: nnsight splits invokes along
        # each native tensor's first axis, which is not the batch where streams lead (Gemma 3n) or the sequence
        # does (XLNet); the accessors serve (batch, seq, ...) views on every layout, so rows are patched there.
        chunk = cells[start:start + max(1, patches_per_forward)]
        copies, plan = len(chunk), _plan(chunk, pair, model.num_prefix_positions)
        corrupted = _repeated(pair.corrupted, copies)
        with torch.no_grad(), model.trace(corrupted, remote=remote):
            target = getattr(model, accessor)
            for layer, patches in plan:
                target[layer] = _patched(target[layer], clean[layer], patches, copies, head_first)
            logits = model.logits
            metrics = save([])  # saved whole: a remote run sends back saved values, not edits to client objects
            for copy in range(copies):
                metrics.append(_metric(metric, logits[copy * batch:(copy + 1) * batch], corrupted_alignment))
        values += [_metric_value(value.detach().cpu(), batch, _cell_name(cell, pair), pair.corrupted_layout)
                   for cell, value in zip(chunk, metrics)]
    grid = torch.tensor(values).view(len(chosen), -1, len(pair.positions))
    return PatchingResult(grid if accessor in PER_HEAD else grid.squeeze(1), accessor, tuple(chosen),
                          pair.positions, pair.tokens, clean_metric, corrupted_metric)


def _cell_name(cell: tuple[int, int | None, int], pair: _Pair) -> str:
    layer, head, position = cell
    return f"the corrupted run patched at layer {layer}{'' if head is None else f' head {head}'} position " \
           f"{pair.positions[position]}"


def attribution_patching(model: StandardizedTransformer, clean_prompts: str | Sequence[str],
                         corrupted_prompts: str | Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                         accessor: str = "layers_output", layers: int | Iterable[int] | None = None,
                         positions: int | Sequence[int] | None = None, remote: bool | str = False
                         ) -> PatchingResult:
    """`activation_patching`'s grid estimated to first order: corrupted metric + (clean - corrupted) . gradient,
    from one clean forward, one corrupted forward and one backward (of the metric averaged over prompts).

    Prompts, positions, accessors (per-head ones included) and the metric as for `activation_patching`: positions
    count each prompt's own tokens, and the metric sees right-aligned logits (``-1`` is every prompt's last token).
    A per-head cell sums over what the head holds at that position: its head_dim, or its row over the keys."""
    _check_accessor(model, accessor)
    with activation_gradients(model, "attribution_patching"):
        return _attribution_grid(model, clean_prompts, corrupted_prompts, metric, accessor, layers, positions, remote)


def _attribution_grid(model: StandardizedTransformer, clean_prompts: Any, corrupted_prompts: Any,
                      metric: Callable[[torch.Tensor], torch.Tensor], accessor: str, layers: Any, positions: Any,
                      remote: bool | str) -> PatchingResult:
    """attribution_patching's body, in grad mode with the parameters frozen (nnterp.utils.gradients)."""
    chosen = _chosen_layers(model, accessor, layers)
    pair = _pair(model, clean_prompts, corrupted_prompts, positions)
    _check_keys_align(accessor, pair)
    in_order = sorted(set(chosen))
    batch = len(pair.clean_layout.lengths)
    clean_alignment, corrupted_alignment = _alignment(pair.clean_layout), _alignment(pair.corrupted_layout)
    with torch.no_grad(), model.trace(pair.clean, remote=remote):
        clean = save([getattr(model, accessor)[layer] for layer in in_order])
        clean_value = save(_metric(metric, model.logits, clean_alignment))
    clean_metric = _metric_value(clean_value, batch, "the clean run", pair.clean_layout)
    # Each value is read for its gradient (`read_for_gradient`: written back, so that it is in the metric's graph).
    # No comment line (nor statement over several lines) above the backward inside the block: a remote request ships
    # the block unparsed (ast.unparse drops comments, joins lines), and nnsight finds `with ....backward():` by its
    # line number.
    with model.trace(pair.corrupted, remote=remote):
        model.track_activation_gradients()
        corrupted = [read_for_gradient(model, (accessor, layer)) for layer in in_order]
        saved = save([value.detach() for value in corrupted])
        corrupted_value = _metric(metric, model.logits, corrupted_alignment)
        mean = corrupted_value.float().mean()
        check_gradients_served()
        with mean.backward():
            grads = save([value.grad for value in reversed(corrupted)][::-1])  # gradients arrive last layer first
        corrupted_value = save(corrupted_value.detach())
    corrupted_metric = _metric_value(corrupted_value, batch, "the corrupted run", pair.corrupted_layout)
    prefix = model.num_prefix_positions
    clean_columns, corrupted_columns = (prefix + pair.clean_columns).T, (prefix + pair.corrupted_columns).T
    by_layer = {}
    for layer, clean_value, corrupted_value, grad in zip(in_order, clean, saved, grads):
        if accessor in HEAD_FIRST:  # (batch, heads, seq, ...) -> (batch, seq, heads, ...), as heads_output is served
            clean_value, corrupted_value, grad = (tensor.transpose(1, 2) for tensor in (clean_value, corrupted_value,
                                                                                         grad))
        # each prompt's (positions, [heads,] ...) -> summed over the batch and every axis after the position (or
        # the head): the hidden axis, and the streams of multi-stream models -> (positions[, heads])
        rows, at = torch.arange(batch, device=grad.device)[:, None], corrupted_columns.to(grad.device)
        change = (clean_value[rows, clean_columns.to(grad.device)] - corrupted_value[rows, at]) * grad[rows, at]
        change = change.sum(dim=0)
        by_layer[layer] = change.flatten(2).sum(dim=-1).T if accessor in PER_HEAD else \
            change.flatten(1).sum(dim=-1)
    grid = torch.stack([by_layer[layer] for layer in chosen]).detach().float().cpu() + corrupted_metric
    _check_finite(grid, chosen, pair.positions)
    return PatchingResult(grid, accessor, tuple(chosen), pair.positions, pair.tokens, clean_metric,
                          corrupted_metric)


def _check_finite(grid: torch.Tensor, layers: list[int], positions: tuple[int, ...]) -> None:
    """A NonFiniteValue naming the first cell of an attribution grid that is NaN or infinite."""
    bad = (~torch.isfinite(grid)).nonzero()
    if len(bad):
        cell = bad[0].tolist()
        head = f" head {cell[1]}" if grid.dim() == 3 else ""
        raise NonFiniteValue(f"the attribution estimate is {grid[tuple(cell)].item()} at layer {layers[cell[0]]}"
                             f"{head} position {positions[cell[-1]]} ({len(bad)} cells not finite): a gradient of the "
                             "metric or an activation there is NaN or infinite; expected finite numbers")
