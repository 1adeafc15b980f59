"""The per-architecture tables agree on their keys: every row names a real HuggingFace class, and no fact is
stated twice.

The registry (``nnterp.core.registry``), the toy fixes (``nnterp.toy.TOY_FIXES``) and the known failures
(``tests/known_failures.py``) are all keyed by class name. A key must be a class of the installed transformers
or of a release a committed report covers (``compat_reports/*.json``, transformers 5.0 to 5.24), so a typo
or a row left behind by a removed model fails here.
"""

import json
from functools import cache
from pathlib import Path

import pytest
import transformers

from nnterp.core.registry import ARCHITECTURES
from nnterp.toy import TOY_FIXES, causal_lm_classes, toy_fix

from .known_failures import (
    ANALYSIS_FAILURES,
    ANALYSIS_FUNCTION_FAILURES,
    DLA_REFUSALS,
    KNOWN_FAILURES,
    KNOWN_LIMITS,
    REMOTE_FAILURES,
    REPRESENTATIVE,
    TOOLKIT_FAILURES,
    UPSTREAM_FAILURES,
    registry_unsupported,
)

REPORTS = sorted((Path(__file__).resolve().parent.parent / "compat_reports").glob("*.json"))

# The tables of toy facts, each keyed by causal-LM class name.
TOY_TABLES = {"TOY_FIXES": TOY_FIXES, "KNOWN_LIMITS": KNOWN_LIMITS, "TOOLKIT_FAILURES": TOOLKIT_FAILURES,
              "UPSTREAM_FAILURES": UPSTREAM_FAILURES, "REPRESENTATIVE": dict.fromkeys(REPRESENTATIVE),
              "ANALYSIS_FAILURES": ANALYSIS_FAILURES, "ANALYSIS_FUNCTION_FAILURES": ANALYSIS_FUNCTION_FAILURES,
              "DLA_REFUSALS": DLA_REFUSALS, "REMOTE_FAILURES": REMOTE_FAILURES}


@cache
def _reported_classes() -> frozenset[str]:
    """The class names of every architecture a committed report covers (its ``architectures`` keys)."""
    return frozenset(name for path in REPORTS for name in json.loads(path.read_text(encoding="utf-8"))["architectures"])


def test_the_committed_reports_span_the_supported_releases():
    assert len(REPORTS) >= 2 and len(_reported_classes()) > 130


@pytest.mark.parametrize("table", sorted(TOY_TABLES))
def test_toy_rows_name_a_causal_lm_class(table):
    known = set(causal_lm_classes().values()) | _reported_classes()
    stale = sorted(set(TOY_TABLES[table]) - known)
    assert not stale, (f"{table} rows {stale} name no causal-LM class of transformers {transformers.__version__} "
                       f"nor of any report in compat_reports/: key the row by the class name "
                       "(`python -m nnterp toy --list` shows them), or remove it")


def test_registry_rows_name_a_transformers_class():
    known = set(dir(transformers)) | _reported_classes()
    stale = sorted(set(ARCHITECTURES) - known)
    assert not stale, (f"registry rows {stale} name no class of transformers {transformers.__version__} nor of "
                       "any report in compat_reports/: fix the class name or remove the row")


def test_an_architecture_the_registry_refuses_is_not_restated_as_a_known_failure():
    refused = set(registry_unsupported())
    assert "XLMWithLMHeadModel" in refused and "XLMWithLMHeadModel" in KNOWN_FAILURES
    for name, table in [("KNOWN_LIMITS", KNOWN_LIMITS), ("TOOLKIT_FAILURES", TOOLKIT_FAILURES),
                        ("UPSTREAM_FAILURES", UPSTREAM_FAILURES)]:
        restated = sorted(refused & set(table))
        assert not restated, f"{name} restates {restated}: their registry row's `unsupported` already xfails them"


def test_a_toolkit_failure_is_not_also_a_load_failure():
    """toy_params leaves the load failures out of the toolkit tests, so such a row would never be checked."""
    assert not set(TOOLKIT_FAILURES) & set(KNOWN_LIMITS | UPSTREAM_FAILURES | registry_unsupported())
    assert not set(ANALYSIS_FAILURES) & set(KNOWN_LIMITS | UPSTREAM_FAILURES | registry_unsupported())


def test_every_model_type_of_a_class_with_a_row_takes_it():
    """Types sharing a class (qwen4_exp, qwen4_exp_text) take one row, nested where their config nests the class's."""
    version = transformers.__version__
    for model_type, class_name in causal_lm_classes().items():
        if class_name in TOY_FIXES:
            row = TOY_FIXES[class_name].on(version)
            fix = toy_fix(model_type)
            assert fix == row or fix == row.within("text_config"), model_type
