"""Report files among other files: what is ours to move, full disks, symlinked reports, ``~`` in folders, locks.

A report folder may hold a user's own files (``settings.json``), links to reports kept elsewhere, and lock
state; nnterp touches only what claims to be a report, and never loses a run's results.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from nnterp.compat import Report, ReportStatus, ReportWarning, ResultRow, find_reports, load_report, update_report
from nnterp.compat.lookup import LookupState, lookup_architecture, report_write_directory, user_report_directories
from nnterp.compat.schema import report_filename
from nnterp.compat.store import LOCK_FOLDER, claims_to_be_report, read_or_set_aside, write_report
from nnterp.errors import NNterpError, ReportFileError, ReportLockError

VERSIONS = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0"}
ENVIRONMENT = {"python": "3.11.7", "platform": "test", "updated": "2026-11-23T06:20:00+00:00", "git_commit": None}
SETTINGS = '{"theme": "dark"}\n'


def row(check: str = "renaming") -> ResultRow:
    return ResultRow("LlamaForCausalLM", "toy:llama", "toy", check, ReportStatus.PASSED, None, "ok", 0.01)


def update(directory: Path, rows: list[ResultRow], versions: dict[str, str] = VERSIONS) -> Path:
    return update_report(directory, rows, versions=versions, environment=ENVIRONMENT)


def foreign_files(folder: Path) -> dict[str, str]:
    """A user's own JSON files that share the report folder: valid JSON, broken JSON, a JSON array."""
    files = {"settings.json": SETTINGS, "draft.json": '{"unfinished": ', "list.json": "[1, 2]"}
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


# -- 1. only files that claim to be reports are ours ------------------------------------------


def test_what_claims_to_be_a_report():
    name = report_filename(VERSIONS)
    assert claims_to_be_report(Path(name))  # by its name, whatever it holds (it may be corrupt)
    assert claims_to_be_report(Path(report_filename({**VERSIONS, "torch": "2.13.0+cu121"})))
    hostile = {"nnterp": "../x", "transformers": "5_0", "nnsight": "", "torch": "a\\b" * 40}
    assert claims_to_be_report(Path(report_filename(hostile)))  # every name report_filename gives is claimed
    assert claims_to_be_report(Path("copy.json"), {"schema_version": 1})  # by its content, under any name
    assert claims_to_be_report(Path("copy.json"), {"schema_version": 99})
    assert not claims_to_be_report(Path("settings.json"))
    assert not claims_to_be_report(Path("settings.json"), {"theme": "dark"})
    assert not claims_to_be_report(Path("list.json"), [{"schema_version": 1}])
    assert not claims_to_be_report(Path(f"x{name}"))
    assert not claims_to_be_report(Path(name + ".corrupt-20260101T000000Z"))


def test_foreign_files_are_neither_moved_nor_warned_about(tmp_path):
    files = foreign_files(tmp_path)
    good = update(tmp_path, [row()])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [path for path, _ in find_reports([tmp_path])] == [good]
        assert lookup_architecture("LlamaForCausalLM", [tmp_path], VERSIONS).reports == (good,)
        assert read_or_set_aside(tmp_path / "draft.json") is None
    assert {name: (tmp_path / name).read_text() for name in files} == files
    assert not list(tmp_path.glob("*.corrupt-*"))


def test_the_status_command_leaves_a_settings_file_alone(tmp_path):
    folder = tmp_path / "reports"
    files = foreign_files(folder)
    update(folder, [row()])
    environment = {**os.environ, "NNTERP_REPORT_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-m", "nnterp", "status", "LlamaForCausalLM"], capture_output=True,
                          text=True, timeout=120, env=environment)
    assert done.returncode == 0, done.stderr
    assert {name: (folder / name).read_text() for name in files} == files
    assert not list(folder.glob("*.corrupt-*")) and "settings.json" not in done.stderr + done.stdout


def test_a_file_that_claims_to_be_a_report_is_still_checked(tmp_path):
    corrupt = tmp_path / report_filename({**VERSIONS, "torch": "9.9.9"})
    corrupt.write_text("{ not json")
    (tmp_path / "copy.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.warns(ReportWarning) as caught:
        assert find_reports([tmp_path]) == []
    messages = " ".join(str(warning.message) for warning in caught)
    assert "copy.json" in messages and "moved it aside" in messages
    assert (tmp_path / "copy.json").exists()  # valid JSON of another schema: skipped, never moved
    assert not corrupt.exists() and len(list(tmp_path.glob(corrupt.name + ".corrupt-*"))) == 1


# -- 2. a full disk everywhere loses no result ------------------------------------------------

FULL_DISK = """
import errno, os
import nnterp.compat.store as store

def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

store.write_report = full
"""


def test_a_full_disk_everywhere_prints_the_results_instead_of_losing_them(pytester, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(pytester.path / "tmp"))
    (pytester.path / "tmp").mkdir()
    pytester.makeconftest(FULL_DISK)
    result = pytester.runpytest_subprocess("--nnterp-classes", "llama", "--nnterp-checks", "renaming",
                                           "--nnterp-report", str(pytester.path / "reports"), "-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    assert "Traceback" not in output and "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(["*could not write the compatibility report to*No space left on device*"
                                 "nor to a temp folder*JSON lines*"])
    rows = [ResultRow.from_dict(json.loads(line)) for line in output.splitlines() if line.startswith('{"')]
    assert [(r.architecture, r.model_id, r.check, r.status) for r in rows] == [
        ("LlamaForCausalLM", "toy:llama", "renaming", ReportStatus.PASSED)]
    assert not list((pytester.path / "tmp").glob("nnterp-report-*"))  # the empty fallback folder is not left behind


def test_a_full_disk_everywhere_keeps_the_rows_on_the_session(pytestconfig, tmp_path, monkeypatch):
    import nnterp.compat.store as store
    from pytest_nnterp.options import Selection
    from pytest_nnterp.session import NnterpSession

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store, "write_report", full)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    session = NnterpSession(pytestconfig, Selection((), ("llama",), ("renaming",), tmp_path / "reports"))
    session.rows[("LlamaForCausalLM", "toy:llama", "renaming")] = row().to_dict()  # type: ignore[assignment]
    assert session.write_report() is None
    problem = session.report_problem or ""
    assert "No space left on device" in problem and str(tmp_path / "reports") in problem
    assert [json.loads(line) for line in problem.splitlines()[1:]] == [row().to_dict()]


# -- 3. a symlinked report is written through its link ----------------------------------------


def _linked_report(tmp_path: Path) -> tuple[Path, Path]:
    shared = tmp_path / "shared"
    shared.mkdir()
    target = shared / "team-report.json"
    write_report(target, Report(VERSIONS, ENVIRONMENT, {}).merged([row("io_shapes")]))
    (tmp_path / "reports").mkdir()
    link = tmp_path / "reports" / report_filename(VERSIONS)
    link.symlink_to(target)
    return link, target


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_an_update_writes_through_a_symlinked_report(tmp_path):
    link, target = _linked_report(tmp_path)
    assert update(link.parent, [row()]) == link
    assert link.is_symlink() and Path(os.readlink(link)) == target
    assert set(load_report(target).statuses("LlamaForCausalLM")) == {"renaming", "io_shapes"}
    leftovers = [p.name for p in (tmp_path / "reports").iterdir()] + [p.name for p in target.parent.iterdir()]
    assert not [name for name in leftovers if name.endswith(".tmp")]


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_link_to_a_report_in_an_unwritable_folder_is_refused_clearly(tmp_path, monkeypatch):
    link, target = _linked_report(tmp_path)
    real_open = os.open

    def read_only_target_folder(path, flags, *args, **kwargs):
        if Path(path).parent == target.parent and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_target_folder)
    before = target.read_text()
    with pytest.raises(ReportFileError, match=r"links to .*team-report.json.*not writable.*replace the link"):
        write_report(link, Report(VERSIONS, ENVIRONMENT, {}))
    assert link.is_symlink() and target.read_text() == before


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_loop_of_links_in_place_of_a_report_is_a_typed_error(tmp_path):
    link = tmp_path / report_filename(VERSIONS)
    link.symlink_to(link.name)  # points at itself
    with pytest.raises(ReportFileError, match="symbolic link that cannot be followed.*replace it"):
        update(tmp_path, [row()])
    assert link.is_symlink()


# -- 4. ~ in NNTERP_REPORT_DIR ----------------------------------------------------------------


def test_a_tilde_in_the_report_folder_variable_is_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # what expanduser reads on Windows
    monkeypatch.setenv("NNTERP_REPORT_DIR", os.pathsep.join(["~/reports", "~/more", str(tmp_path / "plain")]))
    assert user_report_directories() == [tmp_path / "reports", tmp_path / "more", tmp_path / "plain"]
    assert report_write_directory() == tmp_path / "reports"
    written = update(report_write_directory(), [row()], versions={**VERSIONS, "nnterp": "99.0.0"})
    result = lookup_architecture("LlamaForCausalLM", None, {**VERSIONS, "nnterp": "99.0.0"})
    assert result.state is LookupState.PARTIAL and written in result.reports  # read: one check ran, and passed
    assert not (Path.cwd() / "~").exists()


# -- 5. lock files ----------------------------------------------------------------------------


def test_updates_leave_no_lock_file_beside_the_reports(tmp_path):
    update(tmp_path, [row()])
    update(tmp_path, [row("io_shapes")], versions={**VERSIONS, "torch": "2.14.0"})
    update(tmp_path, [row("steering")])
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        [report_filename(VERSIONS), report_filename({**VERSIONS, "torch": "2.14.0"})])
    assert not list(tmp_path.glob("*.lock"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [LOCK_FOLDER]  # one hidden folder


def test_a_folder_in_the_way_of_a_lock_is_a_typed_error(tmp_path):
    in_the_way = tmp_path / LOCK_FOLDER / f"{report_filename(VERSIONS)}.lock"
    in_the_way.mkdir(parents=True)
    with pytest.raises(ReportLockError, match=rf"{in_the_way.name} is a folder.*remove it") as raised:
        update(tmp_path, [row()])
    assert isinstance(raised.value, NNterpError) and isinstance(raised.value, OSError)
    assert str(in_the_way) in str(raised.value)


def test_a_file_in_the_way_of_the_lock_folder_is_a_typed_error(tmp_path):
    (tmp_path / LOCK_FOLDER).write_text("mine")
    with pytest.raises(ReportLockError, match=rf"{LOCK_FOLDER} is a file.*move it"):
        update(tmp_path, [row()])
    assert (tmp_path / LOCK_FOLDER).read_text() == "mine"


def test_an_old_lock_folder_beside_the_report_is_no_longer_in_the_way(tmp_path):
    (tmp_path / f"{report_filename(VERSIONS)}.lock").mkdir()  # where nnterp used to keep the lock
    path = update(tmp_path, [row()])
    assert load_report(path).statuses("LlamaForCausalLM") == {"renaming": ReportStatus.PASSED}


def test_a_blocked_lock_while_reading_warns_and_keeps_the_corrupt_file(tmp_path):
    path = tmp_path / report_filename(VERSIONS)
    path.write_text("{")
    (tmp_path / LOCK_FOLDER / f"{path.name}.lock").mkdir(parents=True)
    with pytest.warns(ReportWarning, match=r"could not move it aside.*is a folder"):
        assert find_reports([tmp_path]) == []
    assert path.read_text() == "{"


def test_a_report_holding_a_key_twice_is_corrupt_not_read_as_its_last_value(tmp_path):
    from nnterp.compat.schema import report_filename
    from nnterp.compat.store import load_report
    from nnterp.errors import CorruptReportError

    versions = {"nnterp": "2.0.0", "transformers": "5.25.0", "nnsight": "0.8.1", "torch": "2.13.0"}
    check = '"renaming": {"status": "%s", "value": null, "message": "", "duration": 0.0}'
    text = ('{"schema_version": 1, "versions": %s, "environment": {}, "architectures": {"LlamaForCausalLM": '
            '{"models": {"toy:llama": {"kind": "toy", "checks": {%s, %s}}}}}}'
            % (json.dumps(versions), check % "failed", check % "passed"))
    path = tmp_path / report_filename(versions)
    path.write_text(text)
    with pytest.raises(CorruptReportError, match=r"not valid JSON .*'renaming'.* more than once"):
        load_report(path)
