"""The analysis functions under ``remote="local"`` (nnterp's strict NDIF server simulation) equal their local runs:
on a plain model, one with a two-module head (ModernBERT decoder) and one with several residual streams (Gemma 3n)."""

import pytest
import torch

from nnterp.toolkit.analysis import (
    accumulated_resid,
    activation_patching,
    attribution_patching,
    attribution_patching_nodes,
    composition_scores,
    decompose_resid,
    direct_logit_attribution,
    edge_attribution_patching,
    head_weights,
    patched_generate,
    path_patching,
    run_with_cache,
    skipped_generate,
    steered_generate,
)

from .conftest import standardized_toy
from .known_failures import ANALYSIS_FUNCTION_FAILURES
from .remote_equality import equal, outcome

CLEAN, CORRUPTED = ["a cat sat", "the dog"], ["a dog sat", "the cat"]  # pairwise equal token lengths
POSITIONS = [-1, 1]  # inside every prompt on the toys and on SmolLM2 (2 tokens for "the dog"): the real-server tests
METRIC = lambda logits: logits[:, -1, 5] - logits[:, -1, 7]  # noqa: E731 - a lambda ships by value


RECEIVERS = ["L1.H0.q", "L1.attn", "L1.mlp", "final"]  # a second copy of the rows, and the stream itself


def _senders(model):
    return ["embed", "L0.H1", "L0.attn", "L0.mlp", f"L{model.num_layers - 1}.mlp"]


def every_analysis_function(model):
    """Each analysis function taking ``remote=``, as a function of ``remote``."""
    vector = torch.ones(model.hidden_size)
    return {
        "direct_logit_attribution": lambda remote: direct_logit_attribution(model, CLEAN, 5, per_head=True,
                                                                            remote=remote),
        "decompose_resid": lambda remote: decompose_resid(model, CLEAN, layer=1, per_head=True, remote=remote),
        "accumulated_resid": lambda remote: accumulated_resid(model, CLEAN, remote=remote),
        "run_with_cache": lambda remote: run_with_cache(model, CLEAN, ["layers_output", "mlps_output"], layers=[0, -1],
                                                        remote=remote),
        "run_with_cache[per_head]": lambda remote: run_with_cache(model, CLEAN, ["queries", "keys", "values", "neurons",
                                                                           "heads_output"], layers=-1, remote=remote),
        "head_weights": lambda remote: head_weights(model, [0, -1], remote=remote),
        "composition_scores": lambda remote: composition_scores(model, "k", 0, 1, remote=remote),
        "activation_patching": lambda remote: activation_patching(model, CLEAN, CORRUPTED, METRIC, positions=POSITIONS,
                                                                  remote=remote),
        "attribution_patching": lambda remote: attribution_patching(model, CLEAN, CORRUPTED, METRIC,
                                                                    positions=POSITIONS, remote=remote),
        "attribution_patching_nodes": lambda remote: attribution_patching_nodes(model, CLEAN, CORRUPTED, METRIC,
                                                                                positions=POSITIONS, remote=remote),
        "path_patching": lambda remote: path_patching(model, CLEAN, CORRUPTED, METRIC, receivers=RECEIVERS,
                                                      senders=_senders(model), progress=False, remote=remote),
        "edge_attribution_patching": lambda remote: edge_attribution_patching(model, CLEAN, CORRUPTED, METRIC,
                                                                              senders=_senders(model),
                                                                              receivers=RECEIVERS, progress=False,
                                                                              remote=remote),
        "steered_generate": lambda remote: steered_generate(model, CLEAN, 0, vector, factor=2.0, max_new_tokens=2,
                                                            remote=remote),
        "skipped_generate": lambda remote: skipped_generate(model, CLEAN, [0], max_new_tokens=2, remote=remote),
        "patched_generate": lambda remote: patched_generate(model, CLEAN, 0, vector, positions=[-1, 0],
                                                            max_new_tokens=2, remote=remote),
    }


# A plain model, one with a two-module head (ModernBERT decoder), one with several residual streams (Gemma 3n).
ARCHITECTURES = {"llama": "LlamaForCausalLM", "modernbert-decoder": "ModernBertDecoderForCausalLM",
                 "gemma3n_text": "Gemma3nForCausalLM"}
FUNCTIONS = ("direct_logit_attribution", "decompose_resid", "accumulated_resid", "run_with_cache",
             "run_with_cache[per_head]", "head_weights", "composition_scores", "activation_patching",
             "attribution_patching", "attribution_patching_nodes", "path_patching", "edge_attribution_patching",
             "steered_generate", "skipped_generate", "patched_generate")


def cases() -> list:
    """One param per (architecture, function), strict xfail where ANALYSIS_FUNCTION_FAILURES names it."""
    params = []
    for name, class_name in ARCHITECTURES.items():
        for function in FUNCTIONS:
            reason = ANALYSIS_FUNCTION_FAILURES.get(class_name, {}).get(function)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(name, function, id=f"{name}-{function}", marks=marks))
    return params


@pytest.fixture(scope="module")
def models():
    return {}


@pytest.mark.parametrize("name, function", cases())
def test_each_analysis_function_equals_the_local_run_under_the_server_simulation(models, name, function):
    if name not in models:
        models[name] = standardized_toy(name, enable_attention_probs=False)
    run = every_analysis_function(models[name])[function]
    local = outcome(run, False)
    assert equal(local, outcome(run, "local")), f"{name}: {function} with remote='local' differs from the local run"


def _hooks(module: torch.nn.Module) -> list:
    return [(name, len(sub._forward_hooks), len(sub._forward_pre_hooks), len(sub._backward_hooks),
             len(getattr(sub, "_backward_pre_hooks", {}))) for name, sub in module.named_modules()]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_analysis_function_leaves_a_gradient_or_a_hook_on_the_model(function):
    """Each call leaves the model as it found it: no parameter with a .grad, every requires_grad as it was, no hook
    added to any module. One parameter frozen by the caller stays frozen."""
    model = standardized_toy("llama", enable_attention_probs=False)
    parameters = list(model._module.parameters())
    parameters[0].requires_grad_(False)
    flags = [parameter.requires_grad for parameter in parameters]
    hooks = _hooks(model._module)
    state = {name: value.clone() for name, value in model._module.state_dict().items()}
    every_analysis_function(model)[function](False)
    assert all(parameter.grad is None for parameter in parameters), function
    assert [parameter.requires_grad for parameter in parameters] == flags, function
    assert _hooks(model._module) == hooks, function
    assert all(torch.equal(value, state[name]) for name, value in model._module.state_dict().items()), function
