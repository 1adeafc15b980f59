"""Report files: atomic writes, merging partial runs, corrupt files moved aside, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
from pathlib import Path

import pytest

from nnterp.compat import (
    CorruptReportError,
    Report,
    ReportSchemaError,
    ReportStatus,
    ReportWarning,
    ResultRow,
    find_reports,
    load_report,
    report_filename,
    update_report,
    write_report,
)

GOLDEN = Path(__file__).parent / "fixtures" / "report_v1.json"
VERSIONS = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0+cpu"}
ENVIRONMENT = {"python": "3.11.7", "platform": "test", "updated": "2026-11-23T06:20:00+00:00", "git_commit": None}


def row(architecture="LlamaForCausalLM", model_id="toy:llama", check="renaming", status=ReportStatus.PASSED,
        kind="toy") -> ResultRow:
    return ResultRow(architecture, model_id, kind, check, status, None, f"{check} {status.value}", 0.01)


def update(directory, rows) -> Path:
    return update_report(directory, rows, versions=VERSIONS, environment=ENVIRONMENT)


def test_update_creates_the_folder_and_the_named_report(tmp_path):
    path = update(tmp_path / "new" / "reports", [row()])
    assert path == tmp_path / "new" / "reports" / report_filename(VERSIONS)
    report = load_report(path)
    assert report.versions == VERSIONS and report.environment == ENVIRONMENT
    assert report.statuses("LlamaForCausalLM") == {"renaming": ReportStatus.PASSED}
    text = path.read_text()
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_partial_runs_keep_every_other_entry(tmp_path):
    update(tmp_path, [row(), row(check="io_shapes"), row("BloomForCausalLM", "toy:bloom")])
    update(tmp_path, [row(check="io_shapes", status=ReportStatus.FAILED),
                      row("LlamaForCausalLM", "meta-llama/Llama-3.2-1B", "logits_match", kind="real")])
    report = load_report(tmp_path / report_filename(VERSIONS))
    llama = report.architectures["LlamaForCausalLM"]
    assert llama["toy:llama"].checks["renaming"].status is ReportStatus.PASSED  # kept
    assert llama["toy:llama"].checks["io_shapes"].status is ReportStatus.FAILED  # replaced
    assert llama["meta-llama/Llama-3.2-1B"].kind == "real"  # added
    assert report.statuses("BloomForCausalLM") == {"renaming": ReportStatus.PASSED}  # untouched architecture


def test_update_refreshes_the_environment(tmp_path):
    update(tmp_path, [row()])
    path = update_report(tmp_path, [row(check="io_shapes")], versions=VERSIONS,
                         environment={**ENVIRONMENT, "updated": "2027-01-01T00:00:00+00:00"})
    assert load_report(path).environment["updated"] == "2027-01-01T00:00:00+00:00"


def test_writes_leave_no_temp_files(tmp_path):
    write_report(tmp_path / "a.json", load_report(GOLDEN))
    update(tmp_path, [row()])
    update(tmp_path, [row(check="io_shapes")])
    name = report_filename(VERSIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".locks", "a.json", name])  # locks in one folder


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    write_report(path, load_report(GOLDEN))
    before = path.read_text()

    def broken_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(path, Report(VERSIONS, ENVIRONMENT, {}))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_load_report_errors_name_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(CorruptReportError, match="broken.json: not valid JSON"):
        load_report(tmp_path / "broken.json")
    (tmp_path / "foreign.json").write_text(json.dumps({**json.loads(GOLDEN.read_text()), "schema_version": 7}))
    with pytest.raises(ReportSchemaError, match="foreign.json: schema_version: 7 is not 1") as raised:
        load_report(tmp_path / "foreign.json")
    assert not isinstance(raised.value, CorruptReportError)


@pytest.mark.parametrize("content", ["{ not json", json.dumps({"schema_version": 99}), "\xff\xfe"])
def test_a_corrupt_or_foreign_report_is_moved_aside_with_a_warning(tmp_path, content):
    path = tmp_path / report_filename(VERSIONS)
    path.write_bytes(content.encode("latin-1"))
    with pytest.warns(ReportWarning) as caught:
        assert update(tmp_path, [row()]) == path
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].name.startswith(path.name + ".corrupt-")
    assert aside[0].read_bytes() == content.encode("latin-1")  # never overwritten
    message = str(caught[0].message)
    assert str(path) in message and str(aside[0]) in message
    assert load_report(path).statuses("LlamaForCausalLM") == {"renaming": ReportStatus.PASSED}


def test_a_report_of_other_versions_under_the_name_is_moved_aside(tmp_path):
    path = tmp_path / report_filename(VERSIONS)
    write_report(path, Report({**VERSIONS, "torch": "2.13.0-cpu"}, ENVIRONMENT, {}))
    with pytest.warns(ReportWarning, match="moved it aside"):
        update(tmp_path, [row()])
    assert load_report(path).versions == VERSIONS


def test_find_reports_skips_invalid_files_with_the_reason(tmp_path):
    write_report(tmp_path / "good.json", load_report(GOLDEN))  # a report under any name: it has a schema_version
    bad = tmp_path / report_filename({**VERSIONS, "torch": "0.0.1"})  # a report's name: it claims to be one
    bad.write_text("[]")
    (tmp_path / "list.json").write_text("[]")  # neither: not ours, skipped without a warning
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "good.json.corrupt-20260101T000000Z").write_text("ignored")
    expected = re.escape(f"{bad.name}: report: expected an object, found an array")
    with pytest.warns(ReportWarning, match=expected) as caught:
        found = find_reports([tmp_path, tmp_path / "missing"])
    assert not [warning for warning in caught if "list.json" in str(warning.message)]
    assert [path.name for path, _ in found] == ["good.json"]
    assert found[0][1] == load_report(GOLDEN)


def _writer(directory: str, worker: int, count: int, barrier) -> None:
    barrier.wait()
    for index in range(count):
        update(directory, [row(f"Arch{worker}ForCausalLM", f"toy:arch{worker}", f"check_{index}")])


@pytest.mark.skipif(sys.platform == "win32", reason="uses fork to share the barrier")
def test_concurrent_writers_all_land(tmp_path):
    workers, count = 4, 15
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_writer, args=(str(tmp_path), w, count, barrier)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * workers
    report = load_report(tmp_path / report_filename(VERSIONS))
    for worker in range(workers):
        assert set(report.statuses(f"Arch{worker}ForCausalLM")) == {f"check_{i}" for i in range(count)}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp") or ".corrupt-" in p.name]
