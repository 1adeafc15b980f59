"""The plugin's one session object: selection, per-process model runner, gathered results, report writing.

Workers run checks and attach each outcome to its test report (``user_properties``); the controller
(or the only process, without xdist) gathers them from the reports, so the same code path holds with
and without ``-n``, and only the controller writes files.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from nnterp.checks import ReportStatus

from .options import PROPERTY, Selection, check_report_dir
from .runner import ModelRunner, check_row
from .targets import Target, real_targets, toy_targets

if TYPE_CHECKING:
    from nnterp.checks import CheckRow
    from nnterp.compat.schema import Report, ResultRow

PLANNED = "nnterp_planned"  # user_properties key of the row a test will produce, sent with its setup report


class NnterpSession:
    def __init__(self, config: pytest.Config, selection: Selection):
        self.config = config
        self.selection = selection
        self.targets: list[Target] = real_targets(selection.models) + toy_targets(selection.classes)
        self.checks = selection.checks or _catalogue_names()
        self.runner = ModelRunner()
        self.rows: dict[tuple[str, str, str], CheckRow] = {}
        self.planned: dict[str, CheckRow] = {}  # nodeid -> the row its test will produce (to record a crash)
        self.report_path: Path | None = None
        self.report_problem: str | None = None  # why the report is not where it was asked for, if it is not
        self._by_test_id = {f"{target.label}-{check}": (target, check)
                            for target in self.targets for check in self.checks}
        if self.is_controller and selection.report_dir is not None:
            check_report_dir(selection.report_dir)

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    # -- worker side -------------------------------------------------------------------

    def outcome(self, target: Target, check: str) -> CheckRow:
        return self.runner.run(target, check)

    def annotate(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """Attach to ``item``'s reports what the controller needs: the planned row (on the setup report,
        so a crash later in the test can be recorded) and a user check's outcome."""
        if report.when == "setup":
            planned = self.planned_check(item)
            if planned is not None:
                report.user_properties.append((PLANNED, check_row(*planned, ReportStatus.CRASHED.value)))
        self.record_category(item, report)

    def planned_check(self, item: pytest.Item) -> tuple[Target, str] | None:
        """(target, check) of a built-in check or of a user ``nnterp_category`` test; None for other tests."""
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "nnterp_target" not in params:
            return None
        if "nnterp_check_name" in params:
            return params["nnterp_target"], params["nnterp_check_name"]
        marker = item.get_closest_marker("nnterp_category")
        return (params["nnterp_target"], marker.args[0]) if marker is not None else None

    def record_category(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """Attach a user test's outcome, under its ``nnterp_category``, to its report (setup failure: load error)."""
        marker = item.get_closest_marker("nnterp_category")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "nnterp_target" not in callspec.params:
            return
        if report.when != "call" and (report.when != "setup" or report.passed):
            return
        failed_setup = report.when == "setup" and report.failed
        status = ReportStatus.LOAD_ERROR if failed_setup else ReportStatus(report.outcome)
        message = "" if report.passed else str(report.longrepr).strip().splitlines()[-1][:300]
        row = check_row(callspec.params["nnterp_target"], marker.args[0], status.value, message,
                        duration=report.duration)
        report.user_properties.append((PROPERTY, row))

    # -- controller side (hooks of this registered plugin object) ---------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_controller:
            self.record(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched) -> None:
        """xdist: a worker died running ``crashitem``; record its check as crashed (built-in or user check)."""
        planned = self.planned.get(crashitem) or self._builtin_row(crashitem)
        if planned is None:
            return  # not a check of ours (a plain test): pytest's own failure report tells about it
        message = " ".join(str(report.longrepr).split())[:300]
        row: CheckRow = {**planned, "status": ReportStatus.CRASHED.value, "message": message, "value": None,
                         "duration": 0.0}
        self.rows[(row["architecture"], row["model_id"], row["check"])] = row

    def _builtin_row(self, nodeid: str) -> CheckRow | None:
        match = re.search(r"::test_nnterp_check\[(.*)\](@[^\[\]]*)?$", nodeid)  # '@group' under loadgroup
        if match is None or match.group(1) not in self._by_test_id:
            return None
        return check_row(*self._by_test_id[match.group(1)], ReportStatus.CRASHED.value)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_controller:
            self.report_path = self.write_report()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.is_controller or not self.rows:
            return
        terminalreporter.section("nnterp compatibility")
        for line in self.summary_lines():
            terminalreporter.write_line(line)
        if self.report_problem is not None:
            terminalreporter.write_line(self.report_problem, red=True, bold=True)
        if self.report_path is not None:
            terminalreporter.write_line(f"report written: {self.report_path}")

    def record(self, report: pytest.TestReport) -> None:
        """Take an outcome (or, on a setup report, the planned row) off a test report."""
        for name, value in report.user_properties:
            row = cast("CheckRow", value)
            if name == PROPERTY:
                self.rows[(row["architecture"], row["model_id"], row["check"])] = row
            elif name == PLANNED:
                self.planned[report.nodeid] = row

    def result_rows(self) -> list[ResultRow]:
        from nnterp.compat.schema import ResultRow

        return [ResultRow.from_dict(dict(row)) for row in self.rows.values()]

    @functools.cached_property
    def previous(self) -> Report | None:
        """The newest version set older than the installed one, over every report folder (the shipped reports,
        the user's and the selected one): what this run's new models are new against."""
        from nnterp.compat.baseline import previous_report
        from nnterp.compat.lookup import report_directories
        from nnterp.compat.schema import current_versions
        from nnterp.compat.store import find_reports

        return previous_report(current_versions(), find_reports(report_directories(self.selection.report_dir)))

    def result_report(self) -> Report:
        """This run's rows as a report of the installed version set, compared with ``previous``."""
        from nnterp.compat.baseline import compared
        from nnterp.compat.schema import Report, current_versions

        return compared(Report(current_versions(), {}, {}).merged(self.result_rows()), self.previous)

    def write_report(self) -> Path | None:
        """Update the report in the selected folder; if that fails (checked writable at the start, it may
        not be at the end), write the results to a new temp folder instead and say so. If that fails too (a
        full disk), the results are printed with the problem, one JSON row a line: never lost to a traceback."""
        if self.selection.report_dir is None or not self.rows:
            return None
        from nnterp.compat.store import update_report

        rows = self.result_rows()
        try:
            return update_report(self.selection.report_dir, rows, previous=self.previous)
        except OSError as error:
            problem = f"could not write the compatibility report to {self.selection.report_dir} ({error})"
        fallback = None
        try:
            fallback = Path(tempfile.mkdtemp(prefix="nnterp-report-"))
            path = update_report(fallback, rows, previous=self.previous)
        except OSError as error:
            if fallback is not None:
                shutil.rmtree(fallback, ignore_errors=True)
            lines = [json.dumps(row.to_dict(), sort_keys=True) for row in rows]
            self.report_problem = "\n".join([
                f"{problem}, nor to a temp folder ({error}); the results ({len(rows)} rows) follow as JSON lines, "
                "one row a line: save them, then nnterp.compat.update_report(folder, [ResultRow.from_dict(row) ...])",
                *lines])
            return None
        self.report_problem = f"{problem}; the results were written to {path} instead"
        return path

    def summary_lines(self) -> list[str]:
        from nnterp.compat.render import terminal_table

        return terminal_table(self.result_report()).splitlines()


def _catalogue_names() -> tuple[str, ...]:
    from nnterp.checks import CHECK_NAMES

    return CHECK_NAMES
