"""Steering: add a vector to layers' outputs inside a trace. In the core, because the model's own ``model.steer``
(nnterp.core.trace_time) is built on it; the toolkit re-exports it (``nnterp.steer``, ``nnterp.interventions``).
Shipped by value with remote requests, so it imports only torch and nnterp's lower layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ..errors import SteeringVectorError, TokenIndexError, ToolkitTypeError
from ..utils.positions import position_list
from .accessors import select_layers

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer


def _check_steering_vector(model: StandardizedTransformer, vector: Any) -> None:
    """A floating-point tensor, on a real device, whose last dimensions are one token's state."""
    if not isinstance(vector, torch.Tensor):
        raise ToolkitTypeError(f"steering_vector is {type(vector).__name__}, expected a torch.Tensor: "
                               "convert it with torch.as_tensor(vector, dtype=torch.float32)")
    if not vector.dtype.is_floating_point:
        raise SteeringVectorError(f"steering_vector has dtype {vector.dtype}, expected a floating-point dtype: "
                                  "convert it with vector.float()")
    if vector.device.type == "meta":
        raise SteeringVectorError("steering_vector is on the meta device and holds no values: "
                                  "build it on the CPU or the model's device")
    state = tuple(model.token_state_shape)
    try:  # (hidden,) on a multi-stream model is added to every stream
        broadcast = tuple(torch.broadcast_shapes(tuple(vector.shape), state))
    except RuntimeError:
        broadcast = ()
    if vector.dim() == 0 or vector.shape[-1] != state[-1] or broadcast[len(broadcast) - len(state):] != state:
        raise SteeringVectorError(f"steering_vector has shape {tuple(vector.shape)}, expected ({state[-1]},) or one "
                                  f"token's state {state} (optionally with leading dimensions that broadcast)")


def _check_broadcast(vector: torch.Tensor, target: tuple[int, ...], layer: int) -> None:
    """The vector's leading dimensions broadcast to the (batch, positions) of the output it is added to."""
    try:
        fits = tuple(torch.broadcast_shapes(tuple(vector.shape), target)) == target
    except RuntimeError:
        fits = False
    if not fits:
        raise SteeringVectorError(f"steering_vector has shape {tuple(vector.shape)}, which does not broadcast to "
                                  f"layer {layer}'s output {target} (batch, positions, one token's state): give one "
                                  f"token's state {target[2:]}, or leading dimensions of size 1 or matching "
                                  "(e.g. (batch, 1, hidden) for one vector per prompt)")


def _check_factor(factor: Any) -> None:
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        if not (isinstance(factor, torch.Tensor) and factor.dim() == 0 and factor.dtype.is_floating_point):
            raise ToolkitTypeError(f"factor is {type(factor).__name__} ({factor!r:.40}), expected a number "
                                   "(an int or a float)")


def _check_positions(positions: int | list[int], seq_len: int) -> None:
    """Every position an int (`nnterp.utils.positions.position_list`) inside the sequence of ``seq_len`` positions."""
    for position in position_list(positions, "positions"):
        if not -seq_len <= position < seq_len:
            raise TokenIndexError(f"position {position} is outside the {seq_len} positions of this input: "
                                  f"expected positions in -{seq_len}..{seq_len - 1}")


def steer(model: StandardizedTransformer, layers: int | list[int], steering_vector: torch.Tensor,
          factor: float = 1, positions: int | list[int] | None = None) -> None:
    """Add ``factor * steering_vector`` to the output of each layer in ``layers``, inside a trace.

    The vector is moved to each layer's device and dtype, so models split across devices work.
    ``positions`` restricts the addition to some token positions (default: all). The vector must be
    a floating-point tensor ending in one token's state (``model.token_state_shape``); the caller's
    tensor is never modified. Example::

        with model.trace("The weather today is"):
            steer(model, layers=[5, 10], steering_vector=vector, factor=1.5)
            probs = model.next_token_probs.save()
    """
    _check_steering_vector(model, steering_vector)
    _check_factor(factor)
    for layer in select_layers(layers, model.num_layers):
        output = model.layers_output[layer]
        vector = factor * steering_vector.to(device=output.device, dtype=output.dtype)
        if positions is None:
            _check_broadcast(vector, tuple(output.shape), layer)
            output[:] += vector
        else:
            _check_positions(positions, output.shape[1])
            _check_broadcast(vector, tuple(output[:, positions].shape), layer)
            output[:, positions] += vector
