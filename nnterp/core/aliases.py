"""The standard names bound onto nnsight's envoy tree once it is built, only where they can resolve.

Handed a ``rename=`` mapping, nnsight tries every key on every envoy as it builds the tree, and on a
toy model the failed attempts (each an AttributeError through ``Envoy.__getattr__``) cost as much as
half of the wrap. StandardizedTransformer hands nnsight the mapping empty, then fills it and runs
nnsight's own ``aliasing.bind`` on the envoys where some key's first component exists, children before
their parents as nnsight does: the same aliases and the same refusals, a fraction of the lookups.
(tests/test_architectures.py checks the result against nnsight's rule on every toy architecture.)
"""

from __future__ import annotations

from typing import Any, Iterator


def bind_where_resolvable(root: Any, rename: dict[str, str]) -> None:
    """Bind ``rename`` (already ``root._rename``, shared by every envoy) on each envoy where a key may resolve."""
    from nnsight.intervention import aliasing

    firsts = {key.lstrip(".").split(".")[0] for key in rename}
    for envoy in children_first(root):
        if envoy._rename is rename and any(may_start_at(envoy, first) for first in firsts):
            aliasing.bind(envoy)


def children_first(envoy: Any) -> Iterator[Any]:
    """Every envoy of the tree, each after its children (the order nnsight builds, and so binds, them)."""
    for child in envoy._children:
        yield from children_first(child)
    yield envoy


def may_start_at(envoy: Any, name: str) -> bool:
    """Whether ``getattr(envoy, name)`` can be an envoy: a child, an alias, or an attribute of the wrapped
    module or of either class (a property returning a module is wrapped on first access)."""
    module = envoy._module
    return (name in envoy.__dict__ or name in module._modules or name in module.__dict__
            or hasattr(type(module), name) or hasattr(type(envoy), name))
