"""The analysis toolkit on SmolLM2-135M: France vs Italy, metric logit(' Paris') - logit(' Rome')."""

import pytest
import torch

from nnterp import StandardizedTransformer
from nnterp.toolkit.analysis import direct_logit_attribution

pytestmark = pytest.mark.real_model

CLEAN, CORRUPTED = "The capital of France is", "The capital of Italy is"


@pytest.fixture(scope="module")
def smollm2(smollm2_hf):
    model, tokenizer = smollm2_hf
    return StandardizedTransformer(model, tokenizer=tokenizer)


@pytest.mark.parametrize("per_head", [False, True])
def test_dla_components_sum_to_the_paris_logit(smollm2, per_head):
    result = direct_logit_attribution(smollm2, CLEAN, " Paris", per_head=per_head)
    components = 1 + smollm2.num_layers * ((smollm2.num_heads if per_head else 1) + 1)
    assert result.contributions.shape == (1, components)
    torch.testing.assert_close(result.total(), result.logits, atol=1e-3, rtol=1e-4)
    top = result.contributions[0].topk(3)
    print(f"Paris logit {result.logits.item():.3f}; bias {result.bias.item():.3f}; top components "
          + ", ".join(f"{result.labels[i]}={v:.2f}" for v, i in zip(top.values.tolist(), top.indices.tolist())))


@pytest.fixture(scope="module")
def paris_minus_rome(smollm2):
    paris, rome = (smollm2.tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in (" Paris", " Rome"))
    return lambda logits: logits[:, -1, paris] - logits[:, -1, rome]


@pytest.fixture(scope="module")
def layers_grid(smollm2, paris_minus_rome):
    from nnterp.toolkit.analysis import activation_patching

    return activation_patching(smollm2, CLEAN, CORRUPTED, paris_minus_rome)


def test_activation_patching_restores_paris(smollm2, layers_grid):
    """The last layer's last position gives back the clean metric; the country token carries it early on."""
    grid = layers_grid.normalized()
    assert grid.shape == (smollm2.num_layers, 5) and layers_grid.tokens[3] == " France"
    assert layers_grid.clean_metric > 5 > 0 > layers_grid.corrupted_metric
    assert grid[-1, -1].item() == pytest.approx(1.0, abs=1e-4)
    assert grid[:10, 3].min() > 0.9  # patching " France" in early layers recovers most of the metric
    print(f"clean {layers_grid.clean_metric:.2f}, corrupted {layers_grid.corrupted_metric:.2f}; restored at ' France' "
          f"by layers 0-9: {grid[:10, 3].min():.3f}..{grid[:10, 3].max():.3f}, by the last layer at ' is': "
          f"{grid[-1, -1]:.4f}")


@pytest.mark.parametrize("accessor", ["layers_output", "attentions_output"])
def test_attribution_patching_correlates_with_activation_patching(smollm2, paris_minus_rome, layers_grid, accessor):
    from nnterp.toolkit.analysis import activation_patching, attribution_patching

    exact = layers_grid if accessor == "layers_output" else \
        activation_patching(smollm2, CLEAN, CORRUPTED, paris_minus_rome, accessor=accessor)
    estimate = attribution_patching(smollm2, CLEAN, CORRUPTED, paris_minus_rome, accessor=accessor)
    correlation = torch.corrcoef(torch.stack([exact.values.flatten(), estimate.values.flatten()]))[0, 1].item()
    print(f"{accessor}: correlation of attribution with activation patching {correlation:.3f}")
    assert correlation > 0.9
