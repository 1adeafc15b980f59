"""A construction that fails leaves the caller's model as it was.

Building a StandardizedTransformer over a model changes that model: ``_adopt`` puts it in eval mode,
``enable_attention_probs=True`` switches its attention to eager (its configs and, for older models, the class of
its attention modules), nnsight installs its controller on every submodule (an instance ``forward`` and its
``__nnsight__`` state), and the layer-output arity is measured with a forward hook on the first layer. A model
that loads keeps the documented part of that (eval mode, eager attention, nnsight's controller). A construction
that raises keeps none of it: an earlier model over the same modules goes on working as before, and the caller
can correct the arguments and try again.

:class:`ModuleState` records, for every submodule, its class, every entry of its instance ``__dict__`` and the
items of torch's dicts held there (``_parameters``, ``_buffers``, ``_modules``, the hook tables); for every config
(the modules', their sub-configs at any depth, the generation config) its ``__dict__`` and the items of every dict
held there. :meth:`ModuleState.restore`
puts each back: an entry added is removed, an entry replaced is put back, a dict edited in place gets its items
back. The record is shallow: a value changed inside (a tensor's data, a list edited in place) is not, and
construction changes none, except one that is inert: where a module already carries nnsight's state (an earlier
model wraps it), the failed model's interleaver stays listed there, weakly (it runs no trace, and goes with the
failed model). The caller's tokenizer and processor need no record: the model works on its own copies
(:mod:`nnterp.utils.tokenizer_copy`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import torch

_ABSENT = object()

# The dicts torch keeps in every module's ``__dict__`` (parameters, buffers, submodules, hook tables), whose items
# a record copies; read off a plain module, so that a torch adding one is followed.
_MODULE_TABLES = tuple(key for key, value in vars(torch.nn.Module()).items() if isinstance(value, dict))

# A namespace's record: a copy of it, the keys of the dicts in it whose items count (None: every dict in it), and
# a copy of each of those that is not empty (an empty one needs no copy).
_Record = tuple[dict[str, Any], "tuple[str, ...] | None", list[tuple[dict, dict]]]


def _record(namespace: dict[str, Any], tables: tuple[str, ...] | None = None) -> _Record:
    entries = namespace.copy()
    if tables is not None:  # a module's: torch's tables are dicts, and most of them empty
        return entries, tables, [(value, value.copy()) for key in tables if (value := entries.get(key))]
    return entries, tables, [(value, value.copy()) for value in entries.values() if isinstance(value, dict) and value]


def _put_back(namespace: dict[str, Any], record: _Record) -> None:
    """``namespace`` as recorded: entries added removed, entries replaced put back, held dicts' items put back."""
    entries, tables, filled = record
    for key in [key for key in namespace if key not in entries]:
        del namespace[key]
    for key, value in entries.items():
        if namespace.get(key, _ABSENT) is not value:
            namespace[key] = value
    items_of = {id(table): items for table, items in filled}
    for table in entries.values() if tables is None else [entries.get(key) for key in tables]:
        if isinstance(table, dict):
            items = items_of.get(id(table), {})
            if table.keys() != items.keys() or any(table[key] is not value for key, value in items.items()):
                table.clear()
                table.update(items)


class ModuleState:
    """What a construction may change on ``model`` (see the module docstring), recorded to be put back.

    Recorded on every construction over a built model, so kept cheap: copies of dicts, no walk of the
    parameters (construction does not change what they hold, nor their ``requires_grad``)."""

    def __init__(self, model: torch.nn.Module) -> None:
        modules = list(model.modules())
        self._modules = [(module, type(module), _record(module.__dict__, _MODULE_TABLES)) for module in modules]
        self._configs = [(config, _record(vars(config))) for config in _configs(modules)]

    def restore(self) -> None:
        """Put ``model`` back as it was recorded."""
        for module, module_class, record in self._modules:
            if type(module) is not module_class:
                module.__class__ = module_class
            _put_back(module.__dict__, record)
        for config, record in self._configs:
            _put_back(vars(config), record)


def _configs(modules: Iterable[torch.nn.Module]) -> list[Any]:
    """Every distinct config the modules hold (``config``, ``generation_config``), with its sub-configs at any
    depth (transformers' ``set_attn_implementation`` switches sub-configs no module holds, too)."""
    found: dict[int, Any] = {}
    pending = [value for module in modules for value in (module.__dict__.get("config"),
                                                         module.__dict__.get("generation_config"))]
    while pending:
        config = pending.pop()
        if config is None or id(config) in found or not hasattr(config, "__dict__"):
            continue
        found[id(config)] = config
        pending.extend(getattr(config, key, None) for key in getattr(config, "sub_configs", None) or ())
    return list(found.values())


@contextmanager
def restored_on_failure(model: Any) -> Iterator[None]:
    """Run the block; if it raises, put ``model`` back as it was before it (a torch module: anything else, a hub id
    or a path, is nothing of the caller's that the block could change), then re-raise."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    state = ModuleState(model)
    try:
        yield
    except BaseException:
        state.restore()
        raise
