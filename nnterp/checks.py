"""Named checks of a standardized model, returning structured results.

The loader runs `run_load_checks` when a model is built; the pytest plugin runs the same
checks and records their results in the compatibility reports.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from nnsight import save

from .accessors import unwrap, walk
from .registry import Residual, StreamLayout


if TYPE_CHECKING:
    from .standardized import StandardizedTransformer

PROBE_PROMPTS = ["The quick brown fox jumps over the dog.", "Hello world"]
RESIDUAL_TOLERANCE = 1e-4  # relative to the largest activation of the layer
PROBS_SUM_TOLERANCE = 1e-3
LOGITS_TOLERANCE = 1e-4


class CheckName(str, Enum):
    RENAMING = "renaming"
    IO_SHAPES = "io_shapes"
    RESIDUAL = "residual_identity"
    ATTN_PROBS_SUM = "attn_probs_sum"
    ATTN_PROBS_EFFECT = "attn_probs_effect"
    LOGITS_MATCH = "logits_match"
    LOGIT_LENS = "logit_lens"
    STEERING = "steering"
    SKIP = "skip_layers"


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``value`` is what was measured (an error, a count...), if anything."""

    name: CheckName
    status: Status
    message: str = ""
    value: float | None = None
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED


def passed(name: CheckName, message: str = "", value: float | None = None) -> CheckResult:
    return CheckResult(name, Status.PASSED, message, value)


def failed(name: CheckName, message: str, value: float | None = None, fix: str | None = None) -> CheckResult:
    return CheckResult(name, Status.FAILED, message, value, fix)


def not_applicable(name: CheckName, message: str) -> CheckResult:
    return CheckResult(name, Status.NOT_APPLICABLE, message)


# -- renaming ----------------------------------------------------------------------


def check_renaming(model: StandardizedTransformer) -> CheckResult:
    """Every standardized module resolves to a module of the right kind."""
    arch = model.architecture
    problems = []
    if not isinstance(model.layers._module, torch.nn.ModuleList):
        problems.append(f"`layers` ({arch.layers}) is a {type(model.layers._module).__name__}, not a ModuleList")
    if not any(arch.attention):
        problems.append("no layer has an attention (or token-mixer) module")
    missing_attention = [i for i, path in enumerate(arch.attention) if path is None]
    if missing_attention:
        problems.append(f"layers {missing_attention} have no attention module")
    if problems:
        return failed(CheckName.RENAMING, "; ".join(problems),
                      fix="describe the model with rename_config=RenameConfig(...)")
    mlp_note = "" if all(arch.mlp_output) else " (no separate MLP)"
    return passed(CheckName.RENAMING, f"{arch.num_layers} layers at {arch.layers}{mlp_note}")


# -- one probing forward pass ---------------------------------------------------------


@dataclass
class Probe:
    """Everything the checks read from one forward pass (two invokes of the same batch)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    values: dict[str, list[Any]]
    logits: torch.Tensor
    edited_logits: torch.Tensor | None
    edited_layer: int | None
    layer_output_arity: int  # 0: a tensor; n: a tuple or list of n elements


def probe(model: StandardizedTransformer) -> Probe:
    """Read every accessor of every layer and edit one layer's probabilities, in one forward (two invokes)."""
    arch = model.architecture
    probs_on = model.attention_probabilities.enabled
    located = [i for i, loc in enumerate(model.attention_probabilities.locations) if loc is not None]
    edited_layer = located[0] if probs_on and located else None
    values: dict[str, list[Any]] = {name: [None] * arch.num_layers for name in PROBED}
    values["residual_extra"] = [[] for _ in range(arch.num_layers)]
    prompts = PROBE_PROMPTS
    with torch.no_grad(), model.trace() as tracer:
        with tracer.invoke(prompts):
            input_ids = model.input_ids.save()
            attention_mask = save(model.attention_mask)
            embeddings = model.token_embeddings.save()
            for i in range(arch.num_layers):
                for step in layer_read_steps(model, i):
                    value = step.read()
                    if step.name == "residual_extra":
                        values["residual_extra"][i].append(value)
                    else:
                        values[step.name][i] = value
                if i == 0:
                    raw = model.layers[0].output
                    arity = save(len(raw) if isinstance(raw, (tuple, list)) else 0)
                values["layers_output"][i] = model.layers_output[i].save()
            logits = model.logits.save()
        if edited_layer is not None and arch.spec.batch_first_everywhere:
            with tracer.invoke(prompts):  # same forward pass, its own rows
                edited_logits = _edit_probabilities(model, edited_layer)
    if edited_layer is not None and not arch.spec.batch_first_everywhere:
        # A trace of its own: nnsight splits invokes along the first axis, which is not the batch
        # where a module flattens it (Llama 4's MoE) or streams lead (AltUp).
        with torch.no_grad(), model.trace(prompts):
            edited_logits = _edit_probabilities(model, edited_layer)
    values["token_embeddings"] = [embeddings]
    return Probe(input_ids, attention_mask, values, logits, edited_logits if edited_layer is not None else None,
                 edited_layer, int(arity))


PROBED = ("layers_input", "residual_input", "attentions_input", "attention_probabilities", "attentions_output",
          "mlps_input", "mlps_output", "layers_output")
INPUT, PROBABILITIES, OUTPUT = 0, 1, 2  # within one module, what nnsight serves first


@dataclass(frozen=True)
class ReadStep:
    """One value the probe reads inside a layer, with where the layer's forward reaches it."""

    name: str
    position: tuple[int, int]
    read: Any  # () -> saved value


def layer_read_steps(model: StandardizedTransformer, index: int) -> list[ReadStep]:
    """What to read in one layer, sorted by where the layer's forward calls each module.

    nnsight serves values in execution order, and blocks differ in it (Falcon-H1 runs its Mamba
    mixer before attention; sandwich norms run after their sublayer), so the order comes from
    the layer's own source rather than a fixed attention-then-MLP assumption.
    """
    arch, layer = model.architecture, model.layers[index]
    probs_on = model.attention_probabilities.enabled and model.attention_probabilities.locations[index] is not None
    order = call_order(type(layer._module))

    def at(path: str | None, phase: int) -> tuple[int, int]:
        if not path:
            return (-1, phase)
        return (order.get(path, order.get(path.split(".")[0], len(order))), phase)

    steps = [ReadStep("layers_input", (-1, INPUT), lambda: _snapshot(model.layers_input[index]))]
    if arch.residual_input and arch.residual_input[index] is not None:
        path = arch.residual_input[index]
        steps.append(ReadStep("residual_input", at(path, OUTPUT), lambda: _snapshot(unwrap(walk(layer, path).output))))
    if arch.attention[index] is not None:
        steps.append(ReadStep("attentions_input", at(arch.attention[index], INPUT),
                              lambda: model.attentions_input[index].save()))
        if probs_on:
            steps.append(ReadStep("attention_probabilities", at(arch.attention[index], PROBABILITIES),
                                  lambda: model.attention_probabilities[index].save()))
    if arch.attention_output[index] is not None:
        steps.append(ReadStep("attentions_output", at(arch.attention_output[index], OUTPUT),
                              lambda: _snapshot(model.attentions_output[index])))
    if arch.mlp_input[index] is not None:
        steps.append(ReadStep("mlps_input", at(arch.mlp_input[index], INPUT), lambda: _snapshot(model.mlps_input[index])))
    if arch.mlp_output[index] is not None:
        steps.append(ReadStep("mlps_output", at(arch.mlp_output[index], OUTPUT),
                              lambda: _snapshot(model.mlps_output[index])))
    extras = zip(arch.residual_extra[index] if arch.residual_extra else (),
                 arch.residual_extra_scale[index] if arch.residual_extra_scale else ())
    for path, scale in extras:
        steps.append(ReadStep("residual_extra", at(path, OUTPUT),
                              lambda path=path, scale=scale: _snapshot(unwrap(walk(layer, path).output) * scale)))
    return sorted(steps, key=lambda step: step.position)


@lru_cache(maxsize=None)
def call_order(layer_class: type) -> dict[str, int]:
    """Each direct child's rank by its first call in the layer's forward, helper methods inlined.

    ``self.attention(...)`` is a call, ranked as ``attention``; ``self.self_attn[1](...)`` (a block
    holding two attentions, LongCat) as ``self_attn.1``; ``self.feed_forward_chunk`` (a method of the
    layer, e.g. handed to a chunking helper) is read in place, so the calls it makes count where it is used.
    """
    calls: list[str] = []
    _collect_calls(layer_class, layer_class.forward, calls, set())
    return {name: rank for rank, name in enumerate(dict.fromkeys(calls))}


def _collect_calls(layer_class: type, function: Any, calls: list[str], seen: set[str]) -> None:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return
    for match in re.finditer(r"self\.(\w+)(?:\[(\d+)\])?(\s*\()?", source):
        name, index, is_call = match.group(1), match.group(2), match.group(3) is not None
        if index is not None:
            if is_call:
                calls.append(f"{name}.{index}")
            continue
        method = getattr(layer_class, name, None)
        if inspect.isfunction(method) and name not in seen and name != "forward":
            seen.add(name)
            _collect_calls(layer_class, method, calls, seen)
        elif is_call:
            calls.append(name)


def _edit_probabilities(model: StandardizedTransformer, layer: int) -> Any:
    """Inside a trace: move all of one layer's attention onto the first key; return the saved logits."""
    probs = model.attention_probabilities[layer]
    focused = torch.zeros_like(probs)
    focused[..., 0] = 1.0
    model.attention_probabilities[layer] = focused
    return model.logits.save()


def _snapshot(value: Any) -> Any:
    """A saved copy of a value as it is now: some blocks later edit a sublayer's output in
    place (Falcon's ``mlp_output += attention_output``), which would change a saved reference."""
    return save(value.clone() if isinstance(value, torch.Tensor) else value)


def check_io_shapes(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """Every accessor yields a tensor of the expected shape."""
    rows, seq = result.input_ids.shape
    spec = model.architecture.spec  # with codebooks (MusicGen), input and logits rows are batch * codebooks
    batch = rows // (getattr(model._module.config, spec.codebooks_key, 1) if spec.codebooks_key else 1)
    stream = seq + model.num_prefix_positions  # learned prompt positions (CPM-Ant)
    layer_io = (batch, stream, *model.token_state_shape)  # multi-stream layouts are served canonically
    expected = {"token_embeddings": (batch, stream, model.hidden_size), "layers_input": layer_io, "layers_output": layer_io,
                **dict.fromkeys(("attentions_input", "attentions_output", "mlps_input", "mlps_output"),
                                _sublayer_shape(model, batch, stream))}
    per_layer = {}
    if any(value is not None for value in result.values["attention_probabilities"]):
        expected["attention_probabilities"] = (batch, model.num_heads, stream, stream)
        per_layer = _probability_shapes(model, batch, stream)
    problems, count = [], 0
    for name, shape in expected.items():
        for index, value in enumerate(result.values[name]):
            if value is None:
                continue
            if name == "attention_probabilities" and per_layer:
                shape = per_layer[index]
            count += 1
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            if found != shape:
                problems.append(f"{name}[{index}]: expected {shape}, found {found}")
    logits_shape = (rows, seq, model.vocab_size)
    if tuple(result.logits.shape) != logits_shape:
        problems.append(f"logits: expected {logits_shape}, found {tuple(result.logits.shape)}")
    if problems:
        return failed(CheckName.IO_SHAPES, "; ".join(problems[:6]) + (" ..." if len(problems) > 6 else ""),
                      value=len(problems),
                      fix="point the accessor at the right module with RenameConfig(attention_output=..., ...)")
    return passed(CheckName.IO_SHAPES, f"{count + 1} tensors have the expected shapes", value=0)


def _sublayer_shape(model: StandardizedTransformer, batch: int, seq: int) -> tuple[int, ...]:
    """(batch, seq, hidden); streams laid along the sequence (ProphetNet) flow through every sublayer too."""
    spec = model.architecture.spec
    streams = spec.stream_count(model._module.config)
    if streams is None or spec.stream_layout is not StreamLayout.SEQUENCE:
        return (batch, seq, model.hidden_size)
    return spec.stream_layout.shape(batch, seq, streams, model.hidden_size)


def _probability_shapes(model: StandardizedTransformer, batch: int, seq: int) -> list[tuple[int, ...]]:
    """Each layer's (batch, heads, queries, keys): heads may vary by layer (Laguna), and compressed
    attention layers have seq // rate more keys (DeepSeek-V4), as the registry row declares."""
    spec, config = model.architecture.spec, model._module.config.get_text_config()
    heads = list(getattr(config, spec.heads_per_layer_key, None) or []) if spec.heads_per_layer_key else []
    rates = (getattr(config, spec.compressed_key_rates_key, None) or {}) if spec.compressed_key_rates_key else {}
    layer_types = getattr(config, "layer_types", None) or [None] * model.num_layers
    return [(batch, heads[i] if heads else model.num_heads, seq,
             seq + (seq // rates[layer_types[i]] if layer_types[i] in rates else 0)) for i in range(model.num_layers)]


def check_residual(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """``layers_output[i] == layers_input[i] + attentions_output[i] + mlps_output[i]``, where it should hold."""
    arch = model.architecture
    if arch.spec.residual is Residual.NONE:
        return not_applicable(CheckName.RESIDUAL, f"{arch.class_name} blocks have no additive residual identity"
                              + (f" ({arch.spec.note})" if arch.spec.note else ""))
    worst, worst_layer = 0.0, None
    layers = model._module.get_submodule(arch.layers)
    for i in range(arch.num_layers):
        parts = [result.values[name][i] for name in ("layers_input", "attentions_output", "mlps_output")]
        if result.values["residual_input"][i] is not None:  # the block normalizes its input first (RWKV)
            parts[0] = result.values["residual_input"][i]
        output = result.values["layers_output"][i]
        if output is None or parts[0] is None or parts[1] is None:
            continue
        terms = [part for part in parts + result.values["residual_extra"][i] if part is not None]
        if any(not isinstance(term, torch.Tensor) or term.shape != output.shape for term in terms):
            return failed(CheckName.RESIDUAL, f"layer {i}: the terms do not all have the layer output's shape "
                          f"{tuple(output.shape)} (see io_shapes)", fix="point the accessors at the right modules")
        total = sum(terms)
        if arch.spec.output_scale_attr:  # the block scales its whole output (Gemma 4's layer_scalar)
            total = total * torch.as_tensor(getattr(layers[i], arch.spec.output_scale_attr)).to(total)
        error = ((output - total).abs().max() / output.abs().max().clamp_min(1e-6)).item()
        if error > worst:
            worst, worst_layer = error, i
    if worst > RESIDUAL_TOLERANCE:
        return failed(CheckName.RESIDUAL,
                      f"layer {worst_layer}: layers_output differs from layers_input + attentions_output + "
                      f"mlps_output by {worst:.3g} (relative max-abs error, tolerance {RESIDUAL_TOLERANCE})",
                      value=worst, fix="set attention_output / mlp_output (post-norms) or residual in the "
                                       "architecture's registry row or RenameConfig")
    return passed(CheckName.RESIDUAL, f"{arch.spec.residual.value} residual holds (max rel. error {worst:.2g})",
                  value=worst)


def check_attention_probabilities(model: StandardizedTransformer, result: Probe) -> list[CheckResult]:
    """Probabilities sum to 1 over keys, and editing them changes the logits."""
    arch = model.architecture
    if not model.attention_probabilities.enabled:
        reason = "attention probabilities not enabled (enable_attention_probs=False)"
        return [not_applicable(CheckName.ATTN_PROBS_SUM, reason), not_applicable(CheckName.ATTN_PROBS_EFFECT, reason)]
    found = [(i, p) for i, p in enumerate(result.values["attention_probabilities"]) if p is not None]
    if not found:
        has_softmax_layers = bool(arch.softmax_layers)
        reason = "no softmax attention found in any layer"
        if not has_softmax_layers:
            return [not_applicable(CheckName.ATTN_PROBS_SUM, f"{arch.class_name} has no softmax attention"),
                    not_applicable(CheckName.ATTN_PROBS_EFFECT, f"{arch.class_name} has no softmax attention")]
        fix = _probabilities_fix(model, "pin the operation with RenameConfig(attn_prob_ops=...), see "
                                        "attention_probabilities.print_source()")
        return [failed(CheckName.ATTN_PROBS_SUM, reason, fix=fix), failed(CheckName.ATTN_PROBS_EFFECT, reason, fix=fix)]
    found = [(i, _real_query_rows(p, result.attention_mask)) for i, p in found]
    sums = _check_sums_with_sinks(found) if arch.spec.attention_sinks else _check_sums(found)
    return [sums, _check_edit_effect(model, result)]


def _check_edit_effect(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """Editing one layer's probabilities changes the logits; NaN logits are named as such, since
    NaN compares unequal to everything and would otherwise read as "unchanged"."""
    layer, edited = result.edited_layer, result.edited_logits
    if edited is None:
        return not_applicable(CheckName.ATTN_PROBS_EFFECT, "no layer's probabilities were located, so none was edited")
    nan_positions = [int((logits.isnan().any(-1)).sum()) for logits in (result.logits, edited)]
    if any(nan_positions):
        return failed(CheckName.ATTN_PROBS_EFFECT, f"the logits hold NaN at {nan_positions[0]} positions before and "
                      f"{nan_positions[1]} after editing layer {layer}'s probabilities, so the edit's effect cannot "
                      "be measured: the model's own forward yields NaN on the probe's (padded) batch",
                      fix="run the model's forward on the probe prompts to find where NaN first appears")
    change = (edited - result.logits).abs().max().item()
    if change > 0:
        return passed(CheckName.ATTN_PROBS_EFFECT, f"editing layer {layer} changes logits by {change:.3g}", value=change)
    return failed(CheckName.ATTN_PROBS_EFFECT, f"editing layer {layer}'s probabilities left the logits unchanged: "
                  "the located tensor is not the one the attention uses", value=change,
                  fix=_probabilities_fix(model, "pin the operation with RenameConfig(attn_prob_ops=...)"))


def _probabilities_fix(model: StandardizedTransformer, default: str) -> str:
    """The fix for probabilities that fail: build the model eager where nnterp switched a built one, else ``default``."""
    from .eager_attention import rebuild_hint

    return rebuild_hint(model.attention_probabilities.switched_from) or default


def _real_query_rows(probs: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """The probability rows of real queries, (rows, keys): a padding query may attend to nothing at all
    (CPM-Ant zeroes it). Positions before the input (learned prefixes) count as real."""
    rows = probs.transpose(1, 2)  # (batch, queries, heads, keys)
    if attention_mask is None:
        return rows.reshape(-1, probs.shape[-1])
    prefix = rows.shape[1] - attention_mask.shape[1]
    real = torch.cat([attention_mask.new_ones(attention_mask.shape[0], prefix), attention_mask], dim=1).bool()
    return rows[real.to(rows.device)].reshape(-1, probs.shape[-1])


def _check_sums(found: list[tuple[int, torch.Tensor]]) -> CheckResult:
    """Softmax probabilities sum to 1 over the keys."""
    worst, worst_layer = max(((p.float().sum(dim=-1) - 1).abs().max().item(), i) for i, p in found)
    if worst > PROBS_SUM_TOLERANCE:
        return failed(CheckName.ATTN_PROBS_SUM, f"layer {worst_layer}: probabilities sum to 1 +- {worst:.3g} "
                      f"(tolerance {PROBS_SUM_TOLERANCE}); the located operation is not the softmax output",
                      value=worst, fix="pin the operation with RenameConfig(attn_prob_ops=...)")
    return passed(CheckName.ATTN_PROBS_SUM, f"{len(found)} layers sum to 1 (max error {worst:.2g})", value=worst)


def _check_sums_with_sinks(found: list[tuple[int, torch.Tensor]]) -> CheckResult:
    """With attention sinks, the sink logits take part of the softmax mass and attend to nothing,
    so the probabilities over the real keys sum to a value in [0, 1] (0 for a fully masked
    padding row, where the sink takes everything). More than 1, or a negative entry, means the
    located tensor is not the probabilities."""
    worst, worst_layer = max((max((p.float().sum(dim=-1) - 1).max().item(), -p.float().min().item()), i)
                             for i, p in found)
    if worst > PROBS_SUM_TOLERANCE:
        return failed(CheckName.ATTN_PROBS_SUM, f"layer {worst_layer}: probabilities exceed the [0, 1] range of "
                      f"sums with attention sinks by {worst:.3g} (tolerance {PROBS_SUM_TOLERANCE})",
                      value=worst, fix="pin the operation with RenameConfig(attn_prob_ops=...)")
    return passed(CheckName.ATTN_PROBS_SUM, f"{len(found)} layers sum to at most 1 over the real keys "
                  f"(attention sinks hold the rest; max excess {max(worst, 0.0):.2g})", value=worst)


def run_load_checks(model: StandardizedTransformer) -> list[CheckResult]:
    """The load-time checks: renaming, then one probing forward for shapes, residual and probabilities."""
    results = [check_renaming(model)]
    if results[0].failed:
        return results
    try:
        result = probe(model)
    except Exception as error:  # noqa: BLE001 - any failure of the probe is the check's finding, reported below
        message = f"the probing forward pass failed: {type(error).__name__}: {error}"
        fix = "see the error; describe the model with RenameConfig"
        if model.attention_probabilities.switched_from is not None:
            fix = _probabilities_fix(model, fix) + "; or " + fix
        return results + [failed(CheckName.IO_SHAPES, message, fix=fix)]
    model._layer_output_arity = result.layer_output_arity
    results.append(check_io_shapes(model, result))
    results.append(check_residual(model, result))
    results.extend(check_attention_probabilities(model, result))
    return results


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
    return passed(CheckName.LOGIT_LENS, f"last-layer projection equals the logits (rel. error {error:.2g})", value=error)


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
