"""Find where an attention module computes its probabilities, by reading its source.

nnsight labels every operation of a forward (``attn_weights_3``, ``attention_interface_1``),
but the labels shift between releases. So we never hard-code them: we parse the forward,
find the statement that applies a softmax, follow the reassignments of its result
(dropout, dtype casts) to the value actually multiplied with the values, and look up the
label nnsight gave that statement. When the softmax lives in a helper the forward calls
(transformers' ``eager_attention_forward`` behind ``attention_interface``), we resolve
the helper statically and descend into it. The load-time checks then verify the result.
"""

from __future__ import annotations

import ast
import functools
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeGuard

MAX_DEPTH = 3


@dataclass(frozen=True)
class ProbabilitiesLocation:
    """Where probabilities are computed: a submodule of the attention (``""`` for itself),
    then the chain of ``.source`` operations down to the probabilities."""

    submodule: str
    ops: tuple[str, ...]
    function: Callable  # the function whose source holds the final operation


def locate_attention_probabilities(attention: Any, call: int = 0) -> ProbabilitiesLocation | None:
    """Where ``attention`` (an nn.Module) computes softmax probabilities, or None.

    ``call`` picks among several calls of the forward that reach a softmax, in source order
    (XLNet's forward has four; its one-stream path, the one a causal LM runs, is the last: -1)."""
    found = list(_locations(type(attention).forward, attention, depth=0))
    return found[call] if -len(found) <= call < len(found) else None


def undecorated(function: Callable) -> Callable:
    """The function a decorated ``function`` wraps, at any depth: what nnsight compiles for ``.source``.

    Decorators (``functools.wraps`` or not, transformers' ``deprecate_kwarg``...) hide the body
    that holds the softmax. We peel them exactly as nnsight does, with its own ``decorator_chain``,
    so the labels we read are the labels ``.source`` exposes at trace time.
    """
    from nnsight.intervention.source import decorator_chain

    return decorator_chain(function)[0]


def _locate(function: Callable, owner: Any, depth: int) -> ProbabilitiesLocation | None:
    return next(_locations(function, owner, depth), None)


def _locations(function: Callable, owner: Any, depth: int) -> Iterator[ProbabilitiesLocation]:
    """Every place ``function`` reaches softmax probabilities: itself, else each call leading to one, in order."""
    from nnsight.intervention.source import SourceNotAvailable, compiled

    function = undecorated(function)
    try:
        code = compiled(function)
    except (SourceNotAvailable, OSError, TypeError):
        return
    definition = ast.parse(code.source).body[0]
    label = _softmax_result_label(definition, code)
    if label is not None:
        yield ProbabilitiesLocation("", (label,), function)
        return
    if depth >= MAX_DEPTH:
        return
    for call in _calls_in_order(definition):
        child = _child_module(call, owner)
        if child is not None:
            inner = _locate(type(child).forward, child, depth + 1)
            if inner is not None:
                name = _dotted(call.func).rpartition(".")[2]  # self.<name>(...)
                yield ProbabilitiesLocation(f"{name}.{inner.submodule}".rstrip("."), inner.ops, inner.function)
            continue
        callee = _resolve_callee(call, definition, function, type(owner))
        if callee is None:
            continue
        inner = _locate(callee, owner, depth + 1)
        call_label = _label_on_lines(code, _dotted(call.func).replace(".", "_"), call.lineno, call.end_lineno)
        if inner is not None and call_label is not None and not inner.submodule:
            yield ProbabilitiesLocation("", (call_label,) + inner.ops, inner.function)


def _child_module(call: ast.Call, owner: Any) -> Any | None:
    """The direct submodule a ``self.<child>(...)`` call runs, if it is one."""
    target = call.func
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        return getattr(owner, "_modules", {}).get(target.attr)
    return None


def _softmax_result_label(definition: ast.FunctionDef, code: Any) -> str | None:
    """Label of the last assignment that still holds the softmax result before it meets the values.

    Follows the result through dropout, dtype casts and slicing (attention sinks), renamed
    or not, and stops at the first statement that multiplies it with anything.
    """
    branches = _if_branches(definition)
    for body in _statement_blocks(definition):
        for index, statement in enumerate(body):
            if not (_is_single_assign(statement) and _calls_softmax(statement.value)):
                continue
            variable, final = statement.targets[0].id, statement
            block, rest = body, body[index + 1:]
            while True:
                stopped = False
                for follower in rest:
                    if _passes_through(follower, variable):
                        continue  # e.g. `if sinks: probs = probs[..., :-1]`: the next statement reads either
                    if not (_is_single_assign(follower) and _mentions(follower.value, variable)) \
                            or _multiplies(follower.value):
                        stopped = True
                        break
                    variable, final = follower.targets[0].id, follower
                # A branch of an if/else whose branches all end assigning the variable (an fp16
                # upcast variant of the softmax): follow on after the if, where the label is
                # on a statement that runs whichever branch was taken.
                if stopped or id(block) not in branches or not _all_end_assigning(branches[id(block)][0], variable):
                    break
                conditional, block = branches[id(block)]
                rest = block[block.index(conditional) + 1:]
            return _label_on_lines(code, variable, final.lineno, final.end_lineno)
    return None


def _if_branches(definition: ast.FunctionDef) -> dict[int, tuple[ast.If, list[ast.stmt]]]:
    """For each branch of an if/else: the if statement and the statement list holding it."""
    branches = {}
    for block in _statement_blocks(definition):
        for statement in block:
            if isinstance(statement, ast.If) and statement.orelse:
                for branch in (statement.body, statement.orelse):
                    branches[id(branch)] = (statement, block)
    return branches


def _all_end_assigning(conditional: ast.If, variable: str) -> bool:
    return all(_is_single_assign(branch[-1]) and branch[-1].targets[0].id == variable
               for branch in (conditional.body, conditional.orelse))


def _multiplies(node: ast.AST) -> bool:
    """Whether an expression combines tensors: a matmul, einsum or bmm (probabilities meeting values)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.MatMult):
            return True
        if isinstance(sub, ast.Call) and _dotted(sub.func).rpartition(".")[2] in ("matmul", "einsum", "bmm"):
            return True
    return False


def _statement_blocks(definition: ast.FunctionDef) -> list[list[ast.stmt]]:
    """Every statement list in the function (its body, if/else branches, ...), in order."""
    blocks = [definition.body]
    for node in ast.walk(definition):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(node, name, None)
            if node is not definition and isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                blocks.append(block)
    return blocks


class _SingleAssign(ast.Assign):
    """For type checkers: an ``ast.Assign`` to one plain name (``_is_single_assign`` checked it)."""

    targets: list[ast.Name]  # type: ignore[assignment]


def _is_single_assign(statement: ast.stmt) -> TypeGuard[_SingleAssign]:
    return (isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name))


def _passes_through(statement: ast.stmt, variable: str) -> bool:
    """An ``if`` whose branches only reshape, slice or copy ``variable``, multiplying nothing: dropping a
    sink column (``if sinks: probs = probs[..., :-1]``) or older forwards' ``if output_attentions:`` views.

    Its assignments run on some calls only, so none can be the label; the statement after it can.
    """
    return isinstance(statement, ast.If) and all(_branch_passes_through(branch, variable)
                                                 for branch in (statement.body, statement.orelse))


def _branch_passes_through(branch: list[ast.stmt], variable: str) -> bool:
    """Single assignments without products, where ``variable`` is only ever rewritten from itself
    or from a name the branch derived from it."""
    derived = {variable}
    for inner in branch:
        if not _is_single_assign(inner) or _multiplies(inner.value):
            return False
        from_variable = any(_mentions(inner.value, name) for name in derived)
        if inner.targets[0].id == variable and not from_variable:
            return False
        if from_variable:
            derived.add(inner.targets[0].id)
    return True


def _calls_softmax(node: ast.AST) -> bool:
    """Whether an expression applies a softmax: ``F.softmax(x)``, ``x.softmax()`` or ``nn.Softmax(dim)(x)``."""
    return any(isinstance(sub, ast.Call) and _dotted(sub.func).lower().endswith("softmax") for sub in ast.walk(node))


def _mentions(node: ast.AST, variable: str) -> bool:
    return any(isinstance(sub, ast.Name) and sub.id == variable for sub in ast.walk(node))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _label_on_lines(code: Any, prefix: str, first: int, last: int | None) -> str | None:
    """The latest nnsight label named ``{prefix}_{n}`` on the given source lines."""
    if not prefix:
        return None
    last = first if last is None else last
    candidates = [name for name in code.names
                  if name.rpartition("_")[0] == prefix and first <= code.lines[name] <= last]
    return max(candidates, key=lambda name: int(name.rpartition("_")[2]), default=None)


def _calls_in_order(definition: ast.FunctionDef) -> list[ast.Call]:
    """Calls in source order, those through transformers' attention interface first.

    A forward may hold an alternative path behind a config flag (GPT-2's upcast
    attention); the interface call is the one that runs by default.
    """
    calls = sorted((node for node in ast.walk(definition) if isinstance(node, ast.Call)),
                   key=lambda call: (call.lineno, call.col_offset))
    return sorted(calls, key=lambda call: "attention_interface" not in _dotted(call.func))


def _resolve_callee(call: ast.Call, definition: ast.FunctionDef, function: Callable, owner: type) -> Callable | None:
    """The Python function a call reaches under eager attention, when it can be known statically."""
    namespace = sys.modules[function.__module__].__dict__
    target = call.func
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
        candidate = getattr(owner, target.attr, None)
        return candidate if callable(candidate) and hasattr(candidate, "__code__") else None
    if not isinstance(target, ast.Name):
        return None
    if callable(namespace.get(target.id)) and hasattr(namespace[target.id], "__code__"):
        return namespace[target.id]
    # A local bound to the eager function, directly or as get_interface's default.
    for node in ast.walk(definition):
        value = _assigned_value(node, target.id)
        for name in _function_names(value):
            candidate = namespace.get(name)
            if callable(candidate) and hasattr(candidate, "__code__") and "eager" in name:
                return candidate
    return None


def _assigned_value(node: ast.AST, variable: str) -> ast.AST | None:
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets):
        return node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == variable:
        return node.value
    return None


def _function_names(value: ast.AST | None) -> list[str]:
    if value is None:
        return []
    return [node.id for node in ast.walk(value) if isinstance(node, ast.Name)]


@functools.lru_cache(maxsize=64)  # one attention function serves every layer: parse its source once
def softmax_input_label(function: Callable) -> tuple[str | None, str]:
    """The nnsight label of the softmax call whose result `locate_attention_probabilities` follows in
    ``function``, where its first positional input is the pre-softmax scores (``F.softmax(scores, ...)``,
    ``torch.softmax(scores, ...)``); else None and why not (a method ``scores.softmax(...)`` or a softmax module
    is not handed the scores as an input nnsight serves)."""
    from nnsight.intervention.source import SourceNotAvailable, compiled

    function = undecorated(function)
    try:
        code = compiled(function)
    except (SourceNotAvailable, OSError, TypeError) as error:
        return None, f"{function.__qualname__} has no readable source ({error})"
    definition = ast.parse(code.source).body[0]
    namespace = sys.modules[function.__module__].__dict__
    for body in _statement_blocks(definition):
        for statement in body:
            if not (_is_single_assign(statement) and _calls_softmax(statement.value)):
                continue
            call = next(sub for sub in ast.walk(statement.value)
                        if isinstance(sub, ast.Call) and _dotted(sub.func).lower().endswith("softmax"))
            dotted = _dotted(call.func)
            if not (call.args and isinstance(namespace.get(dotted.partition(".")[0]), types.ModuleType)):
                return None, f"{function.__qualname__} applies its softmax as `{dotted or 'a call'}(...)`, which " \
                             "is not handed the scores as its first argument"
            label = _label_on_lines(code, dotted.replace(".", "_"), call.lineno, call.end_lineno)
            return label, "" if label else f"{function.__qualname__}'s softmax call has no nnsight label"
    return None, f"{function.__qualname__} applies no softmax"
