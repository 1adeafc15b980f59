"""Every causal-LM architecture of the installed transformers, as a toy model, through load-time validation
and the logits check of the catalogue.

Run in parallel with ``-n 2``. A toy that cannot be built on this machine is skipped with the
builder's reason; a known incompatibility is a strict xfail with its reason.
"""

import pytest
from nnsight.modeling.transformers import TransformersModel

from nnterp import StandardizedTransformer
from nnterp.checks import CheckName, ReportStatus, run_checks
from nnterp.core.aliases import children_first
from nnterp.core.registry import Residual
from nnterp.toy import ToyModelUnsupported, build_toy_model

from .known_failures import KNOWN_FAILURES, toy_params

CHECKED = (CheckName.RENAMING, CheckName.IO_SHAPES, CheckName.RESIDUAL, CheckName.ATTN_PROBS, CheckName.LOGITS_MATCH)


@pytest.mark.parametrize("model_type", toy_params(KNOWN_FAILURES))
def test_toy_architecture_validates(model_type):
    try:
        toy = build_toy_model(model_type)
    except ToyModelUnsupported as reason:
        pytest.skip(str(reason))
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, enable_attention_probs=True)
    results = {result.name: result for result in run_checks(model, CHECKED)}
    assert list(results) == list(CHECKED)
    not_applicable = {name for name, result in results.items() if result.status is ReportStatus.NOT_APPLICABLE}
    architecture = model.architecture
    expected_not_applicable = ({CheckName.RESIDUAL} if architecture.spec.blocks.residual is Residual.NONE else set()) \
        | ({CheckName.ATTN_PROBS} if not architecture.softmax_layers else set())
    assert not_applicable == expected_not_applicable, {name: results[name].message for name in not_applicable}
    failures = {name.value: result.message for name, result in results.items() if result.failed}
    assert not failures
    assert_names_bound_as_nnsight_binds(model)


def alias_table(root) -> set[tuple[str, str, str, str | None]]:
    """Every alias of the envoy tree: (host path, alias, path it names relative to the host, target path)."""
    return {(envoy.path, alias, relative, getattr(envoy.__dict__.get(alias), "path", None))
            for envoy in children_first(root) for alias, relative in envoy._aliases.items()}


def assert_names_bound_as_nnsight_binds(model) -> None:
    """The standard names, bound once the tree exists (nnterp.core.aliases), are exactly those nnsight binds when
    handed the same ``rename=`` while it builds the tree (last: the second wrap re-instruments the modules)."""
    ours = {row for row in alias_table(model) if not (row[0] == model.path and row[1] in
                                                      model.architecture.displaced_names)}
    nnsight_built = TransformersModel(model._module, tokenizer=model.tokenizer, task="text-generation",
                                      rename=dict(model._standard_rename))
    assert ours == alias_table(nnsight_built)
    assert {row[1] for row in ours} >= set(model._standard_rename.values())
