"""Architectures across version sets: which version set follows which, and what changed between them.

Reports of one version set are merged into a `VersionSet`; version sets sort by their versions
(transformers first) and each is compared with its predecessor on the same nnsight and torch. A
`History` is architectures × version sets, each cell a `Summary` of the architecture's checks there;
the site's matrix page and ``python -m nnterp status`` both show it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .diff import SUMMARY_VERBS, ChangeKind, ReportDiff, diff_architectures, diff_reports, summarize_diff
from .labels import DETAILED, MARKS, check_key, css_class, plain_text
from .schema import VERSIONED_PACKAGES, Report, ReportStatus, report_filename
from .verdict import judge

ORDER_PACKAGES = ("transformers", "nnsight", "torch", "nnterp")  # version sets sort by these versions, in turn
LINE_PACKAGES = ("nnsight", "torch")  # a version set is compared with the previous one sharing these
ALONE = frozenset({ReportStatus.NOT_APPLICABLE, ReportStatus.SKIPPED, ReportStatus.LOAD_ERROR,
                   ReportStatus.CRASHED})  # a status that, on every check, is a cell's whole text


# -- version sets ------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSet:
    """One version set's report (merged over folders) and the page of the site that shows it."""

    path: Path
    report: Report
    page: str

    @property
    def versions(self) -> dict[str, str]:
        return self.report.versions

    @property
    def title(self) -> str:
        """``nnterp 0.1.0, transformers 5.23.0, nnsight 0.8.1, torch 2.13.0`` (then any other package)."""
        versions = self.report.versions
        names = [n for n in VERSIONED_PACKAGES if n in versions] + sorted(set(versions) - set(VERSIONED_PACKAGES))
        return ", ".join(f"{name} {versions[name]}" for name in names)

    @property
    def provenance(self) -> str:
        """When, from which commit, on which Python and platform the report was last updated."""
        env = self.report.environment
        parts = [f"updated {self.updated or 'at an unknown time'}",
                 env.get("git_commit") and f"commit {env['git_commit']}",
                 env.get("python") and f"Python {env['python']}", env.get("platform")]
        return ", ".join(str(part) for part in parts if part)

    @property
    def updated(self) -> str:
        return str(self.report.environment.get("updated") or "")


def version_sets(found: Iterable[tuple[Path, Report]]) -> list[VersionSet]:
    """One page per version set, oldest first: by transformers, then nnsight, torch and nnterp versions.

    Reports of the same version set in several folders are merged, later folders winning per entry,
    as the load-time lookup does.
    """
    merged: dict[str, tuple[Path, Report]] = {}
    for path, report in found:
        page = report_filename(report.versions).removesuffix(".json") + ".html"
        merged[page] = (path, _merge(merged[page][1], report)) if page in merged else (path, report)
    ordered = sorted(merged.items(), key=lambda item: (version_key(item[1][1].versions),
                                                       str(item[1][1].environment.get("updated") or "")))
    return [VersionSet(path, report, page) for page, (path, report) in ordered]


def version_key(versions: dict[str, str]) -> tuple:
    """Sort key of a version set: its `ORDER_PACKAGES` versions compared as versions (5.5 < 5.10)."""
    from packaging.version import InvalidVersion, Version

    def one(text: str) -> tuple:
        try:
            return (1, Version(text), "")
        except InvalidVersion:  # "not-installed" and the like sort first, by name
            return (0, Version("0"), text)

    return tuple(one(versions.get(name, "")) for name in ORDER_PACKAGES)


def predecessors(sets: list[VersionSet]) -> list[VersionSet | None]:
    """The version set each of `sets` (sorted by `version_sets`) is compared with.

    The nearest older one with the same nnsight and torch (`LINE_PACKAGES`), else the one just
    before it, so a transformers upgrade is compared on a fixed nnsight and torch; None for the first.
    """
    chosen: list[VersionSet | None] = []
    for index, current in enumerate(sets):
        older = sets[:index]
        same_line = [vs for vs in older if _line(vs) == _line(current)]
        chosen.append((same_line or older)[-1] if older else None)
    return chosen


def _line(vs: VersionSet) -> tuple[str | None, ...]:
    return tuple(vs.versions.get(name) for name in LINE_PACKAGES)


def version_change(old: dict[str, str], new: dict[str, str]) -> str:
    """``transformers 5.23.0 \u2192 5.24.0`` (every package whose version differs, in `ORDER_PACKAGES` order)."""
    moved = [f"{name} {old.get(name, '?')} \u2192 {new.get(name, '?')}" for name in ORDER_PACKAGES
             if old.get(name) != new.get(name)]
    return ", ".join(moved) or "same versions"


def _merge(base: Report, later: Report) -> Report:
    """`base` with every entry of `later` replacing its own (`Report.merged`); the newer environment is kept."""
    newest = max(base, later, key=lambda report: str(report.environment.get("updated") or ""))
    merged = base.merged(later.rows())
    new = {model for report in (base, later) if report.baseline for model in report.baseline.new_models}
    baseline = newest.baseline or base.baseline or later.baseline
    if baseline is not None:
        baseline = replace(baseline, new_models=tuple(sorted(new)))
    return replace(merged, environment=dict(newest.environment), baseline=baseline)


# -- one architecture in one version set -------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """The check a history cell names: its worst status, the model it came from and its message."""

    check: str
    status: ReportStatus
    model_id: str
    message: str

    def __str__(self) -> str:
        return f"{self.check} ({self.model_id}): {self.message or MARKS[self.status]}"


@dataclass(frozen=True)
class Summary:
    """One architecture in one version set: the worst status of each check over its models (in check
    order; empty when it was not tested), the problem to name, and the checks lost / fixed since the
    version set it is compared with."""

    statuses: tuple[tuple[str, ReportStatus], ...] = ()
    problem: Problem | None = None
    regressed: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()

    @property
    def tested(self) -> bool:
        return bool(self.statuses)

    @property
    def worst(self) -> ReportStatus | None:
        """The status that colours the cell: the worst but n/a (n/a only when every check is n/a)."""
        statuses = [status for _, status in self.statuses]
        shown = [status for status in statuses if status is not ReportStatus.NOT_APPLICABLE] or statuses
        return ReportStatus.worst(shown) if shown else None

    @property
    def css(self) -> str:
        return css_class(self.worst)

    @property
    def trend(self) -> str:
        """``regressed`` if a check became a failure, else ``fixed`` if one stopped being one, else ``""``."""
        return "regressed" if self.regressed else "fixed" if self.fixed else ""

    @property
    def parts(self) -> tuple[str, ...]:
        """The cell's text, in parts: ``("4/6", "attn_probs_sum FAIL +1")``, ``("6/6 pass",)``, ``("load error",)``.

        The count is passed / applicable (not n/a) checks; ``+1`` counts the other checks with a problem; a run
        that left catalogue checks out says how many (``("3/3 pass", "5 not run")``), so it never reads as complete.
        """
        statuses = [status for _, status in self.statuses]
        if not statuses:
            return ("not tested",)
        if len(set(statuses)) == 1 and statuses[0] in ALONE:
            return (MARKS[statuses[0]],)
        applicable = [status for status in statuses if status is not ReportStatus.NOT_APPLICABLE]
        count = f"{applicable.count(ReportStatus.PASSED)}/{len(applicable)}"
        not_run = judge(dict(self.statuses)).not_run
        if self.problem is None:
            return (f"{count} pass",) + ((f"{len(not_run)} not run",) if not_run else ())
        others = sum(status in DETAILED for status in statuses) - 1
        return (count, f"{self.problem.check} {MARKS[self.problem.status]}" + (f" +{others}" if others else ""))

    @property
    def text(self) -> str:
        return " \u00b7 ".join(self.parts)

    def changes(self) -> str:
        """``lost attn_probs_sum; fixed io_shapes``, ``lost every check`` (empty when nothing changed)."""
        every = {check for check, _ in self.statuses}
        groups = ((verb, getattr(self, kind)) for kind, verb in SUMMARY_VERBS.items())
        return "; ".join(f"{verb} {'every check' if len(checks) > 1 and set(checks) == every else ', '.join(checks)}"
                         for verb, checks in groups if checks)


def summarize(report: Report, architecture: str, regressed: tuple[str, ...] = (),
              fixed: tuple[str, ...] = ()) -> Summary:
    """The `Summary` of one architecture in one report; its problem is the first check with the worst status."""
    worst: dict[str, Problem] = {}
    for model_id, record in sorted(report.architectures.get(architecture, {}).items()):
        for check, outcome in record.checks.items():
            if check not in worst or outcome.status.severity > worst[check].status.severity:
                worst[check] = Problem(check, outcome.status, model_id, outcome.message)
    ordered = [worst[check] for check in sorted(worst, key=check_key)]
    problems = [problem for problem in ordered if problem.status in DETAILED]
    return Summary(tuple((problem.check, problem.status) for problem in ordered),
                   max(problems, key=lambda problem: problem.status.severity, default=None),
                   tuple(sorted(regressed, key=check_key)), tuple(sorted(fixed, key=check_key)))


# -- the history -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One version set of the history and the version set it is compared with.

    ``diff``: their `diff_reports` (per model, for the version set's page); ``changes``: their
    `diff_architectures` (per architecture, what the matrix marks and the index sums up);
    ``heading``: the versions that differ between the history's version sets (transformers always).
    """

    vs: VersionSet
    previous: VersionSet | None
    diff: ReportDiff | None
    changes: ReportDiff | None
    heading: tuple[str, ...]

    @property
    def label(self) -> str:
        return ", ".join(self.heading)

    @property
    def change(self) -> str:
        """``transformers 5.23.0 \u2192 5.24.0`` ("" for the first version set)."""
        return version_change(self.previous.versions, self.vs.versions) if self.previous else ""

    def summary(self) -> str:
        """What changed since the previous version set, per check (see `diff.summarize_diff`)."""
        return summarize_diff(self.changes) if self.changes is not None else ""

    def count(self, kind: ChangeKind) -> int:
        """How many architectures have a change of `kind` ("regressed", "fixed") since the previous version set."""
        return len(self.changes.by_architecture(kind)) if self.changes is not None else 0


@dataclass(frozen=True)
class HistoryRow:
    """One architecture: a `Summary` per version set of the history."""

    architecture: str
    cells: tuple[Summary, ...]

    @property
    def tags(self) -> tuple[str, ...]:
        """The matrix page's filter tags: ``regressed``, ``fixed``, ``failing`` (a failure in any version set)."""
        failing = any(cell.worst is not None and cell.worst.is_failure for cell in self.cells)
        flags = {"regressed": any(cell.regressed for cell in self.cells),
                 "fixed": any(cell.fixed for cell in self.cells), "failing": failing}
        return tuple(tag for tag, on in flags.items() if on)


@dataclass(frozen=True)
class History:
    """Architectures × version sets (oldest first); ``common``: the versions every version set shares."""

    columns: tuple[Column, ...]
    rows: tuple[HistoryRow, ...]
    common: tuple[str, ...]

    def row(self, architecture: str) -> HistoryRow | None:
        """The row of an architecture (class name, any case), or None."""
        return next((row for row in self.rows if row.architecture.lower() == architecture.lower()), None)


def build_history(sets: list[VersionSet]) -> History:
    """The history of version sets sorted by `version_sets`, each compared with its `predecessors` entry."""
    varying = [name for name in ORDER_PACKAGES
               if name == "transformers" or len({vs.versions.get(name) for vs in sets}) > 1]
    columns = tuple(_column(vs, previous, tuple(f"{name} {vs.versions.get(name, '?')}" for name in varying))
                    for vs, previous in zip(sets, predecessors(sets)))
    changes = [(column.changes.by_architecture("regressed"), column.changes.by_architecture("fixed"))
               if column.changes is not None else ({}, {}) for column in columns]
    architectures = sorted({arch for vs in sets for arch in vs.report.architectures})
    rows = tuple(HistoryRow(arch, tuple(summarize(column.vs.report, arch, lost.get(arch, ()), fixed.get(arch, ()))
                                        for column, (lost, fixed) in zip(columns, changes)))
                 for arch in architectures)
    common = tuple(f"{name} {sets[0].versions.get(name, '?')}" for name in VERSIONED_PACKAGES
                   if sets and name not in varying)
    return History(columns, rows, common)


def _column(vs: VersionSet, previous: VersionSet | None, heading: tuple[str, ...]) -> Column:
    if previous is None:
        return Column(vs, None, None, None, heading)
    return Column(vs, previous, diff_reports(previous.report, vs.report),
                  diff_architectures(previous.report, vs.report), heading)


def status_text(found: Iterable[tuple[Path, Report]], architecture: str) -> str | None:
    """An architecture's row of the history (class name, any case), a line per version set, oldest first.

    Each line: the versions, each check's status (worst over the architecture's models), the checks
    lost or fixed since the previous version set, and the first problem's message. None if no report
    mentions the architecture.
    """
    from tabulate import tabulate

    history = build_history(version_sets(found))
    row = history.row(architecture)
    if row is None:
        return None
    checks = sorted({check for cell in row.cells for check, _ in cell.statuses}, key=check_key)
    lines = [[column.label, judge(dict(cell.statuses)).claim if cell.tested else "not tested",
              *(_mark(cell, check) for check in checks), cell.changes(), " ".join(str(cell.problem or "").split())]
             for column, cell in zip(history.columns, row.cells)]
    common = f" (every one with {', '.join(history.common)})" if history.common else ""
    count = f"{len(history.columns)} version set{'s' if len(history.columns) != 1 else ''}"
    title = f"{row.architecture} in {count}, oldest first{common}"
    lines = [[plain_text(str(text), newlines=False) for text in line] for line in lines]  # reports are user input
    headers = [plain_text(text, newlines=False) for text in ['version set', 'verdict', *checks, 'change',
                                                             'first problem']]
    return plain_text(f"{title}\n{tabulate(lines, headers=headers)}")


def _mark(cell: Summary, check: str) -> str:
    status = dict(cell.statuses).get(check)
    return MARKS[status] if status is not None else ""
