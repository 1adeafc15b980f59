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
