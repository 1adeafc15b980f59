"""The analysis toolkit (nnterp.toolkit.analysis): its identities, per architecture, and on SmolLM2."""

import pytest
import torch

from nnterp import logit_lens
from nnterp.errors import HeadsUnavailable, NotDecomposable, TargetError, TokenIndexError
from nnterp.toolkit.analysis import accumulated_resid, decompose_resid, direct_logit_attribution
from nnterp.toolkit.analysis.residual import relative_tolerance
from nnterp.toy.standardized import standardized_toy

ARCHITECTURES = ["llama", "gpt2", "gpt_neox", "qwen2"]  # RMSNorm, LayerNorm + biases, parallel blocks, GQA
PROMPTS = ["hello world there", "a cat"]  # unequal lengths: padding is exercised
TARGETS = [5, 7]


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request):
    return standardized_toy(request.param, enable_attention_probs=False)


# -- direct logit attribution ---------------------------------------------------


@pytest.mark.parametrize("per_head", [False, True])
def test_dla_components_sum_to_the_logit(model, per_head):
    result = direct_logit_attribution(model, PROMPTS, TARGETS, per_head=per_head)
    heads = model.num_heads if per_head else 1
    assert result.contributions.shape[0] == len(PROMPTS)
    assert result.labels[0] == "embed" and f"L{model.num_layers - 1}.mlp" in result.labels
    assert sum(label.endswith((".attn", ".H0")) for label in result.labels) == model.num_layers
    assert len([label for label in result.labels if ".H" in label]) == (heads * model.num_layers if per_head else 0)
    torch.testing.assert_close(result.total(), result.logits, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # and those are the model's own logits at each prompt's last token
        own = model._module(**model.tokenizer(PROMPTS[1], return_tensors="pt")).logits[0, -1, TARGETS[1]]
    torch.testing.assert_close(result.logits[1], own, atol=1e-5, rtol=1e-5)


def test_per_head_shares_add_up_to_the_attention_share(model):
    whole = direct_logit_attribution(model, PROMPTS, TARGETS)
    split = direct_logit_attribution(model, PROMPTS, TARGETS, per_head=True)
    for layer in range(model.num_layers):
        parts = [i for i, label in enumerate(split.labels) if label.startswith(f"L{layer}.H")
                 or label == f"L{layer}.attn_bias"]
        torch.testing.assert_close(split.contributions[:, parts].sum(-1),
                                   whole.contributions[:, whole.labels.index(f"L{layer}.attn")], atol=1e-5, rtol=1e-4)


def test_dla_freezes_the_final_norm_at_the_measured_scale(model):
    """The embeddings' share computed by hand: through the norm's weight over the final residual's scale."""
    result = direct_logit_attribution(model, PROMPTS[0], TARGETS[0])
    with model.trace(PROMPTS[0]):
        embed = model.layers_input[0][0, -1].save()
        final = model.layers_output[model.num_layers - 1][0, -1].save()
    norm = model._module.get_submodule(model.architecture.ln_final)
    centred = isinstance(norm, torch.nn.LayerNorm)
    if centred:
        embed, final = embed - embed.mean(), final - final.mean()
    scale = (final.pow(2).mean() + norm.eps if centred else final.pow(2).mean() + norm.variance_epsilon).sqrt()
    direction = model._module.get_output_embeddings().weight[TARGETS[0]]
    expected = (embed * norm.weight / scale) @ direction
    torch.testing.assert_close(result.contributions[0, 0], expected, atol=1e-5, rtol=1e-4)


def test_dla_takes_string_targets_and_a_position(model):
    token = model.tokenizer.convert_ids_to_tokens(TARGETS[0])
    by_string = direct_logit_attribution(model, PROMPTS, token, position=-2)
    by_id = direct_logit_attribution(model, PROMPTS, [TARGETS[0]] * 2, position=-2)
    torch.testing.assert_close(by_string.contributions, by_id.contributions)
    torch.testing.assert_close(by_string.total(), by_string.logits, atol=1e-5, rtol=1e-5)


def test_dla_dataframe_has_one_row_per_prompt_and_component(model):
    pytest.importorskip("pandas")
    result = direct_logit_attribution(model, PROMPTS, TARGETS, per_head=True)
    frame = result.to_dataframe()
    assert len(frame) == result.contributions.numel()
    assert set(frame.columns) >= {"prompt", "component", "kind", "layer", "head", "contribution"}
    assert frame.groupby("prompt").contribution.sum().add(result.bias.numpy()).tolist() == \
        pytest.approx(result.logits.tolist(), abs=1e-4)


def test_dla_refuses_bad_targets_and_positions(model):
    with pytest.raises(TargetError, match="one per prompt"):
        direct_logit_attribution(model, PROMPTS, [1, 2, 3])
    with pytest.raises(TargetError, match="outside the vocabulary"):
        direct_logit_attribution(model, PROMPTS, 10 ** 9)
    with pytest.raises(TokenIndexError):
        direct_logit_attribution(model, PROMPTS, TARGETS, position=50)


@pytest.mark.parametrize("name, message", [
    ("openai-gpt", "no additive residual"),  # post-norm blocks
    ("qwen4_exp", "residual streams"),  # hyper-connections
    ("gemma2", "non-linear transform"),  # final logit soft-capping
    ("roberta-prelayernorm", "is not linear"),  # a dense + GELU + norm transform inside lm_head
])
def test_not_decomposable_architectures_say_why(name, message):
    """Multi-stream and non-additive residuals raise a typed error instead of a wrong attribution."""
    toy = standardized_toy(name, enable_attention_probs=False)
    with pytest.raises(NotDecomposable, match=message):
        direct_logit_attribution(toy, PROMPTS, TARGETS)
    if message in ("no additive residual", "residual streams"):  # else the stream itself still decomposes
        with pytest.raises(NotDecomposable, match=message):
            decompose_resid(toy, PROMPTS)


@pytest.mark.parametrize("name, extra", [("mamba", None), ("olmo2", None), ("falcon_h1", "L0.mamba")])
def test_dla_holds_beyond_plain_blocks(name, extra):
    """A mixer per block (Mamba), norms after each sublayer (OLMo 2), a third residual term beside attention and MLP
    (Falcon-H1's Mamba, scaled): the identity still holds."""
    toy = standardized_toy(name, enable_attention_probs=False)
    result = direct_logit_attribution(toy, PROMPTS, TARGETS)
    torch.testing.assert_close(result.total(), result.logits, atol=1e-5, rtol=1e-5)
    assert extra is None or extra in result.labels


def test_heads_after_a_post_norm_do_not_split():
    """OLMo 2 norms the attention output after its projection: per-head shares would be wrong, so refused."""
    toy = standardized_toy("olmo2", enable_attention_probs=False)
    with pytest.raises(NotDecomposable, match="not the sum of its heads.*per_head=False"):
        direct_logit_attribution(toy, PROMPTS, TARGETS, per_head=True)


@pytest.mark.parametrize("offset, refused", [(1e-7, False), (1e-4, True)])
def test_dla_refuses_logits_its_components_miss_by_more_than_rounding(offset, refused):
    """A head that adds ``offset`` to the model's own logits only (not to the basis rows DLA reads it with): within
    float32 rounding of the logit's scale it passes; 1e-4 on logits of ~0.3 (a miss the old check, 1e-3 of
    max(|logit|, 1), let through) is refused with the measured error and the tolerance."""
    toy = standardized_toy("llama", enable_attention_probs=False)
    head = toy._module.get_submodule(toy.architecture.lm_head)
    head.register_forward_hook(lambda module, inputs, output: output + offset if output.dim() == 3 else output)
    if not refused:
        result = direct_logit_attribution(toy, PROMPTS, TARGETS)
        torch.testing.assert_close(result.total(), result.logits, atol=1e-6, rtol=0)
        return
    with pytest.raises(NotDecomposable, match=r"\[LlamaForCausalLM\] .* differs from the model's by 0\.0001 .*over "
                                              r"the tolerance [0-9.e-]+: 64 eps of torch\.float32 .* rounding scale"):
        direct_logit_attribution(toy, PROMPTS, TARGETS)


# -- residual decomposition -----------------------------------------------------


@pytest.mark.parametrize("layer", [0, 1, None])
def test_decompose_resid_sums_to_the_residual(model, layer):
    parts = decompose_resid(model, PROMPTS, layer=layer, position=None, per_head=True)
    expected_layer = model.num_layers if layer is None else layer
    right_padded = dict(model.tokenizer(PROMPTS, return_tensors="pt", padding=True, padding_side="right"))
    with model.trace(right_padded):  # as the toolkit pads
        residual = (model.layers_input[expected_layer] if expected_layer < model.num_layers
                    else model.layers_output[-1]).save()
    assert parts.components.shape[1:] == residual.shape
    torch.testing.assert_close(parts.total(), residual, atol=1e-5, rtol=1e-4)
    assert len(parts.labels) == parts.components.shape[0]


def test_accumulated_resid_projected_is_the_logit_lens(model):
    accumulated = accumulated_resid(model, PROMPTS)
    assert accumulated.residuals.shape == (model.num_layers + 1, len(PROMPTS), model.hidden_size)
    assert accumulated.labels[0] == "embed"
    lens = logit_lens(model, PROMPTS)  # (batch, layers, vocab)
    with torch.no_grad():
        projected = model.project_on_vocab(accumulated.residuals[1:]).float().softmax(-1).transpose(0, 1)
    torch.testing.assert_close(projected, lens, atol=1e-5, rtol=1e-4)


# -- options that cannot apply are refused, tolerances follow the dtype ----------------------------------------------


@pytest.mark.parametrize("function", [direct_logit_attribution, decompose_resid], ids=lambda f: f.__name__)
def test_per_head_on_a_model_without_heads_is_refused(function):
    """Mamba has no attention heads: per_head=True used to be ignored."""
    mamba = standardized_toy("mamba", enable_attention_probs=False)
    with pytest.raises(HeadsUnavailable, match=r"\[MambaForCausalLM\] .*no softmax attention .*per_head=False"):
        function(mamba, PROMPTS, TARGETS, per_head=True) if function is direct_logit_attribution else \
            function(mamba, PROMPTS, per_head=True)


def test_the_sum_checks_tolerance_follows_the_dtype():
    assert relative_tolerance(torch.float32) == relative_tolerance(torch.float64) == 1e-3  # float32 as before
    assert relative_tolerance(torch.bfloat16) == 8 * torch.finfo(torch.bfloat16).eps
    assert relative_tolerance(torch.float16) == 8 * torch.finfo(torch.float16).eps


@pytest.mark.parametrize("name", ["llama", "gpt2"])
@pytest.mark.parametrize("per_head", [False, True])
def test_dla_in_bfloat16_decomposes(name, per_head):
    """The head split, the final norm's fit and the stream's sum miss by about one bfloat16 epsilon (0.008): a 1e-3
    tolerance refused every bfloat16 model with NotDecomposable."""
    toy = standardized_toy(name, enable_attention_probs=False)
    toy._module.to(torch.bfloat16)
    result = direct_logit_attribution(toy, PROMPTS, TARGETS, per_head=per_head)
    assert result.contributions.dtype == torch.bfloat16
    assert len([label for label in result.labels if ".H" in label]) == (toy.num_heads * toy.num_layers
                                                                        if per_head else 0)
    torch.testing.assert_close(result.total().float(), result.logits.float(), atol=0.05, rtol=0.02)
