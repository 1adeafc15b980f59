"""run_layers: stopping at a layer gives the stream a full run has there, starting from it gives the full run's
logits, and the layers outside the range do not run. Compared against the plain HuggingFace forward."""

from __future__ import annotations

import pytest
import torch

from nnterp import run_layers
from nnterp.errors import LayerIndexTypeError, ShapeMismatch, ToolkitInputError, ToolkitTypeError
from nnterp.toolkit.activations import _padded
from nnterp.toy.standardized import standardized_toy

PROMPTS = ["The cat sat on the mat", "A dog"]  # different lengths: padded


@pytest.fixture(scope="module", params=["llama", "gpt2", "bloom"])  # bloom's layers return tuples
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def _plain(model):
    """The plain HuggingFace forward on the same padded batch: its logits and hidden states."""
    inputs, _ = _padded(model, PROMPTS)
    with torch.no_grad():
        output = model._module(**inputs, output_hidden_states=True)
    return output.logits, output.hidden_states


def _calls(model, layer):
    """Calls of layer ``layer``'s MLP: a skipped layer's own call still happens (nnsight returns the skip value
    from it), its body, the MLP included, does not run."""
    calls = []
    block = model._module.get_submodule(model.architecture.layers)[layer]
    mlp = block.get_submodule(model.architecture.mlp[layer])
    return calls, mlp.register_forward_hook(lambda *args: calls.append(1))


def test_stopping_at_a_layer_gives_the_stream_entering_it_and_runs_nothing_after(model):
    _, hidden = _plain(model)
    calls, handle = _calls(model, model.num_layers - 1)
    try:
        middle = run_layers(model, PROMPTS, stop_at_layer=1)
    finally:
        handle.remove()
    assert calls == []  # the last layer's body never ran
    torch.testing.assert_close(middle, hidden[1])


def test_starting_from_a_residual_gives_the_full_runs_logits_without_the_layers_before(model):
    logits, _ = _plain(model)
    middle = run_layers(model, PROMPTS, stop_at_layer=1)
    calls, handle = _calls(model, 0)
    try:
        resumed = run_layers(model, PROMPTS, start_at_layer=1, residual=middle)
    finally:
        handle.remove()
    assert calls == []  # layer 0's body never ran
    calls, handle = _calls(model, 0)
    try:
        run_layers(model, PROMPTS)
    finally:
        handle.remove()
    assert calls == [1]  # and the hook sees it when it runs
    torch.testing.assert_close(resumed, logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(run_layers(model, PROMPTS), logits, atol=1e-5, rtol=1e-5)
    last = run_layers(model, PROMPTS, start_at_layer=1, residual=middle, stop_at_layer=model.num_layers)
    torch.testing.assert_close(last, run_layers(model, PROMPTS, stop_at_layer=model.num_layers))


def test_a_changed_residual_changes_the_logits(model):
    middle = run_layers(model, PROMPTS, stop_at_layer=1)
    assert not torch.allclose(run_layers(model, PROMPTS, start_at_layer=1, residual=middle * 2),
                              run_layers(model, PROMPTS, start_at_layer=1, residual=middle))


@pytest.mark.parametrize("call, error, fragment", [
    (lambda m: run_layers(m, PROMPTS, start_at_layer=1), ToolkitInputError, "needs residual="),
    (lambda m: run_layers(m, PROMPTS, start_at_layer=1, residual=torch.zeros(3)), ShapeMismatch, "skip_with"),
    (lambda m: run_layers(m, PROMPTS, start_at_layer=1, residual=[0.0]), ToolkitTypeError, "residual is list"),
    (lambda m: run_layers(m, PROMPTS, stop_at_layer=0), ToolkitInputError, "stop_at_layer is 0, expected 1.."),
    (lambda m: run_layers(m, PROMPTS, start_at_layer=5), ToolkitInputError, "start_at_layer is 5, expected 0..1"),
    (lambda m: run_layers(m, PROMPTS, start_at_layer=True), LayerIndexTypeError, "(bool)"),
])
def test_bad_bounds_and_residuals_raise_a_typed_error(call, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        call(standardized_toy("llama", enable_attention_probs=False))
