"""Every analysis function on every toy architecture that passes load-time validation (run with -n 2).

Per architecture: heads_output's zero identity on the layers that split into heads, direct logit
attribution's components plus bias equal to the logit, accumulated_resid through project_on_vocab equal to
the logit lens, run_with_cache equal to in-trace reads; and (a test of its own) activation patching of the last
layer at the last position restoring the clean metric, with patches batched in one forward equal to one forward
each. Where the registry's facts say an identity cannot hold, the typed error (`HeadsUnavailable`,
`NotDecomposable`) is required, with its reason, and nowhere else; so is DLA's own refusal (its components
missing the model's logit by more than rounding) on the architectures DLA_REFUSALS names.
"""

import re

import pytest
import torch
from nnsight import save

from nnterp import logit_lens
from nnterp.core.registry import Residual
from nnterp.errors import HeadsUnavailable, NotDecomposable
from nnterp.toolkit.analysis import accumulated_resid, activation_patching, direct_logit_attribution, run_with_cache

from .conftest import validated_toy
from .known_failures import ANALYSIS_FAILURES, ANALYSIS_FUNCTION_FAILURES, DLA_REFUSALS, KNOWN_FAILURES, toy_params

CLEAN, CORRUPTED = "a cat sat", "a dog sat"  # byte-level toy tokenizer: equal token lengths
TARGET, OTHER = 5, 7
SOFT_CAPS = ("final_logit_softcapping", "logits_soft_cap", "output_logit_soft_cap")  # registry LOGIT_TRANSFORMS keys


def metric(logits):
    return logits[:, -1, TARGET] - logits[:, -1, OTHER]


def expected_refusal(model) -> str | None:
    """The NotDecomposable message direct logit attribution must raise, from the registry's facts or DLA_REFUSALS
    (None: none)."""
    arch = model.architecture
    spec = arch.spec
    if spec.layout.streams:
        return "residual streams"
    if spec.blocks.residual is Residual.NONE:
        return "no additive residual"
    if spec.blocks.output_scale_attr:
        return "scales its whole output"
    if any(path is not None for path in arch.residual_input[1:]):
        return "renormalize the stream"
    if arch.head_transform is not None or spec.layout.codebooks.key:
        return "head is not a norm then a linear unembedding"
    config = model._module.config.get_text_config()
    if any(isinstance(getattr(config, key, None), (int, float)) for key in SOFT_CAPS):
        return "non-linear transform"
    if list(model._module.get_submodule(arch.lm_head).children()):  # a dense / norm inside lm_head (RoBERTa)
        return "is not linear"
    if arch.class_name in DLA_REFUSALS:  # its own identity check, with the measured error and the tolerance
        return r"differs from the model's by \S+ .*over the tolerance \S+: 64 eps of torch.float32"
    return None


def check_heads(model) -> None:
    """Zeroing every head of a layer leaves its attention output at the projection's bias (scaled as the block
    scales it); a layer without a split raises HeadsUnavailable naming the layers that have one."""
    splits = model.heads_output._splits
    split_layers = splits.layers_with("projection")
    softmax = set(model.architecture.softmax_layers)
    for layer, split in enumerate(splits.splits()):
        if layer in split_layers:
            continue
        assert layer not in softmax or split.reason, f"layer {layer} has softmax attention but no split reason"
        named = re.escape(f"heads_output[{layer}]: layer {layer} ") + ".*" + \
            re.escape(f"layers that have heads_output: {split_layers or 'none'};")
        with pytest.raises(HeadsUnavailable, match=named):
            with model.trace(CLEAN):
                model.heads_output[layer].save()
    if not split_layers:
        return
    with torch.no_grad(), model.trace(CLEAN):
        zeroed = save([])
        for layer in split_layers:
            model.heads_output[layer] = torch.zeros_like(model.heads_output[layer])
            zeroed.append(model.attentions_output[layer])
    scales = model.architecture.attention_scale
    for layer, value in zip(split_layers, zeroed):
        projection = model.heads_output.projection(layer)._module
        with torch.no_grad():
            bias = projection(value.new_zeros(1, projection.weight.shape[1]))[0] * (scales[layer] if scales else 1.0)
        torch.testing.assert_close(value, bias.expand_as(value), atol=1e-5, rtol=1e-4, msg=f"layer {layer}")


def check_dla(model) -> None:
    refusal = expected_refusal(model)
    if refusal is not None:
        with pytest.raises(NotDecomposable, match=refusal):
            direct_logit_attribution(model, CLEAN, TARGET)
        return
    result = direct_logit_attribution(model, CLEAN, TARGET)
    torch.testing.assert_close(result.total(), result.logits, atol=1e-4, rtol=1e-4)
    assert result.labels[0] == "embed" and len(result.labels) == result.contributions.shape[1]


def check_accumulated_resid(model) -> None:
    accumulated = accumulated_resid(model, CLEAN)
    assert accumulated.residuals.shape[:2] == (model.num_layers + 1, 1)
    with torch.no_grad():
        projected = model.project_on_vocab(accumulated.residuals[1:]).float().log_softmax(-1).transpose(0, 1)
    torch.testing.assert_close(projected, logit_lens(model, CLEAN).log(), atol=1e-3, rtol=1e-3)


def check_cache(model) -> None:
    layers = sorted({0, model.num_layers - 1})
    cache = run_with_cache(model, CLEAN, "layers_output", layers=layers)
    with torch.no_grad(), model.trace(CLEAN):
        expected = save([model.layers_output[layer] for layer in layers])
    for layer, value in zip(layers, expected):
        torch.testing.assert_close(cache["layers_output", layer], value.cpu(), msg=f"layer {layer}")


def check_patching(model) -> None:
    """The last layer's last position restores the clean metric; patches batched in one forward (copies of the
    corrupted rows) give what one forward per patch gives, whatever the layout of the native tensors."""
    layers, positions = [0, model.num_layers - 1], [-1, 1]
    result = activation_patching(model, CLEAN, CORRUPTED, metric, layers=layers, positions=positions)
    assert result.values.shape == (2, 2)
    assert result.values[1, 0].item() == pytest.approx(result.clean_metric, abs=1e-4, rel=1e-4)
    single = activation_patching(model, CLEAN, CORRUPTED, metric, layers=layers, positions=positions,
                                 patches_per_forward=1)
    torch.testing.assert_close(result.values, single.values, atol=1e-4, rtol=1e-4)


def check_weight_directions(model) -> bool:
    """Where the head is a plain nn.Linear under linear logit transforms, DLA's directions read from its weights
    equal those read by calling the head on basis vectors; whether they were compared."""
    from nnterp.toolkit.analysis import readout

    refusal = expected_refusal(model)
    if not readout._plain_linear_head(model) or refusal in ("head is not a norm then a linear unembedding",
                                                            "non-linear transform"):
        return False
    like = torch.zeros(1, model.hidden_size)
    targets = torch.tensor([TARGET, OTHER, TARGET])
    try:
        slow = readout.basis_directions(model, targets, like)
    except NotDecomposable as refused:  # a non-linear logit transform: the weights refuse it the same way
        with pytest.raises(NotDecomposable, match=re.escape(str(refused))):
            readout.weight_directions(model, targets, like)
        return False
    torch.testing.assert_close(readout.weight_directions(model, targets, like), slow, atol=1e-5, rtol=1e-4)
    return True


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "cohere"])
def test_dla_reads_a_plain_linear_heads_directions_from_its_weights(model_type):
    """Untied (llama), tied to the embeddings (gpt2), and under a logit scale (cohere)."""
    model = validated_toy(model_type)
    assert check_weight_directions(model)


@pytest.mark.parametrize("model_type", toy_params(ANALYSIS_FAILURES, leave_out=KNOWN_FAILURES))
def test_analysis_identities_hold(model_type):
    model = validated_toy(model_type)
    check_heads(model)
    check_weight_directions(model)
    check_dla(model)
    check_accumulated_resid(model)
    check_cache(model)


PATCHING_FAILURES = {class_name: failures["activation_patching"] for class_name, failures
                     in ANALYSIS_FUNCTION_FAILURES.items() if "activation_patching" in failures}


@pytest.mark.parametrize("model_type", toy_params(PATCHING_FAILURES, leave_out=KNOWN_FAILURES))
def test_activation_patching_restores_the_clean_metric_and_batches_exactly(model_type):
    check_patching(validated_toy(model_type))
