"""Comparing two reports: regressed, fixed, added, removed and other status changes."""

from __future__ import annotations

from nnterp.compat import Report, ReportDiff, ReportStatus, ResultRow, StatusChange, diff_reports, format_diff
from nnterp.compat.diff import diff_architectures, summarize_diff

VERSIONS = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0+cpu"}
P, F, C, S, NA, L = (ReportStatus.PASSED, ReportStatus.FAILED, ReportStatus.CRASHED, ReportStatus.SKIPPED,
                     ReportStatus.NOT_APPLICABLE, ReportStatus.LOAD_ERROR)


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


def test_diff_groups_changes_by_check_and_by_architecture():
    old = report(("A", "renaming", P), ("A", "io_shapes", P), ("B", "io_shapes", P), ("C", "io_shapes", F))
    new = report(("A", "renaming", F), ("A", "io_shapes", F), ("B", "io_shapes", C), ("C", "io_shapes", P))
    diff = diff_reports(old, new)
    assert diff.by_check("regressed") == {"io_shapes": ("A", "B"), "renaming": ("A",)}  # most architectures first
    assert diff.by_architecture("regressed") == {"A": ("io_shapes", "renaming"), "B": ("io_shapes",)}
    assert diff.by_check("fixed") == {"io_shapes": ("C",)} and diff.by_architecture("changed") == {}


def test_diff_lists_architectures_only_in_one_report():
    diff = diff_reports(OLD, NEW)
    assert (diff.added_architectures, diff.removed_architectures) == (["F"], ["C"])


def test_architecture_diff_compares_the_worst_status_over_models():
    old = report(("A", "renaming", P))
    new = old.merged([ResultRow("A", "real/a", "real", "renaming", F, None, "", 0.0),
                      ResultRow("B", "real/b", "real", "renaming", P, None, "", 0.0)])
    assert diff_reports(old, new).regressed == []  # per model, real/a is an addition
    diff = diff_architectures(old, new)
    assert diff.regressed == [StatusChange("A", "*", "renaming", P, F)]
    assert diff.added == [StatusChange("B", "*", "renaming", None, P)] and diff.added_architectures == ["B"]


def test_summary_counts_architectures_per_check():
    many = [(arch, "attn_probs", P) for arch in "ABC"] + [("D", "io_shapes", F), ("E", "renaming", P)]
    later = [(arch, "attn_probs", F) for arch in "ABC"] + [("D", "io_shapes", P), ("G", "renaming", P)]
    assert summarize_diff(diff_reports(report(*many), report(*later))) == (
        "3 architectures lost attn_probs; 1 architecture fixed io_shapes; 1 architecture newly tested; "
        "1 architecture no longer tested")
    assert summarize_diff(diff_reports(OLD, OLD)) == "no regressions or fixes"


def test_summary_shares_a_phrase_between_checks_lost_by_the_same_architectures():
    old = report(("A", "renaming", P), ("A", "io_shapes", P), ("B", "renaming", P), ("B", "io_shapes", P),
                 ("C", "io_shapes", P))
    new = report(("A", "renaming", L), ("A", "io_shapes", L), ("B", "renaming", L), ("B", "io_shapes", L),
                 ("C", "io_shapes", F))
    assert summarize_diff(diff_reports(old, new)) == ("3 architectures lost io_shapes; "
                                                      "2 architectures lost renaming")
    only_a = report(("A", "renaming", L), ("A", "io_shapes", L))
    assert summarize_diff(diff_reports(old, only_a)) == (
        "1 architecture lost io_shapes, renaming; 2 architectures no longer tested")
