"""Ways into StandardizedTransformer: a local path (as a hub id would load) and a built model."""

import torch

from nnterp import StandardizedTransformer
from nnterp.checks import Status
from nnterp.toy import build_toy_model


def test_loads_a_local_path_validates_and_keeps_numerics(tmp_path):
    toy = build_toy_model("gpt2")
    toy.model.save_pretrained(tmp_path)
    toy.tokenizer.save_pretrained(tmp_path)
    model = StandardizedTransformer(str(tmp_path), enable_attention_probs=True)
    assert model.dispatched and not model._module.training
    assert model._module.config._attn_implementation == "eager"
    assert all(result.status is Status.PASSED for result in model.check_results)
    ids = toy.tokenizer("hello there", return_tensors="pt")["input_ids"]
    with model.trace(ids):
        logits = model.logits.save()
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
