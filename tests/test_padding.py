"""Left padding: a prompt's activations do not depend on the other prompts in its batch."""

import pytest
import torch

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
