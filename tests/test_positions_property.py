"""The rule of positions, for every public function that takes several prompts: a position counts each prompt's own
tokens and a negative one counts from that prompt's last real token, whatever the tokenizer's padding side and
whoever tokenized (a pre-tokenized mapping with its attention_mask included). So a batch of prompts of different
lengths gives, row by row, what each prompt gives alone; patching a batch gives the mean of each pair alone."""

from __future__ import annotations

import string

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnterp import (
    Prompt,
    collect_token_activations_batched,
    compute_next_token_probs,
    get_token_activations,
    logit_lens,
    patchscope_lens,
    run_prompts,
)
from nnterp.toolkit.analysis import (
    accumulated_resid,
    activation_patching,
    attribution_patching,
    decompose_resid,
    direct_logit_attribution,
    run_with_cache,
)
from nnterp.toolkit.interventions import TargetPrompt

# Batched and unbatched runs differ by float rounding only (matmuls of other shapes): tolerances follow the dtype.
TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-5}}

# The toys' tokenizer is byte-level: a text of n characters is n tokens, so lengths differ as texts do.
texts = st.text(alphabet=string.ascii_lowercase + " ", min_size=1, max_size=9)
mixed_lengths = st.lists(texts, min_size=2, max_size=3, unique_by=len)


def _dla(position):
    def run(model, prompts):
        result = direct_logit_attribution(model, prompts, 5, position=position)
        return torch.cat([result.contributions, result.bias[:, None], result.logits[:, None]], dim=1)
    return run


def _cache(positions):
    return lambda model, prompts: run_with_cache(model, prompts, "layers_output", positions=positions) \
        .stack("layers_output").transpose(0, 1)


def _patchscope(model, prompts):
    """The prompts as patchscope targets, each patched at its own last token."""
    return patchscope_lens(model, ["hello world"] * len(prompts), [TargetPrompt(prompt, -1) for prompt in prompts],
                           layers=[0, 1])


def _run_prompts(model, prompts):
    built = [Prompt.from_strings(prompt, {"target": "a", "other": ["b", "c"]}, model.tokenizer) for prompt in prompts]
    probs = run_prompts(model, built, batch_size=len(prompts))
    return torch.stack([probs["target"], probs["other"]], dim=1)


# Each function as (model, prompts or a tokenized batch) -> a batch-first tensor.
TAKE_TOKENIZED = {
    "logit_lens": logit_lens,
    "compute_next_token_probs": compute_next_token_probs,
    "get_token_activations[-1]": lambda model, prompts: get_token_activations(model, prompts, idx=-1).transpose(0, 1),
    "get_token_activations[0]": lambda model, prompts: get_token_activations(model, prompts, idx=0).transpose(0, 1),
    "run_with_cache[-1]": _cache(-1),
    "run_with_cache[[0, -1]]": _cache([0, -1]),
    "run_with_cache[-1:]": _cache(slice(-1, None)),
    "direct_logit_attribution[-1]": _dla(-1),
    "direct_logit_attribution[0]": _dla(0),
    "decompose_resid": lambda model, prompts: decompose_resid(model, prompts, layer=1, per_head=True)
    .components.transpose(0, 1),
    "accumulated_resid": lambda model, prompts: accumulated_resid(model, prompts).residuals.transpose(0, 1),
}
FUNCTIONS = {
    **TAKE_TOKENIZED,
    "collect_token_activations_batched": lambda model, prompts: collect_token_activations_batched(
        model, prompts, 2, idx=-1, progress=False).transpose(0, 1),
    "patchscope_lens": _patchscope,
    "run_prompts": _run_prompts,
}


def _alone(function, model, prompts):
    return torch.cat([function(model, [prompt]) for prompt in prompts])


def _assert_equal(batched, alone):
    assert batched.shape == alone.shape
    torch.testing.assert_close(batched, alone, **TOLERANCE[batched.dtype])


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@settings(max_examples=5, deadline=None)
@given(prompts=mixed_lengths)
def test_a_batch_of_prompts_of_different_lengths_equals_each_prompt_alone(llama, name, side, prompts):
    llama.tokenizer.padding_side = side
    try:
        _assert_equal(FUNCTIONS[name](llama, prompts), _alone(FUNCTIONS[name], llama, prompts))
    finally:
        llama.tokenizer.padding_side = "left"


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", sorted(TAKE_TOKENIZED))
@settings(max_examples=5, deadline=None)
@given(prompts=mixed_lengths)
def test_a_batch_tokenized_by_the_caller_is_read_through_its_attention_mask(llama, name, side, prompts):
    """Padded on either side by the caller: each prompt is read at its own tokens, as if run alone."""
    tokenized = dict(llama.tokenizer(prompts, return_tensors="pt", padding=True, padding_side=side))
    assert not bool(tokenized["attention_mask"].all())  # some prompt is padded
    _assert_equal(TAKE_TOKENIZED[name](llama, tokenized), _alone(TAKE_TOKENIZED[name], llama, prompts))


def _metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


def _corrupted(prompt):
    """The prompt with its first character changed: as many tokens, one of them different."""
    return ("b" if prompt[0] == "a" else "a") + prompt[1:]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("patching", [activation_patching, attribution_patching], ids=lambda f: f.__name__)
@settings(max_examples=5, deadline=None)
@given(prompts=mixed_lengths)
def test_patching_pairs_of_different_lengths_equals_the_mean_of_each_pair_alone(llama, patching, side, prompts):
    """Pairs of one length each, lengths differing between pairs: positions from the start and from the end name
    each prompt's own tokens, and the metric's ``logits[:, -1]`` each prompt's last token (never a pad)."""
    corrupted = [_corrupted(prompt) for prompt in prompts]
    llama.tokenizer.padding_side = side
    try:
        batched = patching(llama, prompts, corrupted, _metric, positions=[0, -1])
        alone = [patching(llama, [clean], [dirty], _metric, positions=[0, -1])
                 for clean, dirty in zip(prompts, corrupted)]
    finally:
        llama.tokenizer.padding_side = "left"
    _assert_equal(batched.values, torch.stack([result.values for result in alone]).mean(dim=0))
    expected = [sum(getattr(result, name) for result in alone) / len(alone)
                for name in ("clean_metric", "corrupted_metric")]
    assert [batched.clean_metric, batched.corrupted_metric] == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert batched.positions == (0, -1)  # as given: -1 is each prompt's last token, not one column
