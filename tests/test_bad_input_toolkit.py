"""Bad input to the research toolkit: every case raises a typed NNterpError naming the argument and the fix,
and batched results equal unbatched ones whatever the tokenizer's padding side."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnterp.errors import (
    CacheKeyError,
    InputTooLong,
    InputTooLongWarning,
    LayerIndexError,
    NNterpError,
    PromptError,
    SteeringVectorError,
    TargetError,
    TokenIndexError,
    ToolkitInputError,
    ToolkitTypeError,
)
from nnterp.toolkit.activations import (
    collect_token_activations_batched,
    compute_next_token_probs,
    get_token_activations,
)
from nnterp.toolkit.analysis.cache import run_with_cache
from nnterp.toolkit.analysis.patching import activation_patching, attribution_patching
from nnterp.toolkit.display import plot_topk_tokens
from nnterp.toolkit.interventions import TargetPrompt, logit_lens, patchscope_lens, steer
from nnterp.toolkit.prompts import Prompt, run_prompts

from .conftest import standardized_toy

SHORT, LONG = "Hi there", "A much longer prompt that pads the short one"


def _steer(model, **kwargs):
    """Run ``steer`` inside a trace with a valid call, overridden by ``kwargs``."""
    call = {"layers": [0], "steering_vector": torch.ones(model.hidden_size), "factor": 1.0, "positions": None}
    call.update(kwargs)
    with model.trace("Hello world"):
        steer(model, **call)
        model.next_token_probs.save()


def _prompt(model, prompt="The capital is", targets=None):
    return Prompt.from_strings(prompt, {"target": "Paris"} if targets is None else targets, model.tokenizer)


def _last_logit(logits):
    return logits[:, -1, 0]


class _UnkTokenizer:
    """A word-level tokenizer that knows no word: every word is its unknown token (the toys' are byte-level)."""

    unk_token, unk_token_id = "<unk>", 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [self.unk_token_id] * len(text.split())}


# (case id, call building the bad call on the llama toy, expected error type, message fragment)
CASES = [
    # 2-3: prompts of the wrong kind, every function taking prompts
    ("activations-empty-string", lambda m: get_token_activations(m, ["", "Hi"]), PromptError, r"prompts\[0\]"),
    ("activations-empty-list", lambda m: get_token_activations(m, []), PromptError, "prompts is empty"),
    ("activations-none", lambda m: get_token_activations(m, None), PromptError, "is None"),
    ("activations-int", lambda m: get_token_activations(m, 3), ToolkitTypeError, "prompts is int"),
    ("activations-mixed", lambda m: get_token_activations(m, ["Hi", 3]), ToolkitTypeError, r"prompts\[1\] is int"),
    ("batched-empty-list", lambda m: collect_token_activations_batched(m, [], 2, progress=False), PromptError,
     "empty"),
    ("batched-empty-string", lambda m: collect_token_activations_batched(m, ["Hi", ""], 2, progress=False),
     PromptError, "empty string"),
    ("batched-batch-size-0", lambda m: collect_token_activations_batched(m, ["Hi"], 0, progress=False),
     ToolkitInputError, "batch_size must be at least 1"),
    ("batched-batch-size-float", lambda m: collect_token_activations_batched(m, ["Hi"], 1.5, progress=False),
     ToolkitTypeError, "batch_size is float"),
    ("next-probs-empty-string", lambda m: compute_next_token_probs(m, ""), PromptError, "empty string"),
    ("next-probs-none", lambda m: compute_next_token_probs(m, None), PromptError, "is None"),
    ("next-probs-int", lambda m: compute_next_token_probs(m, 5), ToolkitTypeError, "is int"),
    ("logit-lens-empty-list", lambda m: logit_lens(m, []), PromptError, "empty"),
    ("logit-lens-mixed", lambda m: logit_lens(m, ["Hi", None]), ToolkitTypeError, "NoneType"),
    ("patchscope-empty-source", lambda m: patchscope_lens(m, [""], layers=[0]), PromptError, "empty string"),
    ("patchscope-int-source", lambda m: patchscope_lens(m, 7, layers=[0]), ToolkitTypeError, "is int"),
    # 4: Prompt targets
    ("prompt-empty-targets", lambda m: _prompt(m, targets={}), TargetError, "targets is empty"),
    ("prompt-targets-not-dict", lambda m: _prompt(m, targets=["Paris"]), ToolkitTypeError, "expected a dict"),
    ("prompt-none", lambda m: _prompt(m, prompt=None), PromptError, "prompt is None"),
    ("prompt-empty-string", lambda m: _prompt(m, prompt=""), PromptError, "empty string"),
    ("prompt-int", lambda m: _prompt(m, prompt=4), ToolkitTypeError, "prompt is int"),
    ("prompt-unk-target", lambda m: Prompt.from_strings("Hi", {"target": "Zürich"}, _UnkTokenizer()), TargetError,
     "'Zürich' starts with the tokenizer's unknown token"),
    ("prompt-direct-no-targets", lambda m: Prompt("Hi", {}, {}), TargetError, "at least one target"),
    ("run-prompts-empty", lambda m: run_prompts(m, []), ToolkitInputError, "no prompts"),
    ("run-prompts-strings", lambda m: run_prompts(m, ["Hi"]), ToolkitTypeError, "expected a Prompt"),
    ("run-prompts-none", lambda m: run_prompts(m, None), ToolkitTypeError, "expected a list of Prompt"),
    # 5: steering
    ("steer-bool-vector", lambda m: _steer(m, steering_vector=torch.ones(m.hidden_size, dtype=torch.bool)),
     SteeringVectorError, "floating-point"),
    ("steer-int-vector", lambda m: _steer(m, steering_vector=torch.ones(m.hidden_size, dtype=torch.long)),
     SteeringVectorError, "floating-point"),
    ("steer-wrong-size", lambda m: _steer(m, steering_vector=torch.ones(m.hidden_size + 1)), SteeringVectorError,
     "one token's state"),
    ("steer-scalar", lambda m: _steer(m, steering_vector=torch.tensor(1.0)), SteeringVectorError, "shape ()"),
    ("steer-numpy", lambda m: _steer(m, steering_vector=np.ones(m.hidden_size)), ToolkitTypeError, "ndarray"),
    ("steer-list", lambda m: _steer(m, steering_vector=[1.0] * m.hidden_size), ToolkitTypeError, "is list"),
    ("steer-meta-device", lambda m: _steer(m, steering_vector=torch.ones(m.hidden_size, device="meta")),
     SteeringVectorError, "meta device"),
    ("steer-factor-string", lambda m: _steer(m, factor="2"), ToolkitTypeError, "factor is str"),
    ("steer-factor-none", lambda m: _steer(m, factor=None), ToolkitTypeError, "factor is NoneType"),
    ("steer-factor-bool", lambda m: _steer(m, factor=True), ToolkitTypeError, "factor is bool"),
    ("steer-position-past-end", lambda m: _steer(m, positions=[100]), TokenIndexError, "position 100"),
    ("steer-position-float", lambda m: _steer(m, positions=[0.5]), ToolkitTypeError, "expected ints"),
    ("steer-layers-empty", lambda m: _steer(m, layers=[]), ToolkitInputError, "layers is empty"),
    ("steer-leading-dimension-not-broadcasting", lambda m: _steer(m, steering_vector=torch.ones(2, m.hidden_size)),
     SteeringVectorError, "does not broadcast to layer 0's output (1, "),
    ("steer-leading-dimension-at-positions",
     lambda m: _steer(m, steering_vector=torch.ones(3, 1, m.hidden_size), positions=[0]), SteeringVectorError,
     "does not broadcast"),
    ("steer-layer-out-of-range", lambda m: _steer(m, layers=[9]), LayerIndexError, "has 2 layers"),
    # 6: toolkit arguments
    ("activations-layers-empty", lambda m: get_token_activations(m, "Hi", layers=[]), ToolkitInputError,
     "layers is empty"),
    ("patchscope-layers-empty", lambda m: patchscope_lens(m, "Hi", layers=[]), ToolkitInputError, "layers is empty"),
    ("activations-idx-past-end", lambda m: get_token_activations(m, [SHORT, LONG], idx=40), TokenIndexError,
     "idx 40"),
    ("activations-idx-before-start", lambda m: get_token_activations(m, SHORT, idx=-40), TokenIndexError,
     "idx -40"),
    ("activations-idx-float", lambda m: get_token_activations(m, SHORT, idx=0.5), ToolkitTypeError, "idx is float"),
    ("patchscope-index-past-end", lambda m: patchscope_lens(m, "Hi", TargetPrompt("a b ?", 50), layers=[0]),
     TokenIndexError, "index_to_patch 50"),
    ("patchscope-index-before-start", lambda m: patchscope_lens(m, "Hi", TargetPrompt("a b ?", -50), layers=[0]),
     TokenIndexError, "index_to_patch -50"),
    ("patchscope-target-not-targetprompt", lambda m: patchscope_lens(m, "Hi", "a b ?", layers=[0]),
     ToolkitTypeError, "expected a TargetPrompt"),
    ("cache-layers-empty", lambda m: run_with_cache(m, "Hi", layers=[]), ToolkitInputError, "layers is empty"),
    ("cache-key-not-cached", lambda m: run_with_cache(m, "Hi", layers=[0])["layers_output", 1], CacheKeyError,
     "('layers_output', 1) is not cached; cached: .'layers_output'. for layers .0."),
    ("cache-key-accessor-not-cached", lambda m: run_with_cache(m, "Hi")["mlps_output", 0], CacheKeyError,
     "('mlps_output', 0) is not cached; cached: .'layers_output'."),
    ("cache-key-not-a-pair", lambda m: run_with_cache(m, "Hi")["layers_output"], CacheKeyError,
     "index the cache with (accessor, layer)"),
    ("patching-layers-empty", lambda m: activation_patching(m, "Hi there", "Ho there", _last_logit, layers=[]),
     ToolkitInputError, "layers is empty"),
    ("attribution-layers-empty", lambda m: attribution_patching(m, "Hi there", "Ho there", _last_logit, layers=[]),
     ToolkitInputError, "layers is empty"),
    ("plot-k-past-vocab", lambda m: plot_topk_tokens(torch.rand(2, m.vocab_size), m.tokenizer, k=m.vocab_size + 1),
     ToolkitInputError, "vocabulary size"),
    ("plot-k-zero", lambda m: plot_topk_tokens(torch.rand(2, m.vocab_size), m.tokenizer, k=0), ToolkitInputError,
     "k is 0"),
    ("plot-k-float", lambda m: plot_topk_tokens(torch.rand(2, m.vocab_size), m.tokenizer, k=2.0), ToolkitTypeError,
     "k is float"),
]


@pytest.mark.parametrize("call, error, fragment", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_raises_a_typed_error_naming_it(llama, call, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
        call(llama)
    assert isinstance(info.value, NNterpError)


def test_a_prompt_longer_than_learned_positions_is_refused():
    gpt2 = standardized_toy("gpt2")
    too_long = "a " * (gpt2._module.config.n_positions + 10)
    for call in (get_token_activations, compute_next_token_probs, logit_lens):
        with pytest.raises(InputTooLong, match="positions"):
            call(gpt2, too_long)


def test_a_prompt_longer_than_rotary_context_warns_once_and_runs(llama):
    too_long = "a " * (llama._module.config.max_position_embeddings + 10)
    with pytest.warns(InputTooLongWarning, match="positions") as record:
        probs = compute_next_token_probs(llama, too_long)
    assert sum(issubclass(warning.category, InputTooLongWarning) for warning in record) == 1
    assert probs.shape == (1, llama.vocab_size)


def test_a_single_string_is_one_prompt_everywhere(llama):
    batched = collect_token_activations_batched(llama, "Hello", 2, progress=False)
    assert batched.shape[1] == 1
    assert torch.allclose(batched, get_token_activations(llama, ["Hello"]), atol=1e-5)


def test_the_callers_vector_and_prompt_list_are_not_modified(llama):
    vector, prompts = torch.ones(llama.hidden_size), [SHORT, LONG]
    _steer(llama, steering_vector=vector, factor=3.0)
    get_token_activations(llama, prompts)
    assert torch.equal(vector, torch.ones(llama.hidden_size)) and prompts == [SHORT, LONG]


# -- batched == unbatched, whatever the tokenizer's padding side ---------------------------------------------


def _run_prompts(model, prompts):
    built = [Prompt.from_strings(prompt, {"target": "a"}, model.tokenizer) for prompt in prompts]
    return run_prompts(model, built)["target"]


def _patchscope(model, prompts):
    targets = [TargetPrompt(prompt, -1) for prompt in prompts]
    return patchscope_lens(model, ["Hello world"] * len(prompts), targets, layers=[0, 1])


FUNCTIONS = {"logit_lens": logit_lens, "compute_next_token_probs": compute_next_token_probs,
             "run_prompts": _run_prompts, "patchscope_lens": _patchscope,
             "get_token_activations": lambda model, prompts: get_token_activations(model, prompts).transpose(0, 1)}


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_batched_equals_unbatched_whatever_the_padding_side(llama, monkeypatch, name, side):
    monkeypatch.setattr(llama.tokenizer, "padding_side", side)
    function = FUNCTIONS[name]
    batched = function(llama, [SHORT, LONG])
    alone = torch.cat([function(llama, [SHORT]), function(llama, [LONG])])
    assert len(llama.tokenizer(SHORT)["input_ids"]) < len(llama.tokenizer(LONG)["input_ids"])
    assert torch.allclose(batched, alone, atol=1e-4), (batched - alone).abs().max()
    assert llama.tokenizer.padding_side == side  # the toolkit pads per call, never by changing the tokenizer
