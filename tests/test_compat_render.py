"""Rendering of compatibility reports: the static site, the Markdown and terminal tables, the CLI.

The history across version sets the site's matrix page shows is tested in ``test_compat_history``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from markupsafe import escape

from nnterp.__main__ import main
from nnterp.compat.diff import diff_reports, format_diff
from nnterp.compat.history import build_history, version_sets
from nnterp.compat.render import anchor, build_matrix, markdown_table, render_site, terminal_table
from nnterp.compat.schema import ResultRow
from nnterp.compat.store import find_reports
from tests.compat_sample import EVIL_ARCHITECTURE, EVIL_MODEL, FAILURE, NEW, OLD, report, write_history, write_reports

NEW_SUMMARY = "4 architectures, 4 models: 5 passed, 1 failed, 1 n/a, 1 load error, 1 crashed, 1 skipped"


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    write_reports(tmp_path / "reports")
    return tmp_path / "reports"


@pytest.fixture
def site(reports_dir: Path, tmp_path: Path) -> Path:
    return render_site([reports_dir], tmp_path / "site")


def _pages(site: Path) -> tuple[str, str]:
    """(old page, new page) HTML, found through the index links (newest listed first)."""
    links = re.findall(r'<a href="([^"]+\.html)">', site.read_text())
    new, old = (site.parent / link for link in links)
    return old.read_text(), new.read_text()


def _row(html: str, model_id: str) -> str:
    """The <tbody> of one model in a version page."""
    start = html.index(f'data-filter="{model_id}') if "<" not in model_id else html.index(str(escape(model_id)))
    return html[start:html.index("</tbody>", start)]


def test_matrix_orders_checks_and_counts_statuses():
    matrix = build_matrix(report(NEW))
    assert matrix.checks == ("renaming", "io_shapes", "residual_identity", "attn_probs")
    assert [row.architecture for row in matrix.rows] == [
        "BloomForCausalLM", "GPT2LMHeadModel", "LlamaForCausalLM", "MistralForCausalLM"]
    assert matrix.summary() == NEW_SUMMARY
    bloom = matrix.rows[0]
    assert bloom.cells[0].mark == "load error" and bloom.cells[1:] == (None, None, None)


def test_index_lists_version_sets_newest_first_with_counts(site: Path):
    html = site.read_text()
    assert site.name == "index.html"
    rows = re.findall(r'<tr class="version-set">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    assert "transformers 5.23.0" in rows[0] and "transformers 5.22.0" in rows[1]
    assert '<td class="n-architectures">4</td>' in rows[0]
    assert '<td class="n-passed st-passed">5</td>' in rows[0]
    assert '<td class="n-failed st-failed">1</td>' in rows[0]
    assert '<td class="n-na">1</td>' in rows[0]
    assert "1 load error, 1 crashed, 1 skipped" in rows[0]
    assert '<td class="n-architectures">3</td>' in rows[1] and '<td class="n-passed st-passed">7</td>' in rows[1]


def test_version_page_shows_matrix_cells_and_counts(site: Path):
    _, html = _pages(site)
    assert len(re.findall(r'<tr class="model-row"', html)) == 4
    assert 'id="arch-LlamaForCausalLM"' in _row(html, "LlamaForCausalLM")  # the matrix page links here
    assert '<span class="count st-failed" data-status="failed">1 failed</span>' in html
    assert '<span class="count st-passed" data-status="passed">5 passed</span>' in html
    llama = _row(html, "LlamaForCausalLM")
    assert f'<td class="cell st-failed" data-check="residual_identity" title="{escape(FAILURE)}">FAIL' in llama
    assert f'<span class="msg">{escape(FAILURE)}</span>' in llama  # visible, not only a tooltip
    assert 'class="cell st-na"' in _row(html, "GPT2LMHeadModel")
    assert 'class="cell st-load-error"' in _row(html, "BloomForCausalLM")
    evil = _row(html, EVIL_MODEL)
    assert 'class="cell st-crashed"' in evil and 'class="cell st-skipped"' in evil and "needs a GPU" in evil


def test_model_ids_are_escaped(site: Path):
    _, html = _pages(site)
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(" in html
    assert html.count("<script>") == 1  # only the filter's own script


def test_version_page_shows_diff_against_previous(site: Path):
    old_html, new_html = _pages(site)
    assert "nothing to compare with" in old_html
    section = new_html[new_html.index('<h2 id="diff">'):]
    assert "transformers 5.22.0" in section
    assert "2 regressed" in section and "0 fixed" in section and "3 added" in section and "1 removed" in section
    regressed = section[section.index('id="diff-regressed"'):section.index("</table>", section.index("diff-regressed"))]
    assert ('<td>LlamaForCausalLM</td><td>toy:llama</td><td>residual_identity</td>\n'
            '<td class="st-passed">pass</td>\n<td class="st-failed">FAIL</td>') in regressed
    assert '<td class="st-load-error">load error</td>' in regressed
    removed = section[section.index('id="diff-removed"'):]
    assert '<td>BloomForCausalLM</td><td>toy:bloom</td><td>residual_identity</td>' in removed
    assert '<td class="st-absent">absent</td>' in removed
    assert 'id="diff-fixed"' not in section and str(escape(EVIL_MODEL)) in section


def test_same_version_set_in_two_folders_is_merged(reports_dir: Path, tmp_path: Path):
    fixed = json.loads(json.dumps(NEW))
    fixed["environment"]["updated"] = "2026-11-24T00:00:00+00:00"
    fixed["architectures"] = {"LlamaForCausalLM": {"models": {"toy:llama": {"kind": "toy", "checks": {
        "residual_identity": {"status": "passed", "value": 1e-7, "message": "", "duration": 0.1}}}}}}
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "new.json").write_text(json.dumps(fixed))
    sets = version_sets(find_reports([reports_dir, tmp_path / "user"]))
    assert len(sets) == 2 and sets[-1].updated == "2026-11-24T00:00:00+00:00"
    assert build_matrix(sets[-1].report).summary() == NEW_SUMMARY.replace("5 passed, 1 failed", "6 passed, 0 failed")


def test_empty_reports_dir_renders_an_index(tmp_path: Path):
    index = render_site([tmp_path / "nothing"], tmp_path / "site")
    assert "No compatibility reports found" in index.read_text()


def test_markdown_table_is_github_flavoured():
    text = markdown_table(report(NEW))
    lines = text.strip().splitlines()
    assert lines[0] == NEW_SUMMARY
    assert re.match(r"\| architecture +\| model +\| task +\| renaming +\| io_shapes +\| residual_identity +"
                    r"\| attn_probs", lines[2])
    assert lines[3].startswith("|--")
    assert any("LlamaForCausalLM" in line and "FAIL" in line for line in lines)
    assert len(lines) == 4 + 4
    assert "| &lt;script&gt;alert('x')&lt;/script&gt; " in text and "<script>" not in text


def test_terminal_table_accepts_a_report_or_result_rows():
    from_report = terminal_table(report(NEW))
    assert from_report.splitlines()[-1] == NEW_SUMMARY
    assert "FAIL" in from_report and "load error" in from_report and "n/a" in from_report
    rows = [ResultRow("LlamaForCausalLM", "toy:llama", "toy", "renaming", "passed", None, "", 0.1),
            ResultRow("LlamaForCausalLM", "toy:llama", "toy", "residual_identity", "failed", 0.5, FAILURE, 0.1)]
    from_rows = terminal_table(rows)
    assert from_rows.splitlines()[-1] == "1 architectures, 1 models: 1 passed, 1 failed, 0 n/a"
    assert re.search(r"LlamaForCausalLM +toy:llama +text-generation +pass +FAIL", from_rows)


def test_cli_report_renders_site_and_markdown(reports_dir: Path, tmp_path: Path, capsys):
    markdown = tmp_path / "matrix.md"
    assert main(["report", "--reports-dir", str(reports_dir), "--out", str(tmp_path / "out"),
                 "--markdown", str(markdown)]) == 0
    out = capsys.readouterr().out
    assert f"compatibility site written to {tmp_path / 'out' / 'index.html'}" in out
    assert (tmp_path / "out" / "index.html").exists()
    assert markdown.read_text() == markdown_table(report(NEW))


def test_cli_report_diff_prints_format_diff(reports_dir: Path, capsys):
    old_path, new_path = write_reports(reports_dir)
    assert main(["report", "--diff", str(old_path), str(new_path)]) == 0
    expected = format_diff(diff_reports(report(OLD), report(NEW)))
    assert capsys.readouterr().out == expected + "\n"


def test_cli_status(reports_dir: Path, capsys):
    assert main(["status", "LlamaForCausalLM", "--reports-dir", str(reports_dir)]) == 0
    out = capsys.readouterr().out
    assert FAILURE in out and "transformers 5.22.0" in out and "lost residual_identity" in out
    assert main(["status", "NoSuchModel", "--reports-dir", str(reports_dir)]) == 1
    assert "mentions NoSuchModel" in capsys.readouterr().err


def test_cli_defaults_to_the_lookup_report_directories(reports_dir: Path, monkeypatch, capsys):
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(reports_dir))
    assert main(["status", "LlamaForCausalLM"]) == 0
    assert FAILURE in capsys.readouterr().out


@pytest.fixture
def pytest_main(monkeypatch) -> list[list[str]]:
    """The argument lists ``python -m nnterp run_tests`` hands to pytest (which is not run)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(pytest, "main", lambda args: calls.append(list(args)) or 0)
    return calls


def test_run_tests_tells_the_plugin_the_first_user_folder_and_renders_it(reports_dir: Path, tmp_path: Path,
                                                                         monkeypatch, pytest_main, capsys):
    monkeypatch.setenv("NNTERP_REPORT_DIR", os.pathsep.join([str(reports_dir), str(tmp_path / "shared")]))
    assert main(["run_tests", "--class-names", "llama", "--site", str(tmp_path / "pages"), "-n", "2"]) == 0
    assert pytest_main == [["--nnterp-classes", "llama", "--nnterp-report", str(reports_dir), "-n", "2"]]
    assert f"pages: {tmp_path / 'pages' / 'index.html'}" in capsys.readouterr().out


def test_run_tests_takes_the_report_options_itself(tmp_path: Path, pytest_main, capsys):
    assert main(["run_tests", "--class-names", "llama", "--nnterp-report", str(tmp_path / "mine"), "-q"]) == 0
    assert main(["run_tests", "--class-names", "llama", "--nnterp-no-report"]) == 0
    assert pytest_main == [["--nnterp-classes", "llama", "--nnterp-report", str(tmp_path / "mine"), "-q"],
                           ["--nnterp-classes", "llama", "--nnterp-no-report"]]
    assert "pages:" not in capsys.readouterr().out  # nothing was written, so no pages are rendered


# -- the site across version sets -----------------------------------------------------------


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("history") / "reports"
    write_history(folder)
    return folder


def test_index_sums_up_the_changes_between_adjacent_version_sets(history_dir: Path, tmp_path: Path):
    html = render_site([history_dir], tmp_path / "site").read_text()
    transitions = [re.sub(r"<[^>]+>", "", item) for item in re.findall(r'<li class="transition">(.*?)</li>', html)]
    assert transitions == [
        "transformers 5.23.0 \u2192 5.24.0: 20 architectures lost attn_probs",
        "transformers 5.20.0 \u2192 5.23.0: no regressions or fixes",
        "transformers 5.15.0 \u2192 5.20.0: 4 architectures lost attn_probs, io_shapes, logit_lens, "
        "logits_match, renaming, residual_identity",  # they no longer load
        "transformers 5.10.0 \u2192 5.15.0: 8 architectures fixed io_shapes",
        "transformers 5.5.0 \u2192 5.10.0: 4 architectures newly tested",
        "transformers 5.0.0 \u2192 5.5.0: no regressions or fixes",
    ]
    assert '<a id="matrix-link" href="matrix.html">' in html


def test_index_of_one_version_set_has_nothing_to_compare(tmp_path: Path):
    old_path, _ = write_reports(tmp_path / "both")
    (tmp_path / "one").mkdir()
    old_path.rename(tmp_path / "one" / old_path.name)
    html = render_site([tmp_path / "one"], tmp_path / "site").read_text()
    assert "Only one version set: nothing to compare." in html and 'class="transition"' not in html
    assert "3 architectures &times; 1 version set)" in html


def test_matrix_cells_link_to_their_row_on_the_version_set_page(history_dir: Path, tmp_path: Path):
    site = render_site([history_dir], tmp_path / "site").parent
    html = (site / "matrix.html").read_text()
    links = re.findall(r'<a href="([^"#]+)#([^"]+)">', html)
    assert len(links) == 200 * 7 - 2 * 4  # every cell but the 4 architectures untested before 5.10
    for page, fragment in set(links):
        assert f'id="{fragment}"' in (site / page).read_text()
    evil = anchor(EVIL_ARCHITECTURE)
    assert re.fullmatch(r"arch-[A-Za-z0-9_-]+", evil) and evil != anchor(EVIL_ARCHITECTURE.replace("#", "_"))
    assert f'href="nnterp-0.1.0_transformers-5.24.0_nnsight-0.8.1_torch-2.13.0-cpu.html#{evil}"' in html
    assert "<img" not in html and str(escape(EVIL_ARCHITECTURE)) in html
    assert len(re.findall(r'class="summary [^"]*trend-regressed"', html)) == 24
    assert len(re.findall(r'class="summary [^"]*trend-fixed"', html)) == 8


def test_history_markdown_has_a_row_per_architecture_and_marks_changes(history_dir: Path, tmp_path: Path):
    out = tmp_path / "matrix.md"
    assert main(["report", "--reports-dir", str(history_dir), "--out", str(tmp_path / "site"),
                 "--matrix-markdown", str(out)]) == 0
    lines = out.read_text().splitlines()
    table = [line for line in lines if line.startswith("| ")]
    header, rows = table[0], table[1:]
    assert header.split(" | ")[1:3] == ["transformers 5.0.0", "transformers 5.5.0"]
    history = build_history(version_sets(find_reports([history_dir])))
    assert len(rows) == len(history.rows)
    regressed_cells = sum(row.count("\u25bc") for row in rows)
    assert regressed_cells == 4 + 20  # the 4 that stop loading at 5.20.0, the 20 that lose attn_probs at 5.24.0
    assert "- transformers 5.23.0 \u2192 5.24.0: 20 architectures lost attn_probs" in lines
