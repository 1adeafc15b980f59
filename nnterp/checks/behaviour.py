"""The behaviour checks the plugin runs on their own: logits equal the plain model's, the logit lens of the
last layer is the logits, steering adds exactly its vector, skipping passes the stream through.

They read one shared traced forward (`SharedRuns`): run once per model and prompt, it serves the logits
match, the logit lens and the unsteered side of steering, so the four checks cost one plain HuggingFace
forward, one traced forward, a steered forward stopped after layer 0 and a forward with every layer skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from .catalogue import CheckName, CheckResult, failed, passed

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer

LOGITS_TOLERANCE = 1e-4
INTERVENTION_PROMPT = "The quick brown fox jumps"


@dataclass(frozen=True)
class PlainRun:
    """What one unedited traced forward on a prompt showed: its own arguments (the plain model reruns exactly
    these), the logits, layer 0's output and the vocabulary projection of the last layer's output (or why
    projecting failed: the logit lens check's own failure, which the forward is rerun without so that the
    other checks still get their values)."""

    inputs: tuple  # (args, kwargs)
    logits: torch.Tensor
    first_output: torch.Tensor
    last_projected: torch.Tensor | None
    projection_error: str | None = None


class SharedRuns:
    """The traced forwards the behaviour checks of one model share, each run once per prompt.

    Made per model by whoever runs several checks on it (`run_checks`, the plugin's model runner); a check
    called on its own makes its own.
    """

    def __init__(self, model: StandardizedTransformer):
        self.model = model
        self._plain: dict[str, PlainRun] = {}

    def plain(self, prompt: str = INTERVENTION_PROMPT) -> PlainRun:
        if prompt not in self._plain:
            self._plain[prompt] = _plain_run(self.model, prompt)
        return self._plain[prompt]


def _plain_run(model: StandardizedTransformer, prompt: str) -> PlainRun:
    try:
        return _traced_run(model, prompt, project=True)
    except Exception as error:  # noqa: BLE001 - reported by the logit lens check, the others still run
        return replace(_traced_run(model, prompt, project=False), projection_error=f"{type(error).__name__}: {error}")


def _traced_run(model: StandardizedTransformer, prompt: str, project: bool) -> PlainRun:
    prefix = model.num_prefix_positions  # learned prompt positions the logits leave out (CPM-Ant)
    projected: list[torch.Tensor] = []  # filled in the trace (nnsight hands back no name bound to None)
    args, kwargs = model.probe_inputs([prompt])  # a vision-language model's prompt holds an image
    with torch.no_grad(), model.trace(*args, **kwargs):
        inputs = model.inputs.save()
        first = model.layers_output[0]
        first_output = first.clone().save()
        if project:
            last = first if model.num_layers == 1 else model.layers_output[-1]
            projected.append(model.project_on_vocab(model.collapse_streams(last[:, prefix:])).save())
        logits = model.logits.save()
    return PlainRun(inputs, logits, first_output, projected[0] if projected else None)


def _on(values: Any, device: torch.device) -> Any:
    """The tensors among ``values`` (a tuple or dict of forward arguments) moved to ``device``."""
    if isinstance(values, dict):
        return {key: _on(value, device) for key, value in values.items()}
    if isinstance(values, (tuple, list)):
        return type(values)(_on(value, device) for value in values)
    return values.to(device) if isinstance(values, torch.Tensor) else values


def _shared(model: StandardizedTransformer, shared: SharedRuns | None) -> SharedRuns:
    return shared if shared is not None and shared.model is model else SharedRuns(model)


def check_logits_match(model: StandardizedTransformer, prompts: list[str] | None = None,
                       shared: SharedRuns | None = None) -> CheckResult:
    """The standardized model's logits equal the plain HuggingFace forward on the same inputs.

    Prompts run one at a time, so no padding convention enters the comparison. The plain forward gets the
    traced forward's own arguments: the all-ones attention mask a trace passes (transformers 5.0's eager
    Moshi attention is not causal without one), and a vision-language model's image inputs.
    """
    runs = _shared(model, shared)
    device = next(model._module.parameters()).device
    worst = 0.0
    for prompt in prompts or [INTERVENTION_PROMPT]:
        run = runs.plain(prompt)
        args, kwargs = run.inputs
        with torch.no_grad():
            reference = model._module(*_on(args, device), **_on(kwargs, device)).logits
        worst = max(worst, (run.logits - reference).abs().max().item())
    if worst > LOGITS_TOLERANCE:
        return failed(CheckName.LOGITS_MATCH, f"logits differ from the plain model by {worst:.3g}", value=worst,
                      fix="nnterp must not change numerics: report this as a bug")
    return passed(CheckName.LOGITS_MATCH, f"max-abs difference {worst:.2g}", value=worst)


# -- intervention sanity (run by the pytest plugin) ----------------------------------


def check_logit_lens(model: StandardizedTransformer, shared: SharedRuns | None = None) -> CheckResult:
    """``project_on_vocab`` of the last layer's output gives the model's own logits."""
    run = _shared(model, shared).plain()
    projected, logits = run.last_projected, run.logits
    if projected is None:
        return failed(CheckName.LOGIT_LENS, str(run.projection_error),
                      fix="check ln_final / lm_head in the registry row")
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


def check_steering(model: StandardizedTransformer, shared: SharedRuns | None = None) -> CheckResult:
    """``steer`` adds exactly ``factor * vector`` to a layer's output (the steered forward stops after it)."""
    plain = _shared(model, shared).plain().first_output
    vector = torch.linspace(-1, 1, model.hidden_size)
    args, kwargs = model.probe_inputs([INTERVENTION_PROMPT])
    with torch.no_grad(), model.trace(*args, **kwargs) as tracer:
        model.steer(0, vector, factor=0.5)
        steered = model.layers_output[0].save()
        tracer.stop()
    error = (steered - plain - 0.5 * vector.to(plain.dtype)).abs().max().item()
    if error > 1e-4:
        return failed(CheckName.STEERING, f"steered output differs from output + 0.5 * vector by {error:.3g}",
                      value=error)
    return passed(CheckName.STEERING, f"adds exactly factor * vector (error {error:.2g})", value=error)


def check_skip_layers(model: StandardizedTransformer, shared: SharedRuns | None = None) -> CheckResult:
    """Skipping every layer passes the first layer's input through to the last layer's output.

    On a vision-language model, at the text positions: some (Qwen3-VL's deepstack) add image features to the
    stream at the image positions between layers, outside any layer."""
    args, kwargs = model.probe_inputs([INTERVENTION_PROMPT])
    with torch.no_grad(), model.trace(*args, **kwargs):
        input_ids = model.input_ids.save()
        first_input = model.layers_input[0].save()
        model.skip_layers(0, model.num_layers - 1)
        last_output = model.layers_output[-1].save()
    where = ""
    vision = getattr(model, "vision", None)  # a StandardizedVLM's resolved image side
    image_token_id = getattr(vision, "image_token_id", None)
    if image_token_id is not None:
        text = input_ids != image_token_id
        first_input, last_output, where = first_input[text], last_output[text], " at the text positions"
    if not torch.equal(first_input, last_output):
        return failed(CheckName.SKIP, f"after skip_layers(0, last) the last output differs from the first input{where}")
    return passed(CheckName.SKIP, f"skipping {model.num_layers} layers passes the stream through{where}")
