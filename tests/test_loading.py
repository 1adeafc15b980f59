"""Ways into StandardizedTransformer: a local path (as a hub id would load) and a built model."""

import pytest
import torch

from nnterp import StandardizedTransformer
from nnterp.checks import ReportStatus
from nnterp.errors import ValidationFailed
from nnterp.toy import build_toy_model


def test_loads_a_local_path_validates_and_keeps_numerics(tmp_path):
    toy = build_toy_model("gpt2", attn_implementation="eager")  # the same kernels as the eager reload
    toy.model.save_pretrained(tmp_path)
    toy.tokenizer.save_pretrained(tmp_path)
    model = StandardizedTransformer(str(tmp_path), enable_attention_probs=True)
    assert model.dispatched and not model._module.training
    assert model._module.config._attn_implementation == "eager"
    assert all(result.status is ReportStatus.PASSED for result in model.check_results)
    ids = toy.tokenizer("hello there", return_tensors="pt")["input_ids"]
    with model.trace(ids):
        logits = model.logits.save()
    with torch.no_grad():
        assert torch.equal(logits, toy.model(input_ids=ids).logits)


def test_a_lazily_loaded_model_keeps_its_standard_names_through_dispatch(tmp_path):
    """The tokenizer is loaded from the folder (nnsight's meta load no longer sources it); the names bind on the
    meta model's tree, and dispatch swaps the real weights into that tree, names included."""
    toy = build_toy_model("gpt2")
    toy.model.save_pretrained(tmp_path)
    toy.tokenizer.save_pretrained(tmp_path)
    model = StandardizedTransformer(str(tmp_path), dispatch=False, check_renaming=False)
    assert not model.dispatched and model.layers[1].self_attn._module is model._module.transformer.h[1].attn
    ids = toy.tokenizer("hello there", return_tensors="pt")["input_ids"]
    with model.trace(ids):
        logits = model.logits.save()
    assert model.dispatched and model.layers[1].self_attn._module is model._module.transformer.h[1].attn
    assert model.embed_tokens._module is model._module.transformer.wte
    with torch.no_grad():
        assert torch.equal(logits, toy.model(input_ids=ids).logits)


def test_a_model_in_training_mode_is_put_in_eval_mode():
    toy = build_toy_model("llama")
    toy.model.train()
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)
    assert not model._module.training


def test_attention_probabilities_switch_a_built_model_to_eager():
    toy = build_toy_model("llama")
    toy.model.set_attn_implementation("sdpa")
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    assert model._module.config._attn_implementation == "eager"


def test_a_built_falcon_is_switched_though_transformers_declines():
    """transformers will not switch Falcon's attention (it predates the attention interface), but its
    forward reads the config at every call: probabilities must be found and verified all the same."""
    toy = build_toy_model("falcon")
    assert toy.model.config._attn_implementation == "sdpa"
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    assert model.attention_probabilities.switched_from == "sdpa"
    checks = {result.name.value: result for result in model.check_results}
    assert checks["attn_probs"].passed
    with model.trace("hello there"):
        probs = model.attention_probabilities[0].save()
    assert probs.shape[-1] == probs.shape[-2] and torch.allclose(probs.sum(-1), torch.ones(probs.shape[:-1]))


def test_an_attention_fixed_when_built_fails_at_load_saying_to_build_it_eager():
    """An attention class chosen when the model was built ignores the switch: a typed error says what to do."""
    import copy

    toy = build_toy_model("falcon")
    attention_class = type(toy.model.transformer.h[0].self_attention)

    class SdpaChosenAtBuild(attention_class):
        def forward(self, *args, **kwargs):
            chosen, self.config = self.config, copy.copy(self.config)
            self.config._attn_implementation = "sdpa"
            try:
                return super().forward(*args, **kwargs)
            finally:
                self.config = chosen

    for layer in toy.model.transformer.h:
        layer.self_attention.__class__ = SdpaChosenAtBuild
    with pytest.raises(ValidationFailed, match="attn_implementation='eager'") as raised:
        StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    assert raised.value.check == "attn_probs" and "built with sdpa attention" in str(raised.value)


def test_a_model_built_eager_is_not_switched():
    toy = build_toy_model("llama", attn_implementation="eager")
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    assert model.attention_probabilities.switched_from is None


def test_nan_logits_are_named_rather_than_blamed_on_the_located_probabilities():
    """NaN compares unequal to everything: a forward that yields NaN on the padded probe batch (Qwen4-Exp's
    eager mask before transformers 5.23) must not read as "the located tensor is not the one used"."""
    from nnterp.checks import CheckName, check_attention_probabilities, probe

    toy = build_toy_model("llama")
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    result = probe(model)
    assert check_attention_probabilities(model, result).passed
    result.logits[-1, 0] = float("nan")  # a padding position of the left-padded probe batch
    checked = check_attention_probabilities(model, result)
    assert checked.name is CheckName.ATTN_PROBS and checked.status is ReportStatus.FAILED
    assert "NaN at 1 positions" in checked.message and "not the one the attention uses" not in checked.message
