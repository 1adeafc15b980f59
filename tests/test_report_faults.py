"""Reports under fault: killed writers, unwritable folders, hostile files, crashed workers, unsafe names.

No report may be left half-written or lost, and nothing read from a report may escape its folder,
break a table or reach a terminal as an escape sequence.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from nnterp.compat import (
    Report,
    ReportStatus,
    ReportWarning,
    ResultRow,
    find_reports,
    load_report,
    report_filename,
    update_report,
)
from nnterp.compat.history import build_history, status_text, version_sets
from nnterp.compat.lookup import LookupState, lookup_architecture, reset_warned_architectures, warn_for_architecture
from nnterp.compat.render import history_markdown, markdown_table, render_site, terminal_table
from nnterp.compat.store import LOCK_FOLDER, clean_stale_temps

VERSIONS = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0"}
ENVIRONMENT = {"python": "3.11.7", "platform": "test", "updated": "2026-11-23T06:20:00+00:00", "git_commit": None}
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # any control character but the newline


def row(check="renaming", status=ReportStatus.PASSED, message="ok", architecture="LlamaForCausalLM",
        model_id="toy:llama") -> ResultRow:
    return ResultRow(architecture, model_id, "toy", check, status, None, message, 0.01)


def update(directory, rows, versions=VERSIONS) -> Path:
    return update_report(directory, rows, versions=versions, environment=ENVIRONMENT)


# -- killed writers ------------------------------------------------------------------------

WRITER = """
import sys
from nnterp.compat import Report, ReportStatus, ResultRow, write_report
rows = [ResultRow(f"Arch{i}ForCausalLM", f"org/model-{j}", "real", f"check_{k}", ReportStatus.FAILED, 1.5,
                  "x" * 200, 0.1) for i in range(60) for j in range(10) for k in range(10)]
report = Report({"nnterp": "0", "transformers": "0", "nnsight": "0", "torch": "0"}, {}, {}).merged(rows)
print("ready", flush=True)
while True:
    write_report(sys.argv[1], report)
"""


def _kill_mid_write(path: Path, attempts: int = 20) -> list[Path]:
    """Run a writer of a big report in a loop and SIGKILL it while a temp file exists; the orphans left."""
    for _ in range(attempts):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while not list(path.parent.glob(f".{path.name}.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.001)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        orphans = list(path.parent.glob(f".{path.name}.*.tmp"))
        if orphans:
            return orphans
    pytest.fail(f"no temp file was left after {attempts} killed writers")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_writer_killed_mid_write_leaves_a_temp_that_the_next_write_removes(tmp_path):
    path = tmp_path / report_filename(VERSIONS)
    orphans = _kill_mid_write(path)
    assert all(re.fullmatch(rf"\.{re.escape(path.name)}\.\d+\.[0-9a-f]+\.tmp", p.name) for p in orphans)
    if path.exists():
        load_report(path)  # what is at the real name is always a whole report, never a half-written one
    written = update(tmp_path, [row()])
    assert written == path
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert load_report(path).statuses("LlamaForCausalLM") == {"renaming": ReportStatus.PASSED}


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_stale_temps_are_those_of_dead_or_old_writers(tmp_path):
    path = tmp_path / "r.json"
    dead = tmp_path / f".r.json.{_dead_pid()}.0123abcd.tmp"
    old = tmp_path / f".r.json.{os.getppid()}.0123abce.tmp"
    live = tmp_path / f".r.json.{os.getppid()}.0123abcf.tmp"
    other = tmp_path / f".other.json.{_dead_pid()}.0123abcd.tmp"
    for temp in (dead, old, live, other):
        temp.write_text("{")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sorted(clean_stale_temps(path)) == sorted([dead, old])
    assert live.exists() and other.exists()  # a live writer's temp, and another report's, are left alone


# -- unwritable report folder -------------------------------------------------------------


def test_a_report_folder_under_a_file_is_a_usage_error_before_any_check(pytester):
    blocker = pytester.path / "blocker"
    blocker.write_text("a file, not a folder")
    result = pytester.runpytest_subprocess("--nnterp-classes", "llama", "--nnterp-checks", "renaming",
                                           "--nnterp-report", str(blocker / "reports"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nnterp-report: cannot write the compatibility report to*blocker*"])
    assert "NotADirectoryError" not in result.stdout.str() + result.stderr.str()


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_report_folder_is_a_usage_error(pytester):
    folder = pytester.path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = pytester.runpytest_subprocess("--nnterp-classes", "llama", "--nnterp-checks", "renaming",
                                               "--nnterp-report", str(folder))
    finally:
        folder.chmod(0o755)
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_report_folder_lost_during_the_run_falls_back_to_a_temp_report(pytestconfig, tmp_path):
    from pytest_nnterp.options import Selection
    from pytest_nnterp.session import NnterpSession

    session = NnterpSession(pytestconfig, Selection((), ("llama",), ("renaming",), tmp_path / "reports"))
    if (tmp_path / "reports").exists():  # only a controller (not an xdist worker) prepares the folder
        (tmp_path / "reports").rmdir()
    (tmp_path / "reports").write_text("replaced by a file during the run")
    session.rows[("LlamaForCausalLM", "toy:llama", "renaming")] = {**row().to_dict(), "status": "passed"}
    path = session.write_report()
    assert path is not None and path.parent != tmp_path / "reports"
    assert load_report(path).statuses("LlamaForCausalLM") == {"renaming": ReportStatus.PASSED}
    assert str(path) in session.report_problem and "could not write" in session.report_problem


# -- hostile report files -----------------------------------------------------------------

DEPTH = 200_000


def _deep(path: Path) -> Path:
    path.write_text("[" * DEPTH + "]" * DEPTH)
    return path


def test_a_deeply_nested_report_is_moved_aside_by_the_load_time_lookup(tmp_path):
    _deep(tmp_path / report_filename(VERSIONS))
    with pytest.warns(ReportWarning, match="nested too deeply.*moved it aside"):
        result = lookup_architecture("LlamaForCausalLM", [tmp_path], VERSIONS)
    assert result.state is LookupState.NEVER_TESTED
    assert not (tmp_path / report_filename(VERSIONS)).exists()
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lookup_architecture("LlamaForCausalLM", [tmp_path], VERSIONS)  # warned once: the file is out of the way


def test_a_deeply_nested_report_is_moved_aside_by_find_reports(tmp_path):
    good = update(tmp_path, [row()])
    deep = _deep(tmp_path / report_filename({**VERSIONS, "torch": "2.14.0"}))  # its name claims it is a report
    with pytest.warns(ReportWarning, match="nested too deeply"):
        found = find_reports([tmp_path])
    assert [path for path, _ in found] == [good]
    assert not deep.exists()


def test_a_deeply_nested_report_is_moved_aside_when_updated(tmp_path):
    _deep(tmp_path / report_filename(VERSIONS))
    with pytest.warns(ReportWarning, match="moved it aside"):
        path = update(tmp_path, [row()])
    assert load_report(path).statuses("LlamaForCausalLM") == {"renaming": ReportStatus.PASSED}
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 1


def test_a_deeply_nested_field_of_valid_json_is_corrupt_too(tmp_path):
    data = Report(VERSIONS, ENVIRONMENT, {}).to_dict()
    data["versions"]["torch"] = "DEEP"
    text = json.dumps(data).replace('"DEEP"', "[" * 950 + "]" * 950)
    # a report's file name: it claims to be one however deep its content (a worker thread may not parse it)
    (tmp_path / report_filename(VERSIONS)).write_text(text)
    with pytest.warns(ReportWarning):
        assert find_reports([tmp_path]) == []


# -- file names from versions -------------------------------------------------------------

HOSTILE_VERSIONS = {"nnterp": "../../../escaped", "transformers": "5.0/../../x", "nnsight": "..", "torch": "a\\b"}


def test_file_names_from_hostile_versions_stay_in_their_folder():
    name = report_filename(HOSTILE_VERSIONS)
    assert Path(name).name == name and "/" not in name and "\\" not in name and ".." not in name
    assert report_filename({**HOSTILE_VERSIONS, "nnsight": "-"}) != name  # sanitised names do not collide
    assert report_filename({**VERSIONS, "torch": "2.13.0+cu121"}).endswith("_torch-2.13.0-cu121.json")  # unchanged


def test_reports_and_pages_of_hostile_versions_are_written_inside_their_folders(tmp_path):
    reports, site = tmp_path / "reports", tmp_path / "deep" / "site"
    path = update(reports, [row()], versions=HOSTILE_VERSIONS)
    assert path.parent == reports
    update(reports, [row()])
    render_site([reports], site)
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.parent in (reports, reports / LOCK_FOLDER, site) for p in written), written
    assert len(list(site.glob("*.html"))) == 4  # index, matrix and one page per version set


def test_the_report_command_survives_hostile_versions(tmp_path):
    reports = tmp_path / "reports"
    update(reports, [row()], versions=HOSTILE_VERSIONS)
    done = subprocess.run([sys.executable, "-m", "nnterp", "report", "--reports-dir", str(reports), "--out",
                           str(tmp_path / "site"), "--markdown", str(tmp_path / "table.md")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path.parent / "escaped").exists()


# -- Markdown tables ----------------------------------------------------------------------


def _columns(line: str) -> int:
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_escapes_check_names_models_and_architectures():
    report = Report(VERSIONS, ENVIRONMENT, {}).merged([
        row(check="a|b"), row(check="<script>x</script>"), row(check="plain", model_id="org/m|x\ny"),
        row(check="plain", architecture="Bad|Arch\x1b[31m")])
    text = markdown_table(report)
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({_columns(line) for line in table}) == 1  # no name adds or removes a column
    assert "a\\|b" in table[0] and "&lt;script&gt;" in table[0] and "<script>" not in text
    assert not CONTROL.search(text)


def test_matrix_markdown_escapes_architectures_and_version_labels(tmp_path):
    update(tmp_path, [row(architecture="Pipe|Arch")], versions={**VERSIONS, "transformers": "5|0"})
    update(tmp_path, [row(architecture="Pipe|Arch")])
    text = history_markdown(build_history(version_sets(find_reports([tmp_path]))))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({_columns(line) for line in table}) == 1


# -- control characters -------------------------------------------------------------------

HOSTILE_MESSAGE = "\x1b[2J\x1b]0;owned\x07boom\r\x08\x00 \x9b31m done"


def test_status_strips_control_characters_from_report_messages(tmp_path):
    update(tmp_path, [row(status=ReportStatus.FAILED, message=HOSTILE_MESSAGE, model_id="toy:\x1b[31mllama")])
    text = status_text(find_reports([tmp_path]), "LlamaForCausalLM")
    assert "boom" in text and not CONTROL.search(text)


def test_the_status_command_prints_no_escape_sequences(tmp_path):
    update(tmp_path, [row(status=ReportStatus.FAILED, message=HOSTILE_MESSAGE)])
    done = subprocess.run([sys.executable, "-m", "nnterp", "status", "LlamaForCausalLM", "--reports-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "boom" in done.stdout and not CONTROL.search(done.stdout)


def test_the_load_time_warning_strips_control_characters(tmp_path):
    update(tmp_path, [row(status=ReportStatus.FAILED, message=HOSTILE_MESSAGE)], versions=VERSIONS)
    result = lookup_architecture("LlamaForCausalLM", [tmp_path], VERSIONS)
    assert result.state is LookupState.FAILURES and "boom" in result.message and not CONTROL.search(result.message)
    reset_warned_architectures()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_for_architecture("LlamaForCausalLM", [tmp_path])
    reset_warned_architectures()
    assert caught and all(not CONTROL.search(str(w.message)) for w in caught)


def test_the_terminal_table_strips_control_characters():
    text = terminal_table([row(check="x\x1b[2Jy", model_id="toy:\x07llama")])
    assert "xy" in text and not CONTROL.search(text)


# -- crashed workers ----------------------------------------------------------------------


def test_a_worker_crash_in_a_user_check_is_recorded_as_crashed(pytester):
    pytester.makepyfile(test_mine="""
        import os

        import pytest

        @pytest.mark.nnterp_category("explodes")
        def test_explodes(nnterp_model):
            os._exit(3)

        @pytest.mark.nnterp_category("calm")
        def test_calm(nnterp_model):
            pass
    """)
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess("test_mine.py", "--nnterp-classes", "llama", "--nnterp-checks", "renaming",
                                           "--nnterp-report", str(report_dir), "-n", "2", "-p", "no:cacheprovider")
    files = list(report_dir.glob("*.json"))
    assert len(files) == 1, result.stdout.str()
    checks = json.loads(files[0].read_text())["architectures"]["LlamaForCausalLM"]["models"]["toy:llama"]["checks"]
    assert checks["explodes"]["status"] == "crashed" and "crashed while running" in checks["explodes"]["message"]
    assert checks["calm"]["status"] == "passed" and checks["renaming"]["status"] == "passed"
    result.stdout.fnmatch_lines(["*1 crashed*"])


def test_a_crash_hook_records_a_builtin_check_without_a_setup_report(pytestconfig):
    from pytest_nnterp.options import Selection
    from pytest_nnterp.session import NnterpSession

    session = NnterpSession(pytestconfig, Selection((), ("llama",), ("renaming",), None))
    nodeid = "pytest_nnterp/suite.py::test_nnterp_check[LlamaForCausalLM-toy-renaming]"
    report = pytest.TestReport(nodeid=nodeid, location=("", 0, ""), keywords={}, outcome="failed",
                               longrepr=f"worker 'gw0' crashed while running {nodeid!r}", when="???")
    session.pytest_handlecrashitem(crashitem=nodeid, report=report, sched=None)
    session.record(report)  # xdist then logs the report: it must not undo the crash
    row_ = session.rows[("LlamaForCausalLM", "toy:llama", "renaming")]
    assert row_["status"] == "crashed" and "crashed while running" in row_["message"]


def test_a_failure_that_mentions_crashed_is_not_a_crash(pytestconfig):
    """Only xdist's crash hook records a crash: a failure whose message says "crashed" is its own outcome."""
    from pytest_nnterp.options import Selection
    from pytest_nnterp.session import NnterpSession

    session = NnterpSession(pytestconfig, Selection((), ("llama",), ("renaming",), None))
    report = pytest.TestReport(nodeid="pytest_nnterp/suite.py::test_nnterp_check[LlamaForCausalLM-toy-renaming]",
                               location=("", 0, ""), keywords={}, outcome="failed", when="call",
                               longrepr="AssertionError: the server crashed", user_properties=[])
    session.record(report)
    assert session.rows == {}
