"""What changed between two reports: checks that regressed, were fixed, appeared or disappeared."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from .labels import plain_text
from .schema import Report, ReportStatus

ChangeKind = Literal["regressed", "fixed", "added", "removed", "changed"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("regressed", "fixed", "added", "removed", "changed")
Entry = tuple[str, str, str]  # (architecture, model id, check)
SUMMARY_VERBS: dict[ChangeKind, str] = {"regressed": "lost", "fixed": "fixed"}  # the kinds a summary line names


@dataclass(frozen=True)
class StatusChange:
    """One (architecture, model, check) entry whose status differs; ``None`` where the entry is absent."""

    architecture: str
    model_id: str
    check: str
    old_status: ReportStatus | None
    new_status: ReportStatus | None

    def __str__(self) -> str:
        old = self.old_status.value if self.old_status else "absent"
        new = self.new_status.value if self.new_status else "absent"
        return f"{self.architecture} / {self.model_id} / {self.check}: {old} -> {new}"


@dataclass(frozen=True)
class ReportDiff:
    """Changes from an old report to a new one, each list sorted by (architecture, model, check).

    ``regressed``: not a failure before, a failure now; ``fixed``: the reverse; ``added`` /
    ``removed``: entries only in the new / old report; ``changed``: any other status change
    (e.g. passed -> skipped, failed -> crashed). ``added_architectures`` / ``removed_architectures``:
    architectures only in the new / old report, sorted.
    """

    regressed: list[StatusChange] = field(default_factory=list)
    fixed: list[StatusChange] = field(default_factory=list)
    added: list[StatusChange] = field(default_factory=list)
    removed: list[StatusChange] = field(default_factory=list)
    changed: list[StatusChange] = field(default_factory=list)
    added_architectures: list[str] = field(default_factory=list)
    removed_architectures: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any(getattr(self, kind) for kind in CHANGE_KINDS)

    def by_check(self, kind: ChangeKind) -> dict[str, tuple[str, ...]]:
        """The architectures with a change of ``kind`` in each check, the check touching most architectures first."""
        groups: dict[str, set[str]] = {}
        for change in getattr(self, kind):
            groups.setdefault(change.check, set()).add(change.architecture)
        ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        return {check: tuple(sorted(architectures)) for check, architectures in ranked}

    def by_architecture(self, kind: ChangeKind) -> dict[str, tuple[str, ...]]:
        """The checks with a change of ``kind`` in each architecture (any of its models), sorted by name."""
        groups: dict[str, set[str]] = {}
        for change in getattr(self, kind):
            groups.setdefault(change.architecture, set()).add(change.check)
        return {architecture: tuple(sorted(checks)) for architecture, checks in sorted(groups.items())}


def diff_reports(old: Report, new: Report) -> ReportDiff:
    """Compare every (architecture, model, check) entry of ``old`` and ``new``."""
    return _diff(old, new, _entries)


def diff_architectures(old: Report, new: Report) -> ReportDiff:
    """Compare each architecture's worst status per check over its models (``model_id`` is ``*``).

    What a cell of the matrix page shows: a new model that fails on an architecture that passed is a
    regression here, an addition in `diff_reports`.
    """
    return _diff(old, new, _worst_entries)


def _diff(old: Report, new: Report, entries: Callable[[Report], dict[Entry, ReportStatus]]) -> ReportDiff:
    before, after = entries(old), entries(new)
    diff = ReportDiff(added_architectures=sorted(new.architectures.keys() - old.architectures.keys()),
                      removed_architectures=sorted(old.architectures.keys() - new.architectures.keys()))
    for key in sorted(before.keys() | after.keys()):
        change = StatusChange(*key, before.get(key), after.get(key))
        bucket = _bucket(diff, change.old_status, change.new_status)
        if bucket is not None:
            bucket.append(change)
    return diff


def _entries(report: Report) -> dict[Entry, ReportStatus]:
    return {(arch, model_id, check): record.status
            for arch, models in report.architectures.items()
            for model_id, model in models.items()
            for check, record in model.checks.items()}


def _worst_entries(report: Report) -> dict[Entry, ReportStatus]:
    return {(arch, "*", check): status for arch in report.architectures
            for check, status in report.statuses(arch).items()}


def _bucket(diff: ReportDiff, old: ReportStatus | None, new: ReportStatus | None) -> list[StatusChange] | None:
    if old is None:
        return diff.added
    if new is None:
        return diff.removed
    if old is new:
        return None
    if old.is_failure != new.is_failure:
        return diff.regressed if new.is_failure else diff.fixed
    return diff.changed


def format_diff(diff: ReportDiff) -> str:
    """Plain text, one section per non-empty kind of change, or "no changes"."""
    if not diff:
        return "no changes"
    lines = []
    for title in CHANGE_KINDS:
        changes = getattr(diff, title)
        if changes:
            lines.append(f"{title} ({len(changes)}):")
            lines.extend(f"  {plain_text(str(change), newlines=False)}" for change in changes)
    return "\n".join(lines)


def summarize_diff(diff: ReportDiff) -> str:
    """One line for a pair of reports, counting architectures (not models), most touched checks first.

    e.g. "163 architectures lost attn_probs_sum; 2 architectures fixed io_shapes; 1 architecture newly
    tested". Checks lost (or fixed) by the same architectures share a phrase ("4 architectures lost
    io_shapes, renaming": they no longer load); "no regressions or fixes" when there is nothing to say.
    """
    phrases = [phrase for kind, verb in SUMMARY_VERBS.items() for phrase in _phrases(diff.by_check(kind), verb)]
    for names, what in ((diff.added_architectures, "newly tested"), (diff.removed_architectures, "no longer tested")):
        if names:
            phrases.append(f"{_architectures(len(names))} {what}")
    return "; ".join(phrases) or "no regressions or fixes"


def _phrases(groups: dict[str, tuple[str, ...]], verb: str) -> list[str]:
    """"<n> architectures <verb> <checks>", one phrase per distinct set of architectures."""
    checks_of: dict[tuple[str, ...], list[str]] = {}
    for check, architectures in groups.items():
        checks_of.setdefault(architectures, []).append(check)
    return [f"{_architectures(len(names))} {verb} {', '.join(checks)}" for names, checks in checks_of.items()]


def _architectures(count: int) -> str:
    return f"{count} architecture" if count == 1 else f"{count} architectures"
