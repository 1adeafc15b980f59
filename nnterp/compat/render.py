"""Render compatibility reports: a static HTML site, a Markdown table, a terminal table.

One version set's views are built from one `Matrix` (a row per model, a column per check), so the
site, the README table and the pytest summary always agree. The site's matrix page shows the
`history.History` across version sets (a row per architecture, a column per version set).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .baseline import new_model_lines
from .history import History, build_history, version_sets
from .history import status_text as status_text  # noqa: F401  (re-exported: nnterp.__main__ imports it from here)
from .labels import DETAILED, MARKS, SUMMED, check_key, css_class, plain_text
from .schema import CheckRecord, Report, ReportStatus, ResultRow

TEMPLATES = Path(__file__).parent / "templates"
TREND_MARKS = {"regressed": "\u25bc", "fixed": "\u25b2"}  # the glyph a changed cell of the history shows


@dataclass(frozen=True)
class Cell:
    """One check of one model, ready to display."""

    status: ReportStatus
    message: str
    value: float | None

    @property
    def mark(self) -> str:
        return MARKS[self.status]

    @property
    def css(self) -> str:
        return css_class(self.status)


@dataclass(frozen=True)
class Row:
    """One model of one architecture: a cell per check column (None where it was not run)."""

    architecture: str
    model_id: str
    kind: str
    cells: tuple[Cell | None, ...]
    task: str = "text-generation"
    new: bool = False  # absent from the version set the report is compared with (``Report.baseline``)

    @property
    def model_label(self) -> str:
        """The model id, marked ``(new)`` for a model the compared version set lacks."""
        return f"{self.model_id} (new)" if self.new else self.model_id

    def problems(self, checks: tuple[str, ...]) -> list[tuple[str, Cell]]:
        """(check, cell) for each cell whose message a reader needs to see."""
        return [(check, cell) for check, cell in zip(checks, self.cells)
                if cell is not None and cell.status in DETAILED and cell.message]


@dataclass(frozen=True)
class Matrix:
    """Models × checks, with the per-status counts shown above every table."""

    checks: tuple[str, ...]
    rows: tuple[Row, ...]
    findings: tuple[str, ...] = ()  # what the report's new models found (``baseline.new_model_lines``)

    def counts(self) -> dict[ReportStatus, int]:
        """How many cells have each status (every status listed, zeros included)."""
        counts = dict.fromkeys(ReportStatus, 0)
        for row in self.rows:
            for cell in row.cells:
                if cell is not None:
                    counts[cell.status] += 1
        return counts

    def architectures(self) -> int:
        return len({row.architecture for row in self.rows})

    def summary(self) -> str:
        """One line: architectures, models, then passed / failed / n/a and any other non-zero status."""
        counts = self.counts()
        shown = [f"{n} {status.value}" for status, n in counts.items() if n or status in SUMMED]
        return f"{self.architectures()} architectures, {len(self.rows)} models: " + ", ".join(shown)


def build_matrix(source: Report | Iterable[ResultRow]) -> Matrix:
    """The matrix of a report, or of the plugin's result rows (a later row replaces an earlier one)."""
    report = source if isinstance(source, Report) else Report({}, {}, {}).merged(source)  # later rows win
    rows = [(arch, model_id, record) for arch, models in sorted(report.architectures.items())
            for model_id, record in sorted(models.items())]
    names = {name for _, _, record in rows for name in record.checks}
    checks = tuple(sorted(names, key=check_key))
    return Matrix(checks, tuple(Row(arch, model_id, record.kind, tuple(_cell(record.checks.get(c)) for c in checks),
                                    record.task, report.is_new(model_id)) for arch, model_id, record in rows),
                  tuple(new_model_lines(report)))


def _cell(record: CheckRecord | None) -> Cell | None:
    """The displayed cell of a check record; None where the check was not run."""
    if record is None:
        return None
    return Cell(record.status, record.message or "", record.value)


def _table_rows(matrix: Matrix, markdown: bool = False) -> list[list[str]]:
    """The matrix's rows as text cells: plain text for a terminal, escaped Markdown (``markdown``)."""
    rows = [[row.architecture, row.model_label, row.task, *(cell.mark if cell else "" for cell in row.cells)]
            for row in matrix.rows]
    escape = _markdown_text if markdown else _terminal_text
    return [[escape(text) for text in row] for row in rows]


def _terminal_text(text: str) -> str:
    """Text safe in one terminal table cell: no escape sequences, control characters or line breaks."""
    return plain_text(text, newlines=False)


def _markdown_text(text: str) -> str:
    """Text safe in a Markdown table cell: no raw HTML, no column or row breaks, no control characters
    (architectures, model ids, check names and messages are all user input)."""
    text = _terminal_text(text).replace("\\", "\\\\")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def history_markdown(history: History) -> str:
    """The matrix page as Markdown: architectures x version sets, changed cells marked, then the changes."""
    headers = [_markdown_text(text) for text in ("architecture", *(column.label for column in history.columns))]
    lines = [f"| {' | '.join(headers)} |", f"|{'---|' * len(headers)}"]
    for row in history.rows:
        cells = [f"{TREND_MARKS.get(cell.trend, '')} {cell.text}".strip() for cell in row.cells]
        lines.append(f"| {' | '.join(_markdown_text(text) for text in (row.architecture, *cells))} |")
    changes = [f"- {column.change}: {column.summary() or 'no change'}" for column in history.columns if column.change]
    common = f" with {', '.join(history.common)}" if history.common else ""
    legend = (f"{TREND_MARKS['regressed']} a check got worse, {TREND_MARKS['fixed']} a check got better, than in the "
              f"version set it is compared with (the previous one{common}).")
    return "\n".join([legend, "", *lines, "", "Changes between version sets:", "", *map(_markdown_text, changes), ""])


def markdown_table(report: Report | Iterable[ResultRow]) -> str:
    """A GitHub-flavoured Markdown table (models × checks) under a counts line, for the README."""
    from tabulate import tabulate

    matrix = build_matrix(report)
    headers = [_markdown_text(text) for text in ("architecture", "model", "task", *matrix.checks)]
    table = tabulate(_table_rows(matrix, markdown=True), headers=headers, tablefmt="github")
    findings = [f"- {_markdown_text(line.strip())}" if line.startswith(" ") else f"\n{_markdown_text(line)}\n"
                for line in matrix.findings]
    return "\n".join([f"{matrix.summary()}\n", table, *findings, ""])


def terminal_table(report: Report | Iterable[ResultRow]) -> str:
    """A plain-text table (models × checks) and a counts line, for the pytest terminal summary."""
    from tabulate import tabulate

    matrix = build_matrix(report)
    headers = [_terminal_text(text) for text in ("architecture", "model", "task", *matrix.checks)]
    table = tabulate(_table_rows(matrix), headers=headers)
    return "\n".join([table, matrix.summary(), *map(_terminal_text, matrix.findings)])


def render_site(report_dirs: Iterable[Path | str], out_dir: Path | str) -> Path:
    """Write `index.html`, `matrix.html` and one page per version set found in `report_dirs`; return the index."""
    from .store import find_reports

    history = build_history(version_sets(find_reports([Path(d) for d in report_dirs])))
    sets = [column.vs for column in history.columns]
    matrices = {vs.page: build_matrix(vs.report) for vs in sets}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = _environment()
    for column in history.columns:
        html = env.get_template("version_set.html").render(
            vs=column.vs, matrix=matrices[column.vs.page], previous=column.previous, diff=column.diff, marks=MARKS)
        _page(out, column.vs.page).write_text(html, encoding="utf-8")
    (out / "matrix.html").write_text(env.get_template("matrix.html").render(
        history=history, marks=MARKS, trend_marks=TREND_MARKS), encoding="utf-8")
    index = out / "index.html"
    index.write_text(env.get_template("index.html").render(
        sets=list(reversed(sets)), matrices=matrices, history=history), encoding="utf-8")
    return index


def _page(out: Path, name: str) -> Path:
    """``out / name``, refusing a name that would leave ``out`` (page names come from report versions,
    which ``report_filename`` already makes safe: this guards that promise)."""
    page = out / name
    if Path(name).name != name or name in ("", ".", "..") or page.resolve().parent != out.resolve():
        raise ValueError(f"page name {name!r} would be written outside {out}")
    return page


def _environment():
    """A jinja2 environment over our templates, autoescaping everything (model ids are user input)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["css"] = css_class
    env.filters["anchor"] = anchor
    env.globals.update(Status=ReportStatus, summed=SUMMED)
    return env


def anchor(architecture: str) -> str:
    """The HTML id of an architecture's first row on a version set's page: ``arch-LlamaForCausalLM``.

    Anything but ASCII letters, digits and ``-`` becomes ``_<hex code>_``, so any name (reports are
    user input) gives a distinct id that needs no escaping in a URL fragment.
    """
    return "arch-" + "".join(c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):x}_" for c in architecture)
