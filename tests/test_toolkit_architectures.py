"""Every research function runs on every toy architecture that passes load-time validation (run with -n 2)."""

import pytest
import torch

from nnterp import (
    Prompt,
    collect_token_activations_batched,
    compute_next_token_probs,
    get_token_activations,
    logit_lens,
    patchscope_lens,
    repeat_prompt,
    run_prompts,
)

from .conftest import validated_toy
from .known_failures import KNOWN_FAILURES, TOOLKIT_FAILURES, toy_params

PROMPTS = ["The cat sat", "A much longer prompt about dogs"]


@pytest.mark.parametrize("model_type", toy_params(TOOLKIT_FAILURES, leave_out=KNOWN_FAILURES))
def test_research_functions_run(model_type):
    model = validated_toy(model_type)
    n = model.num_layers
    activations = collect_token_activations_batched(model, PROMPTS, batch_size=1, progress=False)
    assert torch.allclose(activations, get_token_activations(model, PROMPTS), rtol=1e-4, atol=1e-4)
    lens = logit_lens(model, PROMPTS)
    assert lens.shape[:2] == (2, n) and torch.allclose(lens.sum(-1), torch.ones(2, n), atol=1e-3)
    # the last layer's lens is the model's own next-token distribution (log space: toy distributions are flat)
    assert torch.allclose(lens[:, -1].log(), compute_next_token_probs(model, PROMPTS).float().log(), atol=1e-3)
    prompt = Prompt.from_strings(PROMPTS[0], {"target": "dog", "trap": ["cat", "fish"]}, model.tokenizer)
    probs = run_prompts(model, [prompt, prompt], batch_size=2)
    assert probs["target"].shape == (2,) and (probs["target"] >= 0).all()
    patched = patchscope_lens(model, PROMPTS, repeat_prompt(), layers=[0, n - 1])
    assert patched.shape[:2] == (2, 2) and patched.isfinite().all()
    with model.trace(PROMPTS[0]):
        plain = model.layers_output[0].clone().save()
    with model.trace(PROMPTS[0]):
        model.steer(0, torch.ones(model.hidden_size), factor=0.5)
        steered = model.layers_output[0].save()
    assert torch.allclose(steered - plain, torch.full_like(plain, 0.5), atol=1e-4)
