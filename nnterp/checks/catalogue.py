"""The one catalogue of nnterp's checks: each check's name (its report column), what runs it, and when.

The loader, the pytest plugin, the test suite and the reports all read check names, statuses and
order from here. Light on purpose (no torch): the plugin validates ``--nnterp-checks`` at configure
time and the report code orders columns without importing a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from importlib import import_module
from typing import TYPE_CHECKING, Callable, Iterable, TypedDict

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer
    from .behaviour import SharedRuns


class ReportStatus(str, Enum):
    """The outcome of one check on one model, as results and reports record it."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "n/a"
    LOAD_ERROR = "load error"
    CRASHED = "crashed"
    SKIPPED = "skipped"

    @property
    def is_failure(self) -> bool:
        """Failed, did not load or crashed: what a user must hear about."""
        return self in _FAILURES

    @property
    def severity(self) -> int:
        """Rank used to pick the worst status: passed < n/a < skipped < failed < load error < crashed."""
        return _SEVERITY.index(self)

    @classmethod
    def worst(cls, statuses: Iterable[ReportStatus]) -> ReportStatus:
        """The most severe of ``statuses``: what a merged cell or a whole model shows."""
        return max(statuses, key=lambda status: status.severity)


_SEVERITY = (ReportStatus.PASSED, ReportStatus.NOT_APPLICABLE, ReportStatus.SKIPPED, ReportStatus.FAILED,
             ReportStatus.LOAD_ERROR, ReportStatus.CRASHED)
_FAILURES = frozenset({ReportStatus.FAILED, ReportStatus.LOAD_ERROR, ReportStatus.CRASHED})


class CheckName(str, Enum):
    """A check's name, which is also its column in the compatibility reports."""

    RENAMING = "renaming"
    IO_SHAPES = "io_shapes"
    RESIDUAL = "residual_identity"
    ATTN_PROBS = "attn_probs"
    LOGITS_MATCH = "logits_match"
    LOGIT_LENS = "logit_lens"
    STEERING = "steering"
    SKIP = "skip_layers"


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``value`` is what was measured (an error, a count...), if anything."""

    name: CheckName
    status: ReportStatus
    message: str = ""
    value: float | None = None
    fix: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is ReportStatus.FAILED

    @property
    def passed(self) -> bool:
        return self.status is ReportStatus.PASSED


def passed(name: CheckName, message: str = "", value: float | None = None) -> CheckResult:
    return CheckResult(name, ReportStatus.PASSED, message, value)


def failed(name: CheckName, message: str, value: float | None = None, fix: str | None = None) -> CheckResult:
    return CheckResult(name, ReportStatus.FAILED, message, value, fix)


def not_applicable(name: CheckName, message: str) -> CheckResult:
    return CheckResult(name, ReportStatus.NOT_APPLICABLE, message)


@dataclass(frozen=True)
class Check:
    """One catalogue entry. ``at_load`` checks share the load-time probing forward (``run_load_checks``);
    the others run on their own through ``function`` ("module:name" in nnterp.checks, imported when run)."""

    name: CheckName
    summary: str
    at_load: bool
    function: str = ""

    def run(self, model: StandardizedTransformer, shared: SharedRuns | None = None) -> CheckResult:
        """This check's result on ``model``: the load-time result (validating first if the model was not),
        or its own run, reading the forwards in ``shared`` (`nnterp.checks.behaviour.SharedRuns`) where given
        so that several checks on one model trace it once. An exception inside a check is the check's
        failure, with the error as message."""
        if self.at_load:
            results = model.check_results or model.validate_quietly()
            return next(result for result in results if result.name is self.name)
        module, _, function = self.function.partition(":")
        run: Callable[..., CheckResult] = getattr(import_module(f"nnterp.checks.{module}"), function)
        try:
            return run(model) if shared is None else run(model, shared=shared)
        except Exception as error:  # noqa: BLE001 - the check's own failure is its outcome
            return failed(self.name, f"{type(error).__name__}: {error}")


CATALOGUE: tuple[Check, ...] = (
    Check(CheckName.RENAMING, "every standardized module resolves to a module of the right kind", at_load=True),
    Check(CheckName.IO_SHAPES, "every accessor yields a tensor of the expected shape", at_load=True),
    Check(CheckName.RESIDUAL, "layers_output == layers_input + attentions_output + mlps_output where blocks "
                              "are additive", at_load=True),
    Check(CheckName.ATTN_PROBS, "attention probabilities sum to 1 over the keys, and editing them changes the "
                                "logits", at_load=True),
    Check(CheckName.LOGITS_MATCH, "the standardized model's logits equal the plain HuggingFace forward",
          at_load=False, function="behaviour:check_logits_match"),
    Check(CheckName.LOGIT_LENS, "project_on_vocab of the last layer's output gives the model's logits",
          at_load=False, function="behaviour:check_logit_lens"),
    Check(CheckName.STEERING, "steer adds exactly factor * vector to a layer's output", at_load=False,
          function="behaviour:check_steering"),
    Check(CheckName.SKIP, "skipping every layer passes the first layer's input to the last layer's output",
          at_load=False, function="behaviour:check_skip_layers"),
)
CHECKS = {check.name.value: check for check in CATALOGUE}
CHECK_NAMES: tuple[str, ...] = tuple(CHECKS)


class CheckRow(TypedDict):
    """One check on one model as it travels from a pytest-xdist worker to the controller and into a report."""

    architecture: str
    model_id: str
    kind: str
    check: str
    status: str  # a ReportStatus value (plain str: it crosses xdist as JSON)
    value: float | None
    message: str
    duration: float
    task: str  # "text-generation" or "image-text-to-text" (nnterp.compat.schema.Task)
