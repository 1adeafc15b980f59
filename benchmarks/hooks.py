"""The plain-PyTorch pieces the floors are built from, on llama-style modules (``model.layers``,
``model.norm``, ``lm_head``): right-padded batches and forward hooks on the decoder layers."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch


def hidden(output: Any) -> torch.Tensor:
    """A decoder layer's output hidden state (the first item where the layer returns a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def right_padded(tokenizer: Any, prompts: list[str], device: torch.device) -> tuple[dict, torch.Tensor]:
    """The batch, padded on the right, and each row's last real token position."""
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="right").to(device)
    return dict(batch), batch["attention_mask"].sum(dim=1) - 1


@contextmanager
def keeping_layer_outputs(hf: Any, layers: list[int], keep: Callable[[torch.Tensor], torch.Tensor]
                          ) -> Iterator[dict[int, torch.Tensor]]:
    """Plain forward hooks on the given decoder layers, for the forwards run inside: ``keep`` of each layer's
    output hidden state, by layer."""
    kept: dict[int, torch.Tensor] = {}
    handles = [hf.model.layers[layer].register_forward_hook(
        lambda module, args, output, layer=layer: kept.__setitem__(layer, keep(hidden(output))))
        for layer in layers]
    try:
        with torch.no_grad():
            yield kept
    finally:
        for handle in handles:
            handle.remove()


def last_token_states(hf: Any, batch: dict, last: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """Forward hooks keep each row's last real token at the given layers, during one body forward."""
    rows = torch.arange(len(last), device=last.device)
    with keeping_layer_outputs(hf, layers, lambda state: state[rows, last]) as kept:
        hf.model(**batch)
    return [kept[layer] for layer in layers]
