"""The built-in checks, one pytest item per (model, check). Collected when the nnterp options select models."""

from __future__ import annotations

from .runner import raise_for_pytest


def test_nnterp_check(nnterp_target, nnterp_check_name, nnterp_outcome):
    """Run one catalogue check on one model; its outcome is recorded in the compatibility report."""
    raise_for_pytest(nnterp_outcome(nnterp_target, nnterp_check_name))
