"""Offline toy models: deterministic, tiny, eval-mode, addressable by type or class name."""

import pytest
import torch

from nnterp.toy import build_toy_model, causal_lm_classes, resolve_model_type, toy_tokenizer


def test_tokenizer_round_trips_text():
    tokenizer = toy_tokenizer()
    text = "The cat sat on the mat.\n  Émile!"
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id < len(tokenizer)


def test_build_is_deterministic_and_in_eval_mode():
    first, second = build_toy_model("llama"), build_toy_model("llama")
    assert not first.model.training
    for (name, a), (_, b) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_class_name_and_model_type_address_the_same_architecture():
    assert resolve_model_type("LlamaForCausalLM") == "llama"
    assert resolve_model_type("gpt2") == "gpt2"
    assert build_toy_model("GPT2LMHeadModel").class_name == "GPT2LMHeadModel"


def test_unknown_name_says_how_to_list_toys():
    with pytest.raises(KeyError, match="python -m nnterp toy --list"):
        resolve_model_type("NotAModelForCausalLM")


def test_mapping_covers_the_installed_causal_lm_types():
    assert len(causal_lm_classes()) > 150


@pytest.mark.parametrize("name", ["llama", "gpt2", "mistral", "qwen2", "gemma2", "mamba"])
def test_common_toys_are_small(name):
    toy = build_toy_model(name)
    assert sum(p.numel() for p in toy.model.parameters()) < 1_000_000


# Looped architectures, and how many times their config says each layer runs in one forward: the toy
# fixes size the sections so that the toy really loops, with layers before and after the loop.
LOOPED_LAYER_CALLS = {
    "dory": lambda c: ([1] * c.n_input_layers + [c.n_recurrent_loops] * c.n_recurrent_layers
                       + [1] * c.n_output_layers),
    "inkling2_loop_text": lambda c: [c.loop_num_passes if c.loop_layer_index_start <= i < c.loop_layer_index_end
                                     else 1 for i in range(c.num_hidden_layers)],
}


@pytest.mark.parametrize("name", sorted(LOOPED_LAYER_CALLS))
def test_looped_toys_run_a_loop_between_plain_layers(name):
    if name not in causal_lm_classes():
        pytest.skip(f"{name} is not a causal-LM type of the installed transformers")
    toy = build_toy_model(name)
    layers = toy.model.model.layers
    calls = [0] * len(layers)
    hooks = [layer.register_forward_hook(lambda *_, index=index: calls.__setitem__(index, calls[index] + 1))
             for index, layer in enumerate(layers)]
    with torch.no_grad():
        toy.model(**toy.tokenizer("The cat sat", return_tensors="pt"))
    for hook in hooks:
        hook.remove()
    assert calls == LOOPED_LAYER_CALLS[name](toy.model.config)
    assert calls[0] == calls[-1] == 1 < max(calls)


def test_toys_are_built_as_users_build_models():
    """The suite loads sdpa toys with enable_attention_probs=True: the path of a user's own model."""
    assert build_toy_model("llama").model.config._attn_implementation == "sdpa"
    assert build_toy_model("llama", attn_implementation="eager").model.config._attn_implementation == "eager"
