"""Activation patching and its gradient estimate (attribution patching), over layers x positions.

``activation_patching`` runs the corrupted prompts with one accessor value (a layer, a position, a head for
``heads_output``) taken from the clean run, and records the metric of each patched run: several patches per
forward, each on its own copy of the corrupted rows in one batch, patched through the accessor's
(batch, seq, ...) view, so layouts whose native tensors do not lead with the batch (streams first, as Gemma
3n's AltUp; sequence first) patch the right rows. ``attribution_patching`` estimates the same grid from one
clean forward, one corrupted forward and one backward: ``(clean - corrupted) . d metric / d activation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch
from nnsight import save

from ..accessors import select_layers
from ..errors import PromptError, ToolkitInputError

if TYPE_CHECKING:
    from ..standardized import StandardizedTransformer

PATCHABLE = ("layers_output", "layers_input", "attentions_output", "mlps_output", "heads_output")
DEFAULT_PATCHES_PER_FORWARD = 32


@dataclass(frozen=True)
class PatchingResult:
    """``values`` (layers, positions), or (layers, heads, positions) for ``heads_output``: the metric of each
    patched run (activation patching) or its first-order estimate (attribution patching, as a change from
    the corrupted metric added to it). ``tokens`` labels the positions (of the first clean prompt)."""

    values: torch.Tensor
    accessor: str
    layers: tuple[int, ...]
    positions: tuple[int, ...]
    tokens: tuple[str, ...]
    clean_metric: float
    corrupted_metric: float

    def normalized(self) -> torch.Tensor:
        """0 where the patch leaves the corrupted metric, 1 where it restores the clean one."""
        return (self.values - self.corrupted_metric) / (self.clean_metric - self.corrupted_metric)


@dataclass(frozen=True)
class _Pair:
    """Clean and corrupted inputs, right-padded, with the positions and their token labels."""

    clean: dict
    corrupted: dict
    positions: tuple[int, ...]
    tokens: tuple[str, ...]


def _pair(model: StandardizedTransformer, clean_prompts: Any, corrupted_prompts: Any,
          positions: int | Sequence[int] | None) -> _Pair:
    from ..activations import _padded

    clean, clean_lengths, _ = _padded(model, clean_prompts)
    corrupted, corrupted_lengths, _ = _padded(model, corrupted_prompts)
    if clean_lengths is None or corrupted_lengths is None:
        raise ToolkitInputError("activation patching needs prompts as strings, tokenized by the model's tokenizer")
    if clean_lengths.shape != corrupted_lengths.shape or not torch.equal(clean_lengths, corrupted_lengths):
        raise PromptError(f"clean and corrupted prompts must pair up with equal token lengths, got "
                          f"{clean_lengths.tolist()} and {corrupted_lengths.tolist()}: reword them to tokenize alike")
    seq = int(clean_lengths.min())
    if positions is None:
        if not torch.all(clean_lengths == seq):
            raise PromptError(f"prompts of different token lengths ({clean_lengths.tolist()}): pass explicit "
                              "positions=, counted from the start of each prompt")
        chosen = list(range(seq))
    else:
        chosen = [positions] if isinstance(positions, int) else list(positions)
        if any(not -seq <= p < seq for p in chosen):
            raise ToolkitInputError(f"positions {chosen} fall outside the shortest prompt ({seq} tokens)")
        chosen = [p % seq for p in chosen]
    ids = clean["input_ids"][0].tolist()
    tokens = tuple(model.tokenizer.decode([ids[p]]) for p in chosen)
    return _Pair(clean, corrupted, tuple(chosen), tokens)


def _check_accessor(model: StandardizedTransformer, accessor: str) -> None:
    if accessor not in PATCHABLE:
        raise ToolkitInputError(f"accessor {accessor!r} cannot be patched here; pass one of {list(PATCHABLE)}")


def _scalar(metric: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
    """The metric of a run as one number (averaged over prompts when it gives one per prompt)."""
    value = metric(logits)
    return value.float().mean() if isinstance(value, torch.Tensor) else torch.as_tensor(float(value))


def _cells(model: StandardizedTransformer, accessor: str, layers: list[int], positions: tuple[int, ...]
           ) -> list[tuple[int, int | None, int]]:
    """Every (layer, head or None, position) to patch, in grid order."""
    if accessor != "heads_output":
        return [(layer, None, position) for layer in layers for position in positions]
    splits = model.heads_output._splits
    return [(layer, head, position) for layer in layers for head in range(splits.num_heads(layer))
            for position in positions]


def _plan(cells: list[tuple[int, int | None, int]], offset: int) -> list[tuple[int, list[tuple[int, int | None, int]]]]:
    """One forward's patches, cell k on the k-th copy of the corrupted batch: per layer in execution order,
    (copy, head or None, column)."""
    by_layer: dict[int, list[tuple[int, int | None, int]]] = {}
    for copy, (layer, head, position) in enumerate(cells):
        by_layer.setdefault(layer, []).append((copy, head, offset + position))
    return sorted(by_layer.items())


def _patched(value: torch.Tensor, clean: torch.Tensor, patches: list, copies: int) -> torch.Tensor:
    """``value`` (copies * batch, seq, ...) with each patch's copy, at its column (and head), taken from
    ``clean`` (batch, seq, ...)."""
    value = value.clone()
    rows = value.shape[0] // copies
    for copy, head, column in patches:
        if head is None:
            value[copy * rows:(copy + 1) * rows, column] = clean[:, column]
        else:
            value[copy * rows:(copy + 1) * rows, column, head] = clean[:, column, head]
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
                        patches_per_forward: int = DEFAULT_PATCHES_PER_FORWARD, remote: bool | str = False
                        ) -> PatchingResult:
    """The metric of the corrupted run with each (layer, position) of ``accessor`` patched from the clean run.

    ``metric`` maps logits (batch, seq, vocab) to a number or one per prompt (averaged). Clean and corrupted
    prompts pair up and must tokenize to equal lengths; ``positions`` defaults to every position. Example::

        paris, rome = model.tokenizer(" Paris")["input_ids"][0], model.tokenizer(" Rome")["input_ids"][0]
        result = activation_patching(model, "The capital of France is", "The capital of Italy is",
                                     lambda logits: logits[:, -1, paris] - logits[:, -1, rome])
        result.normalized()  # (layers, positions): 1 where the patch restores the clean answer
    """
    from .cache import run_with_cache

    _check_accessor(model, accessor)
    pair = _pair(model, clean_prompts, corrupted_prompts, positions)
    chosen = select_layers(layers, model.num_layers)
    cached = run_with_cache(model, dict(pair.clean), accessor, chosen, device=None, remote=remote)
    clean = {layer: cached[accessor, layer] for layer in chosen}  # plain tensors: shipped with a remote request
    with torch.no_grad(), model.trace(pair.clean, remote=remote):
        clean_metric = save(_scalar(metric, model.logits))
    with torch.no_grad(), model.trace(pair.corrupted, remote=remote):
        corrupted_metric = save(_scalar(metric, model.logits))
    prefix = model.num_prefix_positions  # learned positions before the tokens (CPM-Ant)
    cells = _cells(model, accessor, chosen, pair.positions)
    values: list[torch.Tensor] = []
    for start in range(0, len(cells), max(1, patches_per_forward)):
        # One invoke over copies of the corrupted batch, not one invoke per patch: nnsight splits invokes along
        # each native tensor's first axis, which is not the batch where streams lead (Gemma 3n) or the sequence
        # does (XLNet); the accessors serve (batch, seq, ...) views on every layout, so rows are patched there.
        chunk = cells[start:start + max(1, patches_per_forward)]
        copies, plan = len(chunk), _plan(chunk, prefix)
        corrupted = _repeated(pair.corrupted, copies)
        with torch.no_grad(), model.trace(corrupted, remote=remote):
            target = getattr(model, accessor)
            for layer, patches in plan:
                target[layer] = _patched(target[layer], clean[layer], patches, copies)
            logits = model.logits
            rows = logits.shape[0] // copies
            metrics = save([])  # saved whole: a remote run sends back saved values, not edits to client objects
            for copy in range(copies):
                metrics.append(_scalar(metric, logits[copy * rows:(copy + 1) * rows]))
        values.extend(metrics)
    grid = torch.stack([value.detach().cpu() for value in values])
    return PatchingResult(grid.view(len(chosen), -1, len(pair.positions)).squeeze(1) if accessor != "heads_output"
                          else grid.view(len(chosen), -1, len(pair.positions)),
                          accessor, tuple(chosen), pair.positions, pair.tokens, float(clean_metric),
                          float(corrupted_metric))


def attribution_patching(model: StandardizedTransformer, clean_prompts: str | Sequence[str],
                         corrupted_prompts: str | Sequence[str], metric: Callable[[torch.Tensor], torch.Tensor],
                         accessor: str = "layers_output", layers: int | Iterable[int] | None = None,
                         positions: int | Sequence[int] | None = None, remote: bool | str = False
                         ) -> PatchingResult:
    """`activation_patching`'s grid estimated to first order: corrupted metric + (clean - corrupted) . gradient,
    from one clean forward, one corrupted forward and one backward (of the metric averaged over prompts)."""
    _check_accessor(model, accessor)
    pair = _pair(model, clean_prompts, corrupted_prompts, positions)
    chosen = select_layers(layers, model.num_layers)
    in_order = sorted(set(chosen))
    with torch.no_grad(), model.trace(pair.clean, remote=remote):
        clean = save([getattr(model, accessor)[layer] for layer in in_order])
        clean_metric = save(_scalar(metric, model.logits))
    # Each value read is written back, so the model computes on from that tensor itself: an accessor value that is
    # a view or a sum of the native tensors (streams first, scaled or summed contributions) is otherwise not in the
    # graph of the metric, and its gradient never arrives (nnsight: OutOfOrderError). No comment line (nor statement
    # over several lines) above the backward inside the block: a remote request ships the block unparsed (ast.unparse
    # drops comments, joins lines), and nnsight finds `with ....backward():` by its line number.
    with model.trace(pair.corrupted, remote=remote):
        target = getattr(model, accessor)
        corrupted = []
        for layer in in_order:
            value = target[layer]
            target[layer] = value
            corrupted.append(value)
        saved = save([value.detach() for value in corrupted])
        corrupted_metric = _scalar(metric, model.logits)
        with corrupted_metric.backward():
            grads = save([value.grad for value in reversed(corrupted)][::-1])  # gradients arrive last layer first
        corrupted_metric = save(corrupted_metric.detach())
    index = [model.num_prefix_positions + position for position in pair.positions]
    by_layer = {}
    for layer, clean_value, corrupted_value, grad in zip(in_order, clean, saved, grads):
        # (batch, seq, [heads,] ...) -> summed over the batch and every axis after the position (or the head):
        # the hidden axis, and the streams of multi-stream models -> (positions[, heads])
        change = ((clean_value - corrupted_value) * grad)[:, index].sum(dim=0)
        if accessor == "heads_output":
            by_layer[layer] = change.flatten(2).sum(dim=-1).T
        else:
            by_layer[layer] = change.flatten(1).sum(dim=-1)
    grid = torch.stack([by_layer[layer] for layer in chosen]).detach().float().cpu() + float(corrupted_metric)
    return PatchingResult(grid, accessor, tuple(chosen), pair.positions, pair.tokens, float(clean_metric),
                          float(corrupted_metric))
