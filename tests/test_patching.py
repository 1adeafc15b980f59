"""Activation and attribution patching: the grid's identities, batching through invokes, and the estimate."""

import pytest
import torch

from nnterp.core.registry import StreamLayout
from nnterp.errors import MetricError, NonFiniteValue, PromptError, ToolkitInputError
from nnterp.toolkit.analysis.patching import PATCHABLE, activation_patching, attribution_patching
from nnterp.toy.standardized import standardized_toy

CLEAN = ["hello world there", "a big cat sat now"]
CORRUPTED = ["hello wirld there", "a big dog sat now"]  # same token lengths, a few tokens changed


def metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


@pytest.fixture(scope="module", params=["llama", "gpt2", "gpt_neox"])
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def test_last_layer_restores_the_last_position_and_nothing_else(model):
    """Patching the last layer's output: the last position gives the clean metric, others leave the corrupted one."""
    last = model.num_layers - 1
    result = activation_patching(model, CLEAN, CORRUPTED, metric, layers=[last])
    assert result.values.shape == (1, 17) and result.positions == tuple(range(17))
    assert result.values[0, -1].item() == pytest.approx(result.clean_metric, abs=1e-5)
    torch.testing.assert_close(result.values[0, :-1], torch.full((16,), result.corrupted_metric), atol=1e-5,
                               rtol=1e-5)
    assert result.normalized()[0, -1].item() == pytest.approx(1.0, abs=1e-3)


def test_a_progress_bar_counts_the_patched_forwards_and_can_be_silenced(capsys):
    model = standardized_toy("llama", enable_attention_probs=False)
    shown = activation_patching(model, CLEAN, CORRUPTED, metric, layers=[0, 1], positions=[-1, -2, -3],
                                patches_per_forward=2)
    bar = capsys.readouterr().err
    assert "activation patching" in bar and "3/3" in bar  # 2 layers x 3 positions, 2 patches per forward
    silent = activation_patching(model, CLEAN, CORRUPTED, metric, layers=[0, 1], positions=[-1, -2, -3],
                                 patches_per_forward=2, progress=False)
    assert capsys.readouterr().err == ""
    torch.testing.assert_close(shown.values, silent.values)


@pytest.mark.parametrize("accessor", ["layers_output", "attentions_output", "mlps_output", "heads_output"])
def test_patches_batched_through_invokes_equal_one_per_forward(model, accessor):
    batched = activation_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=[-1, 6, 9])
    single = activation_patching(model, CLEAN, CORRUPTED, metric, accessor=accessor, positions=[-1, 6, 9],
                                 patches_per_forward=1)
    expected = (model.num_layers, model.num_heads, 3) if accessor == "heads_output" else (model.num_layers, 3)
    assert batched.values.shape == expected and batched.positions == (16, 6, 9)
    torch.testing.assert_close(batched.values, single.values, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def streams_first():
    """Gemma 3n: its layers' native inputs and outputs are (streams, batch, seq, hidden) (AltUp), so the batch is
    not their first axis, which nnsight splits between invokes."""
    model = standardized_toy("Gemma3nForCausalLM", enable_attention_probs=False)
    assert model.architecture.spec.layout.streams.layout is StreamLayout.LEADING
    return model


@pytest.mark.parametrize("accessor", [name for name in PATCHABLE if name != "attention_probabilities"])  # loaded off
def test_patches_batched_in_one_forward_equal_one_per_forward_when_streams_lead(streams_first, accessor):
    layers = [0, streams_first.num_layers - 1]
    batched = activation_patching(streams_first, CLEAN, CORRUPTED, metric, accessor=accessor, layers=layers,
                                  positions=[-1, 6])
    single = activation_patching(streams_first, CLEAN, CORRUPTED, metric, accessor=accessor, layers=layers,
                                 positions=[-1, 6], patches_per_forward=1)
    torch.testing.assert_close(batched.values, single.values, atol=1e-5, rtol=1e-5)
    if accessor == "layers_output":  # the last layer's last position restores the clean metric, in the batch too
        assert batched.values[-1, 0].item() == pytest.approx(batched.clean_metric, abs=1e-4)
        assert batched.values[-1, 0].item() != pytest.approx(batched.corrupted_metric, abs=1e-3)


def _attribution_by_hand(model):
    """Per layer, (clean - corrupted) . d metric / d (layer's output) per position, summed over prompts and features:
    plain torch on the HuggingFace module (forward hooks, autograd), in nnterp's layout where the model has its own."""
    modules = [model.layers[layer]._module for layer in range(model.num_layers)]

    def run(prompts):
        captured = {}
        handles = [module.register_forward_hook(
            lambda _, args, output, layer=layer: captured.setdefault(layer, output[0] if isinstance(output, tuple)
                                                                     else output))
            for layer, module in enumerate(modules)]
        try:
            logits = model._module(**model.tokenizer(prompts, return_tensors="pt")).logits
        finally:
            for handle in handles:
                handle.remove()
        return [captured[layer] for layer in range(len(modules))], logits

    with torch.no_grad():
        clean, _ = run(CLEAN)
    corrupted, logits = run(CORRUPTED)
    grads = torch.autograd.grad(metric(logits).float().mean(), corrupted)
    view = model.layers_output.view
    changes = [(clean_value - value.detach()) * grad for clean_value, value, grad in zip(clean, corrupted, grads)]
    return torch.stack([(view.canonical(change) if view else change).sum(dim=0).flatten(1).sum(dim=-1)
                        for change in changes])


@pytest.mark.parametrize("name", ["llama", "Gemma3nForCausalLM"])
def test_attribution_patching_is_the_difference_times_the_gradient(name):
    """On a plain model and one whose layer outputs are served through a view of streams-first tensors."""
    model = standardized_toy(name, enable_attention_probs=False)
    estimate = attribution_patching(model, CLEAN, CORRUPTED, metric)
    assert estimate.values.shape == (model.num_layers, 17)
    torch.testing.assert_close(estimate.values - estimate.corrupted_metric, _attribution_by_hand(model), atol=1e-4,
                               rtol=1e-3)


def test_unchanged_positions_of_the_first_layer_input_change_nothing(model):
    """Positions where clean and corrupted tokens agree carry the same embeddings: patching them at layer 0's
    input is the corrupted run itself."""
    result = activation_patching(model, CLEAN, CORRUPTED, metric, accessor="layers_input", layers=0)
    torch.testing.assert_close(result.values[0, :6], torch.full((6,), result.corrupted_metric), atol=1e-5, rtol=1e-5)


def test_attribution_patching_tracks_activation_patching(model):
    exact = activation_patching(model, CLEAN, CORRUPTED, metric)
    estimate = attribution_patching(model, CLEAN, CORRUPTED, metric)
    assert estimate.values.shape == exact.values.shape
    assert (estimate.clean_metric, estimate.corrupted_metric) == pytest.approx((exact.clean_metric,
                                                                               exact.corrupted_metric))
    last = model.num_layers - 1  # no gradient reaches the last layer's other positions: exactly unchanged
    torch.testing.assert_close(estimate.values[last, :-1], torch.full((16,), estimate.corrupted_metric))
    correlation = torch.corrcoef(torch.stack([exact.values.flatten(), estimate.values.flatten()]))[0, 1]
    assert correlation > 0.8


def test_attribution_patching_per_head(model):
    exact = activation_patching(model, CLEAN, CORRUPTED, metric, accessor="heads_output", positions=[-1])
    estimate = attribution_patching(model, CLEAN, CORRUPTED, metric, accessor="heads_output", positions=[-1])
    assert estimate.values.shape == exact.values.shape == (model.num_layers, model.num_heads, 1)
    correlation = torch.corrcoef(torch.stack([exact.values.flatten(), estimate.values.flatten()]))[0, 1]
    assert correlation > 0.8


def test_bad_pairs_and_accessors_are_refused():
    model = standardized_toy("llama", enable_attention_probs=False)
    with pytest.raises(PromptError, match="equal token lengths"):
        activation_patching(model, CLEAN, ["hi", "there"], metric)
    with pytest.raises(PromptError, match="explicit positions"):
        activation_patching(model, ["hello", "hi"], ["jello", "ho"], metric)
    with pytest.raises(ToolkitInputError, match="cannot be patched"):
        activation_patching(model, CLEAN, CORRUPTED, metric, accessor="attention_scores")
    with pytest.raises(ToolkitInputError, match="outside the shortest prompt"):
        activation_patching(model, CLEAN, CORRUPTED, metric, positions=[40])


def test_plot_patching_labels_layers_and_tokens():
    pytest.importorskip("plotly")
    from nnterp.toolkit.display import plot_patching

    model = standardized_toy("llama", enable_attention_probs=False)
    result = activation_patching(model, CLEAN, CORRUPTED, metric, positions=[0, 5, -1])
    figure = plot_patching(result)
    heatmap = figure.data[0]
    assert list(heatmap.y) == [str(layer) for layer in range(model.num_layers)]
    assert list(heatmap.x) == ["0: h", "5: ␣", "16: e"]
    torch.testing.assert_close(torch.as_tensor(heatmap.z), result.normalized())
    per_head = activation_patching(model, CLEAN, CORRUPTED, metric, accessor="heads_output", positions=[-1])
    assert list(plot_patching(per_head, normalized=False).data[0].y)[:2] == ["L0.H0", "L0.H1"]


# -- the metric: a scalar or one number per prompt, finite ---------------------------------------------------------


@pytest.mark.parametrize("patching", [activation_patching, attribution_patching], ids=lambda f: f.__name__)
def test_a_metric_giving_more_than_one_number_per_prompt_is_refused(llama, patching):
    """(batch, vocab) used to be averaged silently into one number."""
    with pytest.raises(MetricError, match=r"shape \(2, 320\) on the clean run \(2 prompts\): expected a scalar or "
                                          r"one number per prompt, shape \(2,\)"):
        patching(llama, CLEAN, CORRUPTED, lambda logits: logits[:, -1], positions=[-1])
    with pytest.raises(MetricError, match=r"shape \(2, 1\)"):
        patching(llama, CLEAN, CORRUPTED, lambda logits: metric(logits)[:, None], positions=[-1])


@pytest.mark.parametrize("patching", [activation_patching, attribution_patching], ids=lambda f: f.__name__)
def test_a_scalar_metric_is_the_mean_of_a_per_prompt_one(llama, patching):
    per_prompt = patching(llama, CLEAN, CORRUPTED, metric, positions=[0, -1])
    scalar = patching(llama, CLEAN, CORRUPTED, lambda logits: metric(logits).mean(), positions=[0, -1])
    torch.testing.assert_close(scalar.values, per_prompt.values)


@pytest.mark.parametrize("patching", [activation_patching, attribution_patching], ids=lambda f: f.__name__)
def test_a_non_finite_metric_is_refused_naming_the_run(llama, patching):
    with pytest.raises(NonFiniteValue, match=r"the metric is \[nan, nan\] on the clean run: expected finite"):
        patching(llama, CLEAN, CORRUPTED, lambda logits: metric(logits) * float("nan"), positions=[-1])


def test_a_patched_run_whose_metric_is_not_finite_is_named(llama):
    calls = []

    def finite_twice(logits):  # the clean run, the corrupted run, then the patched runs
        calls.append(1)
        return metric(logits) if len(calls) <= 2 else metric(logits) + float("inf")

    with pytest.raises(NonFiniteValue, match=r"\[inf, inf\] on the corrupted run patched at layer 0 position 16"):
        activation_patching(llama, CLEAN, CORRUPTED, finite_twice, positions=[-1])


def test_a_non_finite_attribution_estimate_is_refused(llama):
    """sqrt(0 * x) is 0 with a NaN gradient: the grid would hold NaN."""
    with pytest.raises(NonFiniteValue, match=r"attribution estimate is nan at layer 0 position 16"):
        attribution_patching(llama, CLEAN, CORRUPTED, lambda logits: (logits[:, -1, 5] * 0).sqrt(), positions=[-1])


def test_a_metric_reading_padding_is_refused(llama):
    """Prompts of different lengths: the metric sees them right-aligned, NaN before a shorter prompt's first token,
    so a column counted from the start (padding for the short prompt) cannot be read silently."""
    clean, corrupted = ["hello world", "a cat"], ["hello wirld", "a dog"]
    with pytest.raises(NonFiniteValue, match=r"\[.*, nan\] on the clean run.*right-aligned"):
        activation_patching(llama, clean, corrupted, lambda logits: logits[:, 0, 5], positions=[-1])


def test_normalizing_by_a_zero_difference_is_refused(llama):
    """Clean and corrupted prompts alike: the normaliser clean - corrupted is 0."""
    result = activation_patching(llama, CLEAN, CLEAN, metric, positions=[-1])
    assert result.clean_metric == result.corrupted_metric
    with pytest.raises(NonFiniteValue, match="clean_metric - corrupted_metric = .* = 0.0: the metric does not tell"):
        result.normalized()
    pytest.importorskip("plotly")
    from nnterp.toolkit.display import plot_patching

    with pytest.raises(NonFiniteValue):
        plot_patching(result)
    assert plot_patching(result, normalized=False).data[0].z.shape == (llama.num_layers, 1)
