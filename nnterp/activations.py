"""Collect hidden states at one token position, for a few prompts or for thousands.

Works on a StandardizedTransformer, and on a plain nnsight model renamed with
``get_rename_dict`` (anything with ``.layers``).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

from .accessors import select_layers, unwrap


def _layer_output(model: Any, layer: int) -> Any:
    """A layer's hidden-state output, through the standardized accessor when the model has one."""
    accessor = getattr(model, "layers_output", None)
    return accessor[layer] if accessor is not None else unwrap(model.layers[layer].output)


def _num_layers(model: Any) -> int:
    return model.num_layers if hasattr(model, "num_layers") else len(model.layers)


def _padding_side(model: Any) -> str:
    """Right, unless the registry says the model finds padding by itself on the other side (CPM-Ant)."""
    spec = getattr(getattr(model, "architecture", None), "spec", None)
    return getattr(spec, "padding_side", "") or "right"


def _padded(model: Any, prompts: str | list[str]) -> tuple[Any, torch.Tensor | None, str]:
    """Prompts tokenized as one padded batch, each row's real length, and the padding side.

    With right padding every real token sits where it would sit alone and a causal model never
    attends to the pads after it, so activations equal the unbatched ones on every architecture,
    including those whose positions ignore the attention mask (BART, RoBERTa, RWKV...). Models
    that ignore the mask and detect padding themselves get the side they expect.
    """
    tokenizer = getattr(model, "tokenizer", None)
    side = _padding_side(model)
    if tokenizer is None or not isinstance(prompts, (str, list)):
        return prompts, None, side
    batch = tokenizer([prompts] if isinstance(prompts, str) else prompts, return_tensors="pt", padding=True,
                      padding_side=side)
    return dict(batch), batch["attention_mask"].sum(dim=1), side


def _token_columns(idx: int, lengths: torch.Tensor | None, seq_len: int, side: str) -> Any:
    """Where token ``idx`` of each prompt sits in the padded batch (before any prefix positions)."""
    if lengths is None or (idx >= 0) == (side == "right"):
        return idx if idx >= 0 else seq_len + idx
    return lengths + idx if side == "right" else seq_len - lengths + idx


def get_token_activations(model: Any, prompts: str | list[str], idx: int = -1,
                          layers: int | Iterable[int] | None = None, remote: bool | str = False) -> torch.Tensor:
    """Hidden states at token ``idx`` of every prompt: (num_selected_layers, batch, hidden), on CPU.

    The forward pass stops after the last layer needed. ``idx`` indexes each prompt's own tokens
    (``-1`` is its last token), whatever the other prompts in the batch.
    """
    chosen = select_layers(layers, _num_layers(model))
    in_order = sorted(set(chosen))
    inputs, lengths, side = _padded(model, prompts)
    prefix = getattr(model, "num_prefix_positions", 0)  # learned positions before the input (CPM-Ant)
    collected: dict[int, torch.Tensor] = {}  # outside the trace: values made inside it do not leave it
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        for layer in in_order:
            hidden = _layer_output(model, layer)
            rows = torch.arange(hidden.shape[0], device=hidden.device)
            columns = prefix + _token_columns(idx, lengths, hidden.shape[1] - prefix, side)
            if isinstance(columns, torch.Tensor):
                columns = columns.to(hidden.device)
            collected[layer] = hidden[rows, columns].cpu().save()
        tracer.stop()
    return torch.stack([collected[layer] for layer in chosen])


def compute_next_token_probs(model: Any, prompts: str | list[str], remote: bool | str = False) -> torch.Tensor:
    """Next-token probabilities at the last position of every prompt: (batch, vocab), on CPU."""
    with torch.no_grad(), model.trace(prompts, remote=remote):
        logits = model.output.logits if not hasattr(model, "logits") else model.logits
        probs = logits[:, -1].softmax(dim=-1).cpu().save()
    return probs


def collect_token_activations_batched(model: Any, prompts: list[str], batch_size: int,
                                      layers: int | Iterable[int] | None = None, idx: int = -1,
                                      remote: bool | str = False, progress: bool = True) -> torch.Tensor:
    """`get_token_activations` over many prompts in batches: (num_selected_layers, num_prompts, hidden), on CPU.

    Memory stays bounded by the output: each batch's activations are copied into one preallocated
    CPU tensor. Equal to the unbatched result whatever the batch size (left padding is handled).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    batches = [prompts[start:start + batch_size] for start in range(0, len(prompts), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="collecting activations", unit="batch")
    result: torch.Tensor | None = None
    start = 0
    for batch in batches:
        activations = get_token_activations(model, batch, idx=idx, layers=layers, remote=remote)
        if result is None:
            result = torch.empty(activations.shape[0], len(prompts), *activations.shape[2:], dtype=activations.dtype)
        result[:, start:start + len(batch)] = activations
        start += len(batch)
    if result is None:
        raise ValueError("no prompts given: pass a non-empty list of prompts")
    return result
