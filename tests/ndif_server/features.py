"""Every feature the project runs with ``remote=``, as ``{name: run(remote)}``: the lists the simulation tests
use (tests/test_remote.py, tests/test_analysis_remote.py), the traces tests/test_remote.py runs, and an
accessor's ``.grad`` under ``backward()`` as the README writes it."""

from __future__ import annotations

from typing import Any, Callable

from ..test_analysis_remote import every_analysis_function
from ..test_gradients import accessor_gradients
from ..test_remote import (
    PROMPTS,
    attention_probabilities_trace,
    every_remote_function,
    per_head_accessors_trace,
    trace_through_every_accessor,
)

# The features that run a backward pass: ndif 0.1.2's sandbox cannot run one (see test_ndif_real).
BACKWARD = ("attribution_patching", "attribution_patching_nodes", "edge_attribution_patching", "accessor_grad")


def every_feature(model: Any) -> dict[str, Callable[[Any], Any]]:
    traces = {"trace_through_every_accessor": trace_through_every_accessor,
              "attention_probabilities": attention_probabilities_trace, "per_head_accessors": per_head_accessors_trace,
              "accessor_grad": lambda model, remote: accessor_gradients(model, remote, PROMPTS[0])}
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
