"""Every feature the project runs with ``remote=``, as ``{name: run(remote)}``: the lists the simulation tests
use (tests/test_remote.py, tests/test_analysis_remote.py), the traces those tests write inline, and an
accessor's ``.grad`` under ``backward()`` as the README writes it."""

from __future__ import annotations

from typing import Any, Callable

import torch
from nnsight import save

from ..test_analysis_remote import every_analysis_function
from ..test_gradients import READ
from ..test_remote import PROMPTS, every_remote_function

# The features that run a backward pass: ndif 0.1.2's sandbox cannot run one (see test_ndif_real).
BACKWARD = ("attribution_patching", "attribution_patching_nodes", "edge_attribution_patching", "accessor_grad")


def _every_accessor(model: Any, remote: Any) -> list:
    with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):  # in the order the model runs
        values = save([model.token_embeddings, model.layers_input[0], model.attentions_input[0],
                       model.attentions_output[0], model.mlps_input[0]])
        model.mlps_output[0] = model.mlps_output[0] * 0.5
        model.steer(0, torch.ones(model.hidden_size), factor=0.5)
        model.skip_layer(1)
        last = model.layers_output[-1]
        values.append(model.project_on_vocab(model.collapse_streams(last[:, -1])))
        values.append(model.logits)
    return values


def _attention_probabilities(model: Any, remote: Any) -> list:
    with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):
        model.attention_probabilities[0] = model.attention_probabilities[0] * 0
        probabilities = model.attention_probabilities[1].save()
        logits = model.logits.save()
    return [probabilities, logits]


def _per_head_accessors(model: Any, remote: Any) -> list:
    with torch.no_grad(), model.trace(PROMPTS[0], remote=remote):  # in the order the model runs
        values = save([model.queries[0], model.keys[0], model.values[0], model.heads_output[0]])
        model.heads_output[1][:, :, 0] = 0  # an in-place edit of a head must reach the model's output
        values.append(model.logits)
    return values


def _accessor_grad(model: Any, remote: Any) -> list:
    with model.trace(PROMPTS[0], remote=remote):
        values = [getattr(model, name)[layer] for name, layer in READ]
        loss = model.logits[0, -1].logsumexp(-1)
        with loss.backward():  # gradients arrive last layer first: read them in reverse
            grads = save([value.grad for value in reversed(values)][::-1])
    return grads


def every_feature(model: Any) -> dict[str, Callable[[Any], Any]]:
    traces = {"trace_through_every_accessor": _every_accessor, "attention_probabilities": _attention_probabilities,
              "per_head_accessors": _per_head_accessors, "accessor_grad": _accessor_grad}
    return {**every_remote_function(model), **every_analysis_function(model),
            **{name: (lambda remote, run=run: run(model, remote)) for name, run in traces.items()}}


# every_feature's names, known without a model (for test ids); a test checks they are every_feature's keys.
FEATURES = (
    "logit_lens", "last_token_latents", "patchscope_lens", "patchscope_generate", "get_token_activations",
    "compute_next_token_probs", "collect_token_activations_batched", "run_prompts",
    "direct_logit_attribution", "decompose_resid", "accumulated_resid", "run_with_cache", "run_with_cache[per_head]",
    "head_weights", "composition_scores", "activation_patching",
    "attribution_patching", "attribution_patching_nodes", "path_patching", "edge_attribution_patching",
    "steered_generate", "skipped_generate", "patched_generate",
    "trace_through_every_accessor", "attention_probabilities", "per_head_accessors", "accessor_grad")
