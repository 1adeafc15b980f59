"""Every accessor works with nnsight's backward: ``with loss.backward():`` then ``.grad`` of what was read.

The gradients are checked against identities of the toy llama's residual stream, not only for existence:
layer 0's output is layer 1's input, and in an additive block the MLP's output reaches the layer's output
with derivative one.
"""

import pytest
import torch
from nnsight import save

from nnterp.toy.standardized import standardized_toy

PROMPT = "The quick brown fox"
# (accessor, layer): in the order the model computes them, since nnsight serves values in execution order.
READ = [("layers_input", 0), ("attentions_input", 0), ("queries", 0), ("keys", 0), ("values", 0),
        ("attention_probabilities", 0), ("heads_output", 0), ("attentions_output", 0), ("mlps_input", 0),
        ("mlps_output", 0), ("layers_output", 0), ("layers_input", 1)]


@pytest.fixture(scope="module")
def llama():
    return standardized_toy("llama", enable_attention_probs=True)


def test_every_accessor_has_a_gradient_under_backward(llama):
    with llama.trace(PROMPT):
        values = [getattr(llama, name)[layer] for name, layer in READ]
        shapes = save([value.shape for value in values])
        loss = llama.logits[0, -1].logsumexp(-1)
        with loss.backward():  # gradients arrive last layer first: read them in reverse
            grads = save([value.grad for value in reversed(values)][::-1])
    for (name, layer), shape, grad in zip(READ, shapes, grads):
        assert grad.shape == shape, (name, layer)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (name, layer)
    grad = dict(zip(READ, grads))
    torch.testing.assert_close(grad["layers_output", 0], grad["layers_input", 1])
    torch.testing.assert_close(grad["mlps_output", 0], grad["layers_output", 0])


def test_token_embeddings_gradient_is_the_first_layers_input_gradient(llama):
    with llama.trace(PROMPT):
        embeddings = llama.token_embeddings
        first_input = llama.layers_input[0]
        loss = llama.logits[0, -1].logsumexp(-1)
        with loss.backward():
            first_grad = first_input.grad.save()
            embeddings_grad = embeddings.grad.save()
    torch.testing.assert_close(embeddings_grad, first_grad)


def accessor_gradients(model, remote=False, prompt=PROMPT):
    """Every accessor's .grad under backward, read as the README says (no set-up call)."""
    with model.trace(prompt, remote=remote):
        values = [getattr(model, name)[layer] for name, layer in READ]
        loss = model.logits[:, -1].logsumexp(-1).sum()
        with loss.backward():
            grads = save([value.grad for value in reversed(values)][::-1])
    return grads


@pytest.fixture
def frozen(llama):
    """The toy llama with every parameter frozen (and no .grad left by earlier tests), unfrozen after."""
    parameters = list(llama._module.parameters())
    for parameter in parameters:
        parameter.grad = None
        parameter.requires_grad_(False)
    yield llama
    for parameter in parameters:
        parameter.requires_grad_(True)


@pytest.mark.parametrize("remote", [False, "local"], ids=["local", "server simulation"])
def test_every_accessor_gradient_is_the_same_with_frozen_parameters(llama, frozen, remote):
    """Frozen parameters (a memory-saving habit; what an NDIF server does, and what the simulation does): each
    accessor's .grad equals the one an unfrozen model gives, bit for bit, and no parameter gets a .grad."""
    for parameter in llama._module.parameters():
        parameter.requires_grad_(True)
    expected = accessor_gradients(llama)[0]
    for parameter in llama._module.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    got = accessor_gradients(frozen, remote)[0]
    for (name, layer), want, have in zip(READ, expected, got):
        assert torch.equal(want, have), (name, layer)
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in frozen._module.parameters())


def test_gradients_with_frozen_parameters_in_a_padded_batch(frozen):
    """Two prompts of different lengths in one batch (left-padded): each row's gradients equal its own run's."""
    other = "A cat"
    batch = accessor_gradients(frozen, prompt=[PROMPT, other])
    for row, prompt in enumerate([PROMPT, other]):
        alone = accessor_gradients(frozen, prompt=prompt)
        for (name, layer), want, have in zip(READ, alone, batch):
            have = have[row:row + 1]
            if name == "attention_probabilities":  # (batch, heads, query, key)
                have = have[..., -want.shape[-2]:, -want.shape[-1]:]
            elif name in ("queries", "keys", "values"):  # (batch, heads, seq, head_dim)
                have = have[..., -want.shape[-2]:, :]
            else:  # (batch, seq, ...)
                have = have[:, -want.shape[1]:]
            torch.testing.assert_close(have, want, msg=f"{name} {layer}", atol=1e-5, rtol=1e-4)


def test_reads_with_frozen_parameters_change_no_value_and_stay_editable_in_place(frozen):
    """A read that carries gradients is still the model's own tensor: same logits, and in-place edits reach the
    model (an edit of a read tensor is refused by torch for a leaf that requires grad, so this would catch one)."""
    with torch.no_grad(), frozen.trace(PROMPT):
        expected = frozen.logits.save()
    with frozen.trace(PROMPT):
        for name, layer in READ:
            getattr(frozen, name)[layer]
        logits = frozen.logits.save()
    assert torch.equal(logits, expected)
    runs = []
    for grad_mode in (torch.no_grad, torch.enable_grad):
        with grad_mode(), frozen.trace(PROMPT):
            frozen.layers_output[0][:, 1] = 0
            frozen.heads_output[1][:, :, 0] *= 2
            runs.append(frozen.logits.save())
    assert torch.equal(runs[1], runs[0]) and not torch.equal(runs[0], expected)


def test_token_embeddings_carry_gradients_with_frozen_parameters(frozen):
    with frozen.trace(PROMPT):
        frozen.track_activation_gradients()
        first_input = frozen.layers_input[0]
        loss = frozen.logits[0, -1].logsumexp(-1)
        with loss.backward():
            first_grad = first_input.grad.save()
    assert first_grad.abs().sum() > 0


# -- attribution patching: gradients of activations, whatever the grad mode and the parameters ------------------


def _attribution(model):
    from nnterp import attribution_patching

    return attribution_patching(model, "The quick brown fox", "The quick brown cat",
                                lambda logits: logits[:, -1, 5] - logits[:, -1, 7])


def _grad_state(model):
    return [(parameter.requires_grad, parameter.grad) for parameter in model._module.parameters()]


def test_attribution_patching_leaves_no_grad_and_every_requires_grad_as_it_was(llama):
    parameters = list(llama._module.parameters())
    for parameter in parameters:
        parameter.grad = None  # the backward tests above leave theirs
    parameters[0].requires_grad_(False)  # a mix: the caller froze some parameters
    try:
        before = _grad_state(llama)
        _attribution(llama)
        assert _grad_state(llama) == before
        assert all(parameter.grad is None for parameter in parameters)
    finally:
        parameters[0].requires_grad_(True)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "frozen parameters"])
def test_attribution_patching_works_in_every_grad_mode_and_with_frozen_parameters(llama, mode):
    expected = _attribution(llama)
    parameters = list(llama._module.parameters())
    if mode == "frozen parameters":
        for parameter in parameters:
            parameter.requires_grad_(False)
        try:
            result = _attribution(llama)
            assert not any(parameter.requires_grad for parameter in parameters)
        finally:
            for parameter in parameters:
                parameter.requires_grad_(True)
    else:
        with getattr(torch, mode)():
            result = _attribution(llama)
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    torch.testing.assert_close(result.values, expected.values)
    assert result.values.abs().sum() > 0


def test_a_model_built_inside_inference_mode_names_why_it_has_no_gradient():
    from nnterp.errors import GradientUnavailable

    with torch.inference_mode():
        model = standardized_toy("llama")
    with pytest.raises(GradientUnavailable, match="created inside torch.inference_mode"):
        _attribution(model)
