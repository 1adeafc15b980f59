"""How every view of the reports labels a status or orders the checks, so they all agree.

Shared by `render` (one version set) and `history` (across version sets); imports nothing heavy.
"""

from __future__ import annotations

import re

from .schema import ReportStatus

# Column order of the checks nnterp runs (mirrors `nnterp.checks.CheckName`, which imports torch);
# any other check (the plugin's own) follows, alphabetically.
CHECK_ORDER = ("renaming", "io_shapes", "residual_identity", "attn_probs_sum", "attn_probs_effect", "logits_match",
               "logit_lens", "steering", "skip_layers")
MARKS = {"passed": "pass", "failed": "FAIL", "n/a": "n/a", "load error": "load error",
         "crashed": "crashed", "skipped": "skipped"}
DETAILED = ("failed", "load error", "crashed", "skipped")  # statuses whose message gets a visible line


def css_class(status: ReportStatus | str | None) -> str:
    """The CSS class of a status: ``st-passed``, ``st-na``, ``st-load-error``... (``st-absent`` for None)."""
    value = ReportStatus(status).value if status is not None else "absent"
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
