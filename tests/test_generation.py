"""Steered generation: the steering reaches every generated token, and factor 0 is the plain continuation."""

import torch

from nnterp.analysis.generation import steered_generate
from nnterp.toy.standardized import standardized_toy

PROMPT, NEW_TOKENS = "hello world", 6


def _greedy_by_hand(model, vector, factor):
    """One full forward per new token, steered: what steering every step of a cached generation must equal."""
    ids = model.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    for _ in range(NEW_TOKENS):
        with torch.no_grad(), model.trace(ids):
            model.steer(layers=0, steering_vector=vector, factor=factor)
            logits = model.logits.save()
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return model.tokenizer.decode(ids[0, -NEW_TOKENS:], skip_special_tokens=True)


def test_steering_applies_to_every_generated_token():
    model = standardized_toy("llama", enable_attention_probs=False)
    vector = torch.randn(model.hidden_size, generator=torch.Generator().manual_seed(0))
    plain = model.tokenizer.decode(model._module.generate(**model.tokenizer(PROMPT, return_tensors="pt"),
                                                          max_new_tokens=NEW_TOKENS, do_sample=False)[0, -NEW_TOKENS:],
                                   skip_special_tokens=True)
    assert steered_generate(model, PROMPT, 0, vector, factor=0, max_new_tokens=NEW_TOKENS) == [plain]
    steered = steered_generate(model, PROMPT, 0, vector, factor=8, max_new_tokens=NEW_TOKENS)
    assert steered != [plain]
    assert steered == [_greedy_by_hand(model, vector, 8)]
