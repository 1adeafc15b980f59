"""Per-head accessors: heads_output, queries, keys, values, found by reading each attention's forward."""

import pytest
import torch

from nnterp.errors import HeadsUnavailable, NNterpError
from nnterp.heads import locate_head_split
from nnterp.toy.standardized import standardized_toy

ARCHITECTURES = ["llama", "gpt2", "gpt_neox", "qwen2"]  # plain, Conv1D + bias, parallel + fused qkv, GQA + bias
PROMPTS = ["hello world there", "a big cat sat now"]  # equal lengths under the toy tokenizer: no padding
LAYER = 1


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def _bias(model, layer):
    bias = model.heads_output.projection(layer)._module.bias
    return 0.0 if bias is None else bias


def test_split_is_found_by_reading_the_forward(model):
    split = locate_head_split(model._attention_modules()[LAYER])
    assert split.attention_call.startswith("attention_interface_") and split.projection
    assert not split.reason


def test_shapes_follow_the_config(model):
    config = model._module.config
    heads, kv_heads = model.num_heads, getattr(config, "num_key_value_heads", None) or model.num_heads
    with model.trace(PROMPTS):
        queries, keys, values = model.queries[LAYER].save(), model.keys[LAYER].save(), model.values[LAYER].save()
        heads_output = model.heads_output[LAYER].save()
    batch, seq, head_dim = len(PROMPTS), heads_output.shape[1], model.hidden_size // heads
    assert tuple(heads_output.shape) == (batch, seq, heads, head_dim)
    assert tuple(queries.shape) == (batch, heads, seq, head_dim)
    assert tuple(keys.shape) == tuple(values.shape) == (batch, kv_heads, seq, head_dim)


def test_heads_output_is_attention_of_queries_keys_values(model):
    """softmax(q k^T * scale, causal) v == heads_output: q and k are the rotated ones, v the stored ones."""
    with model.trace(PROMPTS):
        queries, keys, values = model.queries[LAYER].save(), model.keys[LAYER].save(), model.values[LAYER].save()
        heads_output = model.heads_output[LAYER].save()
    groups = queries.shape[1] // keys.shape[1]
    keys, values = keys.repeat_interleave(groups, dim=1), values.repeat_interleave(groups, dim=1)
    scores = queries @ keys.transpose(-1, -2) * model._attention_modules()[LAYER].scaling
    seq = scores.shape[-1]
    scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    expected = (scores.softmax(-1) @ values).transpose(1, 2)
    torch.testing.assert_close(heads_output, expected, atol=1e-5, rtol=1e-4)


def test_zeroing_every_head_zeroes_the_attention_output(model):
    with model.trace(PROMPTS):
        model.heads_output[LAYER] = torch.zeros_like(model.heads_output[LAYER])
        zeroed = model.attentions_output[LAYER].save()
    torch.testing.assert_close(zeroed, torch.zeros_like(zeroed) + _bias(model, LAYER))


def test_one_head_in_place_removes_exactly_its_share(model):
    """Zeroing head 2 in place removes (projection(head 2 alone) - bias) from attentions_output."""
    with model.trace(PROMPTS):
        heads_output = model.heads_output[LAYER].save()
        full = model.attentions_output[LAYER].save()
    with model.trace(PROMPTS):
        model.heads_output[LAYER][:, :, 2] = 0
        without = model.attentions_output[LAYER].save()
    alone = torch.zeros_like(heads_output)
    alone[:, :, 2] = heads_output[:, :, 2]
    with torch.no_grad():
        share = model.heads_output.projection(LAYER)._module(alone.flatten(-2)) - _bias(model, LAYER)
    torch.testing.assert_close(full - without, share, atol=1e-5, rtol=1e-4)


def test_zeroing_queries_makes_attention_uniform(model):
    """Assigning queries reaches the model: all-zero queries attend uniformly over the causal prefix."""
    with model.trace(PROMPTS):
        model.queries[LAYER] = torch.zeros_like(model.queries[LAYER])
        values = model.values[LAYER].save()
        heads_output = model.heads_output[LAYER].save()
    groups = heads_output.shape[2] // values.shape[1]
    values = values.repeat_interleave(groups, dim=1)
    counts = torch.arange(1, values.shape[2] + 1, dtype=values.dtype)[:, None]
    expected = (values.cumsum(dim=2) / counts).transpose(1, 2)
    torch.testing.assert_close(heads_output, expected, atol=1e-5, rtol=1e-4)


def test_gradients_reach_heads_output_and_queries(model):
    """heads_output.grad is the attention output's gradient pulled back through the projection."""
    with model.trace(PROMPTS[0]):
        queries = model.queries[LAYER]
        heads_output = model.heads_output[LAYER]
        attention = model.attentions_output[LAYER]
        loss = model.logits[0, -1].sum()
        with loss.backward():
            attention_grad = attention.grad.save()
            heads_grad = heads_output.grad.save()
            queries_grad = queries.grad.save()
    projection = model.heads_output.projection(LAYER)._module
    pulled_back = torch.autograd.functional.vjp(projection, torch.zeros_like(heads_grad.flatten(-2)),
                                                attention_grad)[1]
    torch.testing.assert_close(heads_grad.flatten(-2), pulled_back)
    assert queries_grad.shape[:2] == (1, model.num_heads) and queries_grad.abs().sum() > 0


def test_wrong_shape_is_refused(model):
    from nnterp.errors import ShapeMismatch

    with pytest.raises(ShapeMismatch, match="heads_output"):
        with model.trace(PROMPTS):
            model.heads_output[LAYER] = torch.zeros(1, 2, 3)


def test_mamba_has_no_heads():
    model = standardized_toy("mamba", enable_attention_probs=False)
    for accessor in ("heads_output", "queries", "keys", "values"):
        with pytest.raises(HeadsUnavailable, match=rf"\[MambaForCausalLM\] {accessor}\[0\].*no softmax attention.*"
                                                   rf"have {accessor}: none") as caught:
            with model.trace("hello"):
                getattr(model, accessor)[0].save()
        assert isinstance(caught.value, NNterpError) and caught.value.available == []


def test_hybrid_names_the_layers_that_have_heads():
    model = standardized_toy("jamba", enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable, match=r"heads_output\[0\].*have heads_output: \[1\]"):
        with model.trace("hello"):
            model.heads_output[0].save()
    with model.trace("hello"):
        heads_output = model.heads_output[1].save()
    assert heads_output.shape[-2] == model.num_heads


@pytest.mark.parametrize("name, split", [
    ("bert", ("attention_interface_1", "output.dense", "self")),  # attends in `self`, projects in `output`
    ("gpt_neo", (None, "attention.out_proj", "")),  # a wrapper around the attending module, attention inline
])
def test_wrapped_attention_is_found_in_the_children_it_calls(name, split):
    model = standardized_toy(name, enable_attention_probs=False)
    found = model.heads_output._splits.splits()[LAYER]
    assert (found.attention_call, found.projection, found.submodule) == split
    with model.trace("hello world"):
        if split[0]:
            queries = model.queries[LAYER].save()
        model.heads_output[LAYER] = torch.zeros_like(model.heads_output[LAYER])
        zeroed = model.attentions_output[LAYER].save()
    torch.testing.assert_close(zeroed, torch.zeros_like(zeroed) + _bias(model, LAYER))
    if split[0]:
        assert queries.shape[1] == model.num_heads
    else:
        with pytest.raises(HeadsUnavailable, match="no call of an attention function"):
            with model.trace("hello world"):
                model.queries[LAYER].save()


def test_a_projection_used_twice_is_not_served():
    """ProphetNet projects its main and n-gram streams with one out_proj, called twice: no single input."""
    model = standardized_toy("prophetnet", enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable, match="called in several places"):
        with model.trace("hello world"):
            model.heads_output[0].save()


def test_a_projection_fed_by_another_module_is_not_served():
    """DeepSeek-V4 projects grouped heads (o_a_proj) before o_b_proj: o_b_proj's input is not per head."""
    model = standardized_toy("deepseek_v4", enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable, match="o_b_proj fed by another module"):
        with model.trace("hello world"):
            model.heads_output[0].save()
    with model.trace("hello world"):  # its attention call is still there
        queries = model.queries[0].save()
    assert queries.shape[1] == model.num_heads
