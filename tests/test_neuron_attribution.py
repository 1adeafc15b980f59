"""Per-neuron DLA: the neurons' shares plus the bias's equal the MLP's share in direct_logit_attribution, each
neuron's share is its activation times its readout direction (checked by hand on one neuron), and an MLP
whose output is not one linear map's is refused."""

from __future__ import annotations

import pytest
import torch

from nnterp import direct_logit_attribution, neuron_attribution
from nnterp.errors import NotDecomposable
from nnterp.toy.standardized import standardized_toy

PROMPTS = ["The cat sat on the mat", "A dog"]
TARGET = 5


@pytest.fixture(scope="module", params=["llama", "gpt2", "gpt_neox"])  # Linear, Conv1D, Linear with bias
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


@pytest.mark.parametrize("layer", [0, -1])
def test_the_neurons_sum_to_the_mlps_share_of_the_logit(model, layer):
    neurons = neuron_attribution(model, PROMPTS, TARGET, layer)
    dla = direct_logit_attribution(model, PROMPTS, TARGET)
    index = dla.labels.index(f"L{layer % model.num_layers}.mlp")
    torch.testing.assert_close(neurons.mlp, dla.contributions[:, index], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(neurons.total(), neurons.mlp, atol=1e-5, rtol=1e-4)
    assert neurons.contributions.shape == neurons.activations.shape == (len(PROMPTS), neurons.activations.shape[1])
    assert neurons.contributions.abs().sum() > 0


def test_one_neurons_share_is_what_zeroing_it_removes_from_the_mlps_share(model):
    """Independent of the neuron decomposition: run the model with one neuron zeroed at the down projection's
    input (a plain torch hook), take the MLP output that goes missing, and read it through the same frozen-scale
    readout. It is that neuron's share."""
    from nnterp.toolkit.analysis import run_with_cache
    from nnterp.toolkit.analysis.readout import build_readout

    neurons = neuron_attribution(model, PROMPTS[:1], TARGET, 0)
    top = int(neurons.contributions[0].abs().argmax())
    projection = model._module.get_submodule(model.architecture.layers)[0].get_submodule(neurons.projection)

    def zero_neuron(module, args):
        edited = args[0].clone()
        edited[..., top] = 0
        return (edited, *args[1:])

    cached = run_with_cache(model, PROMPTS[:1], ["mlps_output", "layers_output"], positions=-1)
    handle = projection.register_forward_pre_hook(zero_neuron)
    try:
        edited = run_with_cache(model, PROMPTS[:1], "mlps_output", layers=0, positions=-1)["mlps_output", 0]
    finally:
        handle.remove()
    readout = build_readout(model, cached["layers_output", -1], torch.tensor([TARGET]))
    missing = readout(cached["mlps_output", 0] - edited)
    torch.testing.assert_close(missing, neurons.contributions[:, top], atol=1e-5, rtol=1e-4)
    assert neurons.contributions[0, top].abs() > 0


def test_an_mlp_after_which_a_norm_comes_is_refused():
    gemma2 = standardized_toy("gemma2", enable_attention_probs=False)  # post-feedforward norm in mlps_output
    with pytest.raises(NotDecomposable, match="is not the output of one of its linear maps"):
        neuron_attribution(gemma2, PROMPTS, TARGET, 0)
