"""Renaming: the registry, RenameConfig, get_rename_dict, ModuleAccessor and their errors."""

import pytest
import torch
from nnsight import NNsight

from nnterp import ModuleAccessor, RenameConfig, StandardizedTransformer, get_rename_dict
from nnterp.core.registry import DEFAULT, register_architecture
from nnterp.errors import ModuleNotFoundForRename, ValidationFailed
from nnterp.toy import build_toy_model


def test_rename_dict_of_a_model_maps_native_paths():
    gpt2 = build_toy_model("gpt2").model
    assert get_rename_dict(gpt2) == {"transformer.wte": "embed_tokens", "transformer.h": "layers",
                                     "transformer.ln_f": "ln_final", "attn": "self_attn"}


def test_rename_dict_works_with_plain_nnsight():
    gpt2 = build_toy_model("gpt2").model
    renamed = NNsight(gpt2, rename=get_rename_dict())
    assert renamed.layers._module is gpt2.transformer.h
    assert renamed.ln_final._module is gpt2.transformer.ln_f
    assert renamed.layers[0].self_attn._module is gpt2.transformer.h[0].attn


def test_module_accessor_gives_plain_modules():
    gpt2 = build_toy_model("gpt2").model
    accessor = ModuleAccessor(gpt2)
    assert isinstance(accessor.layers, torch.nn.ModuleList) and accessor.layers is accessor.get_layers()
    assert accessor.get_attention(1) is gpt2.transformer.h[1].attn
    assert accessor.lm_head is gpt2.lm_head and accessor.ln_final is gpt2.transformer.ln_f


class Unknown(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Linear(2, 2)
        self.stack = torch.nn.ModuleList([torch.nn.Linear(2, 2)])


def test_unknown_architecture_lists_its_top_level_modules():
    with pytest.raises(ModuleNotFoundForRename) as error:
        ModuleAccessor(Unknown())
    message = str(error.value)
    assert "trunk (Linear)" in message and "stack (ModuleList)" in message and "RenameConfig" in message


def test_rename_config_describes_an_unknown_layout():
    model = Unknown()
    config = RenameConfig(embed_tokens="trunk", layers="stack", lm_head="trunk")
    accessor = ModuleAccessor(model, config)
    assert accessor.layers is model.stack
    with pytest.raises(ModuleNotFoundForRename, match=r"RenameConfig\(attention='\.'\) names no module of any layer"):
        ModuleAccessor(model, RenameConfig(embed_tokens="trunk", layers="stack", lm_head="trunk", attention="."))


def test_wrong_rename_config_fails_validation_with_the_check_named():
    toy = build_toy_model("llama")
    wrong = RenameConfig(attention_output="self_attn.q_proj")  # right shape, wrong tensor
    with pytest.raises(ValidationFailed) as error:
        StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, rename_config=wrong)
    assert "LlamaForCausalLM" in str(error.value) and "residual_identity" in str(error.value)
    assert error.value.results and any(result.failed for result in error.value.results)


def test_registry_refuses_to_shadow_a_row():
    with pytest.raises(ValueError, match="override=True"):
        register_architecture("BloomForCausalLM", DEFAULT)
