"""The built-in checks, one pytest item per (model, check). Collected when the nnterp options select models."""

from __future__ import annotations

import pytest

CHECK_NAMES = ("renaming", "io_shapes", "residual_identity", "attn_probs", "logits_match", "logit_lens",
               "steering", "skip_layers")


def test_nnterp_check(nnterp_target, nnterp_check_name, nnterp_outcome):
    """Run one built-in check on one model; its outcome is recorded in the compatibility report."""
    outcome = nnterp_outcome(nnterp_target, nnterp_check_name)
    outcome.raise_for_pytest()
