"""The map from the final residual to one logit, made linear by freezing the final norm's scale.

A LayerNorm or RMSNorm computes ``gain * P(x) / scale(x) + bias`` (``P`` centres for LayerNorm). With the
scale frozen at the value measured on the real residual, the logit of a target token is a linear function
of the residual plus a constant, so each component's share is that function of the component. Nothing is
assumed about the norm's class: its bias, whether it centres, and its gain are measured by calling it, and
the scale is fitted to its output on the real residual; a fit that does not reproduce the output raises
`NotDecomposable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ...errors import NotDecomposable
from .residual import relative_tolerance

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

DIRECTION_CHUNK = 256  # unembedding rows computed per call of the head


@dataclass(frozen=True)
class LinearReadout:
    """``logit(x) = sum(weights * P(x)) + bias`` per row, exact at the measured residual.

    ``weights`` (rows, hidden) folds the norm's gain, the frozen scale and the target's unembedding
    direction; ``bias`` (rows,) is the logit of the norm's bias plus the head's bias."""

    weights: torch.Tensor
    bias: torch.Tensor
    centers: bool

    def __call__(self, component: torch.Tensor) -> torch.Tensor:
        """The logit share of ``component`` (..., rows, hidden) -> (..., rows)."""
        if self.centers:
            component = component - component.mean(dim=-1, keepdim=True)
        return (component * self.weights).sum(dim=-1)


def _norm_facts(norm: torch.nn.Module, hidden: int, like: torch.Tensor) -> tuple[torch.Tensor, bool, torch.Tensor]:
    """(bias, whether it centres, gain up to a scale) of a norm, measured by calling it."""
    probe = torch.where(torch.arange(hidden, device=like.device) % 2 == 0, 1.0, -1.0).to(like.dtype)[None]
    bias = norm(torch.zeros_like(probe))[0]
    centers = torch.allclose(norm(probe + 1.0), norm(probe), atol=1e-4, rtol=1e-3)
    centered = probe - probe.mean() if centers else probe
    return bias, centers, ((norm(probe)[0] - bias) / centered[0])


def build_readout(model: StandardizedTransformer, residual: torch.Tensor, targets: torch.Tensor) -> LinearReadout:
    """The frozen-scale readout of token ``targets[r]`` from row ``r`` of ``residual`` (rows, hidden)."""
    arch = model.architecture
    if arch.head_transform is not None or arch.spec.layout.codebooks.key:
        raise NotDecomposable(f"[{arch.class_name}] its head is not a norm then a linear unembedding "
                              "(head transform or several codebooks), so logits do not split per component")
    norm = model._module.get_submodule(arch.ln_final) if arch.ln_final else None
    hidden = residual.shape[-1]
    with torch.no_grad():
        if norm is None:
            gain, centers, bias = torch.ones_like(residual[0]), False, torch.zeros_like(residual[0])
            factor = torch.ones_like(residual[:, :1])
        else:
            bias, centers, gain = _norm_facts(norm, hidden, residual)
            factor = _fitted_factor(model, norm, residual, bias, centers, gain)
        directions = unembedding_directions(model, targets, residual)
        logit_bias = _head(model, bias[None])[0, targets.to(residual.device)]  # the head's own bias included
    return LinearReadout(gain * factor * directions, logit_bias, centers)


def _fitted_factor(model: StandardizedTransformer, norm: torch.nn.Module, residual: torch.Tensor,
                   bias: torch.Tensor, centers: bool, gain: torch.Tensor) -> torch.Tensor:
    """Per row, the factor k with ``norm(x) = k * gain * P(x) + bias``: the measured inverse scale."""
    centered = residual - residual.mean(dim=-1, keepdim=True) if centers else residual
    direction, output = gain * centered, norm(residual) - bias
    factor = (direction * output).sum(-1, keepdim=True) / (direction * direction).sum(-1, keepdim=True)
    error = ((factor * direction - output).abs().max() / output.abs().max().clamp_min(1e-6)).item()
    tolerance = relative_tolerance(residual.dtype)
    if error > tolerance:
        raise NotDecomposable(f"[{model.architecture.class_name}] the final norm {type(norm).__name__} is not "
                              f"gain * x / scale + bias with one scale per token (fit error {error:.3g}, over the "
                              f"tolerance {tolerance:.3g} of {residual.dtype}), so it cannot be frozen into a linear "
                              "map")
    return factor


def _head(model: StandardizedTransformer, hidden: torch.Tensor) -> torch.Tensor:
    """Logits of hidden states through the unembedding and the config's logit transforms (checked linear)."""
    logits = model._module.get_submodule(model.architecture.lm_head)(hidden)
    for transform, value in _linear_transforms(model, logits):
        logits = transform(logits, value)
    return logits


def _linear_transforms(model: StandardizedTransformer, like: torch.Tensor) -> list[tuple[Any, Any]]:
    """The config's logit transforms, each checked linear (``T(2x) == 2 T(x)``) on values of ``like``'s dtype;
    NotDecomposable for one that is not (a soft cap)."""
    arch = model.architecture
    transforms = list(arch.spec.head.active_transforms(model._module.config, type(model._module)))
    for transform, value in transforms:
        sample = torch.linspace(-3.0, 3.0, 7, dtype=like.dtype, device=like.device)
        if not torch.allclose(transform(2 * sample, value), 2 * transform(sample, value), atol=1e-5):
            raise NotDecomposable(f"[{arch.class_name}] its logits go through a non-linear transform "
                                  f"({transform.__name__}, {value}), so they do not split per component")
    return transforms


def unembedding_directions(model: StandardizedTransformer, targets: torch.Tensor, like: torch.Tensor
                           ) -> torch.Tensor:
    """Each row's target unembedding direction (rows, hidden). A plain ``nn.Linear`` head gives it from its
    weights, the target rows through the logit transforms (`weight_directions`); any other affine head by
    calling it on basis vectors (`basis_directions`). Both are exact; the first reads (rows, hidden) numbers where
    the second computes a (hidden, vocab) product."""
    if _plain_linear_head(model):
        return weight_directions(model, targets, like)
    return basis_directions(model, targets, like)


def _plain_linear_head(model: StandardizedTransformer) -> bool:
    """Whether the head is exactly ``torch.nn.Linear`` (its own forward, no hooks of its own), so that its
    logits are ``weight @ x + bias``."""
    head = model._module.get_submodule(model.architecture.lm_head)
    return type(head) is torch.nn.Linear and not head._forward_hooks and not head._forward_pre_hooks


def weight_directions(model: StandardizedTransformer, targets: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The directions of a plain linear head: row ``target`` of its weight, through the config's logit transforms
    (checked linear, so a transform of the row is the row of the transformed logits)."""
    weight = model._module.get_submodule(model.architecture.lm_head).weight
    unique, rows = torch.unique(targets, return_inverse=True)
    directions = weight[unique.to(weight.device)].to(device=like.device, dtype=like.dtype)
    for transform, value in _linear_transforms(model, like):
        directions = transform(directions, value)
    return directions[rows.to(like.device)]


def basis_directions(model: StandardizedTransformer, targets: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The directions read by calling the head on basis vectors (minus its logits of zero), so tied, biased or
    scaled heads need no special case: exact for any affine head, and (hidden / DIRECTION_CHUNK) head calls."""
    hidden = like.shape[-1]
    zero = _head(model, like.new_zeros(1, hidden))[0]
    _check_linear(model, like, zero)
    unique, rows = torch.unique(targets, return_inverse=True)
    columns = []
    for start in range(0, hidden, DIRECTION_CHUNK):
        basis = torch.eye(hidden, dtype=like.dtype, device=like.device)[start:start + DIRECTION_CHUNK]
        columns.append(_head(model, basis)[:, unique.to(like.device)] - zero[unique.to(like.device)])
    return torch.cat(columns).T[rows.to(like.device)]


def _check_linear(model: StandardizedTransformer, like: torch.Tensor, zero: torch.Tensor) -> None:
    """Raise NotDecomposable if the head is not affine (a transform inside ``lm_head``: RoBERTa's dense, GELU,
    norm before its decoder), measured on two random states."""
    first, second = torch.randn(2, 1, like.shape[-1], generator=torch.Generator().manual_seed(0)).to(like)
    both = _head(model, first + second)[0] - zero
    apart = _head(model, first)[0] + _head(model, second)[0] - 2 * zero
    error, tolerance = ((both - apart).abs().max() / apart.abs().max().clamp_min(1e-6)).item(), \
        relative_tolerance(like.dtype)
    if error > tolerance:
        raise NotDecomposable(f"[{model.architecture.class_name}] its head `{model.architecture.lm_head}` is not "
                              f"linear (error {error:.3g}, over the tolerance {tolerance:.3g} of {like.dtype}): it "
                              "transforms the state before unembedding, so logits do not split per component")
