"""Left padding: a prompt's activations do not depend on the other prompts in its batch."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import standardized_toy

SHORT, LONG = "Hi there", "A much longer prompt that forces left padding of the short one"


@pytest.mark.parametrize("name", ["llama", "gpt2", "qwen2"])
def test_activations_of_a_padded_prompt_match_its_solo_run(name):
    model = standardized_toy(name, enable_attention_probs=False)
    with model.trace(SHORT):
        alone = model.layers_output[-1].save()
        alone_logits = model.logits.save()
    with model.trace([SHORT, LONG]):
        batched = model.layers_output[-1].save()
        batched_logits = model.logits.save()
    length = alone.shape[1]
    assert model.tokenizer.padding_side == "left"
    assert torch.allclose(batched[0, -length:], alone[0], atol=1e-4)
    assert torch.allclose(batched_logits[0, -1], alone_logits[0, -1], atol=1e-4)


prompt_lists = st.lists(st.text(alphabet=st.characters(whitelist_categories=("L", "N", "P", "Zs")), min_size=1,
                                max_size=12).filter(str.strip), min_size=1, max_size=3)


@settings(max_examples=15, deadline=None)
@given(prompts=prompt_lists, side=st.sampled_from(["left", "right"]))
def test_batched_next_token_probs_equal_each_prompt_alone_whatever_the_padding(llama, prompts, side):
    """Any list of prompts, with the tokenizer padding on either side: each row is that prompt run alone."""
    from nnterp import compute_next_token_probs

    llama.tokenizer.padding_side = side
    try:
        batched = compute_next_token_probs(llama, prompts)
        alone = torch.cat([compute_next_token_probs(llama, [prompt]) for prompt in prompts])
    finally:
        llama.tokenizer.padding_side = "left"
    assert batched.shape == (len(prompts), llama.vocab_size)
    assert torch.allclose(batched, alone, atol=1e-5)
