"""Path patching against plain PyTorch hooks on the HuggingFace modules: Wang et al.'s three runs (sender patched,
everything else frozen, receivers patched from there), activation patching of the sender where the receivers are
everything downstream, and the corrupted run where there is no receiver."""

import pytest
import torch

from nnterp.errors import PositionAlignmentError, ToolkitInputError
from nnterp.toolkit.analysis.path_patches import path_patching
from nnterp.toy.standardized import standardized_toy

CLEAN = ["hello world there", "a big cat sat now"]
CORRUPTED = ["hello wirld there", "a big dog sat now"]  # same token lengths, a few tokens changed
# Where each toy keeps its layers, output projection (input: the heads side by side) and MLP, by HF module name.
MODULES = {"llama": ("model.layers", "self_attn.o_proj", "mlp"), "gpt2": ("transformer.h", "attn.c_proj", "mlp"),
           "gpt_neox": ("gpt_neox.layers", "attention.dense", "mlp")}


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


@pytest.fixture(scope="module", params=list(MODULES))
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def _module(model, layer, part):
    names = MODULES[model.config.model_type]
    return model._module.get_submodule(f"{names[0]}.{layer}.{part}")


def _run(model, prompts, pre=(), post=()):
    """The HF model's metric (mean over prompts) with forward pre-hooks / hooks (module, fn) attached for the run."""
    handles = [module.register_forward_pre_hook(fn) for module, fn in pre]
    handles += [module.register_forward_hook(fn) for module, fn in post]
    try:
        with torch.no_grad():
            return metric(model._module(**model.tokenizer(prompts, return_tensors="pt")).logits).mean().item()
    finally:
        for handle in handles:
            handle.remove()


def _capture(model, prompts, modules):
    """The input of each projection (pre) and the output of each other module (post), from one run."""
    seen = {}
    pre = [(module, lambda _, args, key=key: seen.__setitem__(key, args[0].clone())) for key, module in modules
           if key[0] == "proj"]
    post = [(module, lambda _, args, out, key=key: seen.__setitem__(key, _first(out).clone())) for key, module in
            modules if key[0] != "proj"]
    _run(model, prompts, pre, post)
    return seen


def _head_slice(model, head):
    size = model.config.hidden_size // model.config.num_attention_heads
    return slice(head * size, (head + 1) * size)


def _set_head(model, values, head):
    def hook(_, args):
        patched = args[0].clone()
        patched[..., _head_slice(model, head)] = values[..., _head_slice(model, head)]
        return (patched, *args[1:])
    return hook


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _replace(value):
    """A forward hook making the module output ``value`` (in place of a tuple's first element)."""
    return lambda _, args, out: (value, *out[1:]) if isinstance(out, tuple) else value


@pytest.mark.parametrize("sender", ["L0.H1", "L0.attn", "L0.mlp", "embed"])
def test_every_downstream_receiver_is_activation_patching_of_the_sender(model, sender):
    """Receivers = every reader after the sender: the corrupted run with the sender's clean output at every position,
    patched by a plain hook on the HF module."""
    readers = ["L0.attn", "L0.mlp", "L1.resid"] if sender == "embed" else ["L0.mlp", "L1.resid"] if \
        sender != "L0.mlp" else ["L1.resid"]
    found = path_patching(model, CLEAN, CORRUPTED, metric, receivers=readers, senders=[sender], progress=False)
    if sender == "embed":
        embeddings = model._module.get_input_embeddings()
        clean = _capture(model, CLEAN, [(("embed",), embeddings)])[("embed",)]
        expected = _run(model, CORRUPTED, post=[(embeddings, _replace(clean))]) if model.config.model_type != "gpt2" \
            else found.clean_metric  # GPT-2 adds its position embeddings after: the same in both runs
    elif sender == "L0.H1":
        projection = _module(model, 0, MODULES[model.config.model_type][1])
        clean = _capture(model, CLEAN, [(("proj",), projection)])[("proj",)]
        expected = _run(model, CORRUPTED, pre=[(projection, _set_head(model, clean, 1))])
    else:
        part = _module(model, 0, "mlp" if sender == "L0.mlp" else MODULES[model.config.model_type][1].split(".")[0])
        clean = _capture(model, CLEAN, [(("out",), part)])[("out",)]
        expected = _run(model, CORRUPTED, post=[(part, _replace(clean))])
    assert found.values.item() == pytest.approx(expected, abs=1e-5)


def test_through_the_final_residual_from_the_last_layer_is_activation_patching(model):
    last = model.num_layers - 1
    found = path_patching(model, CLEAN, CORRUPTED, metric, receivers=["final"], senders=[f"L{last}.mlp"],
                          progress=False)
    mlp = _module(model, last, "mlp")
    clean = _capture(model, CLEAN, [(("out",), mlp)])[("out",)]
    assert found.values.item() == pytest.approx(_run(model, CORRUPTED, post=[(mlp, _replace(clean))]), abs=1e-5)


def test_no_receiver_leaves_the_corrupted_run(model):
    found = path_patching(model, CLEAN, CORRUPTED, metric, receivers=[], progress=False)
    assert found.values.shape == (model.num_layers * model.num_heads,)
    torch.testing.assert_close(found.values, torch.full_like(found.values, found.corrupted_metric))
    assert found.corrupted_metric == pytest.approx(_run(model, CORRUPTED), abs=1e-6)
    assert found.clean_metric == pytest.approx(_run(model, CLEAN), abs=1e-6)


def test_leaves_no_hook_and_no_grad(model):
    path_patching(model, CLEAN, CORRUPTED, metric, receivers=["L1.H0.q", "L1.mlp", "final"], progress=False)
    assert all(parameter.grad is None for parameter in model._module.parameters())
    assert not any(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                   for module in model._module.modules())


def _wang_path_patching(model, sender_head, receiver_layer, receiver_parts):
    """Wang et al.'s path patching, by hooks (towards the clean run, as nnterp's): (1) cache every head's and MLP's
    output on both runs; (2) the corrupted run with the sender head's clean output and every other head and MLP
    frozen to their corrupted outputs, caching the receivers' projections (q/k/v_proj outputs of layer
    ``receiver_layer``); (3) the corrupted run with those receivers' outputs (head slices) from run 2."""
    layers = range(model.num_layers)
    projections = {layer: _module(model, layer, "self_attn.o_proj") for layer in layers}
    mlps = {layer: _module(model, layer, "mlp") for layer in layers}
    watched = [(("proj", layer), module) for layer, module in projections.items()]
    watched += [(("mlp", layer), module) for layer, module in mlps.items()]
    clean, corrupted = _capture(model, CLEAN, watched), _capture(model, CORRUPTED, watched)
    sender_layer, head = sender_head

    def frozen(layer):
        values = corrupted[("proj", layer)].clone()
        if layer == sender_layer:
            values[..., _head_slice(model, head)] = clean[("proj", layer)][..., _head_slice(model, head)]
        return lambda _, args: (values, *args[1:])

    receivers = {name: _module(model, receiver_layer, f"self_attn.{name}_proj") for name, _ in receiver_parts}
    seen = {}
    post = [(mlps[layer], _replace(corrupted[("mlp", layer)])) for layer in layers]
    post += [(module, lambda _, a, out, name=name: seen.__setitem__(name, out.clone())) for name, module in
             receivers.items()]
    _run(model, CORRUPTED, pre=[(projections[layer], frozen(layer)) for layer in layers], post=post)
    size = model.config.hidden_size // model.config.num_attention_heads

    def patch(name, part_head):
        def hook(_, args, out):
            out = out.clone()
            out[..., part_head * size:(part_head + 1) * size] = seen[name][..., part_head * size:(part_head + 1) * size]
            return out
        return hook

    return _run(model, CORRUPTED, post=[(receivers[name], patch(name, part_head)) for name, part_head in
                                        receiver_parts])


@pytest.mark.parametrize("receivers, parts", [(["L1.H2.q"], [("q", 2)]), (["L1.KV0.k"], [("k", 0)]),
                                              (["L1.H3.v"], [("v", 1)]),
                                              (["L1.H0.q", "L1.KV1.k", "L1.KV1.v"], [("q", 0), ("k", 1), ("v", 1)])],
                         ids=["query", "keys", "values of the kv head query head 3 reads", "q, k and v"])
def test_wang_et_al_path_patching_by_hooks_on_a_grouped_query_model(receivers, parts):
    """The toy Llama has 4 query heads sharing 2 key/value heads: keys and values are received per kv head."""
    model = standardized_toy("llama", enable_attention_probs=False)
    assert model.config.num_key_value_heads < model.config.num_attention_heads
    found = path_patching(model, CLEAN, CORRUPTED, metric, receivers=receivers, senders=["L0.H1", "L0.H3"],
                          progress=False)
    for index, head in enumerate([1, 3]):
        assert found.values[index].item() == pytest.approx(_wang_path_patching(model, (0, head), 1, parts), abs=1e-5)


def test_a_sender_reaches_only_receivers_reading_after_it(model):
    """A head does not reach its own layer's attention, nor an MLP the layer before: unchanged corrupted metric."""
    found = path_patching(model, CLEAN, CORRUPTED, metric, receivers=["L1.attn", "L0.mlp"], senders=["L1.H0", "L1.mlp"],
                          progress=False)
    torch.testing.assert_close(found.values, torch.full((2,), found.corrupted_metric))


def test_patches_batched_in_one_forward_equal_one_per_forward(model):
    receivers = ["L1.H0.q", "L1.mlp", "final"]
    batched = path_patching(model, CLEAN, CORRUPTED, metric, receivers=receivers, progress=False)
    single = path_patching(model, CLEAN, CORRUPTED, metric, receivers=receivers, patches_per_forward=1,
                           progress=False)
    torch.testing.assert_close(batched.values, single.values, atol=1e-5, rtol=1e-5)
    assert batched.senders == tuple(f"L{layer}.H{head}" for layer in range(model.num_layers)
                                    for head in range(model.num_heads))


def test_a_progress_bar_counts_the_patched_forwards_and_can_be_silenced(capsys):
    model = standardized_toy("llama", enable_attention_probs=False)
    shown = path_patching(model, CLEAN, CORRUPTED, metric, receivers=["final"], patches_per_forward=3)
    assert "path patching" in capsys.readouterr().err  # 8 heads, 3 per forward: 3 forwards
    silent = path_patching(model, CLEAN, CORRUPTED, metric, receivers=["final"], patches_per_forward=3,
                           progress=False)
    assert capsys.readouterr().err == ""
    torch.testing.assert_close(shown.values, silent.values)


def test_bad_labels_and_pairs_are_refused():
    model = standardized_toy("llama", enable_attention_probs=False)
    with pytest.raises(ToolkitInputError, match="receiver 'L1.head'"):
        path_patching(model, CLEAN, CORRUPTED, metric, receivers=["L1.head"])
    with pytest.raises(ToolkitInputError, match="layer 1 has 2 key/value heads"):
        path_patching(model, CLEAN, CORRUPTED, metric, receivers=["L1.KV2.k"])
    with pytest.raises(ToolkitInputError, match="sender 'L0.q'"):
        path_patching(model, CLEAN, CORRUPTED, metric, receivers=["final"], senders=["L0.q"])
    with pytest.raises(PositionAlignmentError, match="equal token lengths"):
        path_patching(model, ["hello world there"], ["hello there"], metric, receivers=["final"], positions=[-1])


def test_prompts_of_different_lengths_batched_equal_one_at_a_time():
    """Pairs of equal lengths, padded together: the batch's metric is the mean of the prompts' own."""
    model = standardized_toy("llama", enable_attention_probs=False)
    clean, corrupted = ["hello world", "a big cat sat now"], ["hello wirld", "a big dog sat now"]
    receivers = ["L1.H0.q", "L1.KV1.v", "L0.mlp", "L1.mlp", "final"]
    both = path_patching(model, clean, corrupted, metric, receivers=receivers, progress=False)
    each = [path_patching(model, [one], [other], metric, receivers=receivers, progress=False)
            for one, other in zip(clean, corrupted)]
    torch.testing.assert_close(both.values, (each[0].values + each[1].values) / 2, atol=1e-6, rtol=1e-5)
    at = path_patching(model, clean, corrupted, metric, receivers=receivers, positions=[-1, -2], progress=False)
    each = [path_patching(model, [one], [other], metric, receivers=receivers, positions=[-1, -2], progress=False)
            for one, other in zip(clean, corrupted)]
    torch.testing.assert_close(at.values, (each[0].values + each[1].values) / 2, atol=1e-6, rtol=1e-5)


@pytest.mark.real_model
def test_smollm2_grouped_query_heads_through_every_reader_after_them_are_activation_patching(smollm2_hf):
    """SmolLM2 (9 query heads, 3 key/value heads): a head's path to every reader after it, through the per-head
    receivers of the next layer (its 9 queries, 3 keys, 3 values), its MLP, and the stream from two layers on, is
    activation patching of the head by a plain hook."""
    from nnterp import StandardizedTransformer

    hf, tokenizer = smollm2_hf
    model = StandardizedTransformer(hf, tokenizer=tokenizer)
    clean, corrupted = "The capital of France is", "The capital of Italy is"
    paris, rome = tokenizer.encode(" Paris")[0], tokenizer.encode(" Rome")[0]

    def paris_minus_rome(logits):
        return logits[:, -1, paris] - logits[:, -1, rome]

    readers = ["L22.mlp"] + [f"L23.H{head}.q" for head in range(9)] + [f"L23.KV{head}.{part}" for head in range(3)
                                                                       for part in "kv"] + ["L23.mlp", "L24.resid"]
    found = path_patching(model, clean, corrupted, paris_minus_rome, receivers=readers, senders=["L22.H5"],
                          progress=False)
    projection = hf.model.layers[22].self_attn.o_proj
    seen = {}
    handle = projection.register_forward_pre_hook(lambda _, args: seen.__setitem__("heads", args[0].clone()))
    try:
        with torch.no_grad():
            hf(**tokenizer(clean, return_tensors="pt"))
    finally:
        handle.remove()
    size = hf.config.hidden_size // hf.config.num_attention_heads

    def patch(_, args):
        heads = args[0].clone()
        heads[..., 5 * size:6 * size] = seen["heads"][..., 5 * size:6 * size]
        return (heads, *args[1:])

    handle = projection.register_forward_pre_hook(patch)
    try:
        with torch.no_grad():
            expected = paris_minus_rome(hf(**tokenizer(corrupted, return_tensors="pt")).logits).item()
    finally:
        handle.remove()
    assert found.values.item() == pytest.approx(expected, abs=1e-4)
    assert found.values.item() != pytest.approx(found.corrupted_metric, abs=1e-3)
