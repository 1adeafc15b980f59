"""Activation collection: shapes, early stop, batching and padding invariance, plain nnsight models, remote."""

import pytest
import torch
from nnsight import NNsight

from nnterp import get_rename_dict
from nnterp.toolkit.activations import (
    collect_token_activations_batched,
    compute_next_token_probs,
    get_token_activations,
)
from nnterp.toy import build_toy_model

from .conftest import standardized_toy

PROMPTS = ["The cat", "A much longer prompt about a dog", "Hi", "Some words here and there", "Short one"]


@pytest.fixture(scope="module")
def gpt2():
    return standardized_toy("gpt2", enable_attention_probs=False)


def test_shapes_and_layer_selection(gpt2):
    everything = get_token_activations(gpt2, PROMPTS[:2])
    assert everything.shape == (gpt2.num_layers, 2, gpt2.hidden_size)
    picked = get_token_activations(gpt2, PROMPTS[:2], layers=[1, 0])
    assert torch.equal(picked[0], everything[1]) and torch.equal(picked[1], everything[0])


def test_last_token_matches_a_full_trace(gpt2):
    with gpt2.trace(PROMPTS[0]):
        hidden = gpt2.layers_output[1].save()
    assert torch.allclose(get_token_activations(gpt2, PROMPTS[0], layers=1)[0, 0], hidden[0, -1], atol=1e-6)


@pytest.mark.parametrize("idx", [-1, 0, 1])
@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_batched_equals_unbatched_whatever_the_padding(gpt2, idx, batch_size):
    one_by_one = torch.cat([get_token_activations(gpt2, prompt, idx=idx) for prompt in PROMPTS], dim=1)
    batched = collect_token_activations_batched(gpt2, PROMPTS, batch_size=batch_size, idx=idx, progress=False)
    assert batched.device.type == "cpu"
    assert torch.allclose(batched, one_by_one, atol=1e-4), (batched - one_by_one).abs().max()


def test_bad_inputs_say_what_to_do(gpt2):
    with pytest.raises(IndexError, match="this model has 2 layers"):
        get_token_activations(gpt2, "x", layers=[5])
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        collect_token_activations_batched(gpt2, PROMPTS, batch_size=0)


def test_next_token_probs(gpt2):
    probs = compute_next_token_probs(gpt2, PROMPTS[:2])
    with gpt2.trace(PROMPTS[:2]):
        expected = gpt2.next_token_probs.save()
    assert torch.allclose(probs, expected, atol=1e-6) and torch.allclose(probs.sum(-1), torch.ones(2))


def test_works_on_a_plain_renamed_nnsight_model(gpt2):
    toy = build_toy_model("gpt2")
    plain = NNsight(toy.model, rename=get_rename_dict(toy.model))
    ids = toy.tokenizer(PROMPTS[0], return_tensors="pt")["input_ids"]
    assert torch.allclose(get_token_activations(plain, ids), get_token_activations(gpt2, PROMPTS[0]), atol=1e-6)


def test_remote_local_gives_the_same_result(gpt2):
    local = get_token_activations(gpt2, PROMPTS[:2], remote="local")
    assert torch.allclose(local, get_token_activations(gpt2, PROMPTS[:2]), atol=1e-6)
