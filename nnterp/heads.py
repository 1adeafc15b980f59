"""Per-head views of softmax attention: ``model.heads_output[i]``, ``model.queries[i]``, ``keys[i]``, ``values[i]``.

Nothing here is spelled per architecture. Where an attention module splits into heads is found by
reading its forward (the undecorated function nnsight compiles for ``.source``):

- the *attention call* is the call handing ``(self, query, key, value, ...)`` to an attention function
  (transformers' ``attention_interface``, resolved statically to its eager default and checked to take
  ``query, key, value``): its arguments are the queries, keys and values the model attends with, after
  rotary embeddings, with grouped keys/values as stored;
- the *output projection* is the last child module with a weight matrix the forward calls after the
  attention call (``o_proj``, ``c_proj``, ``dense``...): its input is the heads' outputs side by side,
  ``(batch, seq, heads * head_dim)``, served as ``(batch, seq, heads, head_dim)``; refused when it is called
  twice (ProphetNet) or reads what another module made of the heads (DeepSeek-V4's grouped projection);
- an attention that only delegates (GPT-Neo's wrapper, BERT's ``self`` then ``output``) is read through the
  children it calls.

Layers without softmax attention (Mamba, RWKV...) raise `HeadsUnavailable`, naming the layers that have it.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, cast

import torch

from .accessors import AttentionArgument, HeadsOutput, walk
from .errors import HeadsUnavailable

if TYPE_CHECKING:
    from .standardized import StandardizedTransformer

# The parameters an attention function takes after the module, in order: how the attention call is recognised.
ATTENTION_ARGUMENTS = ("query", "key", "value")
# Which argument of the attention call each accessor serves (0 is the module itself).
ARGUMENT_INDEX = {"queries": 1, "keys": 2, "values": 3}


@dataclass(frozen=True)
class HeadSplit:
    """Where one attention class splits into heads: the nnsight label of its attention call (None if the
    forward has none), made in the child ``submodule`` ("" for the attention itself), and the dotted path of
    its output projection (None if it has none)."""

    attention_call: str | None
    projection: str | None
    reason: str = ""  # why a part is missing, for the error message
    submodule: str = ""


MAX_DEPTH = 2  # attention modules wrapping the one that attends (GPT-Neo, BERT's self / output pair)


def locate_head_split(attention: torch.nn.Module, depth: int = 0) -> HeadSplit:
    """Read ``attention``'s forward and find its attention call and output projection; where the forward only
    delegates to child modules, find them in the children it calls (the projection possibly in a later one)."""
    own, children = _own_split(attention)
    if own.attention_call or own.projection or depth >= MAX_DEPTH:
        return own
    for position, (name, child) in enumerate(children):
        inner = locate_head_split(child, depth + 1)
        if inner.attention_call is None:
            continue
        projection = _joined(name, inner.projection) if inner.projection else next(
            (_joined(later, found) for later, module in children[position + 1:]
             if (found := _own_split(module)[0].projection)), None)
        return HeadSplit(inner.attention_call, projection, "" if projection else inner.reason,
                         _joined(name, inner.submodule))
    for name, child in children:  # no attention function called anywhere: an output projection alone
        inner = locate_head_split(child, depth + 1)
        if inner.projection:
            return HeadSplit(None, _joined(name, inner.projection), inner.reason)
    return own


def _joined(parent: str, child: str | None) -> str:
    return f"{parent}.{child}".rstrip(".") if child is not None else parent


def _own_split(attention: torch.nn.Module) -> tuple[HeadSplit, list[tuple[str, torch.nn.Module]]]:
    """The split found in ``attention``'s own forward, and the child modules it calls, in source order."""
    from nnsight.intervention.source import SourceNotAvailable, compiled

    from .attention_probs import _label_on_lines, undecorated

    function = undecorated(type(attention).forward)
    try:
        code = compiled(function)
    except (SourceNotAvailable, OSError, TypeError) as error:
        return HeadSplit(None, None, f"its forward has no readable source ({error})"), []
    definition = ast.parse(code.source).body[0]
    calls = sorted((node for node in ast.walk(definition) if isinstance(node, ast.Call)),
                   key=lambda call: (call.lineno, call.col_offset))
    attention_call = next((call for call in calls if _is_attention_call(call, definition, function, attention)), None)
    label = None if attention_call is None else \
        _label_on_lines(code, cast(ast.Name, attention_call.func).id, attention_call.lineno, attention_call.end_lineno)
    after = (attention_call.end_lineno or attention_call.lineno) if attention_call is not None else 0
    projections = [call for call in calls if call.lineno > after and _weighted_child(call, attention)]
    projection = _dotted_self(projections[-1]) if projections else None
    # A projection called from two places (ProphetNet's main and n-gram streams) has no one input to serve;
    # one reading what another module made of the heads (DeepSeek-V4's grouped o_a_proj) is not per head.
    shared = projection is not None and sum(_dotted_self(call) == projection for call in calls) > 1
    mixed = bool(projections) and attention_call is not None and \
        _fed_by_modules(definition, projections[-1], attention_call.lineno, attention)
    reason = "" if label and projection and not (shared or mixed) else (
        f"{type(attention).__name__}.forward has " + " and ".join(
            part for part, missing in (("no call of an attention function on (self, query, key, value)", not label),
                                       ("no output projection after its attention", not projection),
                                       (f"its output projection {projection} called in several places", shared),
                                       (f"its output projection {projection} fed by another module", mixed))
            if missing))
    names = dict.fromkeys(name for call in calls if (name := _dotted_self(call)) in attention._modules)
    children = [(name, module) for name in names if (module := attention._modules[name]) is not None]
    return HeadSplit(label, None if shared or mixed else projection, reason), children


def _fed_by_modules(definition: ast.FunctionDef, projection: ast.Call, start: int, owner: torch.nn.Module) -> bool:
    """Whether the projection's input went through another child module since the attention call (line
    ``start``), following the variables it is computed from back through their assignments."""
    pending: list[ast.AST] = list(projection.args[:1])
    seen: set[str] = set()
    while pending:
        for node in ast.walk(pending.pop()):
            if isinstance(node, ast.Call) and _dotted_self(node) in owner._modules:
                return True
            if isinstance(node, ast.Name) and node.id not in seen:
                seen.add(node.id)
                value = _assigned_before(definition, node.id, start, projection.lineno)
                if value is not None:
                    pending.append(value)
    return False


def _assigned_before(definition: ast.FunctionDef, name: str, first: int, last: int) -> ast.AST | None:
    """The value of the latest assignment to ``name`` on lines ``first`` .. ``last - 1``."""
    found = None
    for node in ast.walk(definition):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and first <= node.lineno < last:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {sub.id for target in targets for sub in ast.walk(target) if isinstance(sub, ast.Name)}
            if name in names and node.value is not None and (found is None or node.lineno > found.lineno):
                found = node
    return None if found is None else found.value


def _dotted_self(call: ast.Call) -> str | None:
    """``child`` for a ``self.child(...)`` call, else None."""
    target = call.func
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return target.attr
    return None


def _is_attention_call(call: ast.Call, definition: ast.FunctionDef, function: Callable, owner: Any) -> bool:
    """``f(self, q, k, v, ...)`` where ``f`` resolves to a function taking (module, query, key, value, ...)."""
    from .attention_probs import _resolve_callee

    if not (isinstance(call.func, ast.Name) and len(call.args) >= 4 and isinstance(call.args[0], ast.Name)
            and call.args[0].id == "self"):
        return False
    callee = _resolve_callee(call, definition, function, type(owner))
    if callee is None:
        return False
    parameters = list(inspect.signature(inspect.unwrap(callee)).parameters)
    return tuple(parameters[1:4]) == ATTENTION_ARGUMENTS


def _weighted_child(call: ast.Call, owner: torch.nn.Module) -> bool:
    """Whether a call runs ``self.<child>`` where the child holds a weight matrix (a projection)."""
    name = _dotted_self(call)
    if name is None:
        return False
    child = owner._modules.get(name)
    weight = getattr(child, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.ndim == 2


class HeadSplits:
    """The head split of every layer of one model, found once per attention class on first use."""

    def __init__(self, model: StandardizedTransformer):
        self._model = model
        self._splits: tuple[HeadSplit | None, ...] | None = None

    def splits(self) -> tuple[HeadSplit | None, ...]:
        """Per layer: its HeadSplit, or None where the layer has no softmax attention."""
        if self._splits is None:
            softmax = set(self._model.architecture.softmax_layers)
            by_class: dict[type, HeadSplit] = {}
            modules = self._model._attention_modules()
            for index, module in enumerate(modules):
                if module is not None and index in softmax and type(module) not in by_class:
                    by_class[type(module)] = locate_head_split(module)
            self._splits = tuple(by_class[type(module)] if index in softmax else None
                                 for index, module in enumerate(modules))
        return self._splits

    def layers_with(self, part: str) -> list[int]:
        """Layers whose split has ``part`` ("projection" or "attention_call")."""
        return [i for i, split in enumerate(self.splits()) if split is not None and getattr(split, part)]

    def split(self, index: int, part: str, accessor: str) -> HeadSplit:
        """Layer ``index``'s split, or HeadsUnavailable naming the layers that have ``part``."""
        split = self.splits()[index]
        if split is None or getattr(split, part) is None:
            why = "has no softmax attention" if split is None else f"cannot be split: {split.reason}"
            raise HeadsUnavailable(accessor, index, self.layers_with(part), why,
                                   architecture=self._model.architecture.class_name)
        return split

    def num_heads(self, index: int) -> int:
        """The heads of layer ``index`` (the config's count, or its per-layer list where heads vary)."""
        model = self._model
        facts = model.architecture.spec.attention_facts
        return facts.probability_shapes(model._module.config, model.num_layers, 1, model.num_heads, 1)[index][1]


def head_accessors(model: StandardizedTransformer) -> dict[str, Callable[[], Any]]:
    """The per-head accessors of ``model``, by name, sharing one lazily located split per model (kept on each
    accessor as ``_splits`` for the analysis functions)."""
    splits = HeadSplits(model)

    def projection(index: int) -> Any:
        split = splits.split(index, "projection", "heads_output")
        return walk(model.attentions[index], cast(str, split.projection))  # split() checked it is set

    def heads_output() -> HeadsOutput:
        accessor = HeadsOutput(model.num_layers, projection, splits.num_heads)
        accessor._splits = splits
        return accessor

    def argument(name: str) -> Callable[[], AttentionArgument]:
        def call(index: int) -> tuple[str, str]:
            split = splits.split(index, "attention_call", name)
            return split.submodule or "", cast(str, split.attention_call)  # split() checked it is set

        def build() -> AttentionArgument:
            accessor = AttentionArgument(model.num_layers, model.attentions, call, ARGUMENT_INDEX[name], name)
            accessor._splits = splits
            return accessor
        return build

    return {"heads_output": heads_output, **{name: argument(name) for name in ARGUMENT_INDEX}}
