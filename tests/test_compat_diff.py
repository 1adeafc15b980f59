"""Comparing two reports: regressed, fixed, added, removed and other status changes."""

from __future__ import annotations

from nnterp.compat import Report, ReportDiff, ReportStatus, ResultRow, StatusChange, diff_reports, format_diff

VERSIONS = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0+cpu"}
P, F, C, S, NA = (ReportStatus.PASSED, ReportStatus.FAILED, ReportStatus.CRASHED, ReportStatus.SKIPPED,
                  ReportStatus.NOT_APPLICABLE)


def report(*entries: tuple[str, str, ReportStatus]) -> Report:
    rows = [ResultRow(arch, "toy:x", "toy", check, status, None, "", 0.0) for arch, check, status in entries]
    return Report(VERSIONS, {}, {}).merged(rows)


OLD = report(("A", "renaming", P), ("A", "residual_identity", P), ("B", "renaming", F), ("C", "renaming", P),
             ("D", "io_shapes", F), ("E", "logits_match", P))
NEW = report(("A", "renaming", P), ("A", "residual_identity", F), ("B", "renaming", P), ("D", "io_shapes", C),
             ("E", "logits_match", S), ("F", "renaming", NA))


def test_diff_sorts_every_entry_into_its_kind():
    diff = diff_reports(OLD, NEW)
    assert diff.regressed == [StatusChange("A", "toy:x", "residual_identity", P, F)]
    assert diff.fixed == [StatusChange("B", "toy:x", "renaming", F, P)]
    assert diff.added == [StatusChange("F", "toy:x", "renaming", None, NA)]
    assert diff.removed == [StatusChange("C", "toy:x", "renaming", P, None)]
    assert diff.changed == [StatusChange("D", "toy:x", "io_shapes", F, C),
                            StatusChange("E", "toy:x", "logits_match", P, S)]


def test_a_load_error_after_passing_is_a_regression():
    diff = diff_reports(report(("A", "renaming", P)), report(("A", "renaming", ReportStatus.LOAD_ERROR)))
    assert [change.new_status for change in diff.regressed] == [ReportStatus.LOAD_ERROR]


def test_identical_reports_have_no_changes():
    diff = diff_reports(OLD, OLD)
    assert diff == ReportDiff() and not diff
    assert format_diff(diff) == "no changes"


def test_format_diff_reads_as_sections():
    text = format_diff(diff_reports(OLD, NEW))
    assert text.splitlines() == [
        "regressed (1):",
        "  A / toy:x / residual_identity: passed -> failed",
        "fixed (1):",
        "  B / toy:x / renaming: failed -> passed",
        "added (1):",
        "  F / toy:x / renaming: absent -> n/a",
        "removed (1):",
        "  C / toy:x / renaming: passed -> absent",
        "changed (2):",
        "  D / toy:x / io_shapes: failed -> crashed",
        "  E / toy:x / logits_match: passed -> skipped",
    ]
