"""The per-head analysis functions on models whose layers are not all softmax attention (Bamba: a Mamba layer, then
an attention layer), on a looped model that calls its modules several times (HRM) and on a shared-expert MLP whose
contribution sums two modules (Granite MoE shared): a typed refusal before any forward, heads left out of a default
only where a layer has none, first-call values as the accessors read them, and read-then-assign of a summed
contribution, each against plain PyTorch on the HuggingFace model."""

import pytest
import torch

from nnterp.errors import HeadsUnavailable, ToolkitInputError
from nnterp.toolkit.analysis.cache import run_with_cache
from nnterp.toolkit.analysis.edge_attribution import edge_attribution_patching
from nnterp.toolkit.analysis.node_attribution import DEFAULT_KINDS, attribution_patching_nodes
from nnterp.toolkit.analysis.patching import attribution_patching
from nnterp.toolkit.analysis.path_patches import path_patching
from nnterp.toy.standardized import standardized_toy

from .conftest import counted_forwards

CLEAN, CORRUPTED = ["a cat sat", "the dog"], ["a dog sat", "the cat"]
POSITIONS = [-1, 1]  # the prompts differ in length: positions counted in each prompt's own tokens


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


@pytest.fixture(scope="module")
def bamba():
    return standardized_toy("bamba", enable_attention_probs=False)


def _layers_with_heads(model):
    """Which layers of the HF model hold a softmax attention (an o_proj), read from the module tree."""
    return [layer for layer, block in enumerate(model._module.model.layers)
            if any(name.endswith("o_proj") for name, _ in block.named_modules())]


def test_the_toy_is_hybrid(bamba):
    assert _layers_with_heads(bamba) == [1], "the tests below need layer 0 without heads and layer 1 with them"


@pytest.mark.parametrize("call", [
    lambda model: attribution_patching_nodes(model, CLEAN, CORRUPTED, metric, kinds=["heads_output"]),
    lambda model: path_patching(model, CLEAN, CORRUPTED, metric, receivers=["final"], senders=["L0.H1"],
                                progress=False),
    lambda model: path_patching(model, CLEAN, CORRUPTED, metric, receivers=["L0.H0.q"], senders=["embed"],
                                progress=False),
    lambda model: edge_attribution_patching(model, CLEAN, CORRUPTED, metric, senders=["L0.H0"], receivers=["final"],
                                            progress=False),
    lambda model: edge_attribution_patching(model, CLEAN, CORRUPTED, metric, senders=["embed"],
                                            receivers=["L0.KV0.k"], progress=False),
], ids=["nodes", "path-sender", "path-receiver", "edge-sender", "edge-receiver"])
def test_heads_of_a_layer_without_them_are_refused_before_any_forward(bamba, call):
    with counted_forwards(bamba) as calls, pytest.raises(HeadsUnavailable, match=r"layers that have .*\[1\]"):
        call(bamba)
    assert calls == [], "the refusal must come before the trace, so a remote request raises it on the client"


def test_default_node_kinds_leave_heads_out_only_where_a_layer_has_none(bamba):
    every_layer = attribution_patching_nodes(bamba, CLEAN, CORRUPTED, metric, positions=POSITIONS)
    assert set(every_layer.values) == set(DEFAULT_KINDS) - {"heads_output"}
    with pytest.raises(Exception, match="by default a kind is scored only where every chosen layer has it"):
        every_layer["heads_output"]
    attention_layer = attribution_patching_nodes(bamba, CLEAN, CORRUPTED, metric, layers=[1],
                                                 positions=POSITIONS)
    assert set(attention_layer.values) == set(DEFAULT_KINDS)
    expected = attribution_patching(bamba, CLEAN, CORRUPTED, metric, accessor="heads_output", layers=[1],
                                    positions=POSITIONS)
    torch.testing.assert_close(attention_layer["heads_output"], expected.values)
    for kind in ("attentions_output", "mlps_output", "layers_output"):  # the Mamba layer's other nodes are scored
        expected = attribution_patching(bamba, CLEAN, CORRUPTED, metric, accessor=kind, positions=POSITIONS)
        torch.testing.assert_close(every_layer[kind], expected.values)


def test_default_senders_are_the_heads_of_the_layers_that_have_them(bamba):
    found = path_patching(bamba, CLEAN, CORRUPTED, metric, receivers=["final"], positions=POSITIONS,
                          progress=False)
    assert found.senders == tuple(f"L1.H{head}" for head in range(bamba.heads_output._splits.num_heads(1)))


def test_a_looped_model_caches_each_module_at_its_first_call():
    """HRM runs its stacks several cycles; the accessors read the first call, and so does the cache (nnsight's
    cache holds one value per call there). Plain hooks on the HF modules record the first call's tensors."""
    model = standardized_toy("hrm_text", enable_attention_probs=False)
    hf = model._module
    layer = model.layers[0]._module
    projection = model.heads_output.projection(0)._module
    first: dict = {}
    handles = [layer.register_forward_hook(lambda module, args, output: first.setdefault(
                   "layers_output", (output[0] if isinstance(output, tuple) else output).detach().clone())),
               projection.register_forward_pre_hook(lambda module, args: first.setdefault(
                   "heads_output", args[0].detach().clone()))]
    ids = model.tokenizer(CLEAN[0], return_tensors="pt")["input_ids"]
    try:
        with torch.no_grad():
            hf(ids)
    finally:
        for handle in handles:
            handle.remove()
    cache = run_with_cache(model, CLEAN[0], ["layers_output", "heads_output"], layers=0)
    torch.testing.assert_close(cache["layers_output", 0], first["layers_output"], rtol=0, atol=0)
    heads = model.heads_output._splits.num_heads(0)
    torch.testing.assert_close(cache["heads_output", 0], first["heads_output"].unflatten(-1, (heads, -1)),
                               rtol=0, atol=0)


def test_a_summed_contribution_can_be_read_then_assigned():
    """Granite MoE shared adds a shared MLP's output to its experts': mlps_output[0] reads the sum, and assigning it
    after reading it (the modules before the last one already ran) must make the block add exactly the value.
    Plain PyTorch: doubling both modules' outputs doubles the sum."""
    model = standardized_toy("granitemoeshared", enable_attention_probs=False)
    hf = model._module
    block = hf.model.layers[0]
    ids = model.tokenizer(CLEAN[0], return_tensors="pt")["input_ids"]
    handles = [module.register_forward_hook(lambda module, args, output: output * 2)
               for module in (block.block_sparse_moe, block.shared_mlp)]
    try:
        with torch.no_grad():
            expected = hf(ids).logits
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad(), model.trace(ids):
        model.mlps_output[0] = model.mlps_output[0] * 2
        found = model.logits.save()
    torch.testing.assert_close(found, expected)
    with torch.no_grad(), model.trace(ids):
        untouched = model.logits.save()
    assert not torch.allclose(untouched, expected), "doubling the MLP must change the logits for this test to count"


def test_a_summed_contribution_read_at_an_earlier_step_is_not_used_for_a_later_assignment():
    """Read at generation step 0, assigned at step 1 without reading it again: the modules' outputs kept from step 0
    must not be subtracted from step 1's, so the assignment is refused, typed, rather than silently wrong."""
    model = standardized_toy("granitemoeshared", enable_attention_probs=False)
    ids = model.tokenizer(CLEAN[0], return_tensors="pt")["input_ids"]
    with pytest.raises(ToolkitInputError, match="was read at an earlier call than this assignment"):
        with torch.no_grad(), model.generate(ids, max_new_tokens=2, do_sample=False) as tracer:
            for step in tracer.iter[:2]:
                if step == 0:
                    model.mlps_output[0].save()
                else:
                    model.mlps_output[0] = torch.zeros(1, 1, model.hidden_size)
