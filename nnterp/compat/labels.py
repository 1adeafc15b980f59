"""How every view of the reports labels a status or orders the checks, so they all agree.

Shared by `render` (one version set) and `history` (across version sets); imports nothing heavy.
"""

from __future__ import annotations

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
