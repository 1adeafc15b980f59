"""Schema version 1 as pydantic models of the JSON file: what a report file may hold, checked field by field.

``schema.Report.from_dict`` imports this module only when a report is read, so importing nnterp, its
compatibility code or the pytest plugin does not import pydantic. The models mirror the file
(``docs/compat_reports.md``); ``validated`` returns a valid one (``schema`` builds its dataclasses from it) and
turns the first problem of an invalid one into a ``ReportSchemaError`` naming the field path.
"""

from __future__ import annotations

import reprlib
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from ..checks.catalogue import ReportStatus
from ..errors import ReportSchemaError
from .fields import SCHEMA_VERSION, TEXT_GENERATION, VERSIONED_PACKAGES, ModelKind, Task

WHAT_TO_DO = ("fix that field, or delete the file and run `python -m nnterp run_tests` again to write a fresh "
              "report (the schema: docs/compat_reports.md)")


class _Strict(BaseModel):
    """No coercion (``1`` is not a string, ``true`` not a number) and no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


Number = int | float  # both, so that a file's ``0`` is read back as ``0``, not ``0.0``: written back byte for byte


class CheckFile(_Strict):
    status: Annotated[ReportStatus, Field(strict=False)]  # its string value, as the file holds it
    value: Number | None
    message: str
    duration: Annotated[Number, Field(ge=0, allow_inf_nan=False)]


class ModelFile(_Strict):
    kind: ModelKind
    task: Task = TEXT_GENERATION
    checks: dict[str, CheckFile]


class ArchitectureFile(_Strict):
    models: dict[str, ModelFile]


class BaselineFile(_Strict):
    versions: dict[str, str]
    new_models: list[str]


class ReportFile(_Strict):
    schema_version: Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)]
    versions: dict[str, str]
    environment: dict[str, Any]
    baseline: BaselineFile | None = None
    architectures: dict[str, ArchitectureFile]


def validated(data: Any) -> ReportFile:
    """``data`` (parsed JSON) as a valid ``ReportFile``, or a ``ReportSchemaError`` naming the first bad field
    (``schema.Report.from_dict`` builds the dataclasses from it)."""
    try:
        file = ReportFile.model_validate(data)
    except ValidationError as error:
        problems = list(dict.fromkeys(_problem(details) for details in error.errors(include_url=False)))
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise ReportSchemaError(f"{problems[0]}{more}; {WHAT_TO_DO}") from None
    missing = [name for name in VERSIONED_PACKAGES if name not in file.versions]
    if missing:
        raise ReportSchemaError(f"versions: missing {', '.join(missing)} (a report needs "
                                f"{', '.join(VERSIONED_PACKAGES)}); {WHAT_TO_DO}")
    model_ids = {model_id for entry in file.architectures.values() for model_id in entry.models}
    _check_baseline(file.baseline, model_ids)
    return file


def _check_baseline(baseline: BaselineFile | None, model_ids: set[str]) -> None:
    """A file's baseline lists each new model once, and only models the report holds."""
    if baseline is None:
        return
    repeated = sorted({name for name in baseline.new_models if baseline.new_models.count(name) > 1})
    unknown = sorted(set(baseline.new_models) - model_ids)
    if repeated or unknown:
        problem = (f"lists {_SHORT.repr(repeated)} more than once" if repeated
                   else f"names models the report does not hold: {_SHORT.repr(unknown)}")
        raise ReportSchemaError(f"baseline.new_models: {problem}; {WHAT_TO_DO}")


_EXPECTED = {"dict_type": "an object", "model_type": "an object", "string_type": "a string",
             "float_type": "a number", "int_type": "a number"}
_FOUND = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
          bool: "a boolean", type(None): "null"}
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 80, 80, 3  # input is a file's content: never print all of it


def _problem(error: ErrorDetails) -> str:
    """One pydantic error as ``path.to.field: what is wrong``, worded for a JSON file's reader."""
    location, found, kind = [str(part) for part in error["loc"]], error["input"], error["type"]
    if kind in ("int_type", "float_type") and location[-1:] in (["int"], ["float"]):
        location = location[:-1]  # the member of ``Number`` that rejected it: both did, the field is a number
    where = ".".join(location) or "report"
    if kind in ("missing", "extra_forbidden"):
        parent = ".".join(location[:-1]) or "report"
        return f"{parent}: {'missing' if kind == 'missing' else 'unknown'} key {location[-1]!r}"
    if where == "schema_version":
        return (f"schema_version: {_SHORT.repr(found)} is not {SCHEMA_VERSION}, the schema this nnterp reads "
                "(a report written by another nnterp version?)")
    if kind in ("enum", "literal_error"):
        return f"{where}: {_SHORT.repr(found)} is not one of {error.get('ctx', {}).get('expected', '?')}"
    if kind in _EXPECTED:
        return f"{where}: expected {_EXPECTED[kind]}, found {_FOUND.get(type(found), 'a value')} {_SHORT.repr(found)}"
    return f"{where}: {error['msg'][:1].lower()}{error['msg'][1:]}, found {_SHORT.repr(found)}"
