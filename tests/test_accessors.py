"""Each accessor and method of StandardizedTransformer, read and written inside a trace."""

import pytest
import torch

from nnterp.errors import AttentionProbabilitiesUnavailable, LayerIndexError

from .conftest import standardized_toy

PROMPT = "The quick brown fox"


def baseline_logits(model):
    with model.trace(PROMPT):
        logits = model.logits.save()
    return logits


def test_reads_have_standard_shapes(llama):
    with llama.trace(PROMPT):
        ids = llama.input_ids.save()  # model inputs come first in execution order
        embeddings = llama.token_embeddings.save()
        layer_in = llama.layers_input[1].save()
        attn_in = llama.attentions_input[1].save()
        probs = llama.attention_probabilities[1].save()
        attn_out = llama.attentions_output[1].save()
        mlp_in = llama.mlps_input[1].save()
        mlp_out = llama.mlps_output[1].save()
        layer_out = llama.layers_output[1].save()
        logits = llama.logits.save()
        next_probs = llama.next_token_probs.save()
    seq = len(llama.tokenizer(PROMPT)["input_ids"])
    for tensor in (embeddings, layer_in, attn_in, attn_out, mlp_in, mlp_out, layer_out):
        assert tensor.shape == (1, seq, llama.hidden_size)
    assert probs.shape == (1, llama.num_heads, seq, seq)
    assert logits.shape == (1, seq, llama.vocab_size)
    assert torch.allclose(next_probs.sum(-1), torch.ones(1))
    assert ids.shape == (1, seq)


def test_model_facts_come_from_the_config(llama):
    config = llama._module.config
    assert (llama.num_layers, llama.num_heads, llama.hidden_size, llama.vocab_size) == (
        config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.vocab_size)


def test_zeroing_a_layer_output_changes_the_logits(llama):
    before = baseline_logits(llama)
    with llama.trace(PROMPT):
        llama.layers_output[0] = torch.zeros_like(llama.layers_output[0])
        after = llama.logits.save()
    assert not torch.allclose(before, after)


def test_writing_token_embeddings_changes_the_logits(llama):
    before = baseline_logits(llama)
    with llama.trace(PROMPT):
        llama.token_embeddings = llama.token_embeddings * 2
        after = llama.logits.save()
    assert not torch.allclose(before, after)


def test_skip_layers_passes_the_stream_through(llama):
    with llama.trace(PROMPT):
        first_input = llama.layers_input[0].save()
        llama.skip_layers(0, 1)
        last_output = llama.layers_output[1].save()
    assert torch.equal(first_input, last_output)


def test_skip_layer_with_a_given_value(llama):
    with llama.trace(PROMPT):
        replacement = torch.ones_like(llama.layers_input[1])
        llama.skip_layer(1, skip_with=replacement)
        output = llama.layers_output[1].save()
    assert torch.equal(output, torch.ones_like(output))


@pytest.mark.parametrize("positions", [None, [0, 2]])
def test_steer_adds_exactly_factor_times_vector(llama, positions):
    vector = torch.randn(llama.hidden_size)
    with llama.trace(PROMPT):
        plain = llama.layers_output[0].clone().save()
    with llama.trace(PROMPT):
        llama.steer(layers=[0], steering_vector=vector, factor=0.5, positions=positions)
        steered = llama.layers_output[0].save()
    expected = plain.clone()
    if positions is None:
        expected += 0.5 * vector
    else:
        expected[:, positions] += 0.5 * vector
    assert torch.allclose(steered, expected, atol=1e-6)


def test_editing_attention_probabilities_changes_the_logits(llama):
    before = baseline_logits(llama)
    with llama.trace(PROMPT):
        probs = llama.attention_probabilities[0]
        probs[:, :, :, 0] = 0
        probs /= probs.sum(dim=-1, keepdim=True).clamp_min(1e-9)
        after = llama.logits.save()
    assert not torch.allclose(before, after)


def test_attention_probabilities_print_their_source(llama, capsys):
    llama.attention_probabilities.print_source()
    out = capsys.readouterr().out
    assert "softmax" in out and "Layer 0" in out


def test_attention_probabilities_need_to_be_enabled():
    model = standardized_toy("llama", enable_attention_probs=False)
    with pytest.raises(AttentionProbabilitiesUnavailable, match="enable_attention_probs=True"):
        model.attention_probabilities[0]


def test_project_on_vocab_of_the_last_layer_gives_the_logits(llama):
    with llama.trace(PROMPT):
        projected = llama.project_on_vocab(llama.layers_output[-1]).save()
        logits = llama.logits.save()
    assert torch.allclose(projected, logits, atol=1e-5)


def test_topk_closest_tokens(llama):
    with llama.trace(PROMPT):
        hidden = llama.layers_output[1].save()
    tokens = llama.get_topk_closest_tokens(hidden[0, -1], k=3)
    assert len(tokens) == 1 and len(tokens[0]) == 3 and all(isinstance(t, str) for t in tokens[0])


def test_bad_layer_index_says_how_many_layers(llama):
    with pytest.raises(LayerIndexError, match="this model has 2 layers"):
        llama.layers_output[7]


def test_contribution_accessors_exclude_the_residual(bloom):
    """BLOOM adds the residual inside its attention; attentions_output must be the contribution alone."""
    with bloom.trace(PROMPT):
        layer_in = bloom.layers_input[0].save()
        attn_out = bloom.attentions_output[0].save()
        mlp_out = bloom.mlps_output[0].save()
        layer_out = bloom.layers_output[0].save()
    assert torch.allclose(layer_out, layer_in + attn_out + mlp_out, atol=1e-5)
    assert not torch.allclose(attn_out, layer_out, atol=1e-3)


def test_tuple_outputs_are_unwrapped_and_rewrapped(bloom):
    """BLOOM blocks return tuples: reads see the tensor, writes keep the tuple."""
    with bloom.trace(PROMPT):
        bloom.layers_output[0] = bloom.layers_output[0] * 0
        zeroed = bloom.layers_input[1].save()
    assert isinstance(zeroed, torch.Tensor) and torch.count_nonzero(zeroed) == 0


def test_module_accessors_are_the_renamed_envoys(llama):
    assert llama.attentions[1] is llama.layers[1].self_attn
    assert llama.mlps[0] is llama.layers[0].mlp
    assert llama.layers[0]._module is llama._module.model.layers[0]
    assert len(llama.attentions) == len(llama.mlps) == llama.num_layers


def test_attention_mask_and_input_size(llama):
    with llama.trace(["Hi", "A longer prompt"]):
        size = llama.input_size.save()
        mask = llama.attention_mask.save()
    assert tuple(size) == tuple(mask.shape) and size[0] == 2
    assert mask[0, 0] == 0 and mask[1].all()  # the short prompt is left-padded


@pytest.mark.parametrize("accessor", ["attentions_output", "mlps_output", "attentions_input", "mlps_input"])
def test_writing_a_sublayer_value_changes_the_logits(llama, accessor):
    before = baseline_logits(llama)
    with llama.trace(PROMPT):
        values = getattr(llama, accessor)
        values[1] = values[1] * 0
        after = llama.logits.save()
    assert not torch.allclose(before, after)


class _ReadOnlyEnvoy:
    """A stand-in envoy whose input and output can be read, and whose assignment fails the test: an accessor that
    assigned on read would lose in-place edits where the assignment ships the value at once (an NDIF sandbox)."""

    def __init__(self, tensor):
        self._tensor = tensor

    @property
    def input(self):
        return self._tensor

    @input.setter
    def input(self, value):
        raise AssertionError("an accessor assigned the input on read")

    @property
    def output(self):
        return self._tensor

    @output.setter
    def output(self, value):
        raise AssertionError("an accessor assigned the output on read")


@pytest.mark.parametrize("grad_mode", [torch.no_grad, torch.enable_grad])
def test_reading_an_accessor_never_assigns_and_serves_a_view_of_the_models_tensor(grad_mode):
    from nnterp.core.accessors import AttentionProbabilities, HeadsOutput, LayerwiseContribution, LayerwiseIO

    envoy = _ReadOnlyEnvoy(torch.randn(1, 3, 8))
    reads = {
        "layers_output": LayerwiseIO(2, lambda index: envoy, "output"),
        "mlps_input": LayerwiseIO(2, lambda index: envoy, "input"),
        "mlps_output": LayerwiseContribution(2, lambda index: [envoy], ()),
        "heads_output": HeadsOutput(2, lambda index: envoy, lambda index: 2),
    }
    probabilities = AttentionProbabilities(2, None, (None, None), True, "stub")
    probabilities._locate = lambda index: envoy
    reads["attention_probabilities"] = probabilities
    with grad_mode():
        for name, accessor in reads.items():
            value = accessor[1]
            assert value.data_ptr() == envoy._tensor.data_ptr(), name  # the model's own memory, not a copy
            value.view(-1)[0] = 7.0  # an in-place edit reaches the model's tensor
            assert envoy._tensor.view(-1)[0] == 7.0, name
