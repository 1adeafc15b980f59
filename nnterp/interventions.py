"""Classic interventions on a StandardizedTransformer, called inside a trace."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .standardized import StandardizedTransformer


def steer(model: StandardizedTransformer, layers: int | list[int], steering_vector: torch.Tensor,
          factor: float = 1, positions: int | list[int] | None = None) -> None:
    """Add ``factor * steering_vector`` to the output of each layer in ``layers``, inside a trace.

    The vector is moved to each layer's device and dtype, so models split across devices work.
    ``positions`` restricts the addition to some token positions (default: all).
    """
    for layer in [layers] if isinstance(layers, int) else layers:
        output = model.layers_output[layer]
        vector = factor * steering_vector.to(device=output.device, dtype=output.dtype)
        if positions is None:
            output[:] += vector
        else:
            output[:, positions] += vector
