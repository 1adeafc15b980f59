"""Activation and attribution patching of queries, keys, values and attention probabilities, per head and position,
against plain PyTorch on the HuggingFace model.

The reference is a fresh copy of the HF model (same weights, eager attention, untouched by nnsight), run one prompt
at a time with its eager attention function wrapped: the wrapper hands the attention function the clean run's
query, key or value of one head at one position in place of the corrupted one, or replaces one head's row of the
softmax output at one query position. The grids run both prompts in one right-padded batch, so every comparison is
also batched against unbatched."""

from __future__ import annotations

import contextlib
import copy
import sys

import pytest
import torch

from nnterp.errors import AttentionProbabilitiesUnavailable, HeadsUnavailable, PositionAlignmentError
from nnterp.toolkit.analysis.patching import activation_patching, attribution_patching
from nnterp.toy.standardized import standardized_toy

from .conftest import counted_forwards
from .remote_equality import equal, outcome

HEADED = ["queries", "keys", "values", "attention_probabilities"]
# Pairs of equal token lengths, the two pairs of different lengths: the batch is padded.
CLEAN, CORRUPTED = ["hello world there", "a big cat"], ["hello wirld there", "a big dog"]
POSITIONS = [-1, -3]  # counted from each prompt's end


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


REMOTE_METRIC = lambda logits: logits[:, -1, 5] - logits[:, -1, 7]  # noqa: E731 - a lambda ships by value


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def toy(request):
    model = standardized_toy(request.param)  # attention probabilities on
    return model, plain_copy(model._module)


def plain_copy(hf_model):
    """A fresh HF model of the same class, config and weights, eager attention."""
    config = copy.deepcopy(hf_model.config)
    config._attn_implementation = "eager"
    fresh = type(hf_model)(config).eval()
    fresh.load_state_dict(hf_model.state_dict())
    return fresh


@contextlib.contextmanager
def attention_changed(hf_model, change):
    """Wrap the eager attention function of ``hf_model``'s modeling module: call i (layer i) is handed
    ``change(i, name, tensor)`` for its query, key and value (named as nnterp's accessors), and its softmax output
    goes through ``change(i, "attention_probabilities", probabilities)``."""
    module = sys.modules[type(hf_model).__module__]
    original, softmax = module.eager_attention_forward, torch.nn.functional.softmax
    calls: list[int] = []

    def changed(attention, query, key, value, *args, **kwargs):
        layer = len(calls)
        calls.append(layer)
        query, key, value = (change(layer, name, tensor) for name, tensor in
                             zip(("queries", "keys", "values"), (query, key, value)))

        def probabilities(tensor, *inner, **named):
            return change(layer, "attention_probabilities", softmax(tensor, *inner, **named))
        torch.nn.functional.softmax = probabilities
        try:
            return original(attention, query, key, value, *args, **kwargs)
        finally:
            torch.nn.functional.softmax = softmax
    module.eager_attention_forward = changed
    try:
        yield
    finally:
        module.eager_attention_forward = original


def clean_values(model, hf, prompt: str) -> dict:
    """(layer, accessor) -> the clean run's tensor, (1, heads, seq, ...)."""
    recorded = {}

    def record(layer, name, tensor):
        recorded[layer, name] = tensor.detach().clone()
        return tensor
    with torch.no_grad(), attention_changed(hf, record):
        hf(**model.tokenizer(prompt, return_tensors="pt"))
    return recorded


def patched_metric(model, hf, clean: str, corrupted: str, accessor: str, layer: int, head: int, position: int
                   ) -> float:
    """The metric of ``corrupted`` alone with ``accessor``'s ``head`` at ``layer`` and ``position`` (each prompt's
    own tokens) taken from the run of ``clean`` alone."""
    recorded = clean_values(model, hf, clean)
    inputs = model.tokenizer(corrupted, return_tensors="pt")
    source = position % len(model.tokenizer(clean)["input_ids"])
    target = position % inputs["input_ids"].shape[1]

    def patch(at, name, tensor):
        if (at, name) != (layer, accessor):
            return tensor
        tensor = tensor.clone()
        tensor[0, head, target] = recorded[at, name][0, head, source]
        return tensor
    with torch.no_grad(), attention_changed(hf, patch):
        return metric(hf(**inputs).logits).item()


def attribution_by_hand(model, hf, clean: str, corrupted: str, accessor: str, positions: list[int]) -> torch.Tensor:
    """(layers, heads, positions): (clean - corrupted) . d metric / d value at each head and position of
    ``accessor``, for one pair of prompts alone (autograd through the wrapped attention function)."""
    recorded = clean_values(model, hf, clean)
    inputs = model.tokenizer(corrupted, return_tensors="pt")
    sources = [position % len(model.tokenizer(clean)["input_ids"]) for position in positions]
    targets = [position % inputs["input_ids"].shape[1] for position in positions]
    kept: dict[int, torch.Tensor] = {}  # each layer's own tensor, in the graph

    def keep(layer, name, tensor):  # kept in the graph (the weights require grad): the total derivative
        if name == accessor:
            kept[layer] = tensor
        return tensor
    with attention_changed(hf, keep):
        value = metric(hf(**inputs).logits).sum()
    layers = sorted(kept)
    grads = torch.autograd.grad(value, [kept[layer] for layer in layers])
    changes = [((recorded[layer, accessor][0][:, sources] - kept[layer].detach()[0][:, targets])
                * grad[0][:, targets]).flatten(2).sum(dim=-1) for layer, grad in zip(layers, grads)]
    return torch.stack(changes)


@pytest.mark.parametrize("accessor", HEADED)
def test_each_cell_is_the_corrupted_run_with_that_head_and_position_from_the_clean_run(toy, accessor):
    model, hf = toy
    result = activation_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=POSITIONS,
                                 progress=False)
    heads = model.config.num_key_value_heads if accessor in ("keys", "values") and \
        hasattr(model.config, "num_key_value_heads") else model.num_heads
    assert result.values.shape == (model.num_layers, heads, len(POSITIONS))
    expected = torch.tensor([[[sum(patched_metric(model, hf, clean, corrupted, accessor, layer, head, position)
                                   for clean, corrupted in zip(CLEAN, CORRUPTED)) / len(CLEAN)
                               for position in POSITIONS] for head in range(heads)]
                             for layer in range(model.num_layers)])
    torch.testing.assert_close(result.values, expected, atol=1e-5, rtol=1e-5)
    assert (result.values - result.corrupted_metric).abs().max() > 1e-4, "no patch changed the metric: vacuous"


def test_grouped_query_keys_and_values_have_the_key_value_heads():
    model = standardized_toy("llama", enable_attention_probs=False)
    assert model.config.num_key_value_heads < model.num_heads, "the test needs grouped-query attention"
    for accessor, heads in (("queries", model.num_heads), ("keys", model.config.num_key_value_heads),
                            ("values", model.config.num_key_value_heads)):
        result = activation_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=-1, layers=0,
                                     progress=False)
        assert result.values.shape == (1, heads, 1), accessor


def test_pairs_of_different_lengths_patch_queries_at_positions_from_the_end():
    """Each clean query at its own prompt's position, into the corrupted prompt's own position."""
    model = standardized_toy("llama")
    hf = plain_copy(model._module)
    clean, corrupted = ["hello world there", "a big cat"], ["hello world", "a big dog sat"]
    result = activation_patching(model, clean, corrupted, metric, accessor="queries", positions=[-1, -2],
                                 layers=[1], progress=False)
    expected = torch.tensor([[sum(patched_metric(model, hf, pair[0], pair[1], "queries", 1, head, position)
                                  for pair in zip(clean, corrupted)) / 2 for position in (-1, -2)]
                             for head in range(model.num_heads)])
    torch.testing.assert_close(result.values[0], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(PositionAlignmentError, match="keys of one then sit where"):
        activation_patching(model, clean, corrupted, metric, accessor="attention_probabilities", positions=-1)
    with pytest.raises(PositionAlignmentError, match="keys of one then sit where"):
        attribution_patching(model, clean, corrupted, metric, accessor="attention_probabilities", positions=-1)


@pytest.mark.parametrize("accessor", HEADED)
def test_attribution_is_the_difference_times_the_gradient(toy, accessor):
    model, hf = toy
    estimate = attribution_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=POSITIONS)
    expected = sum(attribution_by_hand(model, hf, clean, corrupted, accessor, POSITIONS)
                   for clean, corrupted in zip(CLEAN, CORRUPTED)) / len(CLEAN)
    assert estimate.values.shape == expected.shape
    torch.testing.assert_close(estimate.values - estimate.corrupted_metric, expected, atol=1e-5, rtol=1e-4)
    assert expected.abs().max() > 1e-4, "every estimate is 0: vacuous"


@pytest.mark.parametrize("patching", [activation_patching, attribution_patching])
def test_probabilities_of_a_model_loaded_without_them_are_refused_before_any_forward(patching):
    model = standardized_toy("llama", enable_attention_probs=False)
    with counted_forwards(model) as calls, pytest.raises(AttentionProbabilitiesUnavailable,
                                                         match="enable_attention_probs=True"):
        patching(model, CLEAN, CORRUPTED, metric, accessor="attention_probabilities", positions=-1)
    assert calls == []


@pytest.mark.parametrize("accessor", HEADED)
def test_a_layer_without_heads_is_refused_before_any_forward_and_left_out_by_default(accessor):
    model = standardized_toy("bamba")  # layer 0 Mamba, layer 1 attention (see tests/test_analysis_hybrid.py)
    clean, corrupted = ["a cat sat", "the dog"], ["a dog sat", "the cat"]
    for patching in (activation_patching, attribution_patching):
        with counted_forwards(model) as calls, pytest.raises(HeadsUnavailable, match=r"\[1\]"):
            patching(model, clean, corrupted, metric, accessor=accessor, layers=[0, 1], positions=-1)
        assert calls == [], patching.__name__
    kwargs = {"accessor": accessor, "positions": -1}
    default = activation_patching(model, clean, corrupted, metric, progress=False, **kwargs)
    assert default.layers == (1,)
    torch.testing.assert_close(default.values, activation_patching(model, clean, corrupted, metric, layers=[1],
                                                                   progress=False, **kwargs).values)
    assert attribution_patching(model, clean, corrupted, metric, **kwargs).layers == (1,)


@pytest.mark.parametrize("accessor", ["queries", "attention_probabilities"])
def test_remote_local_equals_the_local_run(accessor):
    model = standardized_toy("llama")
    for patching, extra in ((activation_patching, {"progress": False}), (attribution_patching, {})):
        def run(remote, patching=patching, extra=extra):
            return patching(model, CLEAN, CORRUPTED, REMOTE_METRIC, accessor=accessor, positions=POSITIONS,
                            remote=remote,
                            **extra)
        local = outcome(run, False)
        assert isinstance(local, dict), local
        assert equal(local, outcome(run, "local")), f"{patching.__name__}({accessor}) differs under remote='local'"


@pytest.mark.parametrize("accessor", HEADED)
def test_no_gradient_hook_or_change_is_left_on_the_model(accessor):
    model = standardized_toy("llama")
    parameters = list(model._module.parameters())
    hooks = [(len(sub._forward_hooks), len(sub._forward_pre_hooks), len(sub._backward_hooks))
             for sub in model._module.modules()]
    state = {name: value.clone() for name, value in model._module.state_dict().items()}
    activation_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=-1, progress=False)
    attribution_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=-1)
    assert all(parameter.grad is None for parameter in parameters)
    assert hooks == [(len(sub._forward_hooks), len(sub._forward_pre_hooks), len(sub._backward_hooks))
                     for sub in model._module.modules()]
    assert all(torch.equal(value, state[name]) for name, value in model._module.state_dict().items())


def test_patched_generate_still_refuses_the_per_head_attention_accessors():
    """patched_generate sets (batch, seq, ...) positions: the head-first accessors are not its to patch."""
    from nnterp.errors import ToolkitInputError
    from nnterp.toolkit.analysis.generation import patched_generate

    model = standardized_toy("llama")
    for accessor in HEADED:
        with pytest.raises(ToolkitInputError, match="cannot be patched"):
            patched_generate(model, "hello", 0, torch.zeros(1), positions=-1, accessor=accessor, max_new_tokens=1)
