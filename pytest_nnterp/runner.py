"""Load each model once per process and run catalogue checks on it, turning every outcome into a CheckRow."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from .targets import Target

if TYPE_CHECKING:
    from nnterp.checks import CheckRow


def check_row(target: Target, check: str, status: str, message: str = "", value: float | None = None,
              duration: float = 0.0) -> CheckRow:
    """One check on one model as the report stores it (``status`` a ReportStatus value)."""
    return {"architecture": target.architecture, "model_id": target.model_id, "kind": target.kind, "check": check,
            "status": status, "value": value, "message": message, "duration": round(duration, 4),
            "task": target.task}


def raise_for_pytest(row: CheckRow) -> None:
    """Passed returns; failures and load errors fail the test; n/a and skipped skip it, with the reason."""
    from nnterp.checks import ReportStatus

    status = ReportStatus(row["status"])
    if status.is_failure:
        pytest.fail(f"{status.value}: {row['message']}", pytrace=False)
    if status in (ReportStatus.NOT_APPLICABLE, ReportStatus.SKIPPED):
        pytest.skip(f"{status.value}: {row['message']}")


@dataclass
class Loaded:
    """A model loaded (and validated) for the suite, or why it could not be."""

    model: Any = None
    error: str = ""
    skipped: str = ""
    shared: Any = None  # the model's nnterp.checks.behaviour.SharedRuns: forwards its checks share


class ModelRunner:
    """Per-process cache of loaded models, least recently used out: one load serves the checks of a model.

    Correct whatever order the items come in. Items are collected model by model, and xdist's default
    ``--dist load`` hands each worker runs of consecutive items, so a model is usually loaded once per worker
    that meets it; ``--dist loadgroup`` (the items carry ``xdist_group`` marks) keeps each model on one worker.
    """

    KEEP = 2  # models kept in memory

    def __init__(self) -> None:
        self._loaded: dict[Target, Loaded] = {}

    def load(self, target: Target) -> Loaded:
        loaded = self._loaded.pop(target, None) or self._load(target)
        self._loaded[target] = loaded  # most recent last
        while len(self._loaded) > self.KEEP:
            self._loaded.pop(next(iter(self._loaded)))
        return loaded

    @staticmethod
    def _load(target: Target) -> Loaded:
        from nnterp import StandardizedTransformer, StandardizedVLM
        from nnterp.compat.lookup import NNterpCompatibilityWarning
        from nnterp.toy import ToyModelUnsupported
        from nnterp.toy.standardized import standardized_toy, standardized_toy_vlm

        warnings.simplefilter("ignore", NNterpCompatibilityWarning)  # the suite is what tests it
        vision = target.task == "image-text-to-text"
        try:
            if target.kind == "toy":
                model = (standardized_toy_vlm if vision else standardized_toy)(target.source, check_renaming=False)
            else:
                model = (StandardizedVLM if vision else StandardizedTransformer)(
                    target.source, enable_attention_probs=True, check_renaming=False)
            model.validate_quietly()
        except ToyModelUnsupported as reason:
            return Loaded(skipped=str(reason))
        except Exception as error:  # noqa: BLE001 - a model that fails to load is a result, not a crash
            return Loaded(error=f"{type(error).__name__}: {error}")
        from nnterp.checks.behaviour import SharedRuns

        return Loaded(model=model, shared=SharedRuns(model))

    def run(self, target: Target, check: str) -> CheckRow:
        from nnterp.checks import CHECKS, ReportStatus

        start = time.perf_counter()
        loaded = self.load(target)
        if loaded.skipped:
            return check_row(target, check, ReportStatus.SKIPPED.value, loaded.skipped)
        if loaded.error:
            return check_row(target, check, ReportStatus.LOAD_ERROR.value, loaded.error,
                             duration=time.perf_counter() - start)
        result = CHECKS[check].run(loaded.model, loaded.shared)
        return check_row(target, check, result.status.value, result.message, result.value,
                         time.perf_counter() - start)
