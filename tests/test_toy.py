"""Offline toy models: deterministic, tiny, eval-mode, addressable by type or class name."""

import pytest
import torch

from nnterp.errors import NNterpError, ToyConfigRejected, ToyModelUnsupported
from nnterp.toy import (
    TOY_FIXES,
    ToyFix,
    UpstreamBug,
    build_toy_model,
    causal_lm_classes,
    resolve_model_type,
    toy_config,
    toy_tokenizer,
)
from nnterp.toy.build import _shrunk_fields, validated_config


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
    assert len(causal_lm_classes()) > 130  # 142 in transformers 5.0, the lower bound; 196 in 5.24


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


def test_a_row_applies_its_workarounds_only_on_releases_with_the_bug():
    fix = ToyFix(config={"a": 1}, upstream_bugs=(UpstreamBug("5.2.0", "raises", {"b": False}),))
    assert fix.on("5.1.9").config == {"a": 1, "b": False}
    assert fix.on("5.2.0").config == {"a": 1} and fix.on("5.24.0").unsupported is None


def test_a_bug_without_workaround_makes_the_toy_unsupported_on_releases_with_it():
    fix = ToyFix(upstream_bugs=(UpstreamBug("5.2.0", "fails on long inputs (transformers#1)"),))
    assert fix.on("5.0.0").unsupported == "a bug of transformers 5.0.0: fails on long inputs (transformers#1) " \
                                          "(fixed in 5.2.0)"
    assert fix.on("5.2.0").unsupported is None


def test_a_row_declares_a_token_id_its_config_class_lacks(monkeypatch):
    """transformers 5.0's Phi, StableLM, EXAONE 4 and JetMoE read pad_token_id without declaring it."""
    assert "pad_token_id" not in toy_config("rwkv").__dict__
    monkeypatch.setitem(TOY_FIXES, "RwkvForCausalLM", ToyFix(config={"pad_token_id": None}))
    assert toy_config("rwkv").pad_token_id == toy_tokenizer().pad_token_id


def test_per_layer_kinds_written_as_runs_keep_the_toy_layers():
    """GPT-Neo derives its per-layer attention kinds from [[kinds, repeats]] runs: they must cover the toy's layers."""
    config = toy_config("gpt_neo")
    assert config.attention_types == [[["global", "local"], 1]]
    assert list(config.attention_layers) == ["global", "local"] and config.num_layers == 2


def test_sub_configs_carry_only_their_checkpoint_fields():
    """Generic config attributes stay out: transformers 5.0's DBRX sub-configs reject them."""
    import transformers

    fields = _shrunk_fields(transformers.DbrxConfig(), toy_tokenizer())
    assert "return_dict" not in fields["ffn_config"] and fields["ffn_config"]["hidden_size"] == 64


def test_a_nested_config_the_row_overrides_is_built_when_the_defaults_leave_it_none():
    """transformers 5.0's Phi-4 multimodal config has no default vision config, which the model reads."""
    vision = toy_config("phi4_multimodal").vision_config
    assert vision is not None and vision.hidden_size == 64


def test_a_text_only_lm_of_a_multimodal_type_is_built_from_the_text_config():
    import transformers

    toy = build_toy_model("llama4")
    assert type(toy.model.config) is transformers.Llama4TextConfig
    assert toy.model.config.pad_token_id == toy.tokenizer.pad_token_id


def test_a_row_of_a_text_model_class_goes_into_the_text_config_of_a_multimodal_type():
    """qwen4_exp nests the config Qwen4ExpForCausalLM takes as text_config; qwen4_exp_text is that config."""
    if "qwen4_exp" not in causal_lm_classes():
        pytest.skip("Qwen4-Exp is not in the installed transformers")
    row = TOY_FIXES["Qwen4ExpForCausalLM"].config
    assert {key: getattr(toy_config("qwen4_exp_text"), key) for key in row} == row
    assert {key: getattr(toy_config("qwen4_exp").text_config, key) for key in row} == row


def test_a_row_moved_into_a_text_config_keeps_its_drops_and_token_ids(monkeypatch):
    fix = ToyFix(config={"pad_token_id": None, "a": 1}, drop=("per_layer_config",)).within("text_config")
    assert fix == ToyFix(sub_configs={"text_config": {"pad_token_id": None, "a": 1}},
                         drop=("text_config.per_layer_config",))
    if "llama4" not in causal_lm_classes():
        pytest.skip("Llama 4 is not in the installed transformers")
    assert "decoder_start_token_id" not in toy_config("llama4").text_config.__dict__
    monkeypatch.setitem(TOY_FIXES, "Llama4ForCausalLM", ToyFix(config={"decoder_start_token_id": None}))
    assert toy_config("llama4").text_config.decoder_start_token_id == toy_tokenizer().bos_token_id
    assert toy_config("llama4_text").decoder_start_token_id == toy_tokenizer().bos_token_id


def test_a_row_with_nested_fields_refuses_to_move_into_a_text_config():
    with pytest.raises(NotImplementedError, match="cannot be moved into text_config"):
        ToyFix(sub_configs={"vision_config": {}}).within("text_config")


class _IndexedConfig:
    """A config whose validator bounds a field the shrink does not know (``index_heads``) by two it shrinks, as
    Kolibri 1.1's does, raising as huggingface_hub's strict configs do; ``window`` is unrelated to it."""

    built = 0

    def __init__(self, num_attention_heads: int = 48, num_key_value_heads: int = 4, window: int = 513,
                 index_heads: int = 12, norm_eps: float = 1e-6, use_cache: bool = True):
        from huggingface_hub.errors import StrictDataclassClassValidationError

        type(self).built += 1
        if not 0 < index_heads <= num_attention_heads // num_key_value_heads:
            raise StrictDataclassClassValidationError("validate_architecture", ValueError(
                "index_heads must be between 1 and the query heads of key head 0"))
        self.num_attention_heads, self.num_key_value_heads = num_attention_heads, num_key_value_heads
        self.window, self.index_heads, self.norm_eps, self.use_cache = window, index_heads, norm_eps, use_cache


class _NestingConfig:
    """A config holding an _IndexedConfig as the sub-config ``text_config``, built from a dict."""

    sub_configs = {"text_config": _IndexedConfig}

    def __init__(self, text_config: dict | None = None, depth: int = 24):
        self.text_config, self.depth = _IndexedConfig(**(text_config or {})), depth


def test_a_shrunk_config_its_validators_accept_is_built_once(monkeypatch):
    default = _IndexedConfig()
    monkeypatch.setattr(_IndexedConfig, "built", 0)
    config = validated_config("indexed", _IndexedConfig,
                              {"num_attention_heads": 4, "num_key_value_heads": 2, "index_heads": 2}, default)
    assert (config.index_heads, _IndexedConfig.built) == (2, 1)


def test_a_field_the_shrink_left_at_its_default_is_halved_until_the_validators_accept_it():
    """4 query heads over 2 key heads leave 2 per key head: index_heads 12 is halved to 6, 3, then 1. The window,
    which no halving of its own satisfies the validator with, keeps its default, as do floats and flags."""
    config = validated_config("indexed", _IndexedConfig, {"num_attention_heads": 4, "num_key_value_heads": 2},
                              _IndexedConfig())
    assert (config.index_heads, config.window, config.norm_eps, config.use_cache) == (1, 513, 1e-6, True)


def test_a_sub_config_field_is_halved_where_a_sub_config_rejects_its_fields():
    shrunk = {"text_config": {"num_attention_heads": 4, "num_key_value_heads": 2}}
    config = validated_config("nesting", _NestingConfig, shrunk, _NestingConfig())
    assert (config.text_config.index_heads, config.depth) == (1, 24)


def test_a_config_no_single_halving_satisfies_is_a_failure_naming_the_validator():
    """Not a skip: ToyConfigRejected is no ToyModelUnsupported, and it says which validator refused what."""
    with pytest.raises(ToyConfigRejected) as caught:
        validated_config("indexed", _IndexedConfig, {"num_attention_heads": 4, "num_key_value_heads": 8},
                         _IndexedConfig())
    error = caught.value
    assert isinstance(error, (NNterpError, ValueError)) and not isinstance(error, ToyModelUnsupported)
    assert error.model_type == "indexed"
    assert error.rejection == ("Class validation error for validator 'validate_architecture': ValueError: "
                               "index_heads must be between 1 and the query heads of key head 0")
    assert "SMALL_SIZES" in str(error) and "TOY_FIXES" in str(error)


def test_kolibri_toy_takes_at_most_the_query_heads_of_key_head_0_as_index_heads():
    """Kolibri 1.1 (transformers 5.25) defaults to 12 index heads, the toy has 4 query heads over 2 key heads."""
    if "kolibri1_1" not in causal_lm_classes():
        pytest.skip("Kolibri 1.1 is not in the installed transformers")
    config = toy_config("kolibri1_1")
    assert 0 < config.index_num_heads <= config.num_attention_heads // config.num_key_value_heads
