"""Report files: read, write atomically, merge partial runs under a file lock, find every report in folders.

A report folder may hold files that are not ours (a user's ``settings.json``): nnterp reads, warns about and
moves aside only files that claim to be reports (``claims_to_be_report``). A report that is a symbolic link is
written through the link. Lock files live in one hidden ``.locks/`` folder beside the reports.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import logging
import os
import re
import sys
import time
import uuid
import warnings
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import (
    CorruptReportError,  # re-exported: defined with every nnterp error
    ReportFileError,
    ReportLockError,
)
from .baseline import compared
from .labels import plain_text
from .schema import (
    VERSIONED_PACKAGES,
    Report,
    ReportSchemaError,
    ReportWarning,
    ResultRow,
    current_environment,
    current_versions,
    report_filename,
)

logger = logging.getLogger(__name__)

LOCK_FOLDER = ".locks"  # beside the reports: one lock file per report, kept (see _locked)
REPORT_NAME = re.compile("_".join(f"{re.escape(name)}-[A-Za-z0-9._-]*" for name in VERSIONED_PACKAGES) + r"\.json")
_UNREAD = object()


def claims_to_be_report(path: str | Path, data: Any = _UNREAD) -> bool:
    """Whether the file at ``path`` claims to be an nnterp report, and so is nnterp's to warn about and move aside
    when it is unreadable: its name is a report's (``report_filename``), or its parsed JSON, ``data``, is an
    object with a ``schema_version`` key (a report copied under another name). Every reader asks this; anything
    else in a report folder (a user's ``settings.json``) is not ours, skipped without a warning."""
    if REPORT_NAME.fullmatch(Path(path).name):
        return True
    return isinstance(data, dict) and "schema_version" in data


def load_report(path: str | Path) -> Report:
    """Read and validate one report; ``CorruptReportError`` if not JSON, ``ReportSchemaError`` if not schema 1."""
    path = Path(path)
    return _validated(path, _read_json(path))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct: a key written twice (a check "failed", then "passed") makes the
    file ambiguous, so corrupt, never read as its last value."""
    found = dict(pairs)
    if len(found) != len(pairs):
        repeated = sorted({key for key, _ in pairs if [k for k, _ in pairs].count(key) > 1})
        raise ValueError(f"the key(s) {repeated[:5]} appear more than once in one object")
    return found


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (ValueError, UnicodeDecodeError) as error:
        raise CorruptReportError(f"{path}: not valid JSON ({error})") from error
    except RecursionError as error:  # a hostile or broken file nested deeper than Python's recursion limit
        raise CorruptReportError(f"{path}: not a report (JSON nested too deeply to read)") from error


def _validated(path: Path, data: Any) -> Report:
    try:
        return Report.from_dict(data)
    except ReportSchemaError as error:
        raise ReportSchemaError(f"{path}: {error}") from error
    except RecursionError as error:  # parsed, but a field too deeply nested to validate or show
        raise CorruptReportError(f"{path}: not a report (a field is nested too deeply to read)") from error


def write_report(path: str | Path, report: Report) -> None:
    """Write ``report`` as sorted, indented JSON: to a temp file in the same folder, then ``os.replace``.

    A symbolic link is written through: the file it points to is replaced (from a temp file beside it), the link
    kept; ``ReportFileError`` if that file's folder is not writable. Temp files that an earlier writer left
    behind (killed mid-write) are removed first (``clean_stale_temps``).
    """
    path = Path(path)
    target = _write_target(path)
    text = json.dumps(report.to_dict(), sort_keys=True, indent=2) + "\n"
    clean_stale_temps(target)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        try:
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except PermissionError as error:
            if target == path:
                raise
            raise _unwritable_link(path, target, error) from error
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()  # only left when writing failed: os.replace moved it otherwise


def _write_target(path: Path) -> Path:
    """The file that writing ``path`` replaces: ``path``, or the file a symbolic link there points to (replacing
    the link with a private copy would leave the file it points to stale, and the user's link gone)."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # a loop of links (RuntimeError before Python 3.13)
        raise ReportFileError(f"{path} is a symbolic link that cannot be followed ({error}); replace it with a "
                              "report file, or with a link to one") from error


def _unwritable_link(path: Path, target: Path, error: OSError) -> ReportFileError:
    return ReportFileError(
        f"{path} links to {target}, whose folder is not writable ({error.strerror or error}); nnterp writes a "
        f"report through its link, never replacing the link with a private copy: make {target.parent} writable, "
        f"or replace the link with a copy of the report (cp --remove-destination {target} {path})")


def update_report(directory: str | Path, rows: list[ResultRow], versions: dict[str, str] | None = None,
                  environment: dict | None = None, previous: Report | None = None) -> Path:
    """Merge ``rows`` into the report of the version set in ``directory``, under a file lock; return its path.

    A row replaces its (architecture, model, check) entry; every other entry is kept. An existing
    file that is corrupt or of another schema is moved aside (with a ``ReportWarning``), never
    overwritten; one that is a symbolic link is updated through the link (``write_report``). ``previous``
    is the version set the report is compared with (``baseline.previous_report``): the report's baseline
    names it and the report's models it lacks.
    """
    versions = dict(versions or current_versions())
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / report_filename(versions)
    with _locked(path):
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


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the lock between processes of the report ``path`` (of a link: of the file it points to), a
    ``filelock.FileLock`` on ``.locks/<report name>.lock`` beside it; ``ReportLockError`` if something is in the way.

    Lock files are kept, out of sight in that one folder, since no lock can remove its own file safely:
    ``FileLock`` (``flock``) would let a process that waited on the removed file hold a lock nobody else
    sees (filelock 3.12, which nnterp accepts, does not check for that); ``SoftFileLock`` removes its file but
    leaves it, blocking every later writer, when its holder is killed. ``filelock`` is imported only here, when a
    report is written or a corrupt one moved aside."""
    from filelock import FileLock

    target = _write_target(path)
    lock = target.parent / LOCK_FOLDER / f"{target.name}.lock"
    try:
        lock.parent.mkdir(exist_ok=True)
        if lock.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(lock))
        held = FileLock(lock)
        held.acquire()
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as error:
        raise _lock_in_the_way(path, lock) from error
    except PermissionError as error:
        if target == path:
            raise
        raise _unwritable_link(path, target, error) from error
    try:
        yield
    finally:
        held.release()


def _lock_in_the_way(path: Path, lock: Path) -> ReportLockError:
    if lock.parent.exists() and not lock.parent.is_dir():
        return ReportLockError(f"cannot lock the compatibility report {path}: {lock.parent} is a file, where nnterp "
                               f"keeps the lock files of the reports in {lock.parent.parent}; move it away (or "
                               "remove it), then run again")
    return ReportLockError(f"cannot lock the compatibility report {path}: {lock} is a folder, where nnterp keeps "
                           "that report's lock file; remove it (rmdir) if it holds nothing of yours, then run again")


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
    """The report at ``path``, or None. A file that does not claim to be a report (``claims_to_be_report``) is
    not ours: skipped silently (a debug log line), never moved. One that claims to be but is not valid is
    skipped with a ``ReportWarning``; if corrupt (not JSON, however broken: undecodable, truncated, nested too
    deep) it is also moved aside to ``.corrupt-<time>`` under the report's lock, so it warns once rather than
    on every read; a valid JSON file of another schema is only skipped (a newer nnterp may have written it). A
    file that cannot be moved (read-only folder) stays, skipped."""
    path = Path(path)
    try:
        data = _read_json(path)
    except (CorruptReportError, OSError) as error:  # unread: only its name can claim it
        _unreadable(path, error, stacklevel + 1)
        return None
    if not claims_to_be_report(path, data):
        _not_ours(path)
        return None
    try:
        return _validated(path, data)
    except CorruptReportError as error:
        _set_aside_if_corrupt(path, str(error), stacklevel + 1)
    except ReportSchemaError as error:
        _warn(f"skipping compatibility report {path}: {error}", stacklevel + 1)
    return None


def _unreadable(path: Path, error: OSError | CorruptReportError, stacklevel: int) -> None:
    if not claims_to_be_report(path):
        _not_ours(path)
    elif isinstance(error, CorruptReportError):
        _set_aside_if_corrupt(path, str(error), stacklevel + 1)
    else:
        _warn(f"skipping compatibility report {path}: {error}", stacklevel + 1)


def _not_ours(path: Path) -> None:
    logger.debug("skipping %s: not an nnterp report (neither a report's file name nor a schema_version)", path)


def _set_aside_if_corrupt(path: Path, reason: str, stacklevel: int) -> None:
    """Move ``path`` aside if, under its lock, it is still corrupt (a writer may have replaced it since)."""
    try:
        with _locked(path):
            try:
                load_report(path)
                return  # replaced by a valid report meanwhile: nothing to move
            except CorruptReportError:
                _move_aside(path, reason, stacklevel + 2)
            except ReportSchemaError:
                return  # replaced by valid JSON of another schema meanwhile: not corrupt, nothing to move
    except OSError as error:
        _warn(f"skipping compatibility report {path}: {reason} (could not move it aside: {error})", stacklevel + 1)


def _warn(message: str, stacklevel: int) -> None:
    warnings.warn(plain_text(message), ReportWarning, stacklevel=stacklevel + 1)


def report_paths(directories: Iterable[str | Path]) -> list[Path]:
    """The candidate report files (``*.json``, not hidden) of each existing folder, sorted within each folder;
    which of them are reports, the reader decides (``read_or_set_aside``, by ``claims_to_be_report``)."""
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
