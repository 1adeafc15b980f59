"""Prompts and target tracking: first tokens, Prompt, run_prompts on toy models and on SmolLM2."""

import pytest
import torch

from nnterp import StandardizedTransformer
from nnterp.toolkit.prompts import Prompt, get_first_tokens, run_prompts

from .conftest import standardized_toy

TEXTS = ["The cat", "A much longer prompt about a dog", "Hi", "Some words here and there"]
TARGETS = {"answer": "Paris", "traps": ["London", "Madrid"]}


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def toy(request):
    return standardized_toy(request.param, enable_attention_probs=False)


@pytest.fixture(scope="module")
def prompts(toy):
    return [Prompt.from_strings(text, TARGETS, toy.tokenizer) for text in TEXTS]


def first_token(text, tokenizer):
    return tokenizer(text, add_special_tokens=False)["input_ids"][0]


def layer_probs(model, prompts, remote=False):
    """A small logit lens: probabilities at the last position after every layer, (batch, layers, vocab)."""
    with torch.no_grad(), model.trace(prompts, remote=remote):
        per_layer = [model.project_on_vocab(model.layers_output[layer][:, -1]).softmax(dim=-1)
                     for layer in range(model.num_layers)]
        probs = torch.stack(per_layer, dim=1).cpu().save()
    return probs


# -- get_first_tokens ------------------------------------------------------------


def test_first_tokens_with_and_without_space_deduplicated(toy):
    tok = toy.tokenizer
    expected = [first_token("Paris", tok), first_token(" Paris", tok)]
    assert get_first_tokens("Paris", tok) == expected
    assert get_first_tokens(" Paris", tok) == expected
    # "Pizza" shares its first byte token with "Paris", and " " with every spaced word
    assert get_first_tokens(["Paris", "Pizza", "London"], tok) == expected + [first_token("London", tok)]


def test_a_word_with_no_token_warns_and_is_skipped(toy):
    with pytest.warns(UserWarning, match="''"):
        assert get_first_tokens(["", "Paris"], toy.tokenizer) == get_first_tokens("Paris", toy.tokenizer)


@pytest.mark.parametrize("words", [3, ["Paris", 3], None])
def test_a_non_string_raises_type_error_saying_what_to_pass(toy, words):
    with pytest.raises(TypeError, match=r"got (3|None) .*pass"):
        get_first_tokens(words, toy.tokenizer)


# -- Prompt --------------------------------------------------------------------


def test_prompt_from_strings(toy):
    prompt = Prompt.from_strings("The capital of France is", TARGETS, toy.tokenizer)
    assert prompt.prompt == "The capital of France is"
    assert prompt.target_strings == {"answer": ["Paris"], "traps": ["London", "Madrid"]}
    assert prompt.target_tokens == {"answer": get_first_tokens("Paris", toy.tokenizer),
                                    "traps": get_first_tokens(["London", "Madrid"], toy.tokenizer)}
    with pytest.raises(AttributeError):
        prompt.prompt = "changed"


def test_a_category_with_no_token_raises_naming_it(toy):
    with pytest.raises(ValueError, match=r"'empty'.*\[''\]"), pytest.warns(UserWarning):
        Prompt.from_strings("Hello", {"answer": "Paris", "empty": ""}, toy.tokenizer)


# -- run_prompts ---------------------------------------------------------------


def test_run_prompts_sums_next_token_probs_at_the_targets(toy, prompts):
    results = run_prompts(toy, prompts, batch_size=3)
    assert set(results) == {"answer", "traps"}
    for index, prompt in enumerate(prompts):
        with torch.no_grad(), toy.trace(prompt.prompt):
            probs = toy.next_token_probs.save()
        for category, values in results.items():
            assert values.shape == (len(prompts),) and values.device.type == "cpu"
            expected = probs[0, prompt.target_tokens[category]].sum()
            assert torch.allclose(values[index], expected, atol=1e-6)


def test_batch_size_does_not_change_the_result(toy, prompts):
    one, three = run_prompts(toy, prompts, batch_size=1), run_prompts(toy, prompts, batch_size=3)
    for category in one:
        assert torch.allclose(one[category], three[category], atol=1e-5)


def test_remote_local_gives_the_same_result(toy, prompts):
    local = run_prompts(toy, prompts, batch_size=2, remote="local")
    plain = run_prompts(toy, prompts, batch_size=2)
    for category in plain:
        assert torch.allclose(local[category], plain[category], atol=1e-6)


def test_per_layer_probs_give_one_column_per_layer(toy, prompts):
    per_layer = run_prompts(toy, prompts, batch_size=3, get_probs_func=layer_probs)
    per_layer_local = run_prompts(toy, prompts, batch_size=3, get_probs_func=layer_probs, remote="local")
    plain = run_prompts(toy, prompts, batch_size=3)
    for category in plain:
        assert per_layer[category].shape == (len(prompts), toy.num_layers)
        assert torch.allclose(per_layer[category][:, -1], plain[category], atol=1e-4)
        assert torch.allclose(per_layer_local[category], per_layer[category], atol=1e-6)


def test_run_prompts_with_logit_lens(toy, prompts):
    from nnterp.toolkit.interventions import logit_lens

    per_layer = run_prompts(toy, prompts, batch_size=3, get_probs_func=logit_lens)
    plain = run_prompts(toy, prompts, batch_size=3)
    for category in plain:
        assert per_layer[category].shape == (len(prompts), toy.num_layers)
        assert torch.allclose(per_layer[category][:, -1], plain[category], atol=1e-4)


def test_progress_bar_is_optional(toy, prompts):
    seen = []

    def record(iterable, **kwargs):
        seen.append(kwargs)
        return iterable

    run_prompts(toy, prompts[:2], batch_size=1, tqdm=record)
    assert seen == [{"desc": "running prompts", "unit": "batch"}]


def test_bad_inputs_raise_clear_errors(toy, prompts):
    with pytest.raises(ValueError, match="no prompts"):
        run_prompts(toy, [])
    with pytest.raises(ValueError, match="batch_size"):
        run_prompts(toy, prompts, batch_size=0)
    other = Prompt.from_strings("Hi", {"answer": "Paris"}, toy.tokenizer)
    with pytest.raises(ValueError, match="same categories"):
        run_prompts(toy, [prompts[0], other])
    with pytest.raises(ValueError, match=r"get_probs_func returned \(1, 2\) for 2 prompts"):
        run_prompts(toy, prompts[:2], get_probs_func=lambda model, texts, remote: torch.zeros(1, 2))


# -- the real model ------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2(smollm2_hf):
    model, tokenizer = smollm2_hf
    return StandardizedTransformer(model, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def capital(smollm2):
    return Prompt.from_strings("The capital of France is", {"target": "Paris", "traps": ["London", "Madrid"]},
                               smollm2.tokenizer)


@pytest.mark.real_model
def test_smollm2_prefers_paris_to_the_traps(smollm2, capital):
    results = run_prompts(smollm2, [capital])
    assert results["target"].shape == (1,)
    assert results["target"][0] > results["traps"][0]
    assert results["target"][0] > 0.5


@pytest.mark.real_model
def test_smollm2_logit_lens_last_layer_is_the_plain_result(smollm2, capital):
    from nnterp.toolkit.interventions import logit_lens

    prompts = [capital, Prompt.from_strings("The capital of Spain is", {"target": "Madrid", "traps": "Paris"},
                                            smollm2.tokenizer)]
    per_layer = run_prompts(smollm2, prompts, get_probs_func=logit_lens)
    plain = run_prompts(smollm2, prompts)
    for category in plain:
        assert per_layer[category].shape == (2, smollm2.num_layers)
        assert torch.allclose(per_layer[category][:, -1], plain[category], atol=1e-4)
