"""What a trace accepts as its input, checked where the input enters (the model's batching), once, so that every
caller above it (``model.trace``, ``model.generate``, each toolkit function) inherits the same typed errors.

A trace's input is a prompt (a string), a list of prompts, token ids (a list of ints, a list of such lists, an
integer tensor), a chat (a list of message dicts, or a list of chats), or a tokenizer's output (a mapping). Nothing
else is guessed at: None, an empty list, a number, a float tensor or a list mixing kinds raise a typed error that
names what was found and what to pass. Whether a string holds any token is known only once it is tokenized (a
tokenizer that adds a BOS token makes ``""`` one token), so `check_token_rows` checks the batched ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch._subclasses.fake_tensor import is_fake

from ..errors import PromptError, ToolkitTypeError

# Keywords that carry an invoke's data when it has no positional input (nnsight counts them as rows).
DATA_KEYWORDS = ("text", "images", "pixel_values", "input_features", "input_ids", "inputs_embeds")

WHAT_TO_PASS = ("pass a string, a list of strings, token ids (a list of ints or an integer tensor) or a "
                "tokenizer's output")


def _kind(item: Any) -> str | None:
    """What one entry of a list input is: a prompt, a token id, a row (of ids, or a chat), a chat message."""
    if isinstance(item, str):
        return "prompt"
    if isinstance(item, int) and not isinstance(item, bool):
        return "token id"
    if isinstance(item, (list, tuple)):
        return "row"
    if isinstance(item, Mapping):
        return "chat message"
    return None


def _check_list(data: list | tuple, where: str) -> None:
    if not data:
        raise PromptError(f"{where} is an empty list: it holds no prompt to run; {WHAT_TO_PASS}")
    first = _kind(data[0])
    for index, item in enumerate(data):
        kind = _kind(item)
        if kind is None or kind != first:
            found = f"{type(item).__name__} ({item!r:.60})"
            expected = f"a {first} like {where}[0]" if first is not None and kind is not None else "a string"
            raise ToolkitTypeError(f"{where}[{index}] is {found}, expected {expected}: every entry of a list input "
                                   f"is of one kind; {WHAT_TO_PASS}")
        if kind == "row":
            _check_list(item, f"{where}[{index}]")


def check_trace_input(inputs: tuple, kwargs: Mapping[str, Any]) -> None:
    """Refuse a trace input that cannot be run (see the module docstring); no positional input is invoke mode
    (``tracer.invoke(...)`` blocks, or keyword inputs such as ``input_ids=``), checked once batched."""
    if not inputs:
        return
    data = inputs[0]
    if data is None:
        if any(kwargs.get(key) is not None for key in DATA_KEYWORDS):
            return
        raise PromptError(f"the trace's input is None: {WHAT_TO_PASS}; or open the trace without an input and run "
                          "each prompt in a tracer.invoke(...) block")
    if isinstance(data, (str, Mapping)):
        return
    if isinstance(data, torch.Tensor):
        if data.is_floating_point() or data.is_complex() or data.dtype == torch.bool:
            raise ToolkitTypeError(f"the trace's input is a {data.dtype} tensor, not token ids: pass integer token "
                                   "ids, or embeddings as the keyword inputs_embeds=")
        if data.numel() == 0:
            raise PromptError(f"the trace's input is an empty tensor of shape {tuple(data.shape)}: it holds no "
                              "token to run")
        return
    if isinstance(data, (list, tuple)):
        _check_list(data, "the trace's input")
        return
    raise ToolkitTypeError(f"the trace's input is {type(data).__name__} ({data!r:.60}): {WHAT_TO_PASS}")


def batched_ids(batched: tuple) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """The token ids of a forward input as nnsight's batching returns it (``(args, kwargs)``), and its keyword
    inputs: ``input_ids``, else a tensor passed first; None where there are none (embeddings, features)."""
    args, kwargs = batched if len(batched) == 2 and isinstance(batched[1], dict) else ((), {})
    ids = kwargs.get("input_ids", args[0] if args and isinstance(args[0], torch.Tensor) else None)
    return (ids if isinstance(ids, torch.Tensor) else None), kwargs


def check_token_rows(ids: torch.Tensor, attention_mask: Any) -> None:
    """Refuse a batch with no token, or a row whose attention mask holds no real token (a prompt that tokenized
    to nothing, such as ``""`` with a tokenizer that adds no BOS token)."""
    if ids.shape[-1] == 0:
        raise PromptError("the input tokenizes to no token (an empty string, or text the tokenizer drops): give "
                          "every prompt some text the tokenizer keeps")
    if isinstance(attention_mask, torch.Tensor) and attention_mask.ndim == 2 and not is_fake(attention_mask):
        # (a fake tensor, under model.scan, has a shape and no values to read)
        empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
        if empty:
            raise PromptError(f"prompt(s) {empty} of the batch tokenize to no token (their attention mask is all "
                              "zeros): give every prompt some text the tokenizer keeps")
