"""process_weights: a processed copy whose log-probabilities equal the model's, while the model keeps every bit of its
state and generates the same text; the folded and centred weights against manual math on the HF modules."""

import pytest
import torch

from nnterp.toolkit.analysis.weights import process_weights
from nnterp.toy.standardized import standardized_toy

PROMPTS = ["hello world there", "a cat sat on the mat"]


def greedy(hf_model, tokenizer, prompt: str) -> list[int]:
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        return hf_model.generate(**inputs, max_new_tokens=5, do_sample=False)[0].tolist()


def log_probs(hf_model, tokenizer, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = hf_model(**tokenizer(prompt, return_tensors="pt")).logits[0]
    return logits, logits.log_softmax(-1)


def check_view_not_mutation(model, processed) -> None:
    """The model's state is bitwise what it was, it generates the same text, shares no storage with the copy, and
    the copy's log-probabilities equal its own (logits up to one constant per position)."""
    before = {name: value.clone() for name, value in model._module.state_dict().items()}
    texts = [greedy(model._module, model.tokenizer, prompt) for prompt in PROMPTS]
    copy = processed.model._module
    assert not {p.data_ptr() for p in model._module.parameters()} & {p.data_ptr() for p in copy.parameters()}
    for prompt, text in zip(PROMPTS, texts):
        logits, expected = log_probs(model._module, model.tokenizer, prompt)
        shifted, got = log_probs(copy, model.tokenizer, prompt)
        # folded products round differently: measured up to 2.2e-4 on SmolLM2 (log-probabilities near -30)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-3)
        shift = shifted - logits  # the centred unembedding: one constant per position
        assert (shift - shift.mean(-1, keepdim=True)).abs().max() < 1e-3 * logits.abs().max()
        assert greedy(model._module, model.tokenizer, prompt) == text
        assert greedy(copy, model.tokenizer, prompt) == text
    after = model._module.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[name], after[name]) for name in before)
    assert all(parameter.grad is None for parameter in model._module.parameters())
    assert not any(module._forward_hooks or module._forward_pre_hooks for module in model._module.modules()
                   if module is not model._module)


@pytest.fixture(scope="module", params=["llama", "qwen2", "gpt2", "gpt_neox"])
def toy(request):
    model = standardized_toy(request.param, enable_attention_probs=False)
    return request.param, model, process_weights(model)


def test_processed_copy_is_a_view(toy):
    _, model, processed = toy
    check_view_not_mutation(model, processed)
    assert len(processed.folded_norms) == 2 * model.num_layers + 1 and processed.centered_unembed


def test_folded_and_centred_weights_equal_manual_math(toy):
    model_type, model, processed = toy
    original, copy = model._module, processed.model._module
    if model_type in ("llama", "qwen2"):  # RMSNorm: gains folded, nothing centred but the unembedding
        assert processed.centered_writers == () and "RMSNorm" in processed.skipped[0]
        block, folded = original.model.layers[0], copy.model.layers[0]
        gain = block.input_layernorm.weight
        torch.testing.assert_close(folded.self_attn.q_proj.weight, block.self_attn.q_proj.weight * gain)
        torch.testing.assert_close(folded.mlp.up_proj.weight,
                                   block.mlp.up_proj.weight * block.post_attention_layernorm.weight)
        assert torch.equal(folded.input_layernorm.weight, torch.ones_like(gain))
        unembed = original.lm_head.weight * original.model.norm.weight
        torch.testing.assert_close(copy.lm_head.weight, unembed - unembed.mean(0))
        return
    if model_type == "gpt2":  # LayerNorm into Conv1D (in, out): rows scaled, bias through the weight
        block, folded = original.transformer.h[0], copy.transformer.h[0]
        weight, norm = block.attn.c_attn.weight, block.ln_1
        torch.testing.assert_close(folded.attn.c_attn.weight, norm.weight[:, None] * weight)
        hidden = weight.shape[0]  # c_attn's output is [queries | keys | values]: the values' bias is folded away
        torch.testing.assert_close(folded.attn.c_attn.bias[:2 * hidden],
                                   (block.attn.c_attn.bias + norm.bias @ weight)[:2 * hidden])
        assert torch.equal(folded.attn.c_attn.bias[2 * hidden:], torch.zeros(hidden))
        writer = block.mlp.c_proj.weight  # (in, out): centred over the hidden (out) axis
        torch.testing.assert_close(folded.mlp.c_proj.weight, writer - writer.mean(-1, keepdim=True))
        embedding = original.transformer.wte.weight
        torch.testing.assert_close(copy.transformer.wte.weight, embedding - embedding.mean(-1, keepdim=True))
        assert "transformer.h.1.mlp.c_proj" in processed.centered_writers
        return
    block, folded = original.gpt_neox.layers[0], copy.gpt_neox.layers[0]  # Linear (out, in)
    norm, fused = block.input_layernorm, block.attention.query_key_value
    torch.testing.assert_close(folded.attention.query_key_value.weight, fused.weight * norm.weight)
    heads = model.num_heads  # GPT-NeoX interleaves per head: [q_h | k_h | v_h]; the values' bias is folded away
    expected = (fused.bias + fused.weight @ norm.bias).view(heads, 3, -1)
    got = folded.attention.query_key_value.bias.view(heads, 3, -1)
    torch.testing.assert_close(got[:, :2], expected[:, :2])
    assert torch.equal(got[:, 2], torch.zeros_like(got[:, 2]))
    dense = block.attention.dense
    torch.testing.assert_close(folded.attention.dense.weight, dense.weight - dense.weight.mean(0))
    torch.testing.assert_close(folded.attention.dense.bias, dense.bias - dense.bias.mean())


def test_each_step_can_be_turned_off():
    model = standardized_toy("gpt2", enable_attention_probs=False)
    plain = process_weights(model, fold_ln=False, center_writing_weights=False, center_unembed=False,
                            fold_value_biases=False)
    copy = plain.model._module
    assert plain.folded_norms == () and plain.centered_writers == () and not plain.centered_unembed
    assert plain.folded_value_biases == ()
    state = model._module.state_dict()
    assert all(torch.equal(value, state[name]) for name, value in copy.state_dict().items())
    unfolded = process_weights(model, fold_ln=False)
    assert "needs fold_ln" in unfolded.skipped[0]


@pytest.mark.real_model
def test_smollm2_processed_copy_is_a_view(smollm2_hf):
    from nnterp import StandardizedTransformer

    model = StandardizedTransformer(smollm2_hf[0], tokenizer=smollm2_hf[1])
    processed = process_weights(model)
    assert len(processed.folded_norms) == 61 and processed.centered_writers == ()
    check_view_not_mutation(model, processed)
    embedding = model._module.get_input_embeddings().weight  # tied to the head in the model, untied in the copy
    assert embedding.data_ptr() == model._module.get_output_embeddings().weight.data_ptr()


def test_a_gain_that_is_not_the_weight_is_refused():
    from nnterp.errors import NotDecomposable

    model = standardized_toy("gemma", enable_attention_probs=False)  # Gemma's RMSNorm scales by 1 + weight
    with pytest.raises(NotDecomposable, match="GemmaRMSNorm.*measured gain is not its weight"):
        process_weights(model)
    assert process_weights(model, fold_ln=False).folded_norms == ()


@pytest.mark.parametrize("model_type", ["gpt2", "qwen2"])
def test_value_biases_fold_into_the_output_bias(model_type):
    """Against manual math on the HF modules of the copy processed without this step: the values' bias becomes 0,
    and the output projection's bias takes W_O times each query head's value bias (its key/value head's, under
    grouped-query attention), centred where the writers are centred; the log-probabilities stay the model's."""
    model = standardized_toy(model_type, enable_attention_probs=False)
    folded = process_weights(model)
    unfolded = process_weights(model, fold_value_biases=False).model._module
    copy = folded.model._module
    check_view_not_mutation(model, folded)
    assert len(folded.folded_value_biases) == model.num_layers
    for layer in range(model.num_layers):
        if model_type == "gpt2":
            block, before = copy.transformer.h[layer].attn, unfolded.transformer.h[layer].attn
            hidden = before.c_proj.weight.shape[0]
            value_bias = before.c_attn.bias[2 * hidden:]
            added = value_bias @ model._module.transformer.h[layer].attn.c_proj.weight  # Conv1D: x @ W, uncentred
            expected = before.c_proj.bias + added - added.mean()  # the writers are centred (LayerNorm)
            assert torch.equal(block.c_attn.bias[2 * hidden:], torch.zeros(hidden))
            torch.testing.assert_close(block.c_proj.bias, expected)
        else:
            block, before = copy.model.layers[layer].self_attn, unfolded.model.layers[layer].self_attn
            kv_heads = model.config.num_key_value_heads
            per_query_head = before.v_proj.bias.view(kv_heads, -1).repeat_interleave(
                model.num_heads // kv_heads, dim=0).flatten()
            assert before.o_proj.bias is None  # Qwen 2 has none: the copy gets one
            assert torch.equal(block.v_proj.bias, torch.zeros_like(block.v_proj.bias))
            torch.testing.assert_close(block.o_proj.bias, before.o_proj.weight @ per_query_head)


def test_no_value_bias_means_nothing_to_fold():
    model = standardized_toy("llama", enable_attention_probs=False)  # no attention biases
    assert process_weights(model).folded_value_biases == ()


def test_a_head_that_is_not_one_linear_map_is_not_centred_and_says_why():
    """MusicGen's head is a list of codebook heads (measured: center_unembed raised a raw AttributeError before)."""
    model = standardized_toy("musicgen", enable_attention_probs=False)
    processed = process_weights(model)
    assert not processed.centered_unembed
    assert "center_unembed: the head lm_heads (ModuleList) is not one linear map" in processed.skipped
