"""Gradients with respect to activations, never parameters: the one place every gradient feature goes through.

A gradient feature (``attribution_patching``) needs the gradient of a metric with respect to what it reads inside
a trace. Torch computes one only where the forward builds a graph, which it does not under ``torch.no_grad`` or
``torch.inference_mode``, nor when every parameter is frozen (a memory-saving habit, and what an NDIF server does
at load). `activation_gradients` opens a call's gradient mode and freezes the parameters for its duration, so
that the call leaves no ``.grad`` on them and restores each one's ``requires_grad`` after; inside the trace,
``model.track_activation_gradients()`` (nnterp.core.trace_time) makes the token embeddings require grad, so every
activation after them has a gradient whatever the parameters are.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..errors import GradientUnavailable


@contextmanager
def activation_gradients(model: Any, feature: str) -> Iterator[None]:
    """Grad mode on (inside ``torch.no_grad`` and ``torch.inference_mode`` too) and the parameters of ``model``
    frozen for the duration; each parameter's ``requires_grad`` restored after, whatever happens."""
    named = list(model._module.named_parameters())
    parameters = [parameter for _, parameter in named]
    inference = [name for name, parameter in named if parameter.is_inference()][:3]
    if inference:
        raise GradientUnavailable(
            f"{feature} needs gradients, and this model's parameters ({', '.join(inference)}...) were created inside "
            "torch.inference_mode, which torch never differentiates through: load or build the model outside "
            "torch.inference_mode")
    flags = [parameter.requires_grad for parameter in parameters]
    try:
        for parameter in parameters:
            parameter.requires_grad_(False)
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for parameter, flag in zip(parameters, flags):
            parameter.requires_grad_(flag)
