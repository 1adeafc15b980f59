"""The rule of nnterp.utils.tokenizer_copy: building a model never changes the caller's tokenizer.

nnsight sets the model's pad token and padding side, and every padded encode rewrites a fast tokenizer's Rust
backend padding; the model works on its own copy, made without re-parsing the vocabulary. After
``StandardizedTransformer(model, tokenizer=tok)`` the caller's ``tok`` is as it was (every attribute, the
backend's serialization, padding and truncation) and pads a batch as before, on the toy tokenizer and on
SmolLM2's GGUF tokenizer, padded on either side, with or without a pad token. Each copy is checked against
what we did not write: the tokenizers library's own serialization, and ``copy.deepcopy``.

Needs only pytest, nnterp and transformers (run on every supported transformers version set).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from nnterp import StandardizedTransformer
from nnterp.toy import build_toy_model, toy_tokenizer
from nnterp.utils.tokenizer_copy import own_tokenizer

PROMPTS = ["The cat", "A much longer prompt than the first one"]


def settings(tokenizer: Any) -> dict[str, Any]:
    """Everything about ``tokenizer`` a model could change, read without encoding (an encode sets the backend's
    padding and truncation)."""
    backend = tokenizer.backend_tokenizer
    return {"pad_token": tokenizer.pad_token, "pad_token_id": tokenizer.pad_token_id,
            "padding_side": tokenizer.padding_side, "special_tokens_map": tokenizer.special_tokens_map,
            "added_tokens": {index: repr(token) for index, token in tokenizer.added_tokens_decoder.items()},
            "attributes": {name: repr(value) for name, value in vars(tokenizer).items() if name != "_tokenizer"},
            "backend": id(backend), "backend_padding": backend.padding, "backend_truncation": backend.truncation,
            "backend_json": backend.to_str()}


def padded_batch(tokenizer: Any) -> dict[str, Any] | str:
    """``PROMPTS`` padded into one batch, or the refusal of a tokenizer without a pad token."""
    try:
        batch = tokenizer(PROMPTS, padding=True)
    except ValueError as refusal:  # compared as a value: refused before, refused after
        return f"refused: {refusal}"
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _left_padding(tokenizer: Any) -> None:
    tokenizer.padding_side = "left"


def _no_pad_token(tokenizer: Any) -> None:
    tokenizer.pad_token = None


def _padded_and_truncated_once(tokenizer: Any) -> None:
    """The caller encoded a batch: its backend now holds that padding and truncation."""
    tokenizer(PROMPTS, padding=True, truncation=True, max_length=12)


def _no_pad_token_left_padding(tokenizer: Any) -> None:
    _no_pad_token(tokenizer)
    _left_padding(tokenizer)


VARIATIONS: dict[str, Callable[[Any], None]] = {
    "as built": lambda tokenizer: None, "left padding": _left_padding, "no pad token": _no_pad_token,
    "after the caller padded and truncated a batch": _padded_and_truncated_once,
}


def assert_left_alone_by_construction(hf_model: Any, tokenizer: Any) -> StandardizedTransformer:
    """Build a model on ``tokenizer`` and check the rule; the model, for checks of its own copy."""
    before, batch_before = settings(tokenizer), padded_batch(copy.deepcopy(tokenizer))
    model = StandardizedTransformer(hf_model, tokenizer=tokenizer)
    assert settings(tokenizer) == before
    assert padded_batch(tokenizer) == batch_before
    assert model.tokenizer is not tokenizer and model.tokenizer.backend_tokenizer is not tokenizer.backend_tokenizer
    assert model.tokenizer.padding_side == "left"
    assert model.tokenizer.pad_token == (before["pad_token"] or tokenizer.eos_token)
    return model


def assert_encodes_like_a_deep_copy(model: StandardizedTransformer, tokenizer: Any) -> None:
    """The model's copy pads a batch as a deep copy of the caller's tokenizer with the model's settings does."""
    reference = copy.deepcopy(tokenizer)
    reference.pad_token, reference.padding_side = model.tokenizer.pad_token, model.tokenizer.padding_side
    assert padded_batch(model.tokenizer) == padded_batch(reference)


# -- the rule, on the toy tokenizer ---------------------------------------------


@pytest.mark.parametrize("variation", VARIATIONS)
def test_building_a_toy_model_leaves_the_callers_tokenizer_as_it_was(variation):
    toy = build_toy_model("llama")
    VARIATIONS[variation](toy.tokenizer)
    model = assert_left_alone_by_construction(toy.model, toy.tokenizer)
    assert_encodes_like_a_deep_copy(model, toy.tokenizer)


def test_padding_batches_on_the_model_leaves_the_callers_backend_alone():
    """nnterp's own batching pads with the model's tokenizer, which sets that backend's padding, never the
    caller's; so does a batched trace."""
    toy = build_toy_model("llama")
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)
    before = settings(toy.tokenizer)
    with model.trace(PROMPTS):
        model.logits.save()
    model.tokenizer(PROMPTS, padding=True)
    assert model.tokenizer.backend_tokenizer.padding["direction"] == "left"
    assert settings(toy.tokenizer) == before


# -- the rule, on SmolLM2's GGUF tokenizer --------------------------------------


@pytest.mark.real_model
def test_building_smollm2_leaves_its_tokenizer_as_it_was(smollm2_hf):
    hf_model, tokenizer = smollm2_hf
    model = assert_left_alone_by_construction(hf_model, tokenizer)
    assert_encodes_like_a_deep_copy(model, tokenizer)


@pytest.mark.real_model
def test_building_smollm2_on_its_tokenizer_without_a_pad_token_padding_left_leaves_it_as_it_was(smollm2_hf):
    hf_model, loaded = smollm2_hf
    tokenizer = copy.deepcopy(loaded)  # the session's tokenizer stays as loaded
    _no_pad_token_left_padding(tokenizer)
    model = assert_left_alone_by_construction(hf_model, tokenizer)
    assert_encodes_like_a_deep_copy(model, tokenizer)


# -- own_tokenizer on its own ---------------------------------------------------


@pytest.mark.parametrize("source", ["toy", "toy after the caller padded and truncated a batch",
                                    pytest.param("smollm2", marks=pytest.mark.real_model)])
def test_the_backend_copy_serializes_as_the_callers_backend(source, request):
    """Same vocabulary, added tokens (ids and flags), pipeline, padding and truncation, in another object:
    compared by the tokenizers library's own serialization."""
    if source == "smollm2":
        tokenizer = request.getfixturevalue("smollm2_hf")[1]
    else:
        tokenizer = toy_tokenizer()
        if "padded" in source:
            _padded_and_truncated_once(tokenizer)
    copied = own_tokenizer(tokenizer)
    assert copied.backend_tokenizer is not tokenizer.backend_tokenizer
    assert copied.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert copied.backend_tokenizer.encode_special_tokens == tokenizer.backend_tokenizer.encode_special_tokens


def test_settings_made_on_the_copy_stay_on_the_copy():
    """Everything nnsight and transformers' pipelines set, and more: pad token, padding side, backend padding
    and truncation, an added token, bos insertion."""
    tokenizer = toy_tokenizer()
    batch_before = padded_batch(tokenizer)  # first: padding a batch sets the backend's padding
    before = settings(tokenizer)
    copied = own_tokenizer(tokenizer)
    copied.pad_token, copied.padding_side = copied.eos_token, "left"
    copied(PROMPTS, padding="max_length", truncation=True, max_length=20)
    copied.add_tokens(["<added by the copy>"])
    copied.backend_tokenizer.enable_truncation(5)
    assert settings(tokenizer) == before
    assert padded_batch(tokenizer) == batch_before
    assert "<added by the copy>" in copied.get_vocab() and "<added by the copy>" not in tokenizer.get_vocab()


def test_a_python_tokenizer_is_copied_with_its_settings_its_own():
    """A tokenizer without a Rust backend (ByT5's, pure Python): its Python state is deep-copied."""
    from transformers import ByT5Tokenizer

    tokenizer = ByT5Tokenizer()
    batch_before = padded_batch(tokenizer)
    before = {name: repr(value) for name, value in vars(tokenizer).items()}
    copied = own_tokenizer(tokenizer)
    copied.pad_token, copied.padding_side = copied.eos_token, "left"
    copied.add_tokens(["<added by the copy>"])
    assert padded_batch(copied) != batch_before
    assert {name: repr(value) for name, value in vars(tokenizer).items()} == before
    assert padded_batch(tokenizer) == batch_before
