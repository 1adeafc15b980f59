"""Direct logit attribution: each residual component's share of a target token's logit.

The final residual is the sum of the embeddings, each attention (or head) and each MLP output
(`nnterp.toolkit.analysis.residual`); through the final norm with its scale frozen at the measured value and the
unembedding (`nnterp.toolkit.analysis.readout`) the logit is linear in it, so ``contributions.sum(-1) + bias``
is the model's own logit. Every call checks that to within float rounding (``IDENTITY_EPS``) and raises
`NotDecomposable`, with the measured error and the tolerance, where it does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from nnsight import save

from ...errors import NotDecomposable, TargetError, ToolkitTypeError
from .readout import LinearReadout, build_readout
from .residual import (
    Component,
    check_additive,
    check_position,
    check_sum,
    expand_terms,
    plan_terms,
    position_selector,
    read_terms,
)

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

# The identity check's tolerance, in units of the working precision's epsilon, relative to the rounding scale of
# the logit (the sum of |weight * component| over every component and hidden unit, plus |bias|): a float sum
# of N terms is off by at most N epsilon of the sum of their absolute values, in practice about sqrt(N)
# epsilon or less. Measured: at most 0.97 eps on the validating toys in float32 (0.11 eps in float16) and 0.04
# eps on SmolLM2 per head (301 components, hidden 576); 64 = sqrt(4096) leaves room for wide hidden states and
# long sums. A readout that is not the model's misses by far more (the looped HRM toy: 7,500 eps).
IDENTITY_EPS = 64


@dataclass(frozen=True)
class AttributionResult:
    """``contributions`` (batch, components) to each prompt's target logit; ``bias`` (batch,) is the logit of
    the final norm's and the head's biases; ``logits`` (batch,) the model's own target logits, which
    ``contributions.sum(-1) + bias`` equals."""

    contributions: torch.Tensor
    parts: tuple[Component, ...]
    bias: torch.Tensor
    logits: torch.Tensor
    target_tokens: tuple[int, ...]

    @property
    def labels(self) -> list[str]:
        return [part.label for part in self.parts]

    def total(self) -> torch.Tensor:
        """The logits rebuilt from the components: ``contributions.sum(-1) + bias``."""
        return self.contributions.sum(dim=-1) + self.bias

    def to_dataframe(self) -> Any:
        """One row per (prompt, component): prompt, component, kind, layer, head, target_token, contribution."""
        import pandas as pd

        rows = [{"prompt": row, "component": part.label, "kind": part.kind.value, "layer": part.layer,
                 "head": part.head, "target_token": self.target_tokens[row],
                 "contribution": float(self.contributions[row, column])}
                for row in range(self.contributions.shape[0]) for column, part in enumerate(self.parts)]
        return pd.DataFrame(rows)


def target_ids(model: StandardizedTransformer, target_tokens: Any, batch: int) -> torch.Tensor:
    """One token id per prompt from an id, a one-token string, or a list of either (one per prompt)."""
    items = list(target_tokens) if isinstance(target_tokens, (list, tuple, torch.Tensor)) else [target_tokens] * batch
    if len(items) == 1:
        items = items * batch
    if len(items) != batch:
        raise TargetError(f"got {len(items)} target tokens for {batch} prompts: give one, or one per prompt")
    return torch.tensor([_token_id(model, item) for item in items])


def _token_id(model: StandardizedTransformer, item: Any) -> int:
    if isinstance(item, torch.Tensor) and item.ndim == 0:
        item = int(item)
    if isinstance(item, str):
        ids = model.tokenizer(item, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise TargetError(f"target {item!r} is {len(ids)} tokens ({ids}), expected exactly one: pass a "
                              "token id, or a string the tokenizer keeps whole (often with a leading space)")
        return ids[0]
    if isinstance(item, bool) or not isinstance(item, int):
        raise ToolkitTypeError(f"a target token is {type(item).__name__} ({item!r:.60}), expected a token id or a "
                               "one-token string")
    if not 0 <= item < model.vocab_size:
        raise TargetError(f"target token id {item} is outside the vocabulary (0..{model.vocab_size - 1})")
    return item


def direct_logit_attribution(model: StandardizedTransformer, prompts: str | Sequence[str], target_tokens: Any,
                             per_head: bool = False, position: int = -1, remote: bool | str = False
                             ) -> AttributionResult:
    """Each component's direct contribution to the target logit at each prompt's token ``position``.

    Components: the embeddings, then per layer its attention (``per_head=True``: each head, plus the output
    projection's bias if it has one; `HeadsUnavailable` where no layer has heads), its MLP and any other term the
    block adds. ``position`` counts each prompt's own tokens, ``-1`` its last real token, whatever the padding
    side; ``prompts`` may be strings or an already tokenized mapping, whose ``attention_mask`` says where each
    prompt's tokens are. Example::

        result = direct_logit_attribution(model, "The capital of France is", " Paris", per_head=True)
        result.labels[result.contributions[0].argmax()]  # the head writing most of ' Paris'
        torch.testing.assert_close(result.total(), result.logits)
    """
    from ..activations import _padded

    check_additive(model)
    inputs, layout = _padded(model, prompts)
    chosen = check_position(position, layout)
    if chosen is None:
        raise ToolkitTypeError("position is None, expected an int token position: DLA reads one position of each "
                               "prompt (-1 is each prompt's last token)")
    select = position_selector(model, layout, chosen)
    at_logits = position_selector(model, layout, chosen, prefixed=False)
    keys, reads = plan_terms(model, model.num_layers, per_head)
    with torch.no_grad(), model.trace(inputs, remote=remote):
        values = save(read_terms(model, reads, select))
        final = select(model.layers_output[model.num_layers - 1]).save()
        logits = at_logits(model.logits).save()
    targets = target_ids(model, target_tokens, final.shape[0])
    expanded = expand_terms(model, list(zip(keys, values)))
    check_sum(model, expanded, final, "the last layer's output")
    readout = build_readout(model, final, targets)
    contributions = torch.stack([readout(value) for _, value in expanded], dim=-1)
    result = AttributionResult(contributions, tuple(part for part, _ in expanded), readout.bias,
                               logits[torch.arange(logits.shape[0]), targets.to(logits.device)],
                               tuple(targets.tolist()))
    _check_identity(model, result, _rounding_scale(readout, [value for _, value in expanded]))
    return result


def _rounding_scale(readout: LinearReadout, terms: list[torch.Tensor]) -> torch.Tensor:
    """Per row, the sum of the absolute values of every product the logit adds up: |weight * component| over
    the components and hidden units, plus |bias| (the scale of a float sum's rounding error)."""
    weights = readout.weights.abs()
    total = readout.bias.abs().clone()
    for term in terms:
        term = term - term.mean(dim=-1, keepdim=True) if readout.centers else term
        total = total + (term.abs() * weights).sum(dim=-1)
    return total


def _check_identity(model: StandardizedTransformer, result: AttributionResult, scale: torch.Tensor) -> None:
    """Raise NotDecomposable unless the components and bias rebuild the model's logits (never a wrong answer):
    within IDENTITY_EPS epsilon of the working precision times the logit's rounding scale, on every prompt."""
    dtype = max(result.contributions.dtype, result.logits.dtype, key=lambda kind: torch.finfo(kind).eps)
    eps = torch.finfo(dtype).eps
    errors = (result.total().double().cpu() - result.logits.double().cpu()).abs()
    scale = scale.double().cpu()
    row = int((errors / scale.clamp_min(torch.finfo(torch.float64).tiny)).argmax())  # NaN counts as the worst
    error, rounding = errors[row].item(), scale[row].item()
    tolerance = IDENTITY_EPS * eps * rounding
    if not error <= tolerance:
        relative = f"{error / (eps * rounding):.3g} eps" if rounding > 0 else "no rounding scale"
        raise NotDecomposable(
            f"[{model.architecture.class_name}] the components plus bias sum to a logit that differs from the "
            f"model's by {error:.3g} (prompt {row}, logit {result.logits[row].item():.4g}), over the tolerance "
            f"{tolerance:.3g}: {IDENTITY_EPS} eps of {dtype} ({eps:.3g}) times the logit's rounding scale "
            f"{rounding:.3g}, the sum of |weight x component| over components and hidden units (the error is "
            f"{relative}); the logits are not the final norm then a linear unembedding of the last layer's output")
