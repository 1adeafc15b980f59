"""Report files: read, write atomically, merge partial runs under a file lock, find every report in folders."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import sys
import time
import uuid
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..errors import CorruptReportError  # re-exported: defined with every nnterp error
from .baseline import compared
from .labels import plain_text
from .schema import (VERSIONED_PACKAGES, Report, ReportSchemaError, ReportWarning, ResultRow, current_environment,
                     current_versions, report_filename)

if TYPE_CHECKING:
    from filelock import BaseFileLock


def load_report(path: str | Path) -> Report:
    """Read and validate one report; ``CorruptReportError`` if not JSON, ``ReportSchemaError`` if not schema 1."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptReportError(f"{path}: not valid JSON ({error})") from error
    except RecursionError as error:  # a hostile or broken file nested deeper than Python's recursion limit
        raise CorruptReportError(f"{path}: not a report (JSON nested too deeply to read)") from error
    try:
        return Report.from_dict(data)
    except ReportSchemaError as error:
        raise ReportSchemaError(f"{path}: {error}") from error
    except RecursionError as error:  # parsed, but a field too deeply nested to validate or show
        raise CorruptReportError(f"{path}: not a report (a field is nested too deeply to read)") from error


def write_report(path: str | Path, report: Report) -> None:
    """Write ``report`` as sorted, indented JSON: to a temp file in the same folder, then ``os.replace``.

    Temp files that an earlier writer left behind (killed mid-write) are removed first (``clean_stale_temps``).
    """
    path = Path(path)
    text = json.dumps(report.to_dict(), sort_keys=True, indent=2) + "\n"
    clean_stale_temps(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # only left when writing failed: os.replace moved it otherwise


def update_report(directory: str | Path, rows: list[ResultRow], versions: dict[str, str] | None = None,
                  environment: dict | None = None, previous: Report | None = None) -> Path:
    """Merge ``rows`` into the report of the version set in ``directory``, under a file lock; return its path.

    A row replaces its (architecture, model, check) entry; every other entry is kept. An existing
    file that is corrupt or of another schema is moved aside (with a ``ReportWarning``), never
    overwritten. ``previous`` is the version set the report is compared with
    (``baseline.previous_report``): the report's baseline names it and the report's models it lacks.
    """
    versions = dict(versions or current_versions())
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / report_filename(versions)
    with _locked(path.with_name(path.name + ".lock")):
        existing = _existing(path, versions)
        base = existing or Report(versions, {}, {})
        report = replace(base.merged(rows), versions=versions, environment=dict(environment or current_environment()))
        write_report(path, compared(report, previous))
    return path


STALE_TEMP_SECONDS = 3600.0  # a temp file older than this is stale even if its pid is alive (reused pid)


def clean_stale_temps(path: str | Path, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the temp files of ``path`` (``.<name>.<pid>.<hex>.tmp``) whose writer is gone: its pid is not
    alive on this machine, or the file is older than ``max_age`` seconds. Return the paths removed."""
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"(\d+)\.[0-9a-f]+\.tmp")
    removed = []
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = pattern.fullmatch(temp.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            stale = not _pid_alive(int(match.group(1))) or time.time() - temp.stat().st_mtime > max_age
            if stale:
                temp.unlink()
                removed.append(temp)
        except FileNotFoundError:
            continue  # its writer finished (or another cleaner removed it) meanwhile
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; on Windows (no signal 0) assume it does, so age decides."""
    if sys.platform == "win32":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # alive under another user (or a pid this OS cannot hold: let age decide)
    return True


def _existing(path: Path, versions: dict[str, str]) -> Report | None:
    """The report already at ``path``, or None (absent, or moved aside because unreadable)."""
    if not path.exists():
        return None
    try:
        report = load_report(path)
    except (ReportSchemaError, OSError) as error:
        _move_aside(path, str(error))
        return None
    if any(report.versions.get(name) != versions[name] for name in VERSIONED_PACKAGES):
        _move_aside(path, f"it holds versions {report.versions}, not {versions}")
        return None
    return report


def _move_aside(path: Path, reason: str, stacklevel: int = 3) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    _warn(f"compatibility report {path} is unusable ({reason}); moved it aside to {aside}; the next "
          "update starts a fresh report", stacklevel)
    return aside


def _locked(lock_path: Path) -> BaseFileLock:
    """An exclusive lock between processes on ``lock_path`` (created if needed, left in place), by ``filelock``:
    imported only here, when a report is written or a corrupt one moved aside."""
    from filelock import FileLock

    return FileLock(lock_path)


def find_reports(directories: Iterable[str | Path]) -> list[tuple[Path, Report]]:
    """Every valid ``*.json`` report in ``directories`` (missing folders are empty); invalid ones are
    skipped with a ``ReportWarning`` giving the reason (``read_or_set_aside``)."""
    found = []
    for path in report_paths(directories):
        report = read_or_set_aside(path, stacklevel=3)
        if report is not None:
            found.append((path, report))
    return found


def read_or_set_aside(path: str | Path, stacklevel: int = 2) -> Report | None:
    """The report at ``path``, or None with a ``ReportWarning``. A corrupt file (not JSON, however broken:
    undecodable, truncated, nested too deep) is also moved aside to ``.corrupt-<time>`` under the report's
    lock, so it warns once rather than on every read; a valid JSON file of another schema is only skipped
    (a newer nnterp may have written it). A file that cannot be moved (read-only folder) stays, skipped."""
    path = Path(path)
    try:
        return load_report(path)
    except CorruptReportError as error:
        _set_aside_if_corrupt(path, str(error), stacklevel + 1)
    except (ReportSchemaError, OSError) as error:
        _warn(f"skipping compatibility report {path}: {error}", stacklevel + 1)
    return None


def _set_aside_if_corrupt(path: Path, reason: str, stacklevel: int) -> None:
    """Move ``path`` aside if, under its lock, it is still corrupt (a writer may have replaced it since)."""
    try:
        with _locked(path.with_name(path.name + ".lock")):
            try:
                load_report(path)
                return  # replaced by a valid report meanwhile: nothing to move
            except CorruptReportError:
                _move_aside(path, reason, stacklevel + 2)
    except OSError as error:
        _warn(f"skipping compatibility report {path}: {reason} (could not move it aside: {error})", stacklevel + 1)


def _warn(message: str, stacklevel: int) -> None:
    warnings.warn(plain_text(message), ReportWarning, stacklevel=stacklevel + 1)


def report_paths(directories: Iterable[str | Path]) -> list[Path]:
    """The report files (``*.json``, not hidden) of each existing folder, sorted within each folder."""
    return [Path(path) for path, _ in report_files(directories)]


def report_files(directories: Iterable[str | Path]) -> list[tuple[str, tuple[int, int]]]:
    """``report_paths`` as strings, with each file's (mtime in ns, size): one listing and one stat a file, which
    every model load pays (the compatibility lookup re-reads a report only when its stamp changed)."""
    found = []
    for directory in directories:
        try:
            with os.scandir(directory) as listing:
                entries = sorted((entry.name, entry) for entry in listing
                                 if entry.name.endswith(".json") and not entry.name.startswith(".") and entry.is_file())
        except OSError:  # missing, or not a folder: it holds no reports
            continue
        for name, entry in entries:
            try:
                stat = entry.stat()
            except OSError:
                continue  # removed since it was listed: there is nothing to read
            found.append((os.path.join(directory, name), (stat.st_mtime_ns, stat.st_size)))
    return found
