"""The behaviour checks the plugin runs on their own: logits equal the plain model's, the logit lens of the
last layer is the logits, steering adds exactly its vector, skipping passes the stream through."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .catalogue import CheckName, CheckResult, failed, passed
from .probing import PROBE_PROMPTS

if TYPE_CHECKING:
    from ..standardized import StandardizedTransformer

LOGITS_TOLERANCE = 1e-4

def check_logits_match(model: StandardizedTransformer, prompts: list[str] | None = None) -> CheckResult:
    """The standardized model's logits equal the plain HuggingFace forward on the same input.

    Prompts run one at a time, so no padding convention enters the comparison. Both forwards get the
    all-ones attention mask a trace passes (transformers 5.0's eager Moshi attention is not causal
    without one).
    """
    device = next(model._module.parameters()).device
    worst = 0.0
    for prompt in prompts or PROBE_PROMPTS:
        ids = model.tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        with torch.no_grad():
            reference = model._module(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        with model.trace(ids):
            logits = model.logits.save()
        worst = max(worst, (logits - reference).abs().max().item())
    if worst > LOGITS_TOLERANCE:
        return failed(CheckName.LOGITS_MATCH, f"logits differ from the plain model by {worst:.3g}", value=worst,
                      fix="nnterp must not change numerics: report this as a bug")
    return passed(CheckName.LOGITS_MATCH, f"max-abs difference {worst:.2g}", value=worst)


# -- intervention sanity (run by the pytest plugin) ----------------------------------

INTERVENTION_PROMPT = "The quick brown fox jumps"


def check_logit_lens(model: StandardizedTransformer) -> CheckResult:
    """``project_on_vocab`` of the last layer's output gives the model's own logits."""
    prefix = model.num_prefix_positions  # learned prompt positions the logits leave out (CPM-Ant)
    with torch.no_grad(), model.trace(INTERVENTION_PROMPT):
        projected = model.project_on_vocab(model.collapse_streams(model.layers_output[-1][:, prefix:])).save()
        logits = model.logits.save()
    if projected.shape != logits.shape:
        return failed(CheckName.LOGIT_LENS, f"projection has shape {tuple(projected.shape)}, logits "
                      f"{tuple(logits.shape)}", fix="check ln_final / lm_head in the registry row")
    error = ((projected - logits).abs().max() / logits.abs().max().clamp_min(1e-6)).item()
    if error > LOGITS_TOLERANCE:
        return failed(CheckName.LOGIT_LENS, f"last-layer projection differs from the logits by {error:.3g} "
                      "(relative): the final norm, head or a logit transform is missing", value=error,
                      fix="check ln_final / lm_head in the registry row")
    return passed(CheckName.LOGIT_LENS, f"last-layer projection equals the logits (rel. error {error:.2g})",
                  value=error)


def check_steering(model: StandardizedTransformer) -> CheckResult:
    """``steer`` adds exactly ``factor * vector`` to a layer's output."""
    vector = torch.linspace(-1, 1, model.hidden_size)
    with torch.no_grad(), model.trace(INTERVENTION_PROMPT):
        plain = model.layers_output[0].clone().save()
    with torch.no_grad(), model.trace(INTERVENTION_PROMPT):
        model.steer(0, vector, factor=0.5)
        steered = model.layers_output[0].save()
    error = (steered - plain - 0.5 * vector.to(plain.dtype)).abs().max().item()
    if error > 1e-4:
        return failed(CheckName.STEERING, f"steered output differs from output + 0.5 * vector by {error:.3g}",
                      value=error)
    return passed(CheckName.STEERING, f"adds exactly factor * vector (error {error:.2g})", value=error)


def check_skip_layers(model: StandardizedTransformer) -> CheckResult:
    """Skipping every layer passes the first layer's input through to the last layer's output."""
    with torch.no_grad(), model.trace(INTERVENTION_PROMPT):
        first_input = model.layers_input[0].save()
        model.skip_layers(0, model.num_layers - 1)
        last_output = model.layers_output[-1].save()
    if not torch.equal(first_input, last_output):
        return failed(CheckName.SKIP, "after skip_layers(0, last) the last output differs from the first input")
    return passed(CheckName.SKIP, f"skipping {model.num_layers} layers passes the stream through")
