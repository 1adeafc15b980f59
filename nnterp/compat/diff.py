"""What changed between two reports: checks that regressed, were fixed, appeared or disappeared."""

from __future__ import annotations

from dataclasses import dataclass, field

from .schema import Report, ReportStatus


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
    (e.g. passed -> skipped, failed -> crashed).
    """

    regressed: list[StatusChange] = field(default_factory=list)
    fixed: list[StatusChange] = field(default_factory=list)
    added: list[StatusChange] = field(default_factory=list)
    removed: list[StatusChange] = field(default_factory=list)
    changed: list[StatusChange] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.regressed, self.fixed, self.added, self.removed, self.changed))


def diff_reports(old: Report, new: Report) -> ReportDiff:
    """Compare every (architecture, model, check) entry of ``old`` and ``new``."""
    before, after = _entries(old), _entries(new)
    diff = ReportDiff()
    for key in sorted(before.keys() | after.keys()):
        change = StatusChange(*key, before.get(key), after.get(key))
        bucket = _bucket(diff, change.old_status, change.new_status)
        if bucket is not None:
            bucket.append(change)
    return diff


def _entries(report: Report) -> dict[tuple[str, str, str], ReportStatus]:
    return {(arch, model_id, check): record.status
            for arch, models in report.architectures.items()
            for model_id, model in models.items()
            for check, record in model.checks.items()}


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
    for title in ("regressed", "fixed", "added", "removed", "changed"):
        changes = getattr(diff, title)
        if changes:
            lines.append(f"{title} ({len(changes)}):")
            lines.extend(f"  {change}" for change in changes)
    return "\n".join(lines)
