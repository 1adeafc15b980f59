"""Compatibility reports: which architectures pass nnterp's checks under which versions.

``schema`` is the report (schema version 1, ``docs/compat_reports.md``), ``store`` its files,
``diff`` the comparison of two reports, ``lookup`` the load-time warning. Nothing here imports
torch, transformers or nnsight.
"""

from __future__ import annotations

from .diff import ReportDiff, StatusChange, diff_reports, format_diff
from .lookup import (LookupResult, LookupState, NNterpCompatibilityWarning, lookup_architecture, report_directories,
                     run_tests_command, shipped_report_directory, user_report_directories, warn_for_architecture)
from .schema import (SCHEMA_VERSION, CheckRecord, ModelRecord, Report, ReportSchemaError, ReportStatus, ReportWarning,
                     ResultRow, current_environment, current_versions, report_filename)
from .store import CorruptReportError, find_reports, load_report, update_report, write_report

__all__ = [
    "SCHEMA_VERSION",
    "CheckRecord",
    "CorruptReportError",
    "LookupResult",
    "LookupState",
    "ModelRecord",
    "NNterpCompatibilityWarning",
    "Report",
    "ReportDiff",
    "ReportSchemaError",
    "ReportStatus",
    "ReportWarning",
    "ResultRow",
    "StatusChange",
    "current_environment",
    "current_versions",
    "diff_reports",
    "find_reports",
    "format_diff",
    "load_report",
    "lookup_architecture",
    "report_directories",
    "report_filename",
    "run_tests_command",
    "shipped_report_directory",
    "update_report",
    "user_report_directories",
    "warn_for_architecture",
    "write_report",
]
