"""Edge attribution patching against a manual autograd computation on the HuggingFace modules (a zero added to
each receiver's norm input, differentiated), and against path patching of each edge on a toy."""

import pytest
import torch

from nnterp.errors import NotDecomposable
from nnterp.toolkit.analysis.edge_attribution import edge_attribution_patching
from nnterp.toolkit.analysis.path_patches import path_patching
from nnterp.toy.standardized import standardized_toy

CLEAN = ["hello world there", "a big cat sat now"]
CORRUPTED = ["hello wirld there", "a big dog sat now"]
SENDERS = ["embed", "L0.H0", "L0.H1", "L0.H2", "L0.H3", "L0.mlp", "L1.H0", "L1.H2", "L1.attn", "L1.mlp"]
RECEIVERS = ["L0.attn", "L0.mlp", "L1.attn", "L1.mlp", "L1.resid", "final"]


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


@pytest.fixture(scope="module")
def llama():
    """4 query heads sharing 2 key/value heads."""
    return standardized_toy("llama", enable_attention_probs=False)


def _by_hand(model):
    """Each edge's (clean - corrupted sender output) . d metric / d (a zero added to the receiver's norm input), in
    plain torch: forward hooks read the senders, pre-hooks add the zeros, autograd differentiates the mean metric."""
    hf, layers = model._module, model._module.model.layers
    norms = {"L0.attn": layers[0].input_layernorm, "L0.mlp": layers[0].post_attention_layernorm,
             "L1.attn": layers[1].input_layernorm, "L1.mlp": layers[1].post_attention_layernorm,
             "L1.resid": layers[1], "final": hf.model.norm}

    def run(prompts, grad):
        seen, zeros, handles = {}, {}, []
        for name, module in {"embed": hf.model.embed_tokens, "L0.mlp": layers[0].mlp, "L1.mlp": layers[1].mlp,
                             "L1.attn": layers[1].self_attn}.items():
            handles.append(module.register_forward_hook(
                lambda _, a, out, name=name: seen.__setitem__(name, out[0] if isinstance(out, tuple) else out)))
        for layer in (0, 1):
            handles.append(layers[layer].self_attn.o_proj.register_forward_pre_hook(
                lambda _, args, layer=layer: seen.__setitem__(("heads", layer), args[0])))
        if grad:
            for name, module in norms.items():
                def add(_, args, kwargs, name=name):
                    hidden = kwargs.pop("hidden_states") if "hidden_states" in kwargs else args[0]
                    zeros[name] = torch.zeros_like(hidden, requires_grad=True)
                    rest = args[1:] if args else ()
                    return ((hidden + zeros[name]), *rest), kwargs
                handles.append(module.register_forward_pre_hook(add, with_kwargs=True))
        try:
            with torch.enable_grad() if grad else torch.no_grad():
                value = metric(hf(**model.tokenizer(prompts, return_tensors="pt")).logits).mean()
                grads = dict(zip(zeros, torch.autograd.grad(value, list(zeros.values())))) if grad else {}
        finally:
            for handle in handles:
                handle.remove()
        return seen, grads

    clean, _ = run(CLEAN, False)
    corrupted, grads = run(CORRUPTED, True)
    size = model.config.hidden_size // model.config.num_attention_heads

    def change(sender):
        if sender.startswith("L") and ".H" in sender:
            layer, head = int(sender[1]), int(sender.split("H")[1])
            part = slice(head * size, (head + 1) * size)
            weight = layers[layer].self_attn.o_proj.weight[:, part]
            return (clean[("heads", layer)][..., part] - corrupted[("heads", layer)][..., part]) @ weight.T
        return clean[sender] - corrupted[sender]

    order = {"embed": -1, "L0.H": 2, "L0.mlp": 4, "L1.H": 7, "L1.attn": 7, "L1.mlp": 9}
    reads = {"L0.attn": 1, "L0.mlp": 3, "L1.resid": 5, "L1.attn": 6, "L1.mlp": 8, "final": 10}
    with torch.no_grad():
        return torch.tensor([[float((change(sender) * grads[receiver]).sum())
                              if order[sender[:4] if ".H" in sender else sender] < reads[receiver] else 0.0
                              for receiver in RECEIVERS] for sender in SENDERS])


def test_edge_scores_are_the_change_times_the_receivers_gradient(llama):
    found = edge_attribution_patching(llama, CLEAN, CORRUPTED, metric, senders=SENDERS, receivers=RECEIVERS)
    expected = _by_hand(llama)
    assert found.scores.shape == (len(SENDERS), len(RECEIVERS))
    torch.testing.assert_close(found.scores, expected, atol=1e-6, rtol=1e-4)
    assert not found.edges[SENDERS.index("L1.H0"), RECEIVERS.index("L1.attn")]
    assert found.edges[SENDERS.index("L1.H0"), RECEIVERS.index("L1.mlp")]
    assert all(parameter.grad is None for parameter in llama._module.parameters())
    assert all(parameter.requires_grad for parameter in llama._module.parameters())
    assert not any(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                   for module in llama._module.modules())


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_edge_scores_track_path_patching_of_each_edge(name):
    """The first-order estimate against path patching of every edge from a head or an MLP, one receiver at a time.
    Measured: correlation 0.999 (llama, 4 query heads sharing 2 key/value heads; 68 edges) and 0.997 (gpt2; 88
    edges) to every layer's attention and MLP, the final residual, and layer 1's per-head queries, keys and values.
    The embeddings' edges, whose change is a swapped token, are far from linear (with them, per layer: 0.66 and 0.86),
    as for attribution patching."""
    model = standardized_toy(name, enable_attention_probs=False)
    senders = [f"L{layer}.{part}" for layer in range(model.num_layers)
               for part in [f"H{head}" for head in range(model.num_heads)] + ["mlp"]]
    kv = getattr(model.config, "num_key_value_heads", None) or model.num_heads
    receivers = [f"L{layer}.{part}" for layer in range(model.num_layers) for part in ("attn", "mlp")] + ["final"]
    receivers += [f"L1.H{head}.q" for head in range(model.num_heads)]
    receivers += [f"L1.KV{head}.{part}" for head in range(kv) for part in "kv"]
    edges = edge_attribution_patching(model, CLEAN, CORRUPTED, metric, senders=senders, receivers=receivers,
                                      progress=False)
    exact = torch.stack([path_patching(model, CLEAN, CORRUPTED, metric, receivers=[receiver], senders=senders,
                                       progress=False).values - edges.corrupted_metric
                         for receiver in edges.receivers], dim=1)
    real = edges.edges
    torch.testing.assert_close(exact[~real], torch.zeros(int((~real).sum())))  # no edge: no effect either way
    correlation = torch.corrcoef(torch.stack([exact[real], edges.scores[real]]))[0, 1].item()
    print(f"{name}: correlation {correlation:.3f} over {int(real.sum())} edges")
    assert correlation > 0.99


def _per_head_by_hand(model, receivers):
    """Per receiver (projection name, head of it), d mean metric / d z where layer 1's projection computes that head
    from its norm of (layer 1's input + z), z zero: a forward hook recomputes the head's slice with F.linear."""
    layers = model._module.model.layers
    size = model.config.hidden_size // model.config.num_attention_heads
    seen, zeros = {}, {}
    handles = [layers[1].register_forward_pre_hook(lambda _, args, kwargs: seen.__setitem__("resid", kwargs.get(
        "hidden_states", args[0] if args else None)), with_kwargs=True)]
    for name, head in receivers:
        projection = layers[1].self_attn.get_submodule(f"{name}_proj")

        def recompute(module, args, out, name=name, head=head):
            zeros[(name, head)] = torch.zeros_like(seen["resid"], requires_grad=True)
            normed = layers[1].input_layernorm(seen["resid"] + zeros[(name, head)])
            out = out.clone()
            part = slice(head * size, (head + 1) * size)
            out[..., part] = torch.nn.functional.linear(normed, module.weight, module.bias)[..., part]
            return out
        handles.append(projection.register_forward_hook(recompute))
    try:
        value = metric(model._module(**model.tokenizer(CORRUPTED, return_tensors="pt")).logits).mean()
        return torch.autograd.grad(value, [zeros[receiver] for receiver in receivers])
    finally:
        for handle in handles:
            handle.remove()


def test_per_head_receivers_on_a_grouped_query_model_are_the_change_times_their_gradient(llama):
    """Queries per query head, keys and values per key/value head (4 query heads share 2 here), each read through a
    copy of the rows; against plain autograd, and path patching of each edge."""
    receivers = ["L1.H0.q", "L1.H3.q", "L1.KV0.k", "L1.KV1.v"]
    found = edge_attribution_patching(llama, CLEAN, CORRUPTED, metric, senders=["L0.H1", "L0.mlp"],
                                      receivers=receivers, patches_per_forward=3, progress=False)
    layered = edge_attribution_patching(llama, CLEAN, CORRUPTED, metric, senders=["L0.H1", "L0.mlp"],
                                        receivers=["L1.attn"], progress=False)
    grads = _per_head_by_hand(llama, [("q", 0), ("q", 3), ("k", 0), ("v", 1)])
    assert found.receivers == tuple(receivers)
    from nnterp.toolkit.analysis.path_patches import _changes, sender_pair
    from nnterp.toolkit.analysis.paths import parse_senders

    pair, mask = sender_pair(llama, CLEAN, CORRUPTED, None)
    changes = _changes(llama, pair, mask, parse_senders(llama, ["L0.H1", "L0.mlp"]), metric, False)[0]
    expected = torch.tensor([[float((change * grad).sum()) for grad in grads] for change in changes])
    torch.testing.assert_close(found.scores, expected, atol=1e-7, rtol=1e-4)
    exact = torch.stack([path_patching(llama, CLEAN, CORRUPTED, metric, receivers=[receiver],
                                       senders=["L0.H1", "L0.mlp"], progress=False).values - found.corrupted_metric
                         for receiver in receivers], dim=1)
    torch.testing.assert_close(found.scores, exact, atol=2e-4, rtol=0.1)  # first order: within 10%
    # the heads' receivers together read less than the whole attention input (the norm couples them)
    assert layered.scores.shape == (2, 1) and bool(layered.edges.all())


def test_parallel_blocks_refuse_attention_and_mlp_receivers():
    neox = standardized_toy("gpt_neox", enable_attention_probs=False)
    with pytest.raises(NotDecomposable, match="same input"):
        edge_attribution_patching(neox, CLEAN, CORRUPTED, metric)
    found = edge_attribution_patching(neox, CLEAN, CORRUPTED, metric, receivers=["L1.resid", "final"])
    assert found.scores.shape == (neox.num_layers * neox.num_heads, 2)


def test_prompts_of_different_lengths_batched_equal_one_at_a_time(llama):
    """The scores of a padded batch are the mean of each prompt's (the metric is averaged over prompts)."""
    clean, corrupted = ["hello world", "a big cat sat now"], ["hello wirld", "a big dog sat now"]
    both = edge_attribution_patching(llama, clean, corrupted, metric)
    each = [edge_attribution_patching(llama, [one], [other], metric) for one, other in zip(clean, corrupted)]
    torch.testing.assert_close(both.scores, (each[0].scores + each[1].scores) / 2, atol=1e-7, rtol=1e-4)


@pytest.mark.parametrize("mode", ["no_grad", "frozen"])
def test_works_under_no_grad_and_with_frozen_parameters(mode):
    model = standardized_toy("llama", enable_attention_probs=False)
    receivers = ["L1.H0.q", "L1.KV1.k", "L1.attn", "final"]
    expected = edge_attribution_patching(model, CLEAN, CORRUPTED, metric, receivers=receivers, progress=False)
    if mode == "frozen":
        for parameter in model._module.parameters():
            parameter.requires_grad_(False)
        found = edge_attribution_patching(model, CLEAN, CORRUPTED, metric, receivers=receivers, progress=False)
        assert not any(parameter.requires_grad for parameter in model._module.parameters())
    else:
        with torch.no_grad():
            found = edge_attribution_patching(model, CLEAN, CORRUPTED, metric, receivers=receivers, progress=False)
    torch.testing.assert_close(found.scores, expected.scores)
    assert all(parameter.grad is None for parameter in model._module.parameters())
