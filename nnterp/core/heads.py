"""Per-head views of softmax attention: ``model.heads_output[i]``, ``model.queries[i]``, ``keys[i]``, ``values[i]``.

Nothing here is spelled per architecture. Where an attention module splits into heads is found by
reading its forward (the undecorated function nnsight compiles for ``.source``):

- the *attention call* hands the queries, keys and values the model attends with (after rotary embeddings,
  grouped keys/values as stored) to the code that attends, either
  - an attention function called ``f(self, query, key, value, ...)`` (transformers' ``attention_interface``,
    resolved statically to its eager default), or
  - a helper method of the module called ``self.f(query, key, value, ...)`` (GPT-Neo's ``self._attn``),
  recognised by the callee's first three parameters (``query, key, value``, ``q, k, v``, ``query_states``...).
  A helper is read further: it must take a softmax of the queries times the *transposed* keys, which fixes the
  layout as (batch, heads, seq, head_dim); a helper handed keys already transposed (GPT-1's ``matmul(q, k)``)
  or multiplying in another layout (XLNet's seq-first einsum) is refused, with that reason. Forwards calling
  several of them are refused too: on separate paths (which one runs depends on the path), or where several
  can run in one forward, two in sequence or one in a loop (DiffLlama attends once per half of its values: no
  one call holds the values as stored, and an edit would reach only one call);
- the *output projection* is the last child module with a weight matrix the forward calls after the
  attention call (``o_proj``, ``c_proj``, ``dense``...): its input is the heads' outputs side by side,
  ``(batch, seq, heads * head_dim)``, served as ``(batch, seq, heads, head_dim)``; refused when two of its calls
  can both run in one forward (ProphetNet's main and n-gram streams; calls in opposite branches of an ``if``,
  like Falcon's per-path ``dense``, run once) or it reads what another module made of the heads (DeepSeek-V4's
  grouped projection);
- an attention that only delegates (GPT-Neo's wrapper, BERT's ``self`` then ``output``) is read through the
  children it calls.

Forwards that attend inline (BLOOM's ``baddbmm`` on (batch * heads)-folded queries and pre-transposed keys,
Falcon's ``@`` in four config-dependent paths, BERT-style ``matmul``s) have no call whose inputs are the queries,
keys and values: their queries / keys / values raise `HeadsUnavailable` with that reason. Layers without softmax
attention (Mamba, RWKV...) raise it too, naming the layers that have it.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, cast

import torch

from ..errors import HeadsUnavailable
from .accessors import AttentionArgument, HeadsOutput, walk

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer

# How the callee's first three parameters (after the module, for an attention function) start, in order, split
# on "_": ``query, key, value``, ``q, k, v``, ``query_states, key_states, value_states``, ``q_head, k_head_h...``.
ATTENTION_ARGUMENTS = (("q", "query", "queries"), ("k", "key", "keys"), ("v", "value", "values"))
# Which of the attention call's (query, key, value) each accessor serves; the call's HeadSplit.first_argument
# says where the queries sit among its positional inputs (1 after the module, 0 for a helper method).
ARGUMENT_INDEX = {"queries": 0, "keys": 1, "values": 2}


@dataclass(frozen=True)
class HeadSplit:
    """Where one attention class splits into heads: the nnsight label of its attention call (None if the
    forward has none), made in the child ``submodule`` ("" for the attention itself), the position of the
    queries among that call's positional inputs (1 after the module handed to an attention function, 0 for a
    helper method), and the dotted path of its output projection (None if it has none)."""

    attention_call: str | None
    projection: str | None
    reason: str = ""  # why a part is missing, for the error message
    submodule: str = ""
    first_argument: int = 1


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
        return replace(inner, projection=projection, reason="" if projection else inner.reason,
                       submodule=_joined(name, inner.submodule))
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

    from .attention_probs import _dotted, _label_on_lines, undecorated

    function = undecorated(type(attention).forward)
    try:
        code = compiled(function)
    except (SourceNotAvailable, OSError, TypeError) as error:
        return HeadSplit(None, None, f"its forward has no readable source ({error})"), []
    definition = ast.parse(code.source).body[0]
    calls = sorted((node for node in ast.walk(definition) if isinstance(node, ast.Call)),
                   key=lambda call: (call.lineno, call.col_offset))
    found = [(call, kind) for call in calls if (kind := _attention_call(call, definition, function, attention))]
    served = [(call, first) for call, (first, why) in found if not why]
    refused = list(dict.fromkeys(why for _, (_, why) in found if why))
    # Calls that can run several times in one forward (two in sequence, one in a loop: DiffLlama attends once per
    # half of its values) have no one set of queries, keys and values: an edit would reach only one call.
    # Otherwise calls attending on separate paths (XLNet's one- and two-stream branches): which one runs depends
    # on the path taken.
    paths = _paths(definition)
    repeated = bool(served) and _may_run_twice([call for call, _ in served], paths)
    several = len(served) > 1 and not repeated and _on_separate_paths([call for call, _ in served], paths)
    anchor, first_argument = served[0] if served else (None, 1)
    label = None if anchor is None or several or repeated else \
        _label_on_lines(code, _dotted(anchor.func).replace(".", "_"), anchor.lineno, anchor.end_lineno)
    after = (anchor.end_lineno or anchor.lineno) if anchor is not None else 0
    projections = [call for call in calls if call.lineno > after and _weighted_child(call, attention)]
    projection = _dotted_self(projections[-1]) if projections else None
    # A projection that can run twice in one forward (ProphetNet's main and n-gram streams) has no one input to
    # serve; one reading what another module made of the heads (DeepSeek-V4's grouped o_a_proj) is not per head.
    shared = projection is not None and \
        _may_run_twice([call for call in calls if _dotted_self(call) == projection], paths)
    mixed = bool(projections) and anchor is not None and \
        _fed_by_modules(definition, projections[-1], anchor.lineno, attention)
    reason = "" if label and projection and not (shared or mixed) else (
        f"{type(attention).__name__}.forward has " + " and ".join(
            part for part, missing in (
                ("no call handing (query, key, value) to an attention function or helper method (it attends "
                 "inline, if at all)", not found),
                *((why, not served) for why in refused),
                (f"{len(served)} calls attending on (query, key, value) in separate branches, which one runs "
                 "depends on the path taken", several),
                (_attends_several_times(len(served)), repeated),
                ("no output projection after its attention", not projection),
                (f"its output projection {projection} called in several places that can all run", shared),
                (f"its output projection {projection} fed by another module", mixed))
            if missing))
    names = dict.fromkeys(name for call in calls if (name := _dotted_self(call)) in attention._modules)
    children = [(name, module) for name in names if (module := attention._modules[name]) is not None]
    return HeadSplit(label, None if shared or mixed else projection, reason, first_argument=first_argument), \
        children


def _attends_several_times(count: int) -> str:
    """Why ``count`` attention calls, of which several (or one, in a loop) run in one forward, are not served."""
    calls = f"{count} calls attending on (query, key, value) that can run in one forward" if count > 1 else \
        "a call attending on (query, key, value) in a loop"
    return f"{calls}: it attends several times per forward, and an edit of queries, keys or values would reach " \
           "only one of those calls"


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


Branches = frozenset[tuple[int, int]]  # the (if statement, branch) pairs a node sits in


def _may_run_twice(calls: list[ast.Call], paths: dict[int, tuple[Branches, bool]]) -> bool:
    """Whether two of ``calls`` (or one, in a loop) can both run in one pass through the function whose
    ``_paths`` are given: calls in opposite branches of one ``if`` cannot (Falcon's ``dense`` on each of its
    attention paths)."""
    found = [paths[id(call)] for call in calls]
    return any(looped for _, looped in found) or any(
        not _exclusive(found[i][0], found[j][0]) for i in range(len(found)) for j in range(i + 1, len(found)))


def _on_separate_paths(calls: list[ast.Call], paths: dict[int, tuple[Branches, bool]]) -> bool:
    """Whether two of ``calls`` sit in opposite branches of one ``if``: which of them runs depends on the path."""
    found = [paths[id(call)][0] for call in calls]
    return any(_exclusive(found[i], found[j]) for i in range(len(found)) for j in range(i + 1, len(found)))


def _paths(definition: ast.FunctionDef) -> dict[int, tuple[Branches, bool]]:
    """For each call in ``definition`` (by id): the if-branches it sits in, and whether it sits in a loop."""
    paths: dict[int, tuple[Branches, bool]] = {}

    def visit(node: ast.AST, path: Branches, looped: bool) -> None:
        if isinstance(node, ast.Call):
            paths[id(node)] = (path, looped)
        if isinstance(node, ast.If):
            visit(node.test, path, looped)
            for branch, block in enumerate((node.body, node.orelse)):
                for child in block:
                    visit(child, path | {(id(node), branch)}, looped)
            return
        if isinstance(node, (ast.For, ast.AsyncFor)):  # what it iterates over, and its else, run once
            for once in (node.target, node.iter, *node.orelse):
                visit(once, path, looped)
            for child in node.body:
                visit(child, path, True)
            return
        looped = looped or isinstance(node, (ast.While, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp))
        for inner in ast.iter_child_nodes(node):
            visit(inner, path, looped)

    visit(definition, frozenset(), False)
    return paths


def _exclusive(first: Branches, second: Branches) -> bool:
    """Whether two nodes sit in opposite branches of one ``if``."""
    return any((statement, 1 - branch) in second for statement, branch in first)


def _attention_call(call: ast.Call, definition: ast.FunctionDef, function: Callable,
                    owner: torch.nn.Module) -> tuple[int, str] | None:
    """For a call handing (query, key, value) to the code that attends, ``f(self, q, k, v, ...)`` or a helper
    method ``self.f(q, k, v, ...)``: where the queries sit among its positional inputs (1, 0) and why it cannot
    be served ("" where it can); None for any other call."""
    from .attention_probs import _resolve_callee

    if len(call.args) < 3 or any(isinstance(argument, ast.Starred) for argument in call.args[:4]):
        return None
    method = _dotted_self(call)
    if method is not None:  # self.f(q, k, v, ...): nnsight's inputs are the bound method's, without the module
        helper = None if method in owner._modules else getattr(owner, method, None)
        if not hasattr(getattr(helper, "__func__", helper), "__code__"):
            return None
        try:
            parameters = list(inspect.signature(cast(Callable, helper)).parameters)[:3]
        except (TypeError, ValueError):
            return None
        return (0, _attends(cast(Callable, helper), parameters)) if _takes_query_key_value(parameters) else None
    if not (isinstance(call.func, ast.Name) and len(call.args) >= 4 and isinstance(call.args[0], ast.Name)
            and call.args[0].id == "self"):
        return None
    callee = _resolve_callee(call, definition, function, type(owner))
    if callee is None:
        return None
    parameters = list(inspect.signature(inspect.unwrap(callee)).parameters)[1:4]
    return (1, "") if _takes_query_key_value(parameters) else None


def _takes_query_key_value(parameters: list[str]) -> bool:
    """Whether three parameter names read query, key, value (``q, k, v``, ``query_states, key_states...``)."""
    return len(parameters) == 3 and all(name.split("_")[0] in accepted
                                        for name, accepted in zip(parameters, ATTENTION_ARGUMENTS))


def _attends(helper: Callable, parameters: list[str]) -> str:
    """"" if the helper method takes a softmax of its queries times its keys transposed in it (``query @
    key.transpose(-1, -2)``, ``baddbmm(.., query, key.transpose(1, 2))``): then both hold (..., seq, head_dim).
    Otherwise why its inputs are not served: keys handed already transposed (GPT-1's ``matmul(q, k)``), an
    einsum in another layout (XLNet's seq-first ``ibnd``), or no softmax at all."""
    from .attention_probs import _calls_softmax, _dotted, undecorated

    function = undecorated(getattr(helper, "__func__", helper))
    signature = f"a helper method {function.__name__}({', '.join(parameters)}, ...)"
    try:
        definition = cast(ast.FunctionDef, ast.parse(textwrap.dedent(inspect.getsource(function))).body[0])
    except (OSError, TypeError, SyntaxError):
        return f"{signature} whose source cannot be read"
    queries, keys = _derived(definition, parameters[0]), _derived(definition, parameters[1])
    transposed = _derived(definition, "", start=lambda value: _transposes(value, keys), through=False)

    def is_transposed_key(node: ast.AST) -> bool:
        return _transposes(node, keys) or isinstance(node, ast.Name) and node.id in transposed

    def reads_queries(node: ast.AST) -> bool:  # query, query.to(..), query * scale...
        return any(isinstance(sub, ast.Name) and sub.id in queries for sub in ast.walk(node))

    softmax = any(_calls_softmax(node) for node in ast.walk(definition))
    for node in ast.walk(definition) if softmax else ():
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call) and _dotted(node.func).rpartition(".")[2] in ("matmul", "bmm", "baddbmm"):
            operands = [*node.args, *(keyword.value for keyword in node.keywords)]
        else:
            continue
        keyed = [operand for operand in operands if is_transposed_key(operand)]
        if keyed and any(reads_queries(operand) for operand in operands if operand not in keyed):
            return ""
    return f"{signature} that takes no softmax of {parameters[0]} times {parameters[1]} transposed in it (the " \
           "layout it is handed is not known to be (batch, heads, seq, head_dim))"


def _root(node: ast.AST) -> str | None:
    """The variable an expression of method calls, attributes and subscripts starts from (``key`` for
    ``key.view(...).to(dtype)[0]``); None for anything else."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        else:
            return None


def _transposes(node: ast.AST, names: set[str]) -> bool:
    """Whether ``node`` transposes one of ``names``: ``x.transpose(..)``, ``x.permute(..)``, ``x.mT``, ``x.T``,
    ``torch.transpose(x, ..)``."""
    if isinstance(node, ast.Attribute) and node.attr in ("mT", "T"):
        return _root(node.value) in names
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute) or \
            node.func.attr not in ("transpose", "permute"):
        return False
    receiver = node.func.value
    if isinstance(receiver, ast.Name) and receiver.id == "torch":
        return bool(node.args) and _root(node.args[0]) in names
    return _root(receiver) in names


def _derived(definition: ast.FunctionDef, name: str, start: Callable[[ast.AST], bool] | None = None,
             through: bool = True) -> set[str]:
    """``name`` and the variables assigned from it (``key = key.view(...)``: ``_root`` of the value), or the
    variables assigned a value ``start`` accepts; ``through``: also those assigned from such a variable."""
    names = {name} if name else set()
    assignments = [node for node in ast.walk(definition) if isinstance(node, ast.Assign) and len(node.targets) == 1
                   and isinstance(node.targets[0], ast.Name)]
    changed = True
    while changed:
        changed = False
        for node in assignments:
            target = cast(ast.Name, node.targets[0]).id
            if target not in names and ((start is not None and start(node.value))
                                        or through and _root(node.value) in names):
                names.add(target)
                changed = True
    return names


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
        def call(index: int) -> tuple[str, str, int]:
            split = splits.split(index, "attention_call", name)
            # split() checked the label is set
            return split.submodule or "", cast(str, split.attention_call), split.first_argument

        def build() -> AttentionArgument:
            accessor = AttentionArgument(model.num_layers, model.attentions, call, ARGUMENT_INDEX[name], name)
            accessor._splits = splits
            return accessor
        return build

    return {"heads_output": heads_output, **{name: argument(name) for name in ARGUMENT_INDEX}}
