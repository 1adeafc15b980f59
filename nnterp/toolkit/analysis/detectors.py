"""Head detectors: how much of each head's attention goes where a previous-token, duplicate-token or induction head
would attend, measured on attention probabilities (given prompts, or repeated random tokens).

A head's score at a query position is the probability mass it puts on that position's targets. Targets, for the
token at query position q:
- previous token: key q - 1;
- duplicate token: earlier keys holding the same token;
- induction: keys k <= q right after an earlier copy of the query's token (``tokens[k - 1] == tokens[q]``, k >= 1).
  Key q itself counts where the token repeats at once (``tokens[q - 1] == tokens[q]``): the copy at q - 1 is
  followed by key q, so a head attending there copies the token that followed the earlier copy, as at any other
  target. TransformerLens' induction pattern counts it too.
Padding is neither a query nor a key, nor the token before a key.

Two averages of those masses over query positions (``average=``), each 1 for a head that attends only to its
targets and 0 for one that never does:
- ``"target_positions"`` (the default): the mean over the query positions that have a target, pooled over prompts;
- ``"all_positions"``: per prompt the mean over all its query positions (those without a target count 0), then the
  mean over prompts. Attention rows sum to 1, so this is TransformerLens' ``detect_head`` score (its default
  ``error_measure="mul"``: the pattern's mass on the targets over the pattern's whole mass, averaged over prompts).
Neither changes with padding: a padded batch scores as its prompts do one at a time.

``exclude_first_token`` / ``exclude_current_token`` leave out the attention each query pays to its prompt's first
real token (where attention sinks sit; the BOS where the prompt starts with one) / to itself, as TransformerLens'
``exclude_bos`` / ``exclude_current_token`` do: those keys are no targets, and the score is the mass on the targets
over the mass left on the other keys (summed over the averaged positions, as TL sums over its pattern). A head whose
averaged positions attend only to left-out keys scores nan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import torch

from ...errors import ToolkitInputError

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

Detector = Literal["previous_token", "duplicate_token", "induction"]
DETECTORS: tuple[Detector, ...] = ("previous_token", "duplicate_token", "induction")
Average = Literal["target_positions", "all_positions"]
AVERAGES: tuple[Average, ...] = ("target_positions", "all_positions")


def detection_targets(tokens: torch.Tensor, kind: Detector, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(batch, query, key) booleans: where a ``kind`` head attends for token ids ``tokens`` (batch, seq), real
    tokens where ``mask`` (batch, seq) is set."""
    seq = tokens.shape[-1]
    query, key = torch.arange(seq)[:, None], torch.arange(seq)[None, :]
    real = torch.ones_like(tokens, dtype=torch.bool) if mask is None else mask.bool()
    if kind == "previous_token":
        targets = (key == query - 1).expand(tokens.shape[0], seq, seq)
    elif kind == "duplicate_token":
        targets = (tokens[:, :, None] == tokens[:, None, :]) & (key < query)
    elif kind == "induction":
        before = tokens.roll(1, dims=1)  # the token at k - 1, where after_real says it is a real one
        after_real = torch.cat([torch.zeros_like(real[:, :1]), real[:, :-1]], dim=1)
        targets = (tokens[:, :, None] == before[:, None, :]) & after_real[:, None, :] & (key <= query)
    else:
        raise ToolkitInputError(f"detector {kind!r}: pass one of {list(DETECTORS)}")
    return targets & real[:, :, None] & real[:, None, :]


def detector_scores(probabilities: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                    average: Average = "target_positions", excluded: torch.Tensor | None = None) -> torch.Tensor:
    """(heads,): each head's attention mass on ``targets`` (batch, query, key), from ``probabilities`` (batch, heads,
    query, key), averaged over query positions as ``average`` says (see the module docstring). ``mask`` (batch,
    seq) marks the real tokens (every token where None); ``excluded`` (batch, query, key) the keys left out."""
    check_average(average)
    if excluded is not None:
        targets = targets & ~excluded
    rows = targets.any(-1)  # (batch, query)
    if not rows.any():
        raise ToolkitInputError("no query position has a target for this detector in these tokens (no repeated "
                                "token for a duplicate or induction head): use repeated tokens")
    mass = (probabilities * targets[:, None].to(probabilities.dtype)).sum(-1)  # (batch, heads, query)
    real = torch.ones_like(rows) if mask is None else mask.bool()
    counted = rows if average == "target_positions" else real  # the averaged query positions
    if excluded is None:  # each row's whole mass is 1: the count of rows
        whole = counted[:, None].to(probabilities.dtype).expand_as(mass)
    else:
        kept = real[:, None, :] & ~excluded  # (batch, query, key)
        whole = (probabilities * kept[:, None].to(probabilities.dtype)).sum(-1) * counted[:, None]
    if average == "target_positions":
        return (mass * rows[:, None]).sum((0, 2)) / whole.sum((0, 2))
    if not real.sum(-1).all():
        raise ToolkitInputError(f"prompts {real.sum(-1).eq(0).nonzero().flatten().tolist()} have no real token "
                                "(their attention mask is all 0): drop them")
    return ((mass * real[:, None]).sum(-1) / whole.sum(-1)).mean(0)


def excluded_keys(mask: torch.Tensor, first_token: bool, current_token: bool) -> torch.Tensor | None:
    """(batch, query, key): the keys left out for each query (see the module docstring), from ``mask`` (batch,
    seq) of the real tokens; None where nothing is left out."""
    if not (first_token or current_token):
        return None
    seq = mask.shape[-1]
    real = mask.bool()
    excluded = torch.zeros(mask.shape[0], seq, seq, dtype=torch.bool)
    if first_token:
        excluded |= (real & (real.cumsum(-1) == 1))[:, None, :]  # each prompt's first real token
    if current_token:
        excluded |= torch.eye(seq, dtype=torch.bool)
    return excluded


def check_average(average: str) -> None:
    """Refuse an ``average`` that is not one of AVERAGES."""
    if average not in AVERAGES:
        raise ToolkitInputError(f"average={average!r}: pass one of {list(AVERAGES)} (\"all_positions\" is "
                                "TransformerLens' detect_head score)")


def repeated_random_tokens(model: StandardizedTransformer, length: int = 20, batch: int = 4, seed: int = 0
                           ) -> torch.Tensor:
    """(batch, 1 + 2 * length) ids: the tokenizer's BOS where it has one, then ``length`` random ordinary tokens
    twice (an induction head's test)."""
    tokenizer: Any = model.tokenizer
    special = set(tokenizer.all_special_ids)
    ordinary = torch.tensor([token for token in range(len(tokenizer)) if token not in special])
    generator = torch.Generator().manual_seed(seed)
    half = ordinary[torch.randint(len(ordinary), (batch, length), generator=generator)]
    bos = tokenizer.bos_token_id
    prefix = [torch.full((batch, 1), bos)] if bos is not None else []
    return torch.cat([*prefix, half, half], dim=1)


@dataclass(frozen=True)
class HeadDetection:
    """``scores[kind]`` (layers, heads) for each detector; ``tokens`` the ids they were measured on."""

    scores: dict[str, torch.Tensor]
    tokens: torch.Tensor

    def top(self, kind: str, count: int = 3) -> list[tuple[int, int, float]]:
        """The ``count`` best (layer, head, score) for one detector."""
        table = self.scores[kind]
        values, flat = table.flatten().topk(count)
        return [(int(index) // table.shape[1], int(index) % table.shape[1], float(value))
                for value, index in zip(values, flat)]


def detect_heads(model: StandardizedTransformer, prompts: Any = None, kinds: Sequence[Detector] = DETECTORS,
                 length: int = 20, batch: int = 4, seed: int = 0, average: Average = "target_positions",
                 exclude_first_token: bool = False, exclude_current_token: bool = False,
                 remote: bool | str = False) -> HeadDetection:
    """Detector scores of every head, from the attention probabilities (load the model with
    ``enable_attention_probs=True``) on ``prompts`` (strings, or a tokenized mapping with an attention mask), or
    by default on `repeated_random_tokens` (``batch`` rows of ``length`` tokens twice, seeded). ``average``: over
    the query positions that have a target (``"target_positions"``), or per prompt over all its positions, then
    over prompts (``"all_positions"``, TransformerLens' ``detect_head`` score). ``exclude_first_token`` /
    ``exclude_current_token`` leave out the attention paid to each prompt's first token / to the query itself (TL's
    ``exclude_bos`` / ``exclude_current_token``); see the module docstring."""
    from ..activations import _padded
    from .cache import run_with_cache

    check_average(average)
    if prompts is None:
        ids = repeated_random_tokens(model, length, batch, seed)
        prompts = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    inputs, _ = _padded(model, prompts)
    ids = inputs["input_ids"] if isinstance(inputs, Mapping) else inputs
    mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
    cache = run_with_cache(model, inputs, "attention_probabilities", remote=remote, progress=False)
    probabilities = cache.stack("attention_probabilities")  # (layers, batch, heads, q, k)
    prefix = model.num_prefix_positions
    if prefix:
        probabilities = probabilities[..., prefix:, prefix:]
    excluded = excluded_keys(torch.ones_like(ids) if mask is None else mask, exclude_first_token,
                             exclude_current_token)
    scores: dict[str, torch.Tensor] = {}
    for kind in kinds:
        targets = detection_targets(ids, kind, mask)
        scores[kind] = torch.stack([detector_scores(layer, targets, mask, average, excluded)
                                    for layer in probabilities])
    return HeadDetection(scores, ids)
