"""nnterp's checks: one catalogue (``catalogue``), the load-time probe and checks (``probe``, ``load``) and
the behaviour checks (``behaviour``), and ``run`` to run them on a model. The load-time probe lives in the core
(``nnterp.core.probing``), since renaming resolves with it too.

Importing this package loads only the catalogue; the check functions load (with torch) when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports
from .catalogue import (
    CATALOGUE,
    CHECK_NAMES,
    CHECKS,
    Check,
    CheckName,
    CheckResult,
    CheckRow,
    ReportStatus,
    failed,
    not_applicable,
    passed,
)

if TYPE_CHECKING:
    from ..core.probing import Probe, probe
    from .behaviour import check_logit_lens, check_logits_match, check_skip_layers, check_steering
    from .load import check_attention_probabilities, check_io_shapes, check_renaming, check_residual, run_load_checks
    from .run import run_checks

_LAZY = {"run_checks": "run", "check_logit_lens": "behaviour", "check_logits_match": "behaviour",
         "check_skip_layers": "behaviour", "check_steering": "behaviour", "check_attention_probabilities": "load",
         "check_io_shapes": "load", "check_renaming": "load", "check_residual": "load", "run_load_checks": "load",
         "Probe": "..core.probing", "probe": "..core.probing"}

__all__ = ["CATALOGUE", "CHECK_NAMES", "CHECKS", "Check", "CheckName", "CheckResult", "CheckRow", "ReportStatus",
           "failed", "not_applicable", "passed", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, {name: module if module.startswith(".") else f".{module}"
                                               for name, module in _LAZY.items()})
