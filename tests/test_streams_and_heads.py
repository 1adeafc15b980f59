"""Architectures off the beaten path: several residual streams, a two-module head, compressed keys,
models that find their own padding."""

import pytest
import torch

from nnterp import ModuleAccessor, get_token_activations
from nnterp.core.registry import StreamLayout

from .conftest import standardized_toy

PROMPT = "The quick brown fox"

# model type -> (native layer-output layout, total streams per token)
MULTI_STREAM = {"hy_v4": StreamLayout.STREAM_AXIS, "qwen4_exp_text": StreamLayout.CONCATENATED,
                "gemma3n_text": StreamLayout.LEADING, "prophetnet": StreamLayout.SEQUENCE}


@pytest.mark.parametrize("layout", list(StreamLayout))
def test_stream_layouts_round_trip_through_a_view(layout):
    batch, seq, streams, hidden = 2, 5, 3, 4
    native = torch.randn(layout.shape(batch, seq, streams, hidden))
    canonical = layout.to_canonical(native, streams)
    assert canonical.shape == (batch, seq, layout.total_streams(streams), hidden)
    assert torch.equal(layout.to_native(canonical, streams), native)
    before = native.clone()
    canonical[1, 2, 0] += 1.0  # a view: the edit lands in the native tensor, in exactly one place
    assert (native != before).sum() == hidden and torch.equal(layout.to_native(canonical, streams), native)


@pytest.fixture(scope="module", params=list(MULTI_STREAM))
def multi_stream(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def test_layer_outputs_are_served_as_batch_seq_streams_hidden(multi_stream):
    ids = multi_stream.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad(), multi_stream.trace(ids):
        output = multi_stream.layers_output[0].save()
    assert output.shape == (1, ids.shape[1], *multi_stream.token_state_shape)
    assert multi_stream.num_streams > 1


def test_collapsed_last_layer_projects_to_the_logits(multi_stream):
    with torch.no_grad(), multi_stream.trace(PROMPT):
        projected = multi_stream.project_on_vocab(multi_stream.collapse_streams(multi_stream.layers_output[-1])).save()
        logits = multi_stream.logits.save()
    assert torch.allclose(projected, logits, atol=1e-5)


def test_editing_one_stream_of_one_token_changes_the_logits_only_from_there(multi_stream):
    with torch.no_grad(), multi_stream.trace(PROMPT):
        plain = multi_stream.logits.save()
    with torch.no_grad(), multi_stream.trace(PROMPT):
        multi_stream.layers_output[0][:, -1, 0] += 10.0  # in place, through the canonical view
        edited = multi_stream.logits.save()
    changed = (edited - plain).abs().amax(dim=-1)[0]
    assert changed[-1] > 1e-3 and torch.all(changed[:-1] < 1e-5)  # causal; MoE kernels add float noise


def test_single_stream_models_pass_states_through_collapse_streams(llama):
    state = torch.randn(2, 3, llama.hidden_size)
    assert llama.collapse_streams(state) is state and llama.num_streams == 1


def test_modernbert_decoder_serves_its_unembedding_as_lm_head():
    model = standardized_toy("modernbert-decoder")
    assert isinstance(model.lm_head._module, torch.nn.Linear)
    assert type(model.head_transform._module).__name__ == "ModernBertDecoderPredictionHead"
    with torch.no_grad(), model.trace(PROMPT):
        projected = model.project_on_vocab(model.layers_output[-1]).save()
        head_output = model.lm_head.output.save()
        logits = model.logits.save()
    assert torch.equal(head_output, logits) and torch.allclose(projected, logits, atol=1e-5)
    plain = ModuleAccessor(model._module)
    assert plain.lm_head is model.lm_head._module and plain.head_transform is model.head_transform._module


def test_compressed_attention_layers_have_more_keys_than_queries():
    model = standardized_toy("deepseek_v4")
    config = model._module.config
    rate = config.compress_rates["compressed_sparse_attention"]
    layer = config.layer_types.index("compressed_sparse_attention")
    ids = torch.randint(5, 250, (1, 3 * rate + 1))
    shapes = {}
    with torch.no_grad(), model.trace(ids):
        shapes["probs"] = model.attention_probabilities[layer].shape
    assert shapes["probs"][-2:] == (ids.shape[1], ids.shape[1] + ids.shape[1] // rate)


def test_cpmant_batches_like_single_prompts():
    model = standardized_toy("cpmant", enable_attention_probs=False)
    assert model.tokenizer.pad_token_id == 0  # CPM-Ant masks id 0, whatever attention_mask says
    prompts = ["a b c d e", "x", "a longer prompt here"]
    for idx in (-1, 0):
        batched = get_token_activations(model, prompts, idx=idx)
        single = torch.cat([get_token_activations(model, [prompt], idx=idx) for prompt in prompts], dim=1)
        # float noise only: CPM-Ant's states reach ~1e3, so compare relative to their scale
        assert (batched - single).abs().max() <= 1e-6 * single.abs().max()


def test_musicgen_with_two_codebooks_sums_embeddings_and_stacks_heads():
    import transformers

    from nnterp import StandardizedTransformer
    from nnterp.toy.build import toy_config
    from nnterp.toy.tokenizer import toy_tokenizer

    config = toy_config("musicgen")
    config.num_codebooks = 2
    torch.manual_seed(0)
    hf = transformers.MusicgenForCausalLM._from_config(config, attn_implementation="eager").eval()
    model = StandardizedTransformer(hf, tokenizer=toy_tokenizer())  # validates at load
    ids = torch.randint(5, 250, (2, 7))  # one sequence, one row of ids per codebook
    with torch.no_grad(), model.trace(ids):
        embeddings = model.token_embeddings.save()
        projected = model.project_on_vocab(model.layers_output[-1]).save()
        logits = model.logits.save()
    codebooks = hf.model.decoder.embed_tokens
    assert torch.allclose(embeddings, codebooks[0](ids[:1]) + codebooks[1](ids[1:]))
    assert logits.shape == (2, 7, model.vocab_size) and torch.allclose(projected, logits, atol=1e-5)
    with torch.no_grad(), model.trace(ids):
        model.token_embeddings = torch.zeros(1, 7, model.hidden_size)  # written without reading first
        zeroed = model.layers_input[0].save()
    positions = hf.model.decoder.embed_positions(ids.view(1, 2, 7), 0)
    assert torch.allclose(zeroed, positions.expand_as(zeroed), atol=1e-6)  # only the positions are left


def test_sequence_first_model_is_served_batch_first():
    model = standardized_toy("xlnet")
    ids = model.tokenizer(["The quick brown fox", "Hi"], return_tensors="pt", padding=True)["input_ids"]
    with torch.no_grad(), model.trace(ids):
        native = model.layers[0].output[0].clone().save()  # XLNet's own (seq, batch, hidden)
        served = model.layers_output[0].clone().save()
        model.layers_output[0][1, 0] += 5.0  # the first token of the second prompt, through the view
        edited = model.layers[0].output[0].save()
    assert served.shape == (2, ids.shape[1], model.hidden_size) and torch.equal(served, native.transpose(0, 1))
    changed = (edited - native).abs().amax(dim=-1)  # (seq, batch)
    assert changed[0, 1] > 0 and changed.count_nonzero() == 1


def test_probabilities_come_from_the_call_the_model_runs():
    from nnterp.core.attention_probs import locate_attention_probabilities

    attention = standardized_toy("xlnet")._module.transformer.layer[0].rel_attn
    first, last = locate_attention_probabilities(attention), locate_attention_probabilities(attention, call=-1)
    assert first.ops[0] != last.ops[0]  # the two-stream call comes first in the source, the one-stream one last
    assert locate_attention_probabilities(attention, call=10) is None


def test_longcat_layers_expose_their_first_pair_and_keep_the_shortcut_name():
    model = standardized_toy("longcat_flash")  # validation checks the five-term residual identity
    layer = model._module.model.layers[0]
    assert model.attentions[0]._module is layer.self_attn[0] and model.mlps[0]._module is layer.mlps[0]
    assert model.layers[0].mlp._module is layer.mlp  # the shortcut MoE keeps its own name
    residual = next(result for result in model.check_results if result.name.value == "residual_identity")
    assert residual.passed
