"""Activation patching and its gradient estimate (attribution patching), over layers x positions.

``activation_patching`` runs the corrupted prompts with one accessor value (a layer, a position, a head for
``heads_output``) taken from the clean run, and records the metric of each patched run: several patches per
forward, one invoke each. ``attribution_patching`` estimates the same grid from one clean forward, one
corrupted forward and one backward: ``(clean - corrupted) . d metric / d activation``.
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


def _patched(value: torch.Tensor, clean: torch.Tensor, head: int | None, position: int) -> torch.Tensor:
    """``value`` with its ``position`` (and ``head``) taken from ``clean``."""
    value = value.clone()
    if head is None:
        value[:, position] = clean[:, position]
    else:
        value[:, position, head] = clean[:, position, head]
    return value


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
    corrupted = dict(pair.corrupted)  # named in the traced block: plain values only (no client dataclass)
    values: list[torch.Tensor] = []
    for start in range(0, len(cells), max(1, patches_per_forward)):
        with torch.no_grad(), model.trace(remote=remote) as tracer:
            chunk = save([])  # saved whole: a remote run sends back saved values, not edits to client objects
            for layer, head, position in cells[start:start + patches_per_forward]:
                with tracer.invoke(corrupted):
                    target = getattr(model, accessor)
                    target[layer] = _patched(target[layer], clean[layer], head, prefix + position)
                    chunk.append(_scalar(metric, model.logits))
        values.extend(chunk)
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
    with model.trace(pair.corrupted, remote=remote):
        corrupted = [getattr(model, accessor)[layer] for layer in in_order]
        saved = save([value.detach() for value in corrupted])
        corrupted_metric = _scalar(metric, model.logits)
        with corrupted_metric.backward():
            grads = save([value.grad for value in reversed(corrupted)][::-1])
        corrupted_metric = save(corrupted_metric.detach())
    index = [model.num_prefix_positions + position for position in pair.positions]
    by_layer = {}
    for layer, clean_value, corrupted_value, grad in zip(in_order, clean, saved, grads):
        # (batch, seq, [heads,] ...) -> summed over the batch and the feature axis: (positions[, heads])
        change = ((clean_value - corrupted_value) * grad)[:, index].sum(dim=0).sum(dim=-1)
        by_layer[layer] = change.T if accessor == "heads_output" else change
    grid = torch.stack([by_layer[layer] for layer in chosen]).detach().float().cpu() + float(corrupted_metric)
    return PatchingResult(grid, accessor, tuple(chosen), pair.positions, pair.tokens, float(clean_metric),
                          float(corrupted_metric))
