"""Every causal-LM architecture of the installed transformers, as a toy model, through load-time validation.

Run in parallel with ``-n 2``. A toy that cannot be built on this machine is skipped with the
builder's reason; a known incompatibility is a strict xfail with its reason.
"""

import pytest

from nnterp import StandardizedTransformer
from nnterp.checks import CheckName, Status, check_logits_match
from nnterp.registry import Residual
from nnterp.toy import ToyModelUnsupported, build_toy_model

from .known_failures import KNOWN_FAILURES, toy_params


@pytest.mark.parametrize("model_type", toy_params(KNOWN_FAILURES))
def test_toy_architecture_validates(model_type):
    try:
        toy = build_toy_model(model_type)
    except ToyModelUnsupported as reason:
        pytest.skip(str(reason))
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    statuses = {result.name: result for result in model.check_results}
    spec = model.architecture.spec
    assert statuses[CheckName.RENAMING].passed
    assert statuses[CheckName.IO_SHAPES].passed
    if spec.residual is not Residual.NONE:
        assert statuses[CheckName.RESIDUAL].passed, statuses[CheckName.RESIDUAL].message
    if model.architecture.softmax_layers:
        assert statuses[CheckName.ATTN_PROBS_SUM].passed, statuses[CheckName.ATTN_PROBS_SUM].message
        assert statuses[CheckName.ATTN_PROBS_EFFECT].passed, statuses[CheckName.ATTN_PROBS_EFFECT].message
    else:
        assert statuses[CheckName.ATTN_PROBS_SUM].status is Status.NOT_APPLICABLE
    result = check_logits_match(model)
    assert result.passed, result.message
