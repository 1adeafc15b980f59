"""The plugin's one session object: selection, per-process model runner, gathered results, report writing.

Workers run checks and attach each outcome to its test report (``user_properties``); the controller
(or the only process, without xdist) gathers them from the reports, so the same code path holds with
and without ``-n``, and only the controller writes files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .options import Selection
from .plugin import PROPERTY
from .runner import ModelRunner, Outcome
from .suite import CHECK_NAMES
from .targets import Target, real_targets, toy_targets



class NnterpSession:
    def __init__(self, config: pytest.Config, selection: Selection):
        self.config = config
        self.selection = selection
        self.targets: list[Target] = real_targets(selection.models) + toy_targets(selection.classes)
        self.checks = selection.checks or CHECK_NAMES
        self.runner = ModelRunner()
        self.rows: dict[tuple[str, str, str], dict] = {}
        self.report_path: Path | None = None
        self._by_test_id = {f"{target.label}-{check}": (target, check)
                            for target in self.targets for check in self.checks}

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    # -- worker side -------------------------------------------------------------------

    def outcome(self, target: Target, check: str) -> Outcome:
        return self.runner.run(target, check)

    def record_category(self, item: pytest.Item, report: pytest.TestReport) -> None:
        """Attach a user test's outcome, under its ``nnterp_category``, to its report (setup failure: load error)."""
        marker = item.get_closest_marker("nnterp_category")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "nnterp_target" not in callspec.params:
            return
        if report.when != "call" and (report.when != "setup" or report.passed):
            return
        status = "load error" if report.when == "setup" and report.failed else report.outcome
        message = "" if report.passed else str(report.longrepr).strip().splitlines()[-1][:300]
        row = Outcome(callspec.params["nnterp_target"], marker.args[0], status, message,
                      duration=report.duration).as_row()
        report.user_properties.append((PROPERTY, row))

    # -- controller side (hooks of this registered plugin object) ---------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_controller:
            self.record(report)

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
        if self.report_path is not None:
            terminalreporter.write_line(f"report written: {self.report_path}")

    def record(self, report: pytest.TestReport) -> None:
        """Take an outcome off a test report; a crashed worker's item is recorded as crashed."""
        for name, row in report.user_properties:
            if name == PROPERTY:
                self.rows[(row["architecture"], row["model_id"], row["check"])] = row
                return
        crashed = report.failed and "crashed" in str(report.longrepr).lower()
        match = re.search(r"\[(.*)\]$", report.nodeid)
        if crashed and match and match.group(1) in self._by_test_id:
            target, check = self._by_test_id[match.group(1)]
            row = Outcome(target, check, "crashed", str(report.longrepr).strip().splitlines()[-1][:300]).as_row()
            self.rows[(row["architecture"], row["model_id"], row["check"])] = row

    def result_rows(self) -> list:
        from nnterp.compat.schema import ReportStatus, ResultRow

        return [ResultRow(**{**row, "status": ReportStatus(row["status"])}) for row in self.rows.values()]

    def write_report(self) -> Path | None:
        if self.selection.report_dir is None or not self.rows:
            return None
        from nnterp.compat.store import update_report

        return update_report(self.selection.report_dir, self.result_rows())

    def summary_lines(self) -> list[str]:
        from nnterp.compat.render import terminal_table

        return terminal_table(self.result_rows()).splitlines()
