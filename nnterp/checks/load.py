"""The load-time checks: renaming, then, on one probing forward, shapes, the residual identity and
attention probabilities. ``run_load_checks`` always returns one result per load-time check of the
catalogue, in its order; a check that could not run says which failed first."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..core.probing import Probe, probe
from ..core.registry import Residual
from .catalogue import CATALOGUE, CheckName, CheckResult, ReportStatus, failed, not_applicable, passed

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer

RESIDUAL_TOLERANCE = 1e-4  # relative to the largest activation of the layer
PROBS_SUM_TOLERANCE = 1e-3


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


def check_io_shapes(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """Every accessor yields a tensor of the expected shape."""
    rows, seq = result.input_ids.shape
    spec = model.architecture.spec  # with codebooks (MusicGen), input and logits rows are batch * codebooks
    batch = rows // spec.layout.codebooks.count(model._module.config)
    stream = seq + model.num_prefix_positions  # learned prompt positions (CPM-Ant)
    layer_io = (batch, stream, *model.token_state_shape)  # multi-stream layouts are served canonically
    expected = {"token_embeddings": (batch, stream, model.hidden_size), "layers_input": layer_io,
                "layers_output": layer_io,
                **dict.fromkeys(("attentions_input", "attentions_output", "mlps_input", "mlps_output"),
                                _sublayer_shape(model, batch, stream))}
    per_layer: list[tuple[int, ...]] = []
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
    return model.architecture.spec.layout.streams.sublayer_shape(model._module.config, batch, seq, model.hidden_size)


def _probability_shapes(model: StandardizedTransformer, batch: int, seq: int) -> list[tuple[int, ...]]:
    """Each layer's (batch, heads, queries, keys), as the registry row's attention facts declare them."""
    return model.architecture.spec.attention_facts.probability_shapes(model._module.config, model.num_layers, batch,
                                                                      model.num_heads, seq)


def check_residual(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """``layers_output[i] == layers_input[i] + attentions_output[i] + mlps_output[i]``, where it should hold."""
    arch = model.architecture
    if arch.spec.blocks.residual is Residual.NONE:
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
        if arch.spec.blocks.output_scale_attr:  # the block scales its whole output (Gemma 4's layer_scalar)
            total = total * torch.as_tensor(getattr(layers[i], arch.spec.blocks.output_scale_attr)).to(total)
        error = ((output - total).abs().max() / output.abs().max().clamp_min(1e-6)).item()
        if error > worst:
            worst, worst_layer = error, i
    if worst > RESIDUAL_TOLERANCE:
        return failed(CheckName.RESIDUAL,
                      f"layer {worst_layer}: layers_output differs from layers_input + attentions_output + "
                      f"mlps_output by {worst:.3g} (relative max-abs error, tolerance {RESIDUAL_TOLERANCE})",
                      value=worst, fix="set attention_output / mlp_output (post-norms) or residual in the "
                                       "architecture's registry row or RenameConfig")
    return passed(CheckName.RESIDUAL, f"{arch.spec.blocks.residual.value} residual holds (max rel. error {worst:.2g})",
                  value=worst)


def check_attention_probabilities(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """Probabilities sum to 1 over keys, and editing them changes the logits: the worse of the two
    (both messages unless it is n/a)."""
    sums, effect = _probability_parts(model, result)
    worst = ReportStatus.worst((sums.status, effect.status))
    message = (f"{sums.message}; {effect.message}" if worst is not ReportStatus.NOT_APPLICABLE
               else (sums if sums.status is worst else effect).message)
    fix = next((part.fix for part in (sums, effect) if part.status is worst and part.fix), None)
    return CheckResult(CheckName.ATTN_PROBS, worst, message, sums.value, fix)


def _probability_parts(model: StandardizedTransformer, result: Probe) -> tuple[CheckResult, CheckResult]:
    """(sum-to-one, edit effect), each a result of its own."""
    arch, name = model.architecture, CheckName.ATTN_PROBS
    if not model.attention_probabilities.enabled:
        reason = "attention probabilities not enabled (enable_attention_probs=False)"
        return not_applicable(name, reason), not_applicable(name, reason)
    found = [(i, p) for i, p in enumerate(result.values["attention_probabilities"]) if p is not None]
    if not found:
        if not arch.softmax_layers:
            reason = f"{arch.class_name} has no softmax attention"
            return not_applicable(name, reason), not_applicable(name, reason)
        fix = _probabilities_fix(model, "pin the operation with RenameConfig(attn_prob_ops=...), see "
                                        "attention_probabilities.print_source()")
        reason = "no softmax attention found in any layer"
        return failed(name, reason, fix=fix), failed(name, reason, fix=fix)
    found = [(i, _real_query_rows(p, result.attention_mask)) for i, p in found]
    sums = _check_sums_with_sinks(found) if arch.spec.attention_facts.attention_sinks else _check_sums(found)
    return sums, _check_edit_effect(model, result)


def _check_edit_effect(model: StandardizedTransformer, result: Probe) -> CheckResult:
    """Editing one layer's probabilities changes the logits; NaN logits are named as such, since
    NaN compares unequal to everything and would otherwise read as "unchanged"."""
    layer, edited = result.edited_layer, result.edited_logits
    if edited is None:
        return not_applicable(CheckName.ATTN_PROBS, "no layer's probabilities were located, so none was edited")
    nan_positions = [int((logits.isnan().any(-1)).sum()) for logits in (result.logits, edited)]
    if any(nan_positions):
        return failed(CheckName.ATTN_PROBS, f"the logits hold NaN at {nan_positions[0]} positions before and "
                      f"{nan_positions[1]} after editing layer {layer}'s probabilities, so the edit's effect cannot "
                      "be measured: the model's own forward yields NaN on the probe's (padded) batch",
                      fix="run the model's forward on the probe prompts to find where NaN first appears")
    change = (edited - result.logits).abs().max().item()
    if change > 0:
        return passed(CheckName.ATTN_PROBS, f"editing layer {layer} changes logits by {change:.3g}", value=change)
    return failed(CheckName.ATTN_PROBS, f"editing layer {layer}'s probabilities left the logits unchanged: "
                  "the located tensor is not the one the attention uses", value=change,
                  fix=_probabilities_fix(model, "pin the operation with RenameConfig(attn_prob_ops=...)"))


def _probabilities_fix(model: StandardizedTransformer, default: str) -> str:
    """The fix for probabilities that fail: build the model eager where nnterp switched a built one, else
    ``default``."""
    from ..core.eager_attention import rebuild_hint

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
        return failed(CheckName.ATTN_PROBS, f"layer {worst_layer}: probabilities sum to 1 +- {worst:.3g} "
                      f"(tolerance {PROBS_SUM_TOLERANCE}); the located operation is not the softmax output",
                      value=worst, fix="pin the operation with RenameConfig(attn_prob_ops=...)")
    return passed(CheckName.ATTN_PROBS, f"{len(found)} layers sum to 1 (max error {worst:.2g})", value=worst)


def _check_sums_with_sinks(found: list[tuple[int, torch.Tensor]]) -> CheckResult:
    """With attention sinks, the sink logits take part of the softmax mass and attend to nothing,
    so the probabilities over the real keys sum to a value in [0, 1] (0 for a fully masked
    padding row, where the sink takes everything). More than 1, or a negative entry, means the
    located tensor is not the probabilities."""
    worst, worst_layer = max((max((p.float().sum(dim=-1) - 1).max().item(), -p.float().min().item()), i)
                             for i, p in found)
    if worst > PROBS_SUM_TOLERANCE:
        return failed(CheckName.ATTN_PROBS, f"layer {worst_layer}: probabilities exceed the [0, 1] range of "
                      f"sums with attention sinks by {worst:.3g} (tolerance {PROBS_SUM_TOLERANCE})",
                      value=worst, fix="pin the operation with RenameConfig(attn_prob_ops=...)")
    return passed(CheckName.ATTN_PROBS, f"{len(found)} layers sum to at most 1 over the real keys "
                  f"(attention sinks hold the rest; max excess {max(worst, 0.0):.2g})", value=worst)


def run_load_checks(model: StandardizedTransformer) -> list[CheckResult]:
    """The load-time checks: renaming, then one probing forward for shapes, residual and probabilities.
    One result per load-time check of the catalogue; those that could not run fail, naming the first failure."""
    results = [check_renaming(model)]
    if not results[0].failed:
        try:
            seen = probe(model)
        except Exception as error:  # noqa: BLE001 - any failure of the probe is the check's finding, reported below
            message = f"the probing forward pass failed: {type(error).__name__}: {error}"
            fix = "see the error; describe the model with RenameConfig"
            if model.attention_probabilities.switched_from is not None:
                fix = _probabilities_fix(model, fix) + "; or " + fix
            results.append(failed(CheckName.IO_SHAPES, message, fix=fix))
        else:
            results += [check_io_shapes(model, seen), check_residual(model, seen),
                        check_attention_probabilities(model, seen)]
    return results + [_not_reached(check.name, results) for check in CATALOGUE[len(results):] if check.at_load]


def _not_reached(name: CheckName, results: list[CheckResult]) -> CheckResult:
    first_failure = next((result for result in results if result.failed), None)
    return failed(name, f"not reached: {first_failure.name.value} failed first" if first_failure else "not reached")
