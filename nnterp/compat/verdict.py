"""What the check outcomes of one architecture let nnterp claim, worded once for every view of the reports.

No verdict says more than was checked. "passed every nnterp check" only where every check of the catalogue
ran and none failed; a run of some checks "passed the 3 checks that ran (attn_probs, steering not run)"; a run
whose checks were all skipped, or that ran none, verified nothing. The load-time warning, ``python -m nnterp
status``, the terminal table and the pages all take their wording from ``judge``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from ..checks.catalogue import CHECK_NAMES
from .labels import join_words
from .schema import ReportStatus

RAN = frozenset({ReportStatus.PASSED, ReportStatus.NOT_APPLICABLE})  # a check that ran and found nothing wrong


class Verdict(str, Enum):
    ALL_PASSED = "all passed"
    PARTIAL = "partial"  # what ran passed, some catalogue checks did not run (or were skipped)
    NOTHING_VERIFIED = "nothing verified"  # no check passed: all skipped, none ran, or every one n/a
    FAILURES = "failures"


@dataclass(frozen=True)
class Judgement:
    """The verdict on one architecture's checks (worst status per check over its models), with what ran."""

    verdict: Verdict
    passed: tuple[str, ...]  # ran and passed (or do not apply)
    failed: tuple[str, ...]  # failed, did not load, or crashed
    skipped: tuple[str, ...]
    not_run: tuple[str, ...]  # catalogue checks without an outcome

    @property
    def unverified(self) -> tuple[str, ...]:
        """The catalogue checks that did not run here: skipped or never run, in catalogue order."""
        return tuple(check for check in CHECK_NAMES if check in self.skipped or check in self.not_run) + \
            tuple(check for check in self.skipped if check not in CHECK_NAMES)

    @property
    def claim(self) -> str:
        """The verdict in words, completing "<architecture> ...": "passed every nnterp check", "passed the 3
        checks that ran (attn_probs, steering not run)", "was not verified (every check skipped)", "failed ..."."""
        if self.verdict is Verdict.ALL_PASSED:
            return "passed every nnterp check"
        if self.verdict is Verdict.FAILURES:
            return f"failed {_count(len(self.failed))}"
        if self.verdict is Verdict.PARTIAL:
            return f"passed the {_count(len(self.passed))} that ran ({join_words(self.unverified)} not run)"
        if self.skipped and not self.passed:
            return "was not verified (every check that was asked for was skipped)"
        return "was not verified (no check passed)" if self.passed else "was not verified (no check ran)"


def judge(statuses: Mapping[str, ReportStatus]) -> Judgement:
    """The verdict on ``statuses`` (check -> worst status over an architecture's models)."""
    passed = tuple(check for check, status in statuses.items() if status in RAN)
    failed = tuple(check for check, status in statuses.items() if status.is_failure)
    skipped = tuple(check for check, status in statuses.items() if status is ReportStatus.SKIPPED)
    not_run = tuple(check for check in CHECK_NAMES if check not in statuses)
    if failed:
        verdict = Verdict.FAILURES
    elif ReportStatus.PASSED not in statuses.values():
        verdict = Verdict.NOTHING_VERIFIED
    elif skipped or not_run:
        verdict = Verdict.PARTIAL
    else:
        verdict = Verdict.ALL_PASSED
    return Judgement(verdict, passed, failed, skipped, not_run)


def _count(n: int) -> str:
    return f"{n} check" if n == 1 else f"{n} checks"
