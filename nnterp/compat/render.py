"""Render compatibility reports: a static HTML site, a Markdown table, a terminal table.

Every view is built from one `Matrix` (a row per model, a column per check), so the site, the
README table and the pytest summary always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .schema import VERSIONED_PACKAGES, CheckRecord, Report, ReportStatus, ResultRow, report_filename

# Column order of the checks nnterp runs (mirrors `nnterp.checks.CheckName`, which imports torch);
# any other check (the plugin's own) follows, alphabetically.
CHECK_ORDER = ("renaming", "io_shapes", "residual_identity", "attn_probs_sum", "attn_probs_effect", "logits_match")
MARKS = {"passed": "pass", "failed": "FAIL", "n/a": "n/a", "load error": "load error",
         "crashed": "crashed", "skipped": "skipped"}
DETAILED = ("failed", "load error", "crashed", "skipped")  # statuses whose message gets a visible line
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Cell:
    """One check of one model, ready to display."""

    status: str
    message: str
    value: float | None

    @property
    def mark(self) -> str:
        return MARKS.get(self.status, self.status)

    @property
    def css(self) -> str:
        return css_class(self.status)


def css_class(status: ReportStatus | str | None) -> str:
    """The CSS class of a status: ``st-passed``, ``st-na``, ``st-load-error``... (``st-absent`` for None)."""
    value = ReportStatus(status).value if status is not None else "absent"
    return "st-" + value.replace("/", "").replace(" ", "-")


@dataclass(frozen=True)
class Row:
    """One model of one architecture: a cell per check column (None where it was not run)."""

    architecture: str
    model_id: str
    kind: str
    cells: tuple[Cell | None, ...]

    def problems(self, checks: tuple[str, ...]) -> list[tuple[str, Cell]]:
        """(check, cell) for each cell whose message a reader needs to see."""
        return [(check, cell) for check, cell in zip(checks, self.cells)
                if cell is not None and cell.status in DETAILED and cell.message]


@dataclass(frozen=True)
class Matrix:
    """Models × checks, with the per-status counts shown above every table."""

    checks: tuple[str, ...]
    rows: tuple[Row, ...]

    def counts(self) -> dict[str, int]:
        """How many cells have each status (every status listed, zeros included)."""
        counts = {status.value: 0 for status in ReportStatus}
        for row in self.rows:
            for cell in row.cells:
                if cell is not None:
                    counts[cell.status] = counts.get(cell.status, 0) + 1
        return counts

    def architectures(self) -> int:
        return len({row.architecture for row in self.rows})

    def summary(self) -> str:
        """One line: architectures, models, then passed / failed / n/a and any other non-zero status."""
        counts = self.counts()
        shown = [f"{n} {status}" for status, n in counts.items() if n or status in ("passed", "failed", "n/a")]
        return f"{self.architectures()} architectures, {len(self.rows)} models: " + ", ".join(shown)


def build_matrix(source: Report | Iterable[ResultRow]) -> Matrix:
    """The matrix of a report, or of the plugin's result rows (a later row replaces an earlier one)."""
    report = source if isinstance(source, Report) else Report({}, {}, {}).merged(source)
    rows = [(arch, model_id, record) for arch, models in sorted(report.architectures.items())
            for model_id, record in sorted(models.items())]
    names = {name for _, _, record in rows for name in record.checks}
    checks = tuple(sorted(names, key=_check_key))
    return Matrix(checks, tuple(Row(arch, model_id, record.kind, tuple(_cell(record.checks.get(c)) for c in checks))
                                for arch, model_id, record in rows))


def _cell(record: CheckRecord | None) -> Cell | None:
    """The displayed cell of a check record; None where the check was not run."""
    if record is None:
        return None
    return Cell(ReportStatus(record.status).value, record.message or "", record.value)


def _table_rows(matrix: Matrix, markdown: bool = False) -> list[list[str]]:
    rows = [[row.architecture, row.model_id, *(cell.mark if cell else "" for cell in row.cells)]
            for row in matrix.rows]
    return [[_markdown_text(text) for text in row] for row in rows] if markdown else rows


def _markdown_text(text: str) -> str:
    """Text safe in a Markdown table cell: no raw HTML, no column breaks (model ids are user input)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def markdown_table(report: Report | Iterable[ResultRow]) -> str:
    """A GitHub-flavoured Markdown table (models × checks) under a counts line, for the README."""
    from tabulate import tabulate

    matrix = build_matrix(report)
    table = tabulate(_table_rows(matrix, markdown=True), headers=["architecture", "model", *matrix.checks],
                     tablefmt="github")
    return f"{matrix.summary()}\n\n{table}\n"


def terminal_table(report: Report | Iterable[ResultRow]) -> str:
    """A plain-text table (models × checks) and a counts line, for the pytest terminal summary."""
    from tabulate import tabulate

    matrix = build_matrix(report)
    table = tabulate(_table_rows(matrix), headers=["architecture", "model", *matrix.checks])
    return f"{table}\n{matrix.summary()}"


@dataclass(frozen=True)
class VersionSet:
    """One version set's report (merged over folders) and the page of the site that shows it."""

    path: Path
    report: Report
    page: str

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
    """One page per version set, oldest first (by `environment.updated`, then versions).

    Reports of the same version set in several folders are merged, later folders winning per entry,
    as the load-time lookup does.
    """
    merged: dict[str, tuple[Path, Report]] = {}
    for path, report in found:
        page = report_filename(report.versions).removesuffix(".json") + ".html"
        merged[page] = (path, _merge(merged[page][1], report)) if page in merged else (path, report)
    ordered = sorted(merged.items(), key=lambda item: (str(item[1][1].environment.get("updated") or ""),
                                                       sorted(item[1][1].versions.items())))
    return [VersionSet(path, report, page) for page, (path, report) in ordered]


def _merge(base: Report, later: Report) -> Report:
    """`base` with every entry of `later` replacing its own; the newer environment is kept."""
    rows = [ResultRow(arch, model_id, record.kind, check, outcome.status, outcome.value, outcome.message,
                      outcome.duration)
            for arch, models in later.architectures.items() for model_id, record in models.items()
            for check, outcome in record.checks.items()]
    newest = max(base, later, key=lambda report: str(report.environment.get("updated") or ""))
    return replace(base.merged(rows), environment=dict(newest.environment))


def render_site(report_dirs: Iterable[Path | str], out_dir: Path | str) -> Path:
    """Write `index.html` and one page per version set found in `report_dirs`; return the index path."""
    from .diff import diff_reports
    from .store import find_reports

    sets = version_sets(find_reports([Path(d) for d in report_dirs]))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    for previous, current in zip([None, *sets], sets):
        diff = diff_reports(previous.report, current.report) if previous else None
        html = env.get_template("version_set.html").render(
            vs=current, matrix=build_matrix(current.report), previous=previous, diff=diff, marks=MARKS)
        (out / current.page).write_text(html, encoding="utf-8")
    index = out / "index.html"
    index.write_text(env.get_template("index.html").render(
        sets=list(reversed(sets)), matrices={vs.page: build_matrix(vs.report) for vs in sets}), encoding="utf-8")
    return index


def _environment():
    """A jinja2 environment over our templates, autoescaping everything (model ids are user input)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["css"] = css_class
    return env


def status_text(found: Iterable[tuple[Path, Report]], architecture: str) -> str | None:
    """What each report says about one architecture (class name, any case); None if none mentions it."""
    blocks = []
    for vs in version_sets(found):
        name = next((a for a in vs.report.architectures if a.lower() == architecture.lower()), None)
        if name is None:
            continue
        lines = [f"{name} with {vs.title} (updated {vs.updated or 'unknown'}; {vs.path})"]
        for model_id, record in sorted(vs.report.architectures[name].items()):
            lines.append(f"  {model_id} ({record.kind})")
            width = max((len(check) for check in record.checks), default=0)
            for check, result in sorted(record.checks.items(), key=lambda item: _check_key(item[0])):
                status = MARKS.get(ReportStatus(result.status).value, str(result.status))
                lines.append(f"    {check:<{width}}  {status:<10}  {result.message or ''}".rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) if blocks else None


def _check_key(check: str) -> tuple[int, str]:
    """Sort key putting nnterp's checks in their usual order, then the rest alphabetically."""
    return (CHECK_ORDER.index(check), "") if check in CHECK_ORDER else (len(CHECK_ORDER), check)
