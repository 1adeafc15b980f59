"""run_with_cache: accessor values from one forward, keyed by standardized name, equal to in-trace reads."""

import pytest
import torch
from nnsight import save

from nnterp.errors import HeadsUnavailable, ToolkitInputError
from nnterp.toolkit.analysis.cache import CACHEABLE, run_with_cache
from nnterp.toolkit.analysis.cache_reads import OPERATION_KINDS
from nnterp.toy.standardized import standardized_toy

ARCHITECTURES = ["llama", "gpt2", "gpt_neox", "qwen2"]
PROMPTS = ["hello world there", "a cat"]
IN_RUN_ORDER = ("layers_input", "attentions_input", "heads_output", "attentions_output", "mlps_input", "mlps_output",
                "layers_output")


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def _read_in_trace(model):
    inputs = dict(model.tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side="right"))
    with torch.no_grad(), model.trace(inputs):
        values = save({})
        for layer in range(model.num_layers):
            for name in IN_RUN_ORDER:
                values[name, layer] = getattr(model, name)[layer]
    return values


def test_every_cached_value_is_the_accessors_own(model):
    assert set(IN_RUN_ORDER) | {"neurons"} | set(OPERATION_KINDS) == set(CACHEABLE)  # those: test_cache_kinds.py
    cache = run_with_cache(model, PROMPTS, IN_RUN_ORDER)
    expected = _read_in_trace(model)
    assert set(cache) == set(expected)
    for key in expected:
        torch.testing.assert_close(cache[key], expected[key].cpu(), msg=f"{key}")


def test_one_forward_chosen_layers_positions_and_device(model):
    calls = []
    handle = model._module.register_forward_hook(lambda *args: calls.append(1))
    try:
        cache = run_with_cache(model, PROMPTS, ["layers_output", "mlps_output"], layers=[0, -1], positions=-1)
    finally:
        handle.remove()
    last = model.num_layers - 1
    assert len(calls) == 1 and cache.accessors == ["layers_output", "mlps_output"]
    assert cache.layers("layers_output") == [0, last]
    assert cache["layers_output", last].shape == (len(PROMPTS), model.hidden_size)
    assert cache["layers_output", last].device.type == "cpu"
    assert cache.stack("mlps_output").shape == (2, len(PROMPTS), model.hidden_size)
    sliced = run_with_cache(model, PROMPTS, "layers_output", layers=0, positions=slice(1, 4))
    full = run_with_cache(model, PROMPTS, "layers_output", layers=0)
    torch.testing.assert_close(sliced["layers_output", 0], full["layers_output", 0][:, 1:4])
    with pytest.raises(KeyError, match="not cached"):
        cache["attentions_output", 0]
    assert cache["layers_output", -1] is cache["layers_output", last]  # negative layers count from the last
    assert cache["layers_output", -model.num_layers] is cache["layers_output", 0]
    assert ("layers_output", -1) in cache and ("layers_output", -model.num_layers - 1) not in cache


def test_uncacheable_accessors_are_refused():
    model = standardized_toy("llama", enable_attention_probs=False)
    with pytest.raises(ToolkitInputError, match="cacheable names are"):
        run_with_cache(model, PROMPTS, "logits")
    mamba = standardized_toy("mamba", enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable):
        run_with_cache(mamba, PROMPTS, "heads_output")
    cache = run_with_cache(mamba, PROMPTS, ["attentions_output", "layers_output"])  # a mixer is cached whole
    assert len(cache) == 2 * mamba.num_layers
