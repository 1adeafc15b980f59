"""No verdict says more than was checked: every view of the reports words a partial run as partial, a run whose
checks were all skipped as verifying nothing, and a run that checked nothing leaves nothing behind."""

from __future__ import annotations

import pytest

from nnterp.checks import CHECK_NAMES
from nnterp.compat import LookupState, Report, ReportStatus, ResultRow, lookup_architecture
from nnterp.compat.history import build_history, status_text, summarize, version_sets
from nnterp.compat.store import find_reports, load_report
from nnterp.compat.verdict import Verdict, judge

P, S, NA, F = ReportStatus.PASSED, ReportStatus.SKIPPED, ReportStatus.NOT_APPLICABLE, ReportStatus.FAILED


@pytest.mark.parametrize(("statuses", "verdict", "claim"), [
    (dict.fromkeys(CHECK_NAMES, P), Verdict.ALL_PASSED, "passed every nnterp check"),
    ({**dict.fromkeys(CHECK_NAMES, P), "attn_probs": NA}, Verdict.ALL_PASSED, "passed every nnterp check"),
    ({"renaming": P, "io_shapes": P, "attn_probs": NA}, Verdict.PARTIAL,
     "passed the 3 checks that ran (residual_identity, logits_match, logit_lens, steering and skip_layers not run)"),
    ({**dict.fromkeys(CHECK_NAMES, P), "steering": S}, Verdict.PARTIAL,
     "passed the 7 checks that ran (steering not run)"),
    (dict.fromkeys(CHECK_NAMES, S), Verdict.NOTHING_VERIFIED,
     "was not verified (every check that was asked for was skipped)"),
    ({}, Verdict.NOTHING_VERIFIED, "was not verified (no check ran)"),
    ({"attn_probs": NA}, Verdict.NOTHING_VERIFIED, "was not verified (no check passed)"),
    ({"renaming": P, "io_shapes": F}, Verdict.FAILURES, "failed 1 check"),
])
def test_the_verdict_names_what_ran(statuses, verdict, claim):
    judgement = judge(statuses)
    assert (judgement.verdict, judgement.claim) == (verdict, claim)


def test_a_partial_run_reads_as_partial_in_the_status_command_and_the_pages(tmp_path):
    rows = [ResultRow("LlamaForCausalLM", "toy:llama", "toy", check, P, None, "", 0.0)
            for check in ("renaming", "io_shapes", "attn_probs")]
    report = Report({"nnterp": "2.0.0", "transformers": "5.25.0", "nnsight": "0.8.1", "torch": "2.13.0"}, {},
                    {}).merged(rows)
    assert summarize(report, "LlamaForCausalLM").parts == ("3/3 pass", "5 not run")
    from nnterp.compat.store import write_report

    write_report(tmp_path / "r.json", report)
    text = status_text(find_reports([tmp_path]), "LlamaForCausalLM")
    assert "passed the 3 checks that ran (residual_identity" in text and "every nnterp check" not in text
    history = build_history(version_sets(find_reports([tmp_path])))
    assert history.rows[0].cells[0].text == "3/3 pass \u00b7 5 not run"


def run_suite(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--nnterp-classes", "llama", *args)


def test_a_run_of_one_check_is_recorded_and_looked_up_as_partial(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(tmp_path / "user"))
    reports = tmp_path / "reports"
    assert run_suite(pytester, "--nnterp-checks", "renaming", "--nnterp-report", str(reports)).ret == 0
    [path] = reports.glob("*.json")
    report = load_report(path)
    result = lookup_architecture("LlamaForCausalLM", [reports], report.versions)
    assert result.state is LookupState.PARTIAL
    assert result.message.startswith("LlamaForCausalLM passed the 1 check that ran (io_shapes, residual_identity")


def test_a_run_that_deselects_every_check_writes_no_report(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(tmp_path / "user"))
    reports = tmp_path / "reports"
    result = run_suite(pytester, "--nnterp-report", str(reports), "-k", "no_such_check")
    assert result.ret == 5  # pytest: no test ran
    assert not list(reports.glob("*.json"))
