"""Running checks of the catalogue on one model: the named ones, or all of them, sharing their forwards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .behaviour import SharedRuns
from .catalogue import CATALOGUE, CheckName, CheckResult

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer


def run_checks(model: StandardizedTransformer, names: Iterable[str | CheckName] | None = None) -> list[CheckResult]:
    """The results of the named checks (default: the whole catalogue) on ``model``, in catalogue order."""
    wanted = None if names is None else {CheckName(name) for name in names}
    shared = SharedRuns(model)
    return [check.run(model, shared) for check in CATALOGUE if wanted is None or check.name in wanted]
