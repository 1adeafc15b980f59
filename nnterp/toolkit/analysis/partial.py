"""Part of a forward: from a given residual stream at a layer (``start_at_layer``), or up to a layer
(``stop_at_layer``), each equal to what a full run computes there. The layers before the start do not run (they
are skipped with the given residual as their output), and the forward stops once the stop is reached."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ...core.accessors import as_integer_index
from ...errors import ToolkitInputError, ToolkitTypeError
from ..activations import _padded

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer


def _bound(value: Any, low: int, high: int, argument: str, meaning: str) -> int:
    """``value`` as an int in ``low..high`` (ToolkitInputError naming ``meaning`` otherwise)."""
    index = as_integer_index(value)
    if not low <= index <= high:
        raise ToolkitInputError(f"{argument} is {index}, expected {low}..{high} ({meaning})")
    return index


def run_layers(model: StandardizedTransformer, prompts: Any, start_at_layer: int = 0,
               residual: torch.Tensor | None = None, stop_at_layer: int | None = None,
               remote: bool | str = False) -> torch.Tensor:
    """Run ``prompts`` from ``start_at_layer`` (fed ``residual``) up to ``stop_at_layer``.

    ``residual`` is the stream entering ``start_at_layer``, shaped as ``layers_input[start_at_layer]``. Layers
    before it do not run. The prompts still give the positions and the attention mask, padded on the right as
    every toolkit function pads them, so take ``residual`` from this function (``stop_at_layer``) or from
    ``run_with_cache(..., "layers_input")`` on the same prompts. Returns the logits (batch, seq, vocab), or with
    ``stop_at_layer`` the stream entering that layer (``layers_input[stop_at_layer]``; ``num_layers`` gives the
    last layer's output, before the final norm), the layers after it not run. Example::

        middle = run_layers(model, prompts, stop_at_layer=10)             # layers 0-9 only
        logits = run_layers(model, prompts, start_at_layer=10, residual=middle)  # layers 10 onwards
    """
    layers = model.num_layers
    start = _bound(start_at_layer, 0, layers - 1, "start_at_layer", "the layer that takes residual as its input")
    stop = None if stop_at_layer is None else _bound(stop_at_layer, start + 1, layers, "stop_at_layer",
                                                      "the layer whose input is returned, after start_at_layer; "
                                                      "num_layers for the last layer's output")
    if residual is not None and not isinstance(residual, torch.Tensor):
        raise ToolkitTypeError(f"residual is {type(residual).__name__}, expected a torch.Tensor shaped as "
                               f"layers_input[{start}]")
    if start > 0 and residual is None:
        raise ToolkitInputError(f"start_at_layer={start} needs residual=, the stream entering layer {start} "
                                f"(run_layers(model, prompts, stop_at_layer={start}) gives it)")
    inputs, _ = _padded(model, prompts)
    if residual is not None:
        parameter = next(model._module.parameters())
        residual = residual.to(device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        if residual is not None and start == 0:
            model.layers_input[0] = residual
        elif residual is not None:
            model.skip_layers(0, start - 1, skip_with=residual)
        if stop is None:
            result = model.logits.save()
        else:
            result = (model.layers_input[stop] if stop < layers else model.layers_output[layers - 1]).save()
            tracer.stop()
    return result
