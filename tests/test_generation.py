"""Interventions during generation: steering, skipping layers and patching activations reach every generated
token (they equal one full forward per token with the intervention), and their no-op forms (factor 0, no layers,
the model's own values) are the plain greedy continuation."""

import pytest
import torch

from nnterp.errors import ToolkitInputError
from nnterp.toolkit.analysis.generation import intervened_generate, patched_generate, skipped_generate, steered_generate
from nnterp.toy.standardized import standardized_toy

PROMPT, NEW_TOKENS = "hello world", 6


@pytest.fixture(scope="module", params=["llama", "Gemma3nForCausalLM"])
def model(request):
    """A plain model, and one whose layer outputs are views of (streams, batch, seq, hidden) tensors."""
    return standardized_toy(request.param, enable_attention_probs=False)


def _plain(model, prompts=PROMPT):
    """HuggingFace's own greedy continuations (left-padded)."""
    inputs = model.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    ids = model._module.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    return model.tokenizer.batch_decode(ids[:, -NEW_TOKENS:], skip_special_tokens=True)


def _greedy_by_hand(model, intervene):
    """One full forward per new token, with ``intervene(model)`` inside it: what intervening at every step of a
    cached generation must equal."""
    ids = model.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    for _ in range(NEW_TOKENS):
        with torch.no_grad(), model.trace(ids):
            intervene(model)
            logits = model.logits.save()
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return model.tokenizer.decode(ids[0, -NEW_TOKENS:], skip_special_tokens=True)


def test_steering_applies_to_every_generated_token(model):
    vector = torch.randn(model.hidden_size, generator=torch.Generator().manual_seed(0))
    plain = _plain(model)
    assert steered_generate(model, PROMPT, 0, vector, factor=0, max_new_tokens=NEW_TOKENS) == plain
    steered = steered_generate(model, PROMPT, 0, vector, factor=8, max_new_tokens=NEW_TOKENS)
    assert steered != plain
    assert steered == [_greedy_by_hand(model, lambda model: model.steer(layers=0, steering_vector=vector, factor=8))]


def test_skipping_layers_applies_to_every_generated_token(model):
    plain = _plain(model)
    assert skipped_generate(model, PROMPT, [], max_new_tokens=NEW_TOKENS) == plain
    skipped = skipped_generate(model, PROMPT, [1, 0], max_new_tokens=NEW_TOKENS)
    assert skipped != plain
    assert skipped == [_greedy_by_hand(model, lambda model: model.skip_layers(0, 1))]


def test_patching_every_position_applies_to_every_generated_token(model):
    vector = torch.randn(model.hidden_size, generator=torch.Generator().manual_seed(1))

    def set_every_position(model):
        model.layers_output[1] = torch.zeros_like(model.layers_output[1]) + vector

    patched = patched_generate(model, PROMPT, 1, vector, max_new_tokens=NEW_TOKENS)
    assert patched != _plain(model)
    assert patched == [_greedy_by_hand(model, set_every_position)]


def test_patching_prompt_positions_with_the_model_own_values_is_the_plain_continuation(model):
    prompts = [PROMPT, "a big cat"]  # left-padded together: positions count in each prompt
    with torch.no_grad(), model.trace(PROMPT):
        own = model.layers_output[1][:, [1, -1]].save()
    with torch.no_grad(), model.trace("a big cat"):
        other = model.layers_output[1][:, [1, -1]].save()
    plain = _plain(model, prompts)
    values = torch.cat([own, other])  # (prompts, positions, ...)
    assert patched_generate(model, prompts, 1, values, positions=[1, -1], max_new_tokens=NEW_TOKENS) == plain
    swapped = patched_generate(model, prompts, 1, values.flip(0), positions=[1, -1], max_new_tokens=NEW_TOKENS)
    assert swapped[0] != plain[0]
    with pytest.raises(ToolkitInputError, match="outside the shortest prompt"):
        patched_generate(model, prompts, 1, values, positions=[11], max_new_tokens=NEW_TOKENS)


def test_an_intervention_sees_the_step_and_may_leave_one_alone():
    """Nothing at the prompt's forward, the new tokens' layer-0 outputs zeroed at the others: as a full forward per
    token zeroing the positions after the prompt."""
    model = standardized_toy("llama", enable_attention_probs=False)
    length = model.tokenizer(PROMPT, return_tensors="pt")["input_ids"].shape[1]

    def zero_new_tokens(model, step):
        if step > 0:
            model.layers_output[0] = torch.zeros_like(model.layers_output[0])

    def zero_after_the_prompt(model):
        output = model.layers_output[0].clone()
        output[:, length:] = 0
        model.layers_output[0] = output

    continuation = intervened_generate(model, PROMPT, zero_new_tokens, max_new_tokens=NEW_TOKENS)
    assert continuation != _plain(model)
    assert continuation == [_greedy_by_hand(model, zero_after_the_prompt)]
    assert intervened_generate(model, PROMPT, lambda model, step: None, max_new_tokens=NEW_TOKENS) == _plain(model)
