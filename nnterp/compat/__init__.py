"""Compatibility reports: which architectures pass nnterp's checks under which versions.

``schema`` is the report (schema version 1, ``docs/compat_reports.md``) and its one merge,
``validation`` the check of a report file against the schema, ``store`` its files, ``diff`` the
comparison of two reports, ``lookup`` the load-time warning and where reports live (one rule for the
reader and the pytest plugin), ``history`` the view across version sets, ``render`` the site and tables
(``labels`` is how they name statuses). Nothing here imports torch, transformers or nnsight; pydantic is
imported only to read a report, filelock only to write one, jinja2 and tabulate only to render.
"""

from __future__ import annotations

from .diff import ReportDiff, StatusChange, diff_architectures, diff_reports, format_diff, summarize_diff
from .history import History, VersionSet, build_history, status_text, version_sets
from .lookup import (
                     LookupResult,
                     LookupState,
                     NNterpCompatibilityWarning,
                     lookup_architecture,
                     report_directories,
                     report_write_directory,
                     run_tests_command,
                     shipped_report_directory,
                     user_report_directories,
                     warn_for_architecture,
)
from .render import markdown_table, render_site, terminal_table
from .schema import (
                     SCHEMA_VERSION,
                     CheckRecord,
                     ModelRecord,
                     Report,
                     ReportSchemaError,
                     ReportStatus,
                     ReportWarning,
                     ResultRow,
                     current_environment,
                     current_versions,
                     report_filename,
)
from .store import CorruptReportError, find_reports, load_report, update_report, write_report

__all__ = [
    "SCHEMA_VERSION",
    "CheckRecord",
    "CorruptReportError",
    "History",
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
    "VersionSet",
    "build_history",
    "current_environment",
    "current_versions",
    "diff_architectures",
    "diff_reports",
    "find_reports",
    "format_diff",
    "load_report",
    "lookup_architecture",
    "markdown_table",
    "render_site",
    "report_directories",
    "report_filename",
    "report_write_directory",
    "run_tests_command",
    "shipped_report_directory",
    "status_text",
    "summarize_diff",
    "terminal_table",
    "update_report",
    "user_report_directories",
    "version_sets",
    "warn_for_architecture",
    "write_report",
]
