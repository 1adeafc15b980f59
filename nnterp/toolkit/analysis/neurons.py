"""Per-neuron direct logit attribution: each MLP neuron's share of a target token's logit.

Where a layer's MLP output (``mlps_output[layer]``, what it adds to the residual stream) is the output of one
linear map, its down projection, the output is ``sum_i a_i * W[:, i] + b`` over the neurons ``a`` (the
projection's input). Through the frozen-scale readout of direct logit attribution
(`nnterp.toolkit.analysis.readout`) each neuron's share of the logit is ``a_i * readout(W[:, i])``. The shares
plus the bias's add up to the MLP's own share. The down projection is found by what the model computes, not by
its name: it is the linear child of the MLP whose output equals ``mlps_output[layer]`` on the prompts
themselves. A post-norm, a scale or a mixture of experts between the two raises `NotDecomposable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from nnsight import save

from ...core.accessors import check_layer_index, walk
from ...errors import NotDecomposable
from ..activations import _padded
from .dla import target_ids
from .readout import build_readout
from .residual import check_additive, check_position, position_selector, relative_tolerance

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer


@dataclass(frozen=True)
class NeuronAttribution:
    """``contributions`` (batch, neurons): each neuron's share of the target logit; ``bias`` (batch,) the down
    projection's bias's share; ``mlp`` (batch,) the MLP's whole share, which ``contributions.sum(-1) + bias``
    equals; ``activations`` (batch, neurons) the neurons' values; ``projection`` the down projection's path."""

    contributions: torch.Tensor
    bias: torch.Tensor
    mlp: torch.Tensor
    activations: torch.Tensor
    layer: int
    projection: str

    def total(self) -> torch.Tensor:
        """The MLP's share rebuilt from its neurons: ``contributions.sum(-1) + bias``."""
        return self.contributions.sum(dim=-1) + self.bias


def _linear_children(mlp: torch.nn.Module, hidden: int) -> list[tuple[str, torch.nn.Module]]:
    """The MLP's direct children that compute ``x @ W + b`` into the hidden size (torch Linear, or transformers'
    Conv1D): the candidates for its down projection. Experts nested in a list are not (a mixture does not split
    per neuron)."""
    return [(name, module) for name, module in mlp.named_children()
            if (type(module) is torch.nn.Linear or type(module).__name__ == "Conv1D")
            and _columns(module).shape[1] == hidden]


def _columns(module: torch.nn.Module) -> torch.Tensor:
    """(neurons, hidden): the output direction of each input unit of a Linear (weight (out, in)) or a Conv1D
    (weight (in, out))."""
    weight: torch.Tensor = module.weight  # type: ignore[assignment]  # a Linear's or a Conv1D's parameter
    return weight.T if type(module) is torch.nn.Linear else weight


def projection_candidates(model: StandardizedTransformer, index: int) -> tuple[str, list[tuple[str, torch.nn.Module]]]:
    """Layer ``index``'s MLP path and its candidate down projections (`_linear_children`); NotDecomposable where
    the layer has no MLP."""
    path = model.architecture.mlp[index]
    if path is None:
        raise NotDecomposable(f"[{model.architecture.class_name}] layer {index} has no MLP")
    mlp_module = model._module.get_submodule(model.architecture.layers)[index].get_submodule(path)
    return path, _linear_children(mlp_module, model.hidden_size)


def down_projection(model: StandardizedTransformer, index: int, candidates: list[tuple[str, torch.nn.Module]],
                    outputs: list[torch.Tensor], output: torch.Tensor) -> int:
    """Which candidate is the down projection: the last whose measured output equals ``mlps_output[index]``
    (``output``); NotDecomposable where none does."""
    tolerance = relative_tolerance(output.dtype)
    found = [position for position, read in enumerate(outputs)
             if read.shape == output.shape and
             ((read - output).abs().max() / output.abs().max().clamp_min(1e-12)).item() <= tolerance]
    if not found:
        raise NotDecomposable(f"[{model.architecture.class_name}] layer {index}'s MLP output is not the output of "
                              f"one of its linear maps ({', '.join(name for name, _ in candidates) or 'none'}): a "
                              "norm, a scale or a mixture of experts comes after its last projection, so it does "
                              "not split per neuron")
    return found[-1]


def neuron_attribution(model: StandardizedTransformer, prompts: Any, target_tokens: Any, layer: int,
                       position: int = -1, remote: bool | str = False) -> NeuronAttribution:
    """Each neuron of layer ``layer``'s MLP: its direct share of the target logit at each prompt's ``position``.

    Prompts, targets and positions as for `direct_logit_attribution`, whose MLP component for this layer the
    neurons' shares plus the bias's sum to. Example::

        neurons = neuron_attribution(model, "The capital of France is", " Paris", layer=20)
        neurons.contributions[0].topk(5)  # the neurons writing most of ' Paris'
    """
    check_additive(model)
    index = check_layer_index(layer, model.num_layers)
    path, candidates = projection_candidates(model, index)
    inputs, layout = _padded(model, prompts)
    chosen = check_position(position, layout)
    select = position_selector(model, layout, chosen)
    mlp_envoy = walk(model.layers[index], path)
    with torch.no_grad(), model.trace(inputs, remote=remote):
        reads = save([(select(walk(mlp_envoy, name).input), select(walk(mlp_envoy, name).output))
                      for name, _ in candidates])
        output = select(model.mlps_output[index]).save()
        final = select(model.layers_output[model.num_layers - 1]).save()
    chosen_candidate = down_projection(model, index, candidates, [output_read for _, output_read in reads], output)
    (name, module), (activations, _) = candidates[chosen_candidate], reads[chosen_candidate]
    targets = target_ids(model, target_tokens, final.shape[0])
    readout = build_readout(model, final, targets)
    with torch.no_grad():
        columns = _columns(module).to(final.dtype)  # (neurons, hidden)
        per_neuron = readout(columns[:, None, :].expand(-1, final.shape[0], -1)).T  # (batch, neurons)
        contributions = activations.to(final.dtype) * per_neuron
        projection_bias: torch.Tensor | None = module.bias  # type: ignore[assignment]  # a parameter or None
        bias = readout(projection_bias.to(final.dtype).expand_as(final)) if projection_bias is not None \
            else torch.zeros_like(readout.bias)
        mlp = readout(output.to(final.dtype))
    return NeuronAttribution(contributions, bias, mlp, activations, index, f"{path}.{name}")
