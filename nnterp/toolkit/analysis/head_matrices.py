"""Each head's weights, W_Q, W_K, W_V and W_O, found by what the model computes, not by module names.

The queries, keys and values an attention hands its attention function (``model.queries[i]``...) are slices of
the outputs of its linear children (``q_proj``, a fused ``c_attn`` or ``query_key_value``), read at the first
position, where rotary embeddings turn by a zero angle. So each head's slice is found by matching, on one probe
forward, its query (key, value) at position 0 against every head_dim-wide block of each linear child's output.
A query that is no such slice (a norm on the queries, as Qwen 3 and OLMo 2 have, or a scale before the call) raises
`NotDecomposable`. W_O is the head's block of the output projection's input columns (``heads_output``). The
matrices act on what the projections read (the normed residual), in the row convention ``x @ W_Q``; biases are kept
apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from nnsight import save

from ...core.accessors import select_layers, unwrap, walk
from ...errors import NotDecomposable

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

PROBE = "The quick brown fox jumps over the lazy dog"


@dataclass(frozen=True)
class HeadWeights:
    """One layer's heads: ``queries`` / ``keys`` / ``values`` (heads or kv_heads, in, head_dim), their biases
    (heads or kv_heads, head_dim), ``output`` (heads, head_dim, hidden). Query head h reads key/value head
    ``h // group`` (grouped-query attention, as transformers' ``repeat_kv``)."""

    queries: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    query_bias: torch.Tensor
    key_bias: torch.Tensor
    value_bias: torch.Tensor
    output: torch.Tensor
    value_projection: str = ""  # the linear child of the attention whose output holds the values (its path below it)
    value_columns: torch.Tensor | None = None  # (kv_heads, head_dim): where in that output each head's values are

    @property
    def group(self) -> int:
        return self.queries.shape[0] // self.keys.shape[0]

    def per_query_head(self, weight: torch.Tensor) -> torch.Tensor:
        """Key or value weights repeated to one per query head."""
        return weight.repeat_interleave(self.group, dim=0)


def _linear(module: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(weight as (in, out), bias) of a torch Linear or a transformers Conv1D; None for anything else."""
    weight = getattr(module, "weight", None)
    if type(module) is torch.nn.Linear:
        return module.weight.T, module.bias
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor):
        bias = getattr(module, "bias", None)
        return weight, bias if isinstance(bias, torch.Tensor) else None
    return None


def head_weights(model: StandardizedTransformer, layers: Any = None, remote: bool | str = False
                 ) -> dict[int, HeadWeights]:
    """Per chosen layer (None: all), its heads' weights, found on one probe forward (see the module docstring)."""
    from .cache import first_visit
    from .paths import check_available

    chosen = select_layers(layers, model.num_layers)
    modules = model._attention_modules()
    for layer in chosen:  # HeadsUnavailable, naming the layers that split into heads
        check_available(model, layer, "q")
        check_available(model, layer, "head")
    children = {layer: [(name, module) for name, module in cast(torch.nn.Module, modules[layer]).named_modules()
                        if name and _linear(module) is not None] for layer in chosen}
    envoys = {layer: [walk(model.attentions[layer], name) for name, _ in children[layer]] for layer in chosen}
    with torch.no_grad(), model.trace(PROBE, remote=remote) as tracer:
        recorded = tracer.cache(modules=[envoy for layer in chosen for envoy in envoys[layer]])
        arguments = save({layer: [getattr(model, name)[layer][0, :, 0] for name in ("queries", "keys", "values")]
                          for layer in chosen})
    outputs = {layer: [unwrap(first_visit(recorded[envoy.path], "output"))[0, 0] for envoy in envoys[layer]]
               for layer in chosen}
    return {layer: _layer_weights(model, layer, children[layer], outputs[layer], arguments[layer])
            for layer in chosen}


def _layer_weights(model: StandardizedTransformer, layer: int, children: list[tuple[str, torch.nn.Module]],
                   outputs: list[torch.Tensor], arguments: list[torch.Tensor]) -> HeadWeights:
    found = [_slices(model, layer, name, children, outputs, argument)
             for name, argument in zip(("queries", "keys", "values"), arguments)]
    projection = model.heads_output.projection(layer)._module
    weight, _ = _linear(projection) or (None, None)
    if weight is None:
        raise NotDecomposable(f"[{model.architecture.class_name}] layer {layer}'s output projection "
                              f"{type(projection).__name__} is not a linear map")
    heads, head_dim = found[0][0].shape[0], found[0][0].shape[-1]
    output = weight.detach().reshape(heads, head_dim, -1)
    (queries, query_bias, _, _), (keys, key_bias, _, _), (values, value_bias, child, columns) = found
    return HeadWeights(queries, keys, values, query_bias, key_bias, value_bias, output, child, columns)


def _slices(model: StandardizedTransformer, layer: int, what: str, children: list[tuple[str, torch.nn.Module]],
            outputs: list[torch.Tensor], argument: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, str, torch.Tensor]:
    """(weights (heads, in, head_dim), biases (heads, head_dim), the child's name, its output columns (heads,
    head_dim)) of the blocks of one child's output that hold ``argument`` (heads, head_dim), each head at
    position 0."""
    head_dim = argument.shape[-1]
    scale = argument.abs().max().clamp_min(1e-12)
    for (name, module), output in zip(children, outputs):
        if output.ndim != 1:  # a linear map applied to more than (batch, seq, in): not a per-position projection
            continue
        starts = []
        for head in argument:
            blocks = output.unfold(0, head_dim, head_dim) if output.shape[0] % head_dim == 0 else output[:0, None]
            close = ((blocks - head).abs().amax(-1) <= 1e-4 * scale).nonzero().flatten()
            if len(close) != 1:
                break
            starts.append(int(close[0]) * head_dim)
        if len(starts) == argument.shape[0]:
            weight, bias = _linear(module)  # type: ignore[misc]  # children are linear (_linear checked)
            columns = torch.tensor(starts)[:, None] + torch.arange(head_dim)
            return weight.detach()[:, columns].permute(1, 0, 2), \
                (bias.detach()[columns] if bias is not None else weight.new_zeros(columns.shape)), name, columns
    raise NotDecomposable(f"[{model.architecture.class_name}] layer {layer}'s {what} are not blocks of one linear "
                          f"map's output ({', '.join(name for name, _ in children) or 'no linear child'}): a norm, a "
                          "scale or a second projection (a rotary part shared by the heads) comes between the "
                          "projection and the attention call, so the head has no weight matrix")
