"""Attribution patching of every node kind in one call: equal to the per-accessor calls, and to a plain PyTorch
computation (forward hooks on the HuggingFace modules, autograd on the activations) on toys and SmolLM2."""

import pytest
import torch

from nnterp import StandardizedTransformer
from nnterp.errors import ToolkitInputError
from nnterp.toolkit.analysis.node_attribution import DEFAULT_KINDS, attribution_patching_nodes
from nnterp.toolkit.analysis.patching import attribution_patching
from nnterp.toy.standardized import standardized_toy

CLEAN = ["hello world there", "a big cat sat now"]
CORRUPTED = ["hello wirld there", "a big dog sat now"]
# Per HF model type: the embedding, and per layer (below the layers' path) the output projection (its input: the
# heads side by side), the attention and the MLP.
MODULES = {"llama": ("model.embed_tokens", "model.layers", "self_attn.o_proj", "self_attn", "mlp"),
           "gpt2": ("transformer.wte", "transformer.h", "attn.c_proj", "attn", "mlp")}


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


def _by_hand(model, clean_prompts, corrupted_prompts, metric):
    """Per kind, (clean - corrupted) . d mean metric / d node, summed over prompts and features per position: plain
    torch on the HuggingFace modules (the parameters' requires_grad untouched: autograd.grad on the activations)."""
    embed, layers, projection, attention, mlp = MODULES[model.config.model_type]
    hf = model._module
    count = model.num_layers
    modules = {("token_embeddings", None): (hf.get_submodule(embed), "out")}
    for layer in range(count):
        block = hf.get_submodule(f"{layers}.{layer}")
        modules[("heads_output", layer)] = (block.get_submodule(projection), "in")
        modules[("attentions_output", layer)] = (block.get_submodule(attention), "out")
        modules[("mlps_output", layer)] = (block.get_submodule(mlp), "out")
        modules[("layers_output", layer)] = (block, "out")

    def run(prompts):
        seen, handles = {}, []
        for key, (module, side) in modules.items():
            if side == "in":
                handles.append(module.register_forward_pre_hook(
                    lambda _, args, key=key: seen.__setitem__(key, args[0])))
            else:
                handles.append(module.register_forward_hook(lambda _, a, out, key=key: seen.__setitem__(
                    key, out[0] if isinstance(out, tuple) else out)))
        try:
            logits = hf(**model.tokenizer(prompts, return_tensors="pt")).logits
        finally:
            for handle in handles:
                handle.remove()
        return seen, metric(logits).mean()

    with torch.no_grad():
        clean, _ = run(clean_prompts)
    corrupted, value = run(corrupted_prompts)
    keys = list(modules)
    grads = dict(zip(keys, torch.autograd.grad(value, [corrupted[key] for key in keys])))

    def change(key):
        product = (clean[key] - corrupted[key].detach()) * grads[key]
        if key[0] == "heads_output":
            return product.unflatten(-1, (model.num_heads, -1)).sum(dim=(0, -1)).T  # (heads, positions)
        return product.sum(dim=(0, -1))

    found = {"token_embeddings": change(keys[0])}
    for kind in DEFAULT_KINDS[1:]:
        found[kind] = torch.stack([change((kind, layer)) for layer in range(count)])
    return found


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_every_grid_is_the_difference_times_the_gradient(name):
    model = standardized_toy(name, enable_attention_probs=False)
    found = attribution_patching_nodes(model, CLEAN, CORRUPTED, metric)
    expected = _by_hand(model, CLEAN, CORRUPTED, metric)
    assert set(found.values) == set(DEFAULT_KINDS)
    for kind in DEFAULT_KINDS:
        torch.testing.assert_close(found[kind] - found.corrupted_metric, expected[kind], atol=1e-5, rtol=1e-3,
                                   msg=f"{name} {kind}")
    assert all(parameter.grad is None for parameter in model._module.parameters())


@pytest.mark.parametrize("name", ["llama", "gpt_neox", "Gemma3nForCausalLM"])
def test_each_grid_equals_the_per_accessor_call(name):
    """Including a model whose layers carry several residual streams, served through a view."""
    model = standardized_toy(name, enable_attention_probs=False)
    kinds = ("token_embeddings", "layers_input", "heads_output", "attentions_output", "mlps_output", "layers_output")
    found = attribution_patching_nodes(model, CLEAN, CORRUPTED, metric, kinds=kinds, positions=[-1, 2, 6])
    for kind in kinds[1:]:
        single = attribution_patching(model, CLEAN, CORRUPTED, metric, accessor=kind, positions=[-1, 2, 6])
        torch.testing.assert_close(found[kind], single.values, atol=1e-6, rtol=1e-5, msg=kind)
        assert found.result(kind).values.shape == single.values.shape and found.positions == single.positions
    assert found["token_embeddings"].shape == (3,)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "frozen"])
def test_works_in_every_grad_mode_and_leaves_the_parameters_as_they_were(mode):
    model = standardized_toy("llama", enable_attention_probs=False)
    expected = attribution_patching_nodes(model, CLEAN, CORRUPTED, metric)
    parameters = list(model._module.parameters())
    if mode == "frozen":
        for parameter in parameters:
            parameter.requires_grad_(False)
        found = attribution_patching_nodes(model, CLEAN, CORRUPTED, metric)
        assert not any(parameter.requires_grad for parameter in parameters)
    else:
        with torch.no_grad() if mode == "no_grad" else torch.inference_mode():
            found = attribution_patching_nodes(model, CLEAN, CORRUPTED, metric)
        assert all(parameter.requires_grad for parameter in parameters)
    for kind in DEFAULT_KINDS:
        torch.testing.assert_close(found[kind], expected[kind])
    assert all(parameter.grad is None for parameter in parameters)
    assert not any(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                   for module in model._module.modules())


def test_top_labels_the_largest_changes_and_bad_kinds_are_refused():
    model = standardized_toy("llama", enable_attention_probs=False)
    found = attribution_patching_nodes(model, CLEAN, CORRUPTED, metric, kinds=["mlps_output", "token_embeddings"])
    top = found.top(3)
    changes = torch.cat([(found["mlps_output"] - found.corrupted_metric).flatten(),
                         found["token_embeddings"] - found.corrupted_metric])
    assert [value for _, value in top] == pytest.approx(sorted(changes.tolist(), key=abs, reverse=True)[:3])
    assert all(label.startswith(("L0.mlp@", "L1.mlp@", "embed@")) for label, _ in top)
    with pytest.raises(ToolkitInputError, match="'mlp'"):
        attribution_patching_nodes(model, CLEAN, CORRUPTED, metric, kinds=["mlp"])
    with pytest.raises(ToolkitInputError, match="no layers"):
        found.result("token_embeddings")


@pytest.mark.real_model
def test_smollm2_every_grid_is_the_difference_times_the_gradient(smollm2_hf):
    """SmolLM2 (9 query heads, 3 key/value heads): the one call against plain torch."""
    hf, tokenizer = smollm2_hf
    model = StandardizedTransformer(hf, tokenizer=tokenizer)
    paris, rome = tokenizer.encode(" Paris")[0], tokenizer.encode(" Rome")[0]

    def paris_minus_rome(logits):
        return logits[:, -1, paris] - logits[:, -1, rome]

    clean, corrupted = "The capital of France is", "The capital of Italy is"
    found = attribution_patching_nodes(model, clean, corrupted, paris_minus_rome)
    expected = _by_hand(model, clean, corrupted, paris_minus_rome)
    for kind in DEFAULT_KINDS:
        torch.testing.assert_close(found[kind] - found.corrupted_metric, expected[kind], atol=1e-4, rtol=1e-3,
                                   msg=kind)
    assert all(parameter.grad is None for parameter in hf.parameters())


def test_prompts_of_different_lengths_batched_equal_one_at_a_time():
    model = standardized_toy("llama", enable_attention_probs=False)
    clean, corrupted = ["hello world", "a big cat sat now"], ["hello wirld", "a big dog sat now"]
    both = attribution_patching_nodes(model, clean, corrupted, metric, positions=[-1, -2])
    each = [attribution_patching_nodes(model, [one], [other], metric, positions=[-1, -2])
            for one, other in zip(clean, corrupted)]
    for kind in DEFAULT_KINDS:
        torch.testing.assert_close(both[kind] - both.corrupted_metric,
                                   sum(one[kind] - one.corrupted_metric for one in each) / 2, atol=1e-7, rtol=1e-4)
