"""The load-time probe: one forward pass (two invokes) that reads every accessor of every layer and edits
one layer's attention probabilities, so that all load checks run on what it saw."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from nnsight import save

from .accessors import unwrap, walk

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer

PROBE_PROMPTS = ["The quick brown fox jumps over the dog.", "Hello world"]


@dataclass
class Probe:
    """Everything the checks read from one forward pass (two invokes of the same batch)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    values: dict[str, list[Any]]
    logits: torch.Tensor
    edited_logits: torch.Tensor | None
    edited_layer: int | None


def probe(model: StandardizedTransformer) -> Probe:
    """Read every accessor of every layer and edit one layer's probabilities, in one forward (two invokes)."""
    arch = model.architecture
    probs_on = model.attention_probabilities.enabled
    located = [i for i, loc in enumerate(model.attention_probabilities.locations) if loc is not None] \
        if probs_on else []
    edited_layer = located[0] if located else None
    values: dict[str, list[Any]] = {name: [None] * arch.num_layers for name in PROBED}
    values["residual_extra"] = [[] for _ in range(arch.num_layers)]
    args, kwargs = model.probe_inputs(PROBE_PROMPTS)
    with torch.no_grad(), model.trace() as tracer:
        with tracer.invoke(*args, **kwargs):
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
                values["layers_output"][i] = model.layers_output[i].save()
            logits = model.logits.save()
        if edited_layer is not None and _edit_in_same_forward(model):
            with tracer.invoke(*args, **kwargs):  # same forward pass, its own rows
                edited_logits = _edit_probabilities(model, edited_layer)
    if edited_layer is not None and not _edit_in_same_forward(model):
        # A trace of its own: nnsight splits invokes along the first axis, which is not the batch
        # where a module flattens it (Llama 4's MoE) or streams lead (AltUp); and it cannot batch
        # two invokes of processor encodings (images).
        with torch.no_grad(), model.trace(*args, **kwargs):
            edited_logits = _edit_probabilities(model, edited_layer)
    values["token_embeddings"] = [embeddings]
    return Probe(input_ids, attention_mask, values, logits, edited_logits if edited_layer is not None else None,
                 edited_layer)


def _edit_in_same_forward(model: StandardizedTransformer) -> bool:
    """Whether the probability edit can be a second invoke of the probe's forward."""
    return model.architecture.spec.layout.batch_first_everywhere and model.invokes_batch


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
    order = call_order(layer._module.__class__)

    def at(path: str | None, phase: int) -> tuple[int, int]:
        if not path:
            return (-1, phase)
        return (order.get(path, order.get(path.split(".")[0], len(order))), phase)

    steps = [ReadStep("layers_input", (-1, INPUT), lambda: _snapshot(model.layers_input[index]))]
    if arch.residual_input and arch.residual_input[index] is not None:
        residual_path: str = arch.residual_input[index]  # type: ignore[assignment]  # not None: checked above
        steps.append(ReadStep("residual_input", at(residual_path, OUTPUT),
                              lambda: _snapshot(unwrap(walk(layer, residual_path).output))))
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
        steps.append(ReadStep("mlps_input", at(arch.mlp_input[index], INPUT),
                              lambda: _snapshot(model.mlps_input[index])))
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
def call_order(layer_class: Any) -> dict[str, int]:
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
