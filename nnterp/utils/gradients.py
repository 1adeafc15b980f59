"""Gradients with respect to activations, never parameters: the one place every gradient feature goes through.

A gradient feature (``attribution_patching``) needs the gradient of a metric with respect to what it reads inside
a trace. Torch computes one only where the forward builds a graph, which it does not under ``torch.no_grad`` or
``torch.inference_mode``, nor when every parameter is frozen (a memory-saving habit, and what an NDIF server does
at load). `activation_gradients` opens a call's gradient mode and freezes the parameters for its duration
(`frozen_parameters`), so that the call leaves no ``.grad`` on them and restores each one's ``requires_grad`` after.
Inside the trace, every accessor read and ``model.track_activation_gradients()`` go through
``nnterp.core.accessors.differentiable``, which makes what is read carry gradients whatever the parameters are.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..errors import GradientUnavailable


@contextmanager
def frozen_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Every parameter of ``module`` frozen (``requires_grad`` False) for the duration, as an NDIF server freezes
    them at load; each one's ``requires_grad`` restored after, whatever happens."""
    parameters = list(module.parameters())
    flags = [parameter.requires_grad for parameter in parameters]
    try:
        for parameter in parameters:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, flag in zip(parameters, flags):
            parameter.requires_grad_(flag)


@contextmanager
def activation_gradients(model: Any, feature: str) -> Iterator[None]:
    """Grad mode on (inside ``torch.no_grad`` and ``torch.inference_mode`` too) and the parameters of ``model``
    frozen for the duration; each parameter's ``requires_grad`` restored after, whatever happens."""
    inference = [name for name, parameter in model._module.named_parameters() if parameter.is_inference()][:3]
    if inference:
        raise GradientUnavailable(
            f"{feature} needs gradients, and this model's parameters ({', '.join(inference)}...) were created inside "
            "torch.inference_mode, which torch never differentiates through: load or build the model outside "
            "torch.inference_mode")
    with frozen_parameters(model._module), torch.inference_mode(False), torch.enable_grad():
        yield
