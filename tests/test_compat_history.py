"""Architectures across version sets: their order, what each is compared with, the cells of the
history, and ``status_text`` (what ``python -m nnterp status`` prints)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnterp.compat.history import (
    History,
    Summary,
    VersionSet,
    build_history,
    predecessors,
    status_text,
    summarize,
    version_sets,
)
from nnterp.compat.schema import Report, ReportStatus, ResultRow
from nnterp.compat.store import find_reports
from tests.compat_sample import (
    FAILURE,
    HISTORY_ARCHITECTURES,
    HISTORY_CHECKS,
    HISTORY_TRANSFORMERS,
    NEW,
    OLD,
    history_architecture,
    report,
    write_history,
)


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("history") / "reports"
    write_history(folder)
    return folder


@pytest.fixture(scope="module")
def history(history_dir: Path) -> History:
    return build_history(version_sets(find_reports([history_dir])))


def _sets(*versions: tuple[str, str]) -> list[VersionSet]:
    """Version sets of empty reports, one per (transformers, nnsight) pair, in the order given."""
    reports = [Report({"nnterp": "0.1.0", "transformers": t, "nnsight": n, "torch": "2.13.0"}, {}, {})
               for t, n in versions]
    return [VersionSet(Path(f"{i}.json"), r, f"{i}.html") for i, r in enumerate(reports)]


def _cell(history: History, index: int, transformers: str) -> Summary:
    column = [c.vs.versions["transformers"] for c in history.columns].index(transformers)
    return history.row(history_architecture(index)).cells[column]


def test_version_sets_sort_by_versions_not_by_update_time(history: History):
    assert [c.vs.versions["transformers"] for c in history.columns] == list(HISTORY_TRANSFORMERS)
    assert [c.heading for c in history.columns][:3] == [("transformers 5.0.0",), ("transformers 5.5.0",),
                                                        ("transformers 5.10.0",)]
    assert history.common == ("nnterp 0.1.0", "nnsight 0.8.1", "torch 2.13.0+cpu")
    assert len(history.rows) == HISTORY_ARCHITECTURES


def test_each_version_set_is_compared_with_the_previous_on_its_nnsight_line():
    a, b, c, d = sets = _sets(("5.0.0", "0.8.0"), ("5.0.0", "0.8.1"), ("5.5.0", "0.8.0"), ("5.5.0", "0.8.1"))
    assert predecessors(sets) == [None, a, a, b]  # b has no older 0.8.1: it falls back to the one before


def test_version_order_compares_versions_not_strings():
    found = [(vs.path, vs.report) for vs in _sets(("5.10.0", "0.8.1"), ("5.9.0", "0.8.1"), ("not-installed", "0.8.1"))]
    assert [vs.versions["transformers"] for vs in version_sets(found)] == ["not-installed", "5.9.0", "5.10.0"]


@pytest.mark.parametrize(("arch", "version", "text", "css", "trend"), [
    ("LlamaForCausalLM", "5.23.0", "2/3 \u00b7 residual_identity FAIL", "st-failed", "regressed"),
    ("LlamaForCausalLM", "5.22.0", "3/3 pass \u00b7 5 not run", "st-passed", ""),  # a partial run says so
    ("GPT2LMHeadModel", "5.23.0", "2/2 pass \u00b7 5 not run", "st-passed", ""),  # n/a neither counts nor colours
    ("BloomForCausalLM", "5.23.0", "load error", "st-load-error", "regressed"),
    ("MistralForCausalLM", "5.23.0", "1/3 \u00b7 residual_identity crashed +1", "st-crashed", ""),
    ("MistralForCausalLM", "5.22.0", "not tested", "st-absent", ""),
])
def test_a_cell_sums_up_the_checks_of_an_architecture(arch, version, text, css, trend):
    history = build_history(version_sets([(Path("new.json"), report(NEW)), (Path("old.json"), report(OLD))]))
    cell = history.row(arch).cells[[c.vs.versions["transformers"] for c in history.columns].index(version)]
    assert (cell.text, cell.css, cell.trend) == (text, css, trend)


def test_a_cell_names_the_worst_problem_and_the_model_it_came_from():
    ok, fail = ReportStatus.PASSED, ReportStatus.FAILED
    rows = [ResultRow("A", "toy:a", "toy", "renaming", ok, None, "", 0.0),
            ResultRow("A", "real/a", "real", "renaming", ReportStatus.LOAD_ERROR, None, "no weights", 0.0),
            ResultRow("A", "toy:a", "toy", "io_shapes", fail, None, "bad shape", 0.0),
            ResultRow("A", "toy:a", "toy", "steering", ReportStatus.SKIPPED, None, "needs a GPU", 0.0)]
    cell = summarize(Report({}, {}, {}).merged(rows), "A", regressed=("steering", "renaming"))
    assert cell.statuses == (("renaming", ReportStatus.LOAD_ERROR), ("io_shapes", fail),
                             ("steering", ReportStatus.SKIPPED))
    assert str(cell.problem) == "renaming (real/a): no weights"
    assert cell.parts == ("0/3", "renaming load error +2")
    assert cell.changes() == "lost renaming, steering"
    assert summarize(Report({}, {}, {}).merged(rows), "A", regressed=("renaming", "io_shapes", "steering"),
                     fixed=("x",)).changes() == "lost every check; fixed x"


def test_history_marks_regressions_and_fixes_in_their_columns(history: History):
    marked = {(row.architecture, column.vs.versions["transformers"], cell.trend)
              for row in history.rows for column, cell in zip(history.columns, row.cells) if cell.trend}
    expected = ({(history_architecture(i), "5.24.0", "regressed") for i in range(0, 200, 10)}
                | {(history_architecture(i), "5.20.0", "regressed") for i in (3, 53, 103, 153)}
                | {(history_architecture(i), "5.15.0", "fixed") for i in range(1, 200, 25)})
    assert marked == expected
    assert _cell(history, 10, "5.24.0").regressed == ("attn_probs",)
    assert _cell(history, 10, "5.24.0").text == "5/6 \u00b7 attn_probs FAIL"
    assert _cell(history, 3, "5.23.0").text == "load error" and _cell(history, 3, "5.23.0").trend == ""
    assert _cell(history, 2, "5.5.0").text == "not tested" and _cell(history, 2, "5.10.0").trend == ""
    assert [(c.count("regressed"), c.count("fixed")) for c in history.columns] == [
        (0, 0), (0, 0), (0, 0), (0, 8), (4, 0), (0, 0), (20, 0)]
    assert history.row(history_architecture(1)).tags == ("fixed", "failing")
    assert history.row(history_architecture(10)).tags == ("regressed", "failing")
    assert history.row(history_architecture(5)).tags == ()


def test_a_new_failing_model_on_a_passing_architecture_is_a_regression():
    old = report(OLD)
    new = old.merged([ResultRow("LlamaForCausalLM", "meta/llama", "real", "renaming", "failed", None, "x", 0.0)])
    new = Report({**old.versions, "transformers": "5.23.0"}, old.environment, new.architectures)
    cell = build_history(version_sets([(Path("a"), old), (Path("b"), new)])).row("LlamaForCausalLM").cells[1]
    assert cell.regressed == ("renaming",) and cell.text == "2/3 \u00b7 renaming FAIL"


def test_status_text_prints_a_line_per_version_set_oldest_first(history_dir: Path):
    text = status_text(find_reports([history_dir]), history_architecture(3).lower())
    title, header, rule, *lines = text.splitlines()
    assert title == ("Arch003ForCausalLM in 7 version sets, oldest first "
                     "(every one with nnterp 0.1.0, nnsight 0.8.1, torch 2.13.0+cpu)")
    assert header.split() == ["version", "set", "verdict", *HISTORY_CHECKS, "change", "first", "problem"]
    assert [line.split("  ")[0] for line in lines] == [f"transformers {v}" for v in HISTORY_TRANSFORMERS]
    partial = r"passed the 6 checks that ran \(steering and skip_layers not run\)"
    assert re.fullmatch(rf"transformers 5\.15\.0 +{partial}( +pass){{6}}", lines[3])
    assert re.fullmatch(r"transformers 5\.20\.0 +failed 6 checks( +load error){6} +lost every check +"
                        r"renaming \(toy:arch3\): "
                        r"ImportError: no module named 'arch'", lines[4])
    assert "lost" not in lines[5] and "load error" in lines[5]
    untested = status_text(find_reports([history_dir]), history_architecture(2)).splitlines()[3]
    assert untested.split() == ["transformers", "5.0.0", "not", "tested"]


def test_status_text_with_one_report_and_across_nnsight_versions():
    one = status_text([(Path("new.json"), report(NEW))], "llamaforcausallm").splitlines()
    assert one[0] == "LlamaForCausalLM in 1 version set, oldest first (every one with nnterp 0.1.0, nnsight " \
                     "0.8.1, torch 2.13.0+cpu)"
    assert re.fullmatch(rf"transformers 5\.23\.0 +failed 1 check +pass +FAIL +pass +residual_identity \(toy:llama\): "
                        rf"{re.escape(FAILURE)}", one[3])
    both = status_text([(Path("new.json"), report(NEW)), (Path("old.json"), report(OLD))], "LlamaForCausalLM")
    title, _, _, old, new = both.splitlines()
    assert title.endswith("(every one with nnterp 0.1.0)")
    assert old.startswith("transformers 5.22.0, nnsight 0.8.0, torch 2.12.0+cpu  ")
    assert re.search(r"lost residual_identity +residual_identity \(toy:llama\)", new)
    assert status_text([(Path("new.json"), report(NEW))], "NoSuchModel") is None


def test_status_text_keeps_a_multi_line_message_on_its_version_set_line():
    rows = [ResultRow("A", "toy:a", "toy", "renaming", "load error", None, "Traceback:\n  line 1\nValueError: x", 0.0)]
    text = status_text([(Path("a.json"), Report(report(NEW).versions, {}, {}).merged(rows))], "A")
    assert re.fullmatch(r"transformers 5\.23\.0 +failed 1 check +load error +renaming \(toy:a\): Traceback: line 1 "
                        r"ValueError: x",
                        text.splitlines()[-1])
    assert len(text.splitlines()) == 4
