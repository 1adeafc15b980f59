"""Switch an already-built model to eager attention, the implementation that computes probabilities.

A model a user builds runs sdpa by default, which never materialises the (seq, seq) softmax.
transformers switches models that dispatch through its attention interface
(``set_attn_implementation``); it declines older ones such as Falcon, whose forwards branch on
``config._attn_implementation`` at every call, so for those the configs are switched directly.
Older models that pick an attention class per implementation when built (transformers 5.0's
DiffLlama, Nemotron and Moshi, from a ``*_ATTENTION_CLASSES`` table) get that table's eager class,
a base class of theirs with the same weights. The load-time checks then verify that the
probabilities really are computed.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, cast

import torch

EAGER = "eager"


def use_eager_attention(model: torch.nn.Module) -> str | None:
    """Make ``model``'s attention eager, in place; return the implementation it had (None if already eager)."""
    configs = _configs(model)
    before = next((config._attn_implementation for config in configs if config._attn_implementation != EAGER), None)
    if before is None:
        return None
    can_switch = getattr(type(model), "_can_set_attn_implementation", None)
    switch: Any = getattr(model, "set_attn_implementation", None)  # a method (torch types module attributes as
    if switch is not None and (can_switch is None or can_switch()):  # Tensor | Module, which hides it)
        switch(EAGER)
    for config in configs:  # what transformers declined, or a submodel it did not reach
        if config._attn_implementation not in (EAGER, None):
            config._attn_implementation = EAGER
    for module in model.modules():
        eager = _eager_class(cast(Any, type(module)))  # classes hash; typeshed types Module.__hash__ oddly
        if eager is not None:
            module.__class__ = eager
    return before


@functools.cache
def _eager_class(module_class: Any) -> type | None:
    """The eager class of an implementation -> class table (``*_ATTENTION_CLASSES``) in ``module_class``'s
    own module that lists it, where that is a base class of it; else None. Tables are recognised by what
    they hold (an ``"eager"`` key and this class among the values), not by their name."""
    namespace = getattr(sys.modules.get(module_class.__module__), "__dict__", {})
    for table in list(namespace.values()):
        if isinstance(table, dict) and isinstance(table.get(EAGER), type) and module_class in table.values():
            eager = table[EAGER]
            if eager is not module_class and eager in module_class.__mro__:
                return eager
    return None


def _configs(model: torch.nn.Module) -> list[Any]:
    """Every distinct config a module of ``model`` holds (text, vision and sub-model configs)."""
    found: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if hasattr(config, "_attn_implementation"):
            found.setdefault(id(config), config)
    return list(found.values())


def rebuild_hint(before: str | None) -> str | None:
    """What to tell a user whose switched model still computes no probabilities, or None if it was not switched."""
    if before is None:
        return None
    return (f"the model was built with {before} attention and switched to eager afterwards; an attention class "
            f"chosen when the model was built cannot change, so build it eager: "
            f"from_pretrained(..., attn_implementation='eager') or from_config(config, attn_implementation='eager')")
