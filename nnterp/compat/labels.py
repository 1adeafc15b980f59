"""How every view of the reports labels a status or orders the checks, so they all agree.

Shared by `render` (one version set) and `history` (across version sets); imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..checks.catalogue import CHECK_NAMES
from .schema import ReportStatus

# Column order: the catalogue's checks in its order; any other check (a user's) follows, alphabetically.
CHECK_ORDER = CHECK_NAMES
MARKS = {ReportStatus.PASSED: "pass", ReportStatus.FAILED: "FAIL", ReportStatus.NOT_APPLICABLE: "n/a",
         ReportStatus.LOAD_ERROR: "load error", ReportStatus.CRASHED: "crashed", ReportStatus.SKIPPED: "skipped"}
DETAILED = frozenset({ReportStatus.FAILED, ReportStatus.LOAD_ERROR, ReportStatus.CRASHED,
                      ReportStatus.SKIPPED})  # statuses whose message gets a visible line
SUMMED = (ReportStatus.PASSED, ReportStatus.FAILED, ReportStatus.NOT_APPLICABLE)  # counted even when zero


def join_words(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: names in a sentence, as every message about the reports lists them."""
    return f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else "".join(names)


def css_class(status: ReportStatus | None) -> str:
    """The CSS class of a status: ``st-passed``, ``st-na``, ``st-load-error``... (``st-absent`` for None)."""
    value = status.value if status is not None else "absent"
    return "st-" + value.replace("/", "").replace(" ", "-")


def check_key(check: str) -> tuple[int, str]:
    """Sort key putting nnterp's checks in their usual order, then the rest alphabetically."""
    return (CHECK_ORDER.index(check), "") if check in CHECK_ORDER else (len(CHECK_ORDER), check)


_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def plain_text(text: str, *, newlines: bool = True) -> str:
    """``text`` without ANSI escape sequences or control characters, safe to print to a terminal.

    Report files are user input: a message holding ``\\x1b[2J`` must not clear the reader's screen.
    Tabs become spaces; newlines are kept unless ``newlines`` is False (then they become spaces too).
    """
    text = _CONTROL.sub("", _ANSI.sub("", text.replace("\t", " ")))
    return text if newlines else text.replace("\n", " ")
