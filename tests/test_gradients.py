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
