"""nnterp's checks: one catalogue (``catalogue``), the load-time probe and checks (``probe``, ``load``) and
the behaviour checks (``behaviour``).

Importing this package loads only the catalogue; the check functions load (with torch) when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .catalogue import (CATALOGUE, CHECK_NAMES, CHECKS, Check, CheckName, CheckResult, CheckRow, ReportStatus, failed,
                        not_applicable, passed, run_checks)

if TYPE_CHECKING:
    from .behaviour import check_logit_lens, check_logits_match, check_skip_layers, check_steering
    from .load import check_attention_probabilities, check_io_shapes, check_renaming, check_residual, run_load_checks
    from .probing import Probe, probe

_LAZY = {"check_logit_lens": "behaviour", "check_logits_match": "behaviour", "check_skip_layers": "behaviour",
         "check_steering": "behaviour", "check_attention_probabilities": "load", "check_io_shapes": "load",
         "check_renaming": "load", "check_residual": "load", "run_load_checks": "load", "Probe": "probing",
         "probe": "probing"}

__all__ = ["CATALOGUE", "CHECK_NAMES", "CHECKS", "Check", "CheckName", "CheckResult", "CheckRow", "ReportStatus",
           "failed", "not_applicable", "passed", "run_checks", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, {name: f".{module}" for name, module in _LAZY.items()})
