"""Load each model once per process and run named checks on it, turning every outcome into a record."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import pytest

from .targets import Target


@dataclass(frozen=True)
class Outcome:
    """One check on one model, as the report stores it (status is a ReportStatus value)."""

    target: Target
    check: str
    status: str
    message: str = ""
    value: float | None = None
    duration: float = 0.0

    def as_row(self) -> dict:
        return {"architecture": self.target.architecture, "model_id": self.target.model_id,
                "kind": self.target.kind, "check": self.check, "status": self.status,
                "value": self.value, "message": self.message, "duration": round(self.duration, 4)}

    def raise_for_pytest(self) -> None:
        """Passed returns; failures and load errors fail the test; n/a and skipped skip it, with the reason."""
        if self.status in ("failed", "load error", "crashed"):
            pytest.fail(f"{self.status}: {self.message}", pytrace=False)
        if self.status in ("n/a", "skipped"):
            pytest.skip(f"{self.status}: {self.message}")


@dataclass
class Loaded:
    """A model loaded for the suite, or why it could not be; its load-time check results."""

    model: Any = None
    error: str = ""
    skipped: str = ""
    load_results: dict | None = None


class ModelRunner:
    """Per-process cache of loaded models; one load serves every check of a model."""

    KEEP = 2  # models kept in memory: items of one model run together, so two is plenty

    def __init__(self) -> None:
        self._loaded: dict[Target, Loaded] = {}

    def load(self, target: Target) -> Loaded:
        if target not in self._loaded:
            while len(self._loaded) >= self.KEEP:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[target] = self._load(target)
        return self._loaded[target]

    @staticmethod
    def _load(target: Target) -> Loaded:
        from nnterp import StandardizedTransformer
        from nnterp.compat.lookup import NNterpCompatibilityWarning
        from nnterp.toy import ToyModelUnsupported
        from nnterp.toy.suite import standardized_toy

        warnings.simplefilter("ignore", NNterpCompatibilityWarning)  # the suite is what tests it
        try:
            if target.kind == "toy":
                model = standardized_toy(target.source, check_renaming=False)
            else:
                model = StandardizedTransformer(target.source, enable_attention_probs=True, check_renaming=False)
            results = {result.name.value: result for result in model.validate_quietly()}
        except ToyModelUnsupported as reason:
            return Loaded(skipped=str(reason))
        except Exception as error:  # noqa: BLE001 - a model that fails to load is a result, not a crash
            return Loaded(error=f"{type(error).__name__}: {error}")
        return Loaded(model=model, load_results=results)

    def run(self, target: Target, check: str) -> Outcome:
        start = time.perf_counter()
        loaded = self.load(target)
        if loaded.skipped:
            return Outcome(target, check, "skipped", loaded.skipped)
        if loaded.error:
            return Outcome(target, check, "load error", loaded.error, duration=time.perf_counter() - start)
        try:
            result = CHECKS[check](loaded)
        except Exception as error:  # noqa: BLE001 - the check's own failure is its outcome
            return Outcome(target, check, "failed", f"{type(error).__name__}: {error}",
                           duration=time.perf_counter() - start)
        return Outcome(target, check, result.status.value, result.message, result.value,
                       time.perf_counter() - start)


def _load_result(name: str):
    return lambda loaded: loaded.load_results.get(name) or _missing(name, loaded)


def _missing(name: str, loaded: Loaded):
    from nnterp.checks import CheckName, failed

    first_failure = next((r for r in loaded.load_results.values() if r.failed), None)
    reason = f"not reached: {first_failure.name.value} failed first" if first_failure else "not reached"
    return failed(CheckName(name), reason)


def _attention_probabilities(loaded: Loaded):
    """Sum-to-one and causal effect together: the worse of the two, both messages."""
    from nnterp.checks import CheckName, CheckResult, Status

    parts = [loaded.load_results.get(name) for name in ("attn_probs_sum", "attn_probs_effect")]
    if any(part is None for part in parts):
        return _missing("attn_probs_sum", loaded)
    worst = max(parts, key=lambda part: {Status.FAILED: 2, Status.PASSED: 0, Status.NOT_APPLICABLE: 1}[part.status])
    message = "; ".join(part.message for part in parts) if worst.status is not Status.NOT_APPLICABLE else worst.message
    return CheckResult(CheckName.ATTN_PROBS_SUM, worst.status, message, parts[0].value)


def _model_check(name: str):
    def run(loaded: Loaded):
        from nnterp import checks

        return getattr(checks, name)(loaded.model)
    return run


CHECKS = {
    "renaming": _load_result("renaming"),
    "io_shapes": _load_result("io_shapes"),
    "residual_identity": _load_result("residual_identity"),
    "attn_probs": _attention_probabilities,
    "logits_match": _model_check("check_logits_match"),
    "logit_lens": _model_check("check_logit_lens"),
    "steering": _model_check("check_steering"),
    "skip_layers": _model_check("check_skip_layers"),
}
