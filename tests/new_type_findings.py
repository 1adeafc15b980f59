"""The suite's finding on the model types the committed reports lack (``known_failures.NEW_TYPES``).

Their tests are non-strict xfails, so they never turn the suite red; this gathers, on the controller, which of
them every test verified and, for the others, the measured reason of each test that did not pass, for the
terminal summary: "new in transformers 5.25.0 (absent from the report for transformers 5.24.0): 2 of 7 not yet
verified", then one line per type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

PROPERTY = "nnterp_new_type"  # user_properties key: (model type, class name, what it is new in)


def mark_report(item: pytest.Item, report: pytest.TestReport) -> None:
    """Attach a new type's identity to its test's report (it travels from an xdist worker to the controller)."""
    marker = item.get_closest_marker("new_type")
    if marker is not None:
        report.user_properties.append((PROPERTY, tuple(marker.args)))


def _problem(report: pytest.TestReport) -> str | None:
    """Why a new type's test did not verify it (its measured failure or skip reason); None when it passed."""
    test = report.nodeid.split("::")[-1].split("[")[0]
    if report.passed:
        return None
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return f"{test}: {_short(crash.message)}"
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        return f"{test}: skipped: {report.longrepr[2].removeprefix('Skipped: ')}"
    return f"{test}: {str(report.longrepr).strip().splitlines()[-1]}"


def _short(message: str, limit: int = 400) -> str:
    """A failure message on one line, cut at ``limit`` characters."""
    text = " ".join(message.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass(eq=False)  # a plugin: pluggy keeps plugins in sets
class NewTypeFindings:
    """Per new model type: its class, what it is new in, and the problems its tests met. Registered as a plugin
    on the controller: it reads every test report and writes the summary section."""

    classes: dict[str, str] = field(default_factory=dict)
    since: dict[str, str] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.record(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        """New model types are findings, not failures: say which the tests did not verify, and why."""
        lines = self.lines()
        if lines:
            terminalreporter.section("new model types")
            for line in lines:
                terminalreporter.write_line(line)

    def record(self, report: pytest.TestReport) -> None:
        identity = next((value for name, value in report.user_properties if name == PROPERTY), None)
        if identity is None or (report.when != "call" and report.passed):
            return
        model_type, class_name, since = identity
        self.classes[model_type], self.since[model_type] = class_name, since
        problem = _problem(report)
        problems = self.problems.setdefault(model_type, [])
        if problem is not None and problem not in problems:
            problems.append(problem)

    def lines(self) -> list[str]:
        """The summary: one header per 'new in ...' and a line per type not yet verified; [] when none ran."""
        lines = []
        for since in sorted(set(self.since.values())):
            types = sorted(t for t, s in self.since.items() if s == since)
            unverified = [t for t in types if self.problems[t]]
            lines.append(f"{since}: {len(unverified)} of {len(types)} not yet verified")
            lines += [f"  {t} ({self.classes[t]}): {'; '.join(self.problems[t])}" for t in unverified]
        return lines
