"""The compatibility report, schema version 1 (see ``docs/compat_reports.md``).

A report records, for one version set (nnterp, transformers, nnsight, torch), every check's
outcome on every architecture and model tested. This module owns the in-memory form, the one way
reports merge (``Report.merged``) and the JSON-ready dict form; ``validation`` checks a file against
the schema (pydantic, imported only when a report is read) and ``store`` owns the files. Statuses are
``nnterp.checks.ReportStatus``, whose severity order every view of the reports uses.
"""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..checks.catalogue import ReportStatus
from ..errors import ReportSchemaError
from ..errors import ReportWarning as ReportWarning  # re-exported: defined with every nnterp error
from .fields import MODEL_KINDS as MODEL_KINDS
from .fields import SCHEMA_VERSION as SCHEMA_VERSION
from .fields import TEXT_GENERATION as TEXT_GENERATION
from .fields import VERSIONED_PACKAGES as VERSIONED_PACKAGES
from .fields import ModelKind as ModelKind
from .fields import Task as Task


@dataclass(frozen=True)
class CheckRecord:
    """One check's outcome on one model: ``value`` is the measured number, ``duration`` seconds."""

    status: ReportStatus
    value: float | None
    message: str
    duration: float


@dataclass(frozen=True)
class ModelRecord:
    """Every check run on one model (``kind`` is "toy" or "real"), keyed by check name; ``task`` is what it
    was tested as (reports before the field existed hold causal LMs only)."""

    kind: ModelKind
    checks: dict[str, CheckRecord] = field(default_factory=dict)
    task: Task = TEXT_GENERATION


@dataclass(frozen=True)
class ResultRow:
    """One check outcome as the plugin produces it; ``Report.merged`` merges rows into a report.

    ``check`` and ``status`` accept the enums of ``nnterp.checks`` or plain strings and are
    normalized to ``str`` and ``ReportStatus``.
    """

    architecture: str
    model_id: str
    kind: ModelKind
    check: str
    status: ReportStatus
    value: float | None
    message: str
    duration: float
    task: Task = TEXT_GENERATION

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", str(getattr(self.check, "value", self.check)))
        object.__setattr__(self, "status", as_status(self.status, f"row {self.architecture}/{self.model_id}.status"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (e.g. to travel in a test report's ``user_properties``)."""
        return {"architecture": self.architecture, "model_id": self.model_id, "kind": self.kind, "check": self.check,
                "status": self.status.value, "value": self.value, "message": self.message, "duration": self.duration,
                "task": self.task}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultRow:
        return cls(**data)

    @property
    def record(self) -> CheckRecord:
        return CheckRecord(self.status, self.value, self.message, self.duration)


@dataclass(frozen=True)
class Baseline:
    """The version set a report was compared with (the newest older one), and the report's models its report
    lacks: models of types an upstream release added, each a finding to report, never a regression."""

    versions: dict[str, str]
    new_models: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"versions": dict(self.versions), "new_models": list(self.new_models)}


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
    environment: dict[str, Any]
    architectures: dict[str, dict[str, ModelRecord]]
    schema_version: int = SCHEMA_VERSION
    baseline: Baseline | None = None  # None: compared with no older version set

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the schema (dump it with ``sort_keys=True``)."""
        baseline = {} if self.baseline is None else {"baseline": self.baseline.to_dict()}
        return {
            "schema_version": self.schema_version,
            "versions": dict(self.versions),
            "environment": dict(self.environment),
            **baseline,
            "architectures": {arch: {"models": {model_id: _model_dict(record) for model_id, record in models.items()}}
                              for arch, models in self.architectures.items()},
        }

    def model_ids(self) -> set[str]:
        """Every model id the report holds, over all architectures."""
        return {model_id for models in self.architectures.values() for model_id in models}

    def is_new(self, model_id: str) -> bool:
        """Whether ``model_id`` is one of the models the version set compared with lacks."""
        return self.baseline is not None and model_id in self.baseline.new_models

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        """Validate ``data`` against schema version 1; raise ``ReportSchemaError`` naming the bad field. The
        validation (pydantic) loads only here, when a report is read."""
        from .validation import validated

        file = validated(data)
        architectures = {arch: {model_id: ModelRecord(model.kind, {
            name: CheckRecord(check.status, check.value, check.message, check.duration)
            for name, check in model.checks.items()}, model.task) for model_id, model in entry.models.items()}
            for arch, entry in file.architectures.items()}
        baseline = None if file.baseline is None else \
            Baseline(dict(file.baseline.versions), tuple(sorted(file.baseline.new_models)))
        return cls(dict(file.versions), dict(file.environment), architectures, baseline=baseline)

    def statuses(self, architecture: str) -> dict[str, ReportStatus]:
        """The worst status of each check over the architecture's models ({} if it is absent)."""
        seen: dict[str, list[ReportStatus]] = {}
        for record in self.architectures.get(architecture, {}).values():
            for check, outcome in record.checks.items():
                seen.setdefault(check, []).append(outcome.status)
        return {check: ReportStatus.worst(statuses) for check, statuses in seen.items()}

    def rows(self, architecture: str | None = None) -> Iterator[ResultRow]:
        """Every entry as a ``ResultRow`` (only ``architecture``'s when given), as ``merged`` takes them."""
        names = list(self.architectures) if architecture is None else [architecture]
        for arch in (name for name in names if name in self.architectures):
            for model_id, record in self.architectures[arch].items():
                for check, outcome in record.checks.items():
                    yield ResultRow(arch, model_id, record.kind, check, outcome.status, outcome.value,
                                    outcome.message, outcome.duration, record.task)

    def merged(self, rows: Iterable[ResultRow]) -> Report:
        """A copy where each row replaces its (architecture, model, check) entry; the rest is kept.

        The one way reports combine: a partial run into its file (``store.update_report``), a version
        set's reports from several folders (``history.version_sets``, ``lookup``), rows into a table.
        """
        architectures = {arch: dict(models) for arch, models in self.architectures.items()}
        for row in rows:
            models = architectures.setdefault(row.architecture, {})
            previous = models.get(row.model_id, ModelRecord(row.kind))
            models[row.model_id] = ModelRecord(row.kind, {**previous.checks, row.check: row.record}, row.task)
        return replace(self, architectures=architectures)


def _model_dict(record: ModelRecord) -> dict[str, Any]:
    task = {} if record.task == TEXT_GENERATION else {"task": record.task}  # absent: a causal LM, as in older files
    return {"kind": record.kind, **task, "checks": {name: {"status": check.status.value, "value": check.value,
                                                   "message": check.message, "duration": check.duration}
                                            for name, check in record.checks.items()}}


def as_status(value: Any, where: str) -> ReportStatus:
    """``value`` (a ``ReportStatus`` or its string) as a ``ReportStatus``; ``ReportSchemaError`` naming ``where``."""
    try:
        return ReportStatus(value)
    except ValueError:
        raise ReportSchemaError(f"{where}: {value!r} is not one of {one_of(status.value for status in ReportStatus)}") \
            from None


def one_of(values: Iterable[str]) -> str:
    """``'a', 'b' or 'c'``: the accepted values, as the schema's error messages list them."""
    quoted = [repr(value) for value in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)


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
