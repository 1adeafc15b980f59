"""What `run_with_cache` reads inside its trace besides module inputs and outputs (which nnsight's
``tracer.cache`` records): operations of the attention forwards, the queries, keys and values handed to the
attention call, the scores handed to the softmax and the probabilities it returns.

Runs on the client or, shipped by value, on an NDIF server: it names only plain values planned on the client
(``OperationRead``) and the model's own accessors.
"""

from __future__ import annotations

from typing import Any, Tuple

from ...core.accessors import walk

# The operation kinds, in the order one attention forward computes them (nnsight serves values in run order).
OPERATION_KINDS = ("queries", "keys", "values", "attention_scores", "attention_probabilities")


# One value to read in the trace: (kind, layer, submodule, ops). For scores, where the softmax sits: the submodule
# below the attention ("" for itself) and the chain of nnsight operation labels down to the softmax call, whose
# first positional input is the scores (a plain tuple: a request ships it as data).
OperationRead = Tuple[str, int, str, Tuple[str, ...]]


def read_operations(model: Any, reads: list[OperationRead], device: Any) -> dict:
    """Inside a trace: each planned read's value (detached, on ``device`` unless None), keyed (kind, layer)."""
    values = {}
    arguments = {}  # per layer, the positional inputs of its attention call: one read serves q, k and v
    for kind, layer, submodule, ops in reads:
        if kind in ("queries", "keys", "values"):
            accessor = getattr(model, kind)
            if layer not in arguments:
                arguments[layer] = accessor._operation(layer).inputs[0]
            value = arguments[layer][accessor._position(layer)]
        elif kind == "attention_scores":
            envoy = model.attentions[layer]
            source = (walk(envoy, submodule) if submodule else envoy).source
            for label in ops[:-1]:
                source = getattr(source, label).source
            value = getattr(source, ops[-1]).inputs[0][0]
        else:
            value = getattr(model, kind)[layer]
        value = value.detach()
        values[kind, layer] = value if device is None else value.to(device)
    return values
