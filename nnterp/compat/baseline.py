"""What a run is measured against: the version set before it, and the models that set never saw.

Every upstream release can add model types. A model absent from the report it is compared with is *new*: its
outcome is a finding to report (with its measured reason when it fails), never a regression. A model that the
compared report holds is held to what that report recorded.

- ``previous_report``: the newest version set older than a given one; a report's ``baseline`` names it and
  lists the report's models it lacks (what the table, the pages and the load-time warning call new).
- ``last_committed_report``: the report of the installed set itself where one is committed, else the previous
  one: what the test suite holds the installed releases to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from .history import LINE_PACKAGES, ORDER_PACKAGES, VersionSet, version_key, version_sets
from .schema import Baseline, ModelRecord, Report, ReportStatus
from .verdict import RAN


def previous_report(versions: dict[str, str], found: Iterable[tuple[Path, Report]]) -> Report | None:
    """The report (merged over folders) of the version set ``versions`` is compared with, as the history
    compares them (``history.predecessors``): the newest older one on the same nnsight and torch, else the
    newest older one; None if none is older."""
    return _previous(versions, version_sets(found))


def last_committed_report(versions: dict[str, str], found: Iterable[tuple[Path, Report]]) -> Report | None:
    """The report of ``versions`` itself (merged over folders), else the one it is compared with
    (``previous_report``); None if neither exists."""
    sets = version_sets(found)
    same = [vs.report for vs in sets if version_key(vs.versions) == version_key(versions)]
    return same[-1] if same else _previous(versions, sets)


def _previous(versions: dict[str, str], sets: list[VersionSet]) -> Report | None:
    older = [vs.report for vs in sets if version_key(vs.versions) < version_key(versions)]
    line = [report for report in older if all(report.versions.get(name) == versions.get(name)
                                              for name in LINE_PACKAGES)]
    return (line or older)[-1] if older else None


def compared(report: Report, previous: Report | None) -> Report:
    """``report`` with its baseline: ``previous``'s versions and the models ``previous`` lacks (None: no baseline)."""
    if previous is None:
        return replace(report, baseline=None)
    new = tuple(sorted(report.model_ids() - previous.model_ids()))
    return replace(report, baseline=Baseline(dict(previous.versions), new))


def novelty(versions: dict[str, str], baseline_versions: dict[str, str]) -> str:
    """``new in transformers 5.25.0 (absent from the report for transformers 5.24.0)``: the packages whose
    versions differ, as the installed and the compared set hold them."""
    moved = [name for name in ORDER_PACKAGES if versions.get(name) != baseline_versions.get(name)]
    if not moved:
        return "new since the last report of this version set"
    here = ", ".join(f"{name} {versions.get(name, '?')}" for name in moved)
    there = ", ".join(f"{name} {baseline_versions.get(name, '?')}" for name in moved)
    return f"new in {here} (absent from the report for {there})"


def unverified_reason(record: ModelRecord) -> str | None:
    """Why a model is not verified: its worst checks and their message; None when every check passed (or
    does not apply) and at least one passed."""
    statuses = [check.status for check in record.checks.values()]
    if statuses and set(statuses) <= RAN and ReportStatus.PASSED in statuses:
        return None
    if not statuses:
        return "no check ran"
    worst = ReportStatus.worst(statuses)
    if worst in RAN:
        return "no check passed (every check is n/a)"
    names = [name for name, check in record.checks.items() if check.status is worst]
    message = " ".join(record.checks[names[0]].message.split())
    where = "every check" if len(names) == len(statuses) else ", ".join(names)
    return f"{worst.value} on {where}: {message}" if message else f"{worst.value} on {where}"


def new_model_lines(report: Report) -> list[str]:
    """The finding a report's new models make: a header counting those not yet verified, then one line
    (model, architecture, measured reason) for each; ``[]`` when the report has no new model."""
    if report.baseline is None or not report.baseline.new_models:
        return []
    records = {model_id: (arch, record) for arch, models in report.architectures.items()
               for model_id, record in models.items() if model_id in report.baseline.new_models}
    reasons = {model_id: (arch, unverified_reason(record)) for model_id, (arch, record) in sorted(records.items())}
    unverified = {model_id: (arch, reason) for model_id, (arch, reason) in reasons.items() if reason is not None}
    header = (f"{novelty(report.versions, report.baseline.versions)}: "
              f"{len(unverified)} of {len(reasons)} not yet verified")
    return [header, *(f"  {model_id} ({arch}): {reason}" for model_id, (arch, reason) in unverified.items())]


def against_committed(new: Report, committed: Report) -> tuple[list[str], bool]:
    """What a run on newer releases found against a committed report: its new models (each not yet verified
    with its measured reason), then the entries that regressed, were fixed or otherwise changed, and how many
    of the committed report's entries it did not run. Also whether any entry regressed."""
    from .diff import diff_reports, format_diff, summarize_diff
    from .history import version_change

    found = compared(new, committed)
    diff = diff_reports(committed, new)
    known = replace(diff, added=[change for change in diff.added if not found.is_new(change.model_id)], removed=[])
    lines = [f"against the committed report ({version_change(committed.versions, new.versions)}): "
             f"{summarize_diff(replace(known, removed_architectures=[]))}"]
    lines += new_model_lines(found) or ["no new models"]
    lines += [] if not known else format_diff(known).splitlines()
    if diff.removed:
        lines.append(f"not run here ({len(diff.removed)} entries of the committed report, "
                     f"{len(diff.removed_architectures)} architectures): a partial run, or types upstream removed")
    return lines, bool(diff.regressed)
