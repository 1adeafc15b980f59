"""The compatibility report, schema version 1 (see ``docs/compat_reports.md``).

A report records, for one version set (nnterp, transformers, nnsight, torch), every check's
outcome on every architecture and model tested. This module owns the in-memory form, its
validation and its JSON-ready dict form; ``store`` owns the files.
"""

from __future__ import annotations

import hashlib
import math
import platform
import re
import subprocess
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable

from ..errors import NNterpError

SCHEMA_VERSION = 1
VERSIONED_PACKAGES = ("nnterp", "transformers", "nnsight", "torch")
MODEL_KINDS = ("toy", "real")


class ReportSchemaError(NNterpError):
    """A report is not valid schema-version-1 JSON; the message names the field and what is wrong."""


class ReportWarning(UserWarning):
    """A report file was skipped or moved aside; the message names the file(s) and why."""


class ReportStatus(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_APPLICABLE = "n/a"
    LOAD_ERROR = "load error"
    CRASHED = "crashed"
    SKIPPED = "skipped"

    @property
    def is_failure(self) -> bool:
        """Failed, did not load or crashed: what a user must hear about."""
        return self in _FAILURES

    @property
    def severity(self) -> int:
        """Rank used to pick the worst status: passed < n/a < skipped < failed < load error < crashed."""
        return _SEVERITY.index(self)


_SEVERITY = (ReportStatus.PASSED, ReportStatus.NOT_APPLICABLE, ReportStatus.SKIPPED, ReportStatus.FAILED,
             ReportStatus.LOAD_ERROR, ReportStatus.CRASHED)
_FAILURES = frozenset({ReportStatus.FAILED, ReportStatus.LOAD_ERROR, ReportStatus.CRASHED})


@dataclass(frozen=True)
class CheckRecord:
    """One check's outcome on one model: ``value`` is the measured number, ``duration`` seconds."""

    status: ReportStatus
    value: float | None
    message: str
    duration: float


@dataclass(frozen=True)
class ModelRecord:
    """Every check run on one model (``kind`` is "toy" or "real"), keyed by check name."""

    kind: str
    checks: dict[str, CheckRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultRow:
    """One check outcome as the plugin produces it; ``update_report`` merges rows into a report.

    ``check`` and ``status`` accept the enums of ``nnterp.checks`` or plain strings and are
    normalized to ``str`` and ``ReportStatus``.
    """

    architecture: str
    model_id: str
    kind: str
    check: str
    status: ReportStatus
    value: float | None
    message: str
    duration: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", str(getattr(self.check, "value", self.check)))
        object.__setattr__(self, "status", _status(self.status, f"row {self.architecture}/{self.model_id}.status"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (e.g. to travel in a test report's ``user_properties``)."""
        return {"architecture": self.architecture, "model_id": self.model_id, "kind": self.kind, "check": self.check,
                "status": self.status.value, "value": self.value, "message": self.message, "duration": self.duration}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        return cls(**data)

    @property
    def record(self) -> CheckRecord:
        return CheckRecord(self.status, self.value, self.message, self.duration)


@dataclass
class Report:
    """One version set's results: ``architectures[class name][model id]`` is a ``ModelRecord``.

    >>> report = Report(current_versions(), current_environment(), {})
    >>> report = report.merged([ResultRow("LlamaForCausalLM", "toy:llama", "toy", "renaming",
    ...                                   ReportStatus.PASSED, None, "2 layers", 0.01)])
    >>> report.statuses("LlamaForCausalLM")
    {'renaming': <ReportStatus.PASSED: 'passed'>}
    """

    versions: dict[str, str]
    environment: dict
    architectures: dict[str, dict[str, ModelRecord]]
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the schema (dump it with ``sort_keys=True``)."""
        return {
            "schema_version": self.schema_version,
            "versions": dict(self.versions),
            "environment": dict(self.environment),
            "architectures": {arch: {"models": {model_id: _model_dict(record) for model_id, record in models.items()}}
                              for arch, models in self.architectures.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        """Validate ``data`` against schema version 1; raise ``ReportSchemaError`` naming the bad field."""
        _expect(data, dict, "report")
        _keys(data, "report", required={"schema_version", "versions", "environment", "architectures"})
        schema = data["schema_version"]
        if schema != SCHEMA_VERSION or isinstance(schema, bool):
            raise ReportSchemaError(f"schema_version: {schema!r} is not {SCHEMA_VERSION}, the schema this nnterp "
                                    "reads (a report written by another nnterp version?)")
        return cls(versions=_versions(data["versions"]), environment=_expect(data["environment"], dict, "environment"),
                   architectures=_architectures(data["architectures"]))

    def statuses(self, architecture: str) -> dict[str, ReportStatus]:
        """The worst status of each check over the architecture's models ({} if it is absent)."""
        worst: dict[str, ReportStatus] = {}
        for record in self.architectures.get(architecture, {}).values():
            for check, outcome in record.checks.items():
                if check not in worst or outcome.status.severity > worst[check].severity:
                    worst[check] = outcome.status
        return worst

    def merged(self, rows: Iterable[ResultRow]) -> Report:
        """A copy where each row replaces its (architecture, model, check) entry; the rest is kept."""
        architectures = {arch: dict(models) for arch, models in self.architectures.items()}
        for row in rows:
            models = architectures.setdefault(row.architecture, {})
            previous = models.get(row.model_id, ModelRecord(row.kind))
            models[row.model_id] = ModelRecord(row.kind, {**previous.checks, row.check: row.record})
        return replace(self, architectures=architectures)


def _model_dict(record: ModelRecord) -> dict[str, Any]:
    return {"kind": record.kind, "checks": {name: {"status": check.status.value, "value": check.value,
                                                   "message": check.message, "duration": check.duration}
                                            for name, check in record.checks.items()}}


# -- validation ------------------------------------------------------------------------


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = " or ".join(dict.fromkeys(_JSON_NAMES.get(k, k.__name__) for k in _as_tuple(kind)))
        raise ReportSchemaError(f"{where}: expected {names}, found {_JSON_NAMES.get(type(value), type(value).__name__)}"
                                f" {value!r:.80}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def _keys(data: dict, where: str, required: set[str]) -> None:
    missing, unknown = sorted(required - data.keys()), sorted(data.keys() - required)
    if missing:
        raise ReportSchemaError(f"{where}: missing key(s) {', '.join(map(repr, missing))}")
    if unknown:
        raise ReportSchemaError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                                f"(expected {', '.join(sorted(required))})")


def _versions(data: Any) -> dict[str, str]:
    _expect(data, dict, "versions")
    missing = [name for name in VERSIONED_PACKAGES if name not in data]
    if missing:
        raise ReportSchemaError(f"versions: missing {', '.join(missing)} "
                                f"(a report needs {', '.join(VERSIONED_PACKAGES)})")
    for name, value in data.items():
        _expect(value, str, f"versions.{name}")
    return dict(data)


def _architectures(data: Any) -> dict[str, dict[str, ModelRecord]]:
    _expect(data, dict, "architectures")
    result = {}
    for arch, entry in data.items():
        where = f"architectures.{arch}"
        _expect(entry, dict, where)
        _keys(entry, where, {"models"})
        _expect(entry["models"], dict, f"{where}.models")
        result[arch] = {model_id: _model(record, f"{where}.models.{model_id}")
                        for model_id, record in entry["models"].items()}
    return result


def _model(data: Any, where: str) -> ModelRecord:
    _expect(data, dict, where)
    _keys(data, where, {"kind", "checks"})
    kind = _expect(data["kind"], str, f"{where}.kind")
    if kind not in MODEL_KINDS:
        raise ReportSchemaError(f"{where}.kind: {kind!r} is not one of {', '.join(map(repr, MODEL_KINDS))}")
    checks = _expect(data["checks"], dict, f"{where}.checks")
    return ModelRecord(kind, {name: _check(check, f"{where}.checks.{name}") for name, check in checks.items()})


def _check(data: Any, where: str) -> CheckRecord:
    _expect(data, dict, where)
    _keys(data, where, {"status", "value", "message", "duration"})
    value = _expect(data["value"], (int, float, type(None)), f"{where}.value")
    duration = _expect(data["duration"], (int, float), f"{where}.duration")
    if not math.isfinite(duration) or duration < 0:
        raise ReportSchemaError(f"{where}.duration: {duration!r} is not a number of seconds >= 0")
    return CheckRecord(_status(data["status"], f"{where}.status"), None if value is None else float(value),
                       _expect(data["message"], str, f"{where}.message"), float(duration))


def _status(value: Any, where: str) -> ReportStatus:
    try:
        return ReportStatus(value)
    except ValueError:
        accepted = ", ".join(repr(status.value) for status in ReportStatus)
        raise ReportSchemaError(f"{where}: {value!r} is not one of {accepted}") from None


# -- provenance ------------------------------------------------------------------------


def current_versions() -> dict[str, str]:
    """Installed versions of the version set, read from package metadata (nothing is imported)."""
    return {name: _installed(name) for name in VERSIONED_PACKAGES}


def _installed(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not-installed"


def report_filename(versions: dict[str, str]) -> str:
    """``nnterp-<v>_transformers-<v>_nnsight-<v>_torch-<v>.json``, ``+`` replaced by ``-``.

    Versions are read from report files (user input), so each becomes a safe file-name part (see
    ``_safe_version``): no ``/``, ``\\`` or ``..``, whatever a report holds, so the name never leaves its folder.
    """
    parts = [f"{name}-{_safe_version(versions[name])}" for name in VERSIONED_PACKAGES]
    return "_".join(parts) + ".json"


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]|\.(?=\.)")
_VERSION_PART_LIMIT = 48


def _safe_version(version: str) -> str:
    """``version`` with ``+`` as ``-`` (as always); anything else outside ``[A-Za-z0-9._-]``, and each ``.``
    followed by another, as ``-``. A version changed beyond ``+`` or too long keeps a hash of the original,
    so two different version sets never share a file."""
    plain = version.replace("+", "-")
    safe = _UNSAFE_NAME.sub("-", plain)[:_VERSION_PART_LIMIT]
    if safe == plain:
        return safe
    return f"{safe}-{hashlib.sha256(version.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


def current_environment() -> dict:
    """Python, platform, time of update (UTC) and the nnterp checkout's git commit (None if unknown)."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "git_commit": _git_commit()}


def _git_commit() -> str | None:
    """HEAD of the git checkout nnterp runs from, or None (installed package, no git, any failure)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
