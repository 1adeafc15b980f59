"""Load-time lookup: was this architecture tested with the installed versions, and did it pass?

``StandardizedTransformer`` calls ``warn_for_architecture`` after its own checks. The lookup reads
the reports shipped with nnterp plus the user's (``NNTERP_REPORT_DIR``: this module owns where reports
live, for the pytest plugin too), caches each parsed file by modification time, and imports nothing
heavy, so it costs well under a millisecond once warm.
It warns at most once per architecture per process (``reset_warned_architectures`` forgets).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from ..errors import NNterpCompatibilityWarning, NNterpError  # the warning is re-exported here
from .baseline import novelty
from .labels import join_words, plain_text
from .schema import VERSIONED_PACKAGES, ModelRecord, Report, ReportStatus, current_versions
from .store import read_or_set_aside, report_files
from .verdict import Judgement, Verdict, judge

logger = logging.getLogger(__name__)

REPORT_DIR_ENV = "NNTERP_REPORT_DIR"
SHIPPED_DATA_DIR = "share/nnterp/compat_reports"  # where a wheel installs the reports (pyproject data-files)
NEAREST_ORDER = ("transformers", "nnsight", "torch", "nnterp")  # what matters most when versions differ


class LookupState(str, Enum):
    ALL_PASSED = "all passed"
    PARTIAL = "partial"  # what ran passed, but not every check of the catalogue ran (``verdict.Verdict.PARTIAL``)
    NOT_VERIFIED = "not verified"  # tested, but no check passed: every one skipped, or none ran
    FAILURES = "failures"
    NEVER_TESTED = "never tested"
    OTHER_VERSIONS = "other versions"


_STATE_OF = {Verdict.ALL_PASSED: LookupState.ALL_PASSED, Verdict.PARTIAL: LookupState.PARTIAL,
             Verdict.NOTHING_VERIFIED: LookupState.NOT_VERIFIED, Verdict.FAILURES: LookupState.FAILURES}


@dataclass(frozen=True)
class LookupResult:
    """What the reports say about one architecture.

    ``versions`` is the version set looked up. For ``FAILURES``, ``failed_checks`` and ``statuses``
    describe that set; for ``OTHER_VERSIONS`` (``versions`` untested) they describe
    ``nearest_versions``, the closest tested set, whose outcome is ``nearest_state`` (``ALL_PASSED``,
    ``PARTIAL``, ``NOT_VERIFIED`` or ``FAILURES``): history, not a verdict on ``versions``. ``reports`` are the
    files the verdict comes from.
    """

    architecture: str
    state: LookupState
    message: str
    versions: dict[str, str]
    failed_checks: tuple[str, ...] = ()
    statuses: dict[str, ReportStatus] = field(default_factory=dict)
    nearest_versions: dict[str, str] | None = None
    nearest_state: LookupState | None = None
    reports: tuple[Path, ...] = ()

    @property
    def differing_packages(self) -> tuple[str, ...]:
        """The packages whose version differs between ``versions`` and ``nearest_versions`` (``()`` if none)."""
        return _differing(self.versions, self.nearest_versions) if self.nearest_versions is not None else ()


# -- where reports live --------------------------------------------------------------------


def report_directories(user_directory: str | Path | None = None) -> list[Path]:
    """Every folder reports are read from, lowest precedence first (a later folder wins where two hold the same
    version set and entry): the shipped reports, the user's (``user_report_directories()`` reversed, so that the
    first of ``$NNTERP_REPORT_DIR`` wins), then ``user_directory``."""
    shipped = shipped_report_directory()
    candidates = ([shipped] if shipped else []) + user_report_directories()[::-1]
    if user_directory is not None:
        candidates.append(Path(user_directory))
    return list(dict.fromkeys(candidates))


def user_report_directories() -> list[Path]:
    """The user's report folders, the rule both the lookup and the pytest plugin follow: each folder of
    ``$NNTERP_REPORT_DIR`` (``os.pathsep``-separated, the first winning when they disagree and the one
    written to, see ``report_write_directory``; a leading ``~`` is the home folder, as in a shell) or, when it
    is unset, ``~/.cache/nnterp/compat_reports``."""
    configured = [Path(os.path.expanduser(part)) for part in os.environ.get(REPORT_DIR_ENV, "").split(os.pathsep)
                  if part]
    if configured:
        return configured
    try:
        return [Path.home() / ".cache" / "nnterp" / "compat_reports"]
    except RuntimeError:  # no home directory to resolve: there is no default user folder
        return []


def report_write_directory() -> Path:
    """Where reports are written when no folder is given (the pytest plugin, ``python -m nnterp run_tests``):
    the first of ``user_report_directories()``, whose entries win when the lookup reads them all."""
    folders = user_report_directories()
    if not folders:
        raise NNterpError(f"no folder to write compatibility reports to: there is no home directory for the "
                          f"default ~/.cache/nnterp/compat_reports; set {REPORT_DIR_ENV} to a writable folder")
    return folders[0]


@lru_cache(maxsize=None)
def shipped_report_directory() -> Path | None:
    """``compat_reports/`` of the source checkout nnterp runs from (editable install), else the copy a
    wheel installed under ``<prefix>/share/nnterp/compat_reports``; None if neither exists."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "compat_reports").is_dir():
        return checkout / "compat_reports"
    return _installed_data_directory()


def _installed_data_directory() -> Path | None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        files = distribution("nnterp").files or []
    except PackageNotFoundError:
        return None
    for file in files:
        if SHIPPED_DATA_DIR in file.as_posix():
            return Path(file.locate()).resolve().parent
    import sysconfig

    installed = Path(sysconfig.get_path("data")) / SHIPPED_DATA_DIR
    return installed if installed.is_dir() else None


# -- cached reading ------------------------------------------------------------------------

_parsed: dict[str, tuple[tuple[int, int], Path, Report | None]] = {}  # path -> (stamp, path, report)


def _reports(directories: Iterable[Path]) -> list[tuple[Path, tuple[int, int], Report]]:
    """Every valid report in ``directories`` with its file's (mtime, size), parsed once per path and stamp."""
    found = []
    for name, stamp in report_files(directories):
        cached = _parsed.get(name)
        if cached is None or cached[0] != stamp:
            path = Path(name)
            cached = _parsed[name] = (stamp, path, _parse(path))
        if cached[2] is not None:
            found.append((cached[1], stamp, cached[2]))
    return found


def _parse(path: Path) -> Report | None:
    """The report, or None: skipped with a ``ReportWarning`` (and moved aside if corrupt, see ``read_or_set_aside``)."""
    return read_or_set_aside(path, stacklevel=3)


@lru_cache(maxsize=1)
def _installed_versions() -> dict[str, str]:
    return current_versions()


# -- the lookup ----------------------------------------------------------------------------


def lookup_architecture(class_name: str, directories: Iterable[str | Path] | None = None,
                        versions: dict[str, str] | None = None, *, model_id: str | None = None) -> LookupResult:
    """Classify ``class_name`` against the reports in ``directories`` (default: ``report_directories()``)
    for ``versions`` (default: the installed ones). ``model_id`` only sharpens the suggested command.
    The message is plain text: control characters and escape sequences from report files are dropped."""
    result = _lookup(class_name, directories, versions, model_id)
    return replace(result, message=plain_text(result.message))


_classified: dict[tuple, LookupResult] = {}  # per architecture, model id, versions and report files (path, mtime, size)


def _lookup(class_name: str, directories: Iterable[str | Path] | None, versions: dict[str, str] | None,
            model_id: str | None) -> LookupResult:
    """The classification, computed once per architecture and state of the report files (every model load
    looks its architecture up; merging the reports' rows again each time cost a tenth of a toy's load)."""
    directories = report_directories() if directories is None else [Path(d) for d in directories]
    versions = dict(versions or _installed_versions())
    stamped = _reports(directories)
    key = (class_name, model_id, tuple(map(str, directories)), tuple(sorted(versions.items())),
           tuple((str(path), stamp) for path, stamp, _ in stamped))
    if key not in _classified:
        reports = [(path, report) for path, _, report in stamped]
        _classified[key] = _classify(class_name, directories, versions, model_id, reports)
    return _classified[key]


def _classify(class_name: str, directories: list[Path], versions: dict[str, str], model_id: str | None,
              reports: list[tuple[Path, Report]]) -> LookupResult:
    by_set: dict[tuple[str, ...], list[tuple[Path, Report]]] = {}
    for path, report in reports:
        if class_name in report.architectures:
            by_set.setdefault(_set_key(report.versions), []).append((path, report))
    command = run_tests_command(class_name, model_id)
    if _set_key(versions) in by_set:
        return _tested(class_name, versions, by_set[_set_key(versions)], command)
    if not by_set:
        where = ", ".join(str(d) for d in directories) or "no report folder"
        return LookupResult(class_name, LookupState.NEVER_TESTED,
                            f"{class_name} has never been tested by nnterp: no compatibility report in {where} "
                            f"mentions it, so its standardized names may be wrong. Test it with:\n  {command}",
                            versions)
    nearest = min(by_set, key=lambda key: _closeness(dict(zip(VERSIONED_PACKAGES, key)), versions))
    return _other_versions(class_name, versions, by_set[nearest], command)


def run_tests_command(class_name: str, model_id: str | None = None) -> str:
    """The command that tests an architecture (and a real model, given its id) and records the result."""
    command = f"python -m nnterp run_tests --class-names {class_name}"
    if model_id:
        return f"{command} --model-names {model_id}"
    return f"{command}   (add --model-names <hub id or path> to test a real model)"


def _tested(class_name: str, versions: dict[str, str], found: list[tuple[Path, Report]], command: str) -> LookupResult:
    models = _models(class_name, found)
    statuses, failures = _verdict(class_name, models)
    judgement = judge(statuses)
    state = _STATE_OF[judgement.verdict]
    paths = tuple(path for path, _ in found)
    new = _novelty(class_name, found)
    where = f"with {_describe(versions)} (models: {', '.join(sorted(models))})"
    if state is LookupState.ALL_PASSED:
        return LookupResult(class_name, state, f"{class_name} {judgement.claim} {where}{f'; {new}' if new else ''}",
                            versions, (), statuses, reports=paths)
    if state is LookupState.FAILURES:
        finding = f"{class_name} is {new} and not yet verified: it" if new else class_name
        return LookupResult(class_name, state,
                            f"{finding} failed nnterp checks with {_describe(versions)}: "
                            f"{_failures(models, failures)}. The accessors these checks cover may be wrong for this "
                            f"model. Re-test with:\n  {command}", versions, failures, statuses, reports=paths)
    skipped = _skip_reason(models, judgement.skipped)
    return LookupResult(class_name, state,
                        f"{class_name} {judgement.claim} {where}{f'; {new}' if new else ''}{skipped}. The checks that "
                        f"did not run say nothing about this model. Run every check with:\n  {command}",
                        versions, (), statuses, reports=paths)


def _skip_reason(models: dict[str, ModelRecord], skipped: tuple[str, ...]) -> str:
    """``; skipped: <message>`` for the first skipped check with a message ("" when none was skipped)."""
    for check in skipped:
        for _, record in sorted(models.items()):
            outcome = record.checks.get(check)
            if outcome is not None and outcome.status is ReportStatus.SKIPPED and outcome.message:
                return f"; skipped: {_short(outcome.message)}"
    return ""


def _novelty(class_name: str, found: list[tuple[Path, Report]]) -> str:
    """``new in transformers 5.25.0 (absent from ...)`` when a report of the set lists one of the architecture's
    models as new (an upstream release added its type); "" otherwise."""
    for _, report in found:
        models = report.architectures.get(class_name, {})
        if report.baseline is not None and any(report.is_new(model_id) for model_id in models):
            return novelty(report.versions, report.baseline.versions)
    return ""


def _other_versions(class_name: str, versions: dict[str, str], found: list[tuple[Path, Report]],
                    command: str) -> LookupResult:
    """``versions`` is untested: say so, then tell the nearest tested set's outcome as history only."""
    nearest = dict(found[0][1].versions)
    models = _models(class_name, found)
    statuses, failures = _verdict(class_name, models)
    differing = _differing(versions, nearest)
    same = [name for name in VERSIONED_PACKAGES if name not in differing]
    where = "differs in " + join_words([f"{name} ({nearest.get(name, '?')} there, {versions.get(name, '?')} here)"
                                   for name in differing])
    where += f" and matches in {join_words(same)}" if same else ""
    judgement = judge(statuses)
    history = (f"there it failed {_failures(models, failures)}; that does not say whether this set fails"
               if failures else f"{_history(judgement)}; that says nothing about this set")
    message = (f"{class_name} is untested with the installed {_describe(versions)}: no compatibility report records "
               f"it with this version set, so none of nnterp's checks have run on it here. The nearest "
               f"tested set {where}: {history}. Verify this set with:\n  {command}")
    return LookupResult(class_name, LookupState.OTHER_VERSIONS, message, versions, failures, statuses, nearest,
                        _STATE_OF[judgement.verdict], tuple(p for p, _ in found))


def _history(judgement: Judgement) -> str:
    """What a set without failures showed, claiming no pass for the installed set."""
    if judgement.verdict is Verdict.ALL_PASSED:
        return "no check failed there"
    if judgement.verdict is Verdict.PARTIAL:
        return f"no check failed there, but {join_words(judgement.unverified)} did not run"
    return "nothing was verified there (its checks were skipped or do not apply)"


def _models(class_name: str, found: list[tuple[Path, Report]]) -> dict[str, ModelRecord]:
    """The architecture's models over reports of one version set; later reports win per check."""
    merged = Report({}, {}, {}).merged(row for _, report in found for row in report.rows(class_name))
    return merged.architectures.get(class_name, {})


def _verdict(class_name: str, models: dict[str, ModelRecord]) -> tuple[dict[str, ReportStatus], tuple[str, ...]]:
    statuses = Report({}, {}, {class_name: models}).statuses(class_name)
    return statuses, tuple(sorted(check for check, status in statuses.items() if status.is_failure))


def _failures(models: dict[str, ModelRecord], checks: tuple[str, ...]) -> str:
    """``check (status on model: message)`` per failed check; checks that failed alike share one detail."""
    grouped: dict[str, list[str]] = {}
    for check in checks:
        where = [f"{record.checks[check].status.value} on {model_id}: {_short(record.checks[check].message)}"
                 for model_id, record in sorted(models.items())
                 if check in record.checks and record.checks[check].status.is_failure]
        grouped.setdefault("; ".join(where), []).append(check)
    return "; ".join(f"{join_words(names)} ({detail})" for detail, names in grouped.items())


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(versions: dict[str, str]) -> str:
    return ", ".join(f"{name} {versions.get(name, '?')}" for name in VERSIONED_PACKAGES)


def _differing(versions: dict[str, str], other: dict[str, str]) -> tuple[str, ...]:
    return tuple(name for name in VERSIONED_PACKAGES if versions.get(name) != other.get(name))


def _set_key(versions: dict[str, str]) -> tuple[str, ...]:
    return tuple(versions.get(name, "") for name in VERSIONED_PACKAGES)


def _closeness(tested: dict[str, str], installed: dict[str, str]) -> tuple:
    """Sort key: per package in ``NEAREST_ORDER``, the release-part distances (then whether the strings
    differ); ties go to the newer tested versions."""
    distance, newness = [], []
    for name in NEAREST_ORDER:
        old, new = _release(tested.get(name, "")), _release(installed.get(name, ""))
        width = max(len(old), len(new))
        old, new = old + (0,) * (width - len(old)), new + (0,) * (width - len(new))
        distance.append((tuple(abs(a - b) for a, b in zip(old, new)), tested.get(name) != installed.get(name)))
        newness.append(tuple(-part for part in old))
    return tuple(distance), tuple(newness)


def _release(text: str) -> tuple[int, ...]:
    """The numeric release of a version string (``5.24.0.dev0`` -> ``(5, 24, 0)``); ``()`` if it is no version."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text).release
    except InvalidVersion:
        return ()


_warned: set[str] = set()  # architectures this process has warned about; see reset_warned_architectures


def warn_for_architecture(class_name: str, directories: Iterable[str | Path] | None = None, *,
                          model_id: str | None = None) -> LookupResult:
    """Look the architecture up; log at debug level if it passed everything, else warn the user.

    The warning is a ``NNterpCompatibilityWarning`` pointing at the caller of the caller (the line
    that built the ``StandardizedTransformer``), given once per architecture per process: later
    loads of the same architecture only log it at debug level.
    """
    result = lookup_architecture(class_name, directories, model_id=model_id)
    if result.state is LookupState.ALL_PASSED:
        logger.debug(result.message)
    elif class_name in _warned:
        logger.debug("already warned about %s in this process: %s", class_name, result.message)
    else:
        _warned.add(class_name)
        warnings.warn(result.message, NNterpCompatibilityWarning, stacklevel=3)
    return result


def reset_warned_architectures() -> None:
    """Forget which architectures were warned about, so each warns again on its next load (for tests)."""
    _warned.clear()
