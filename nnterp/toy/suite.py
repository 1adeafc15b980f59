"""Run nnterp's checks on toy models: the compatibility matrix of the installed transformers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..checks import CheckName, CheckResult, Status, check_logits_match
from .build import ToyModelUnsupported, build_toy_model, causal_lm_classes


@dataclass(frozen=True)
class ToyValidation:
    """The checks of one toy architecture, or why it could not be checked."""

    model_type: str
    class_name: str
    results: tuple[CheckResult, ...] = field(default_factory=tuple)
    error: str = ""

    @property
    def passed(self) -> bool:
        return not self.error and not any(result.failed for result in self.results)


def standardized_toy(name: str, **kwargs: Any) -> Any:
    """A StandardizedTransformer over a freshly built toy model (attention probabilities on unless told)."""
    from ..standardized import StandardizedTransformer

    toy = build_toy_model(name)
    return StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, **{"enable_attention_probs": True, **kwargs})


def validate_toy(model_type: str) -> ToyValidation:
    """Build one toy, load it through StandardizedTransformer, run every load check plus logits match."""
    class_name = causal_lm_classes()[model_type]
    try:
        model = standardized_toy(model_type, check_renaming=False)
    except ToyModelUnsupported as reason:
        return ToyValidation(model_type, class_name, error=f"not buildable here: {reason}")
    except Exception as error:  # noqa: BLE001 - a model nnterp cannot load is this architecture's result
        return ToyValidation(model_type, class_name, error=f"load error: {type(error).__name__}: {error}")
    try:
        results = tuple(model.validate_quietly()) + (check_logits_match(model),)
    except Exception as error:  # noqa: BLE001 - the failure is this architecture's result
        return ToyValidation(model_type, class_name, error=f"{type(error).__name__}: {error}")
    return ToyValidation(model_type, class_name, results)


MARKS = {Status.PASSED: "pass", Status.FAILED: "FAIL", Status.NOT_APPLICABLE: "n/a"}


def matrix_rows(validations: list[ToyValidation]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the architectures x checks table, with the first failure's message."""
    checks = list(CheckName)
    rows = []
    for validation in validations:
        by_name = {result.name: result for result in validation.results}
        marks = [MARKS[by_name[name].status] if name in by_name else "-" for name in checks]
        problem = validation.error or next((f"{r.name.value}: {r.message}" for r in validation.results if r.failed), "")
        rows.append([validation.model_type, validation.class_name, *marks, problem[:100]])
    return ["model type", "class", *[name.value for name in checks], "first problem"], rows
