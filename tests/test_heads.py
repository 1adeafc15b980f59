"""Per-head accessors: heads_output, queries, keys, values, found by reading each attention's forward."""

import re

import pytest
import torch
from nnsight import save

from nnterp.core.heads import locate_head_split
from nnterp.errors import HeadsUnavailable, NNterpError
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
    ("gpt_neo", ("self__attn_0", "attention.out_proj", "attention")),  # a wrapper; attends in a helper method
])
def test_wrapped_attention_is_found_in_the_children_it_calls(name, split):
    model = standardized_toy(name, enable_attention_probs=False)
    found = model.heads_output._splits.splits()[LAYER]
    assert (found.attention_call, found.projection, found.submodule) == split
    with model.trace("hello world"):
        queries = model.queries[LAYER].save()
        model.heads_output[LAYER] = torch.zeros_like(model.heads_output[LAYER])
        zeroed = model.attentions_output[LAYER].save()
    torch.testing.assert_close(zeroed, torch.zeros_like(zeroed) + _bias(model, LAYER))
    assert queries.shape[1] == model.num_heads


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


# Attention run by a helper method of the module, `self._attn(query, key, value, attention_mask)`: GPT-Neo (under
# a wrapper module, unscaled scores) and GPT-NeoX-Japanese (rotary, `baddbmm` on (batch * heads)-folded copies).
HELPER_ARCHITECTURES = ["gpt_neo", "gpt_neox_japanese"]


@pytest.fixture(scope="module", params=HELPER_ARCHITECTURES)
def helper_model(request):
    return standardized_toy(request.param, enable_attention_probs=True)


def test_a_helper_method_is_found_by_its_parameters(helper_model):
    split = helper_model.heads_output._splits.splits()[LAYER]
    assert split.attention_call == "self__attn_0" and split.first_argument == 0 and not split.reason
    with torch.no_grad(), helper_model.trace(PROMPTS):
        queries, keys = helper_model.queries[LAYER].save(), helper_model.keys[LAYER].save()
        values, heads_output = helper_model.values[LAYER].save(), helper_model.heads_output[LAYER].save()
    batch, seq, heads, head_dim = heads_output.shape
    assert batch == len(PROMPTS) and heads == helper_model.num_heads
    assert tuple(queries.shape) == tuple(keys.shape) == tuple(values.shape) == (batch, heads, seq, head_dim)


def test_helper_queries_and_keys_give_the_models_probabilities(helper_model):
    """The model's probabilities are softmax(scale * q k^T) over the causal prefix for one scale (GPT-Neo does
    not scale): the log-probabilities of each row, centred, are the centred served scores times that scale; and
    probabilities times the served values are heads_output."""
    with torch.no_grad(), helper_model.trace(PROMPTS):
        queries, keys = helper_model.queries[LAYER].save(), helper_model.keys[LAYER].save()
        values = helper_model.values[LAYER].save()
        probabilities = helper_model.attention_probabilities[LAYER].save()  # in the order the model runs
        heads_output = helper_model.heads_output[LAYER].save()
    causal = torch.ones(probabilities.shape[-2:], dtype=torch.bool).tril()
    assert torch.all(probabilities[..., ~causal] == 0)

    def centred(rows):
        rows = torch.where(causal, rows, 0.0)
        return torch.where(causal, rows - rows.sum(-1, keepdim=True) / causal.sum(-1, keepdim=True), 0.0)

    scores, log_probabilities = centred(queries @ keys.transpose(-1, -2)), centred(probabilities.log())
    scale = (scores * log_probabilities).sum() / (scores * scores).sum()
    assert scale > 0
    torch.testing.assert_close(scale * scores, log_probabilities, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(heads_output, (probabilities @ values).transpose(1, 2), atol=1e-5, rtol=1e-4)


def test_editing_helper_queries_and_keys_reaches_the_model(helper_model):
    """Zero queries (assigned) or zero keys (in place) make every query attend uniformly over its prefix: each
    head's output is then the running mean of the values."""
    for edited in ("queries", "keys"):
        with torch.no_grad(), helper_model.trace(PROMPTS):
            if edited == "queries":
                helper_model.queries[LAYER] = torch.zeros_like(helper_model.queries[LAYER])
            else:
                helper_model.keys[LAYER][:] = 0
            values, heads_output = helper_model.values[LAYER].save(), helper_model.heads_output[LAYER].save()
        counts = torch.arange(1, values.shape[2] + 1, dtype=values.dtype)[:, None]
        torch.testing.assert_close(heads_output, (values.cumsum(dim=2) / counts).transpose(1, 2),
                                   atol=1e-5, rtol=1e-4, msg=edited)


def test_editing_helper_values_changes_only_what_reads_them(helper_model):
    """Doubling the values doubles each head's output (probabilities sum to one), and the logits change."""
    with torch.no_grad(), helper_model.trace(PROMPTS):
        plain, logits = helper_model.heads_output[LAYER].save(), helper_model.logits.save()
    with torch.no_grad(), helper_model.trace(PROMPTS):
        helper_model.values[LAYER] = helper_model.values[LAYER] * 2
        doubled, edited_logits = helper_model.heads_output[LAYER].save(), helper_model.logits.save()
    torch.testing.assert_close(doubled, plain * 2)
    assert not torch.allclose(logits, edited_logits)


def test_helper_accessors_are_served_remotely():
    """The remote twin carries the helper call's label and where its queries sit (no module among its inputs)."""
    model = standardized_toy("gpt_neo", enable_attention_probs=False)

    def run(remote):
        with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):
            found = save([model.queries[LAYER], model.keys[LAYER], model.values[LAYER]])
            model.values[LAYER] = model.values[LAYER] * 0
            found.append(model.logits)
        return found
    assert all(torch.equal(local, remote) for local, remote in zip(run(False), run("local")))


@pytest.mark.parametrize("name, refusal", [
    # GPT-1 splits its keys already transposed, (batch, heads, head_dim, seq), and scores with matmul(q, k)
    ("openai-gpt", "helper method _attn(q, k, v, ...) that takes no softmax of q times k transposed in it"),
    # XLNet attends in rel_attn_core, with seq-first einsums, from three call sites (two-stream paths)
    ("xlnet", "helper method rel_attn_core(q_head, k_head_h, v_head_h, ...) that takes no softmax"),
    # BLOOM scores (batch * heads)-folded queries against pre-transposed keys in an inline alibi.baddbmm
    ("bloom", "no call handing (query, key, value) to an attention function or helper method"),
])
def test_queries_are_refused_where_the_layout_is_not_known(name, refusal):
    model = standardized_toy(name, enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable, match=re.escape(refusal) + ".*layers that have queries: none"):
        with model.trace("hello world"):
            model.queries[0].save()


def test_a_projection_on_exclusive_paths_is_served():
    """Falcon calls its dense projection once on each of its attention paths (if / else): one runs per forward,
    so heads_output is served; zeroing every head leaves the projection's bias."""
    model = standardized_toy("falcon", enable_attention_probs=False)
    assert model.heads_output._splits.splits()[LAYER].projection == "dense"
    _assert_zeroed_heads_leave_the_bias(model)


class _TwoPathAttention(torch.nn.Module):
    """Attends in one of two helper methods, by a flag: which call runs depends on the path taken."""

    def __init__(self):
        super().__init__()
        self.qkv, self.out = torch.nn.Linear(8, 24), torch.nn.Linear(8, 8)
        self.flag = True

    def _attn(self, query_states, key_states, value_states):
        return torch.matmul(torch.matmul(query_states, key_states.transpose(-1, -2)).softmax(-1), value_states)

    def _other_attn(self, q, k, v):
        return (q @ k.mT).softmax(-1) @ v

    def forward(self, hidden):
        query, key, value = self.qkv(hidden).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        if self.flag:
            output = self._attn(query, key, value)
        else:
            output = self._other_attn(query, key, value)
        return self.out(output.transpose(1, 2).flatten(-2))


class _OnePathAttention(_TwoPathAttention):
    def forward(self, hidden):
        query, key, value = self.qkv(hidden).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        output = self._other_attn(query, key, value)
        return self.out(output.transpose(1, 2).flatten(-2))


def test_helpers_are_recognised_by_their_parameters_and_refused_on_separate_paths():
    one = locate_head_split(_OnePathAttention())
    assert (one.attention_call, one.first_argument, one.projection, one.reason) == ("self__other_attn_0", 0, "out", "")
    two = locate_head_split(_TwoPathAttention())
    assert two.attention_call is None and two.projection == "out"
    assert "2 calls attending on (query, key, value) in separate branches" in two.reason


class _TwiceAttention(_TwoPathAttention):
    """Attends twice in sequence, once per half of the values (DiffLlama's pattern): both calls run."""

    def forward(self, hidden):
        query, key, value = self.qkv(hidden).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        first, second = value.chunk(2, dim=-1)
        output = torch.cat([self._attn(query, key, first), self._other_attn(query, key, second)], dim=-1)
        return self.out(output.transpose(1, 2).flatten(-2))


class _LoopedAttention(_TwoPathAttention):
    """Attends once per step of a loop: one call, run several times."""

    def forward(self, hidden):
        query, key, value = self.qkv(hidden).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        outputs = []
        for half in value.chunk(2, dim=-1):
            outputs.append(self._attn(query, key, half))
        return self.out(torch.cat(outputs, dim=-1).transpose(1, 2).flatten(-2))


class _LoopOverAttention(_TwoPathAttention):
    """Iterates over what its one call returns: the call itself runs once."""

    def forward(self, hidden):
        query, key, value = self.qkv(hidden).unflatten(-1, (3, 2, 4)).permute(2, 0, 3, 1, 4)
        outputs = []
        for half in self._attn(query, key, value).chunk(2, dim=-1):
            outputs.append(half)
        return self.out(torch.cat(outputs, dim=-1).transpose(1, 2).flatten(-2))


@pytest.mark.parametrize("module, count", [(_TwiceAttention, "2 calls"), (_LoopedAttention, "a call")])
def test_attending_several_times_in_one_forward_is_refused(module, count):
    """No one call holds the queries, keys and values the forward attends with, and an edit would reach only one
    call: queries / keys / values are refused, the output projection (called once) is still served."""
    split = locate_head_split(module())
    assert split.attention_call is None and split.projection == "out"
    assert f"{count} attending on (query, key, value)" in split.reason
    assert "attends several times per forward" in split.reason and "only one of those calls" in split.reason


def test_a_call_a_loop_iterates_over_is_served():
    split = locate_head_split(_LoopOverAttention())
    assert (split.attention_call, split.projection, split.reason) == ("self__attn_0", "out", "")


def test_diffllama_attends_twice_and_serves_only_heads_output():
    """DiffLlama attends once per half of its values (value_states1, value_states2, each repeated): no one call
    holds the values as stored, and editing queries or keys would reach only the first call."""
    model = standardized_toy("DiffLlamaForCausalLM", enable_attention_probs=False)
    for accessor in ("queries", "keys", "values"):
        with pytest.raises(HeadsUnavailable, match=rf"{accessor}\[{LAYER}\].*DiffLlamaAttention\.forward has 2 calls "
                                                   r"attending on \(query, key, value\) that can run in one forward: "
                                                   r"it attends several times per forward.*only one of those calls"):
            with model.trace("hello world"):
                getattr(model, accessor)[LAYER].save()
    _assert_zeroed_heads_leave_the_bias(model)


def _assert_zeroed_heads_leave_the_bias(model):
    """heads_output is served per head, and zeroing every head leaves only the output projection's bias."""
    with torch.no_grad(), model.trace(PROMPTS):
        heads_output = model.heads_output[LAYER].save()
        model.heads_output[LAYER] = torch.zeros_like(model.heads_output[LAYER])
        zeroed = model.attentions_output[LAYER].save()
    assert heads_output.shape[2] == model.num_heads and heads_output.abs().sum() > 0
    torch.testing.assert_close(zeroed, torch.zeros_like(zeroed) + _bias(model, LAYER))
