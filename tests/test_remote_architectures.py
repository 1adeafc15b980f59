"""Every analysis function and the main toolkit functions taking ``remote=`` equal their local runs under
``remote="local"`` (nnterp's strict NDIF server simulation) on every toy architecture that passes load-time
validation (run with -n 2).

One test per architecture builds the toy once and runs each function of tests/test_analysis_remote.py's call
table and four of tests/test_remote.py's (the logit lens, patchscope lens, token activations and next-token
probabilities; the others are thin loops over the same traces, checked there on three architectures) locally and
remotely, then names every function whose results differ. Results must be bitwise equal (``torch.equal``): the
request runs the same module's weights on the same inputs in the same batches, so nothing but a lost or misplaced
intervention can change a value. A function the local run already fails on an architecture (TOOLKIT_FAILURES,
ANALYSIS_FAILURES, ANALYSIS_FUNCTION_FAILURES) is left out there; a typed refusal (an NNterpError) must be raised
identically by both. REMOTE_FAILURES' rows are left out of that test and each is a strict xfail of its own.
"""

from __future__ import annotations

import pytest
import torch

from nnterp.toy import causal_lm_classes
from nnterp.utils.gradients import frozen_parameters

from .conftest import validated_toy
from .known_failures import (
    ANALYSIS_FAILURES,
    ANALYSIS_FUNCTION_FAILURES,
    FROZEN_PARAMETER_NUMERICS,
    KNOWN_FAILURES,
    REMOTE_FAILURES,
    TOOLKIT_FAILURES,
    toy_params,
)
from .remote_equality import equal, outcome
from .test_analysis_remote import FUNCTIONS, every_analysis_function
from .test_remote import every_remote_function

# The analysis functions whose identities ANALYSIS_FAILURES says break (tests/test_analysis_architectures.py's
# test_analysis_identities_hold); patching has its own row in ANALYSIS_FUNCTION_FAILURES.
IDENTITY_FUNCTIONS = ("direct_logit_attribution", "decompose_resid", "accumulated_resid", "run_with_cache")
# Of tests/test_remote.py's toolkit table: one of each kind of trace (the rest loop over these on every model).
TOOLKIT_FUNCTIONS = ("logit_lens", "patchscope_lens", "get_token_activations", "compute_next_token_probs")


def every_function(model) -> dict:
    """The functions this file runs, as functions of ``remote``."""
    toolkit = every_remote_function(model)
    return {**every_analysis_function(model), **{name: toolkit[name] for name in TOOLKIT_FUNCTIONS}}


def left_out(class_name: str) -> set[str]:
    """The functions whose local run is a known failure on this class, from the known-failure tables, and
    REMOTE_FAILURES' (each a strict xfail of its own)."""
    functions = set(ANALYSIS_FUNCTION_FAILURES.get(class_name, {})) | set(REMOTE_FAILURES.get(class_name, {}))
    if class_name in ANALYSIS_FAILURES:
        functions |= set(IDENTITY_FUNCTIONS)
    if class_name in TOOLKIT_FAILURES:
        functions |= set(TOOLKIT_FUNCTIONS)
    return functions


def mismatch(name: str, run, exact: bool = True) -> str | None:
    """Why ``run``'s remote="local" result is not its local one (None: they are equal); ``exact=False`` compares to
    float rounding (FROZEN_PARAMETER_NUMERICS)."""
    try:
        local = outcome(run, False)
    except Exception as error:  # noqa: BLE001 - reported with the function's name
        return f"{name} raised {type(error).__name__} locally: {str(error)[:200]}"
    try:
        remote = outcome(run, "local")
    except Exception as error:  # noqa: BLE001 - reported with the function's name
        return f"{name} raised {type(error).__name__} remotely only: {str(error)[:200]}"
    return None if equal(local, remote, exact) else f"{name} differs from the local run"


@pytest.mark.parametrize("model_type", toy_params({}, leave_out=KNOWN_FAILURES))
def test_every_function_equals_the_local_run_under_the_server_simulation(model_type):
    model = validated_toy(model_type)
    class_name = type(model._module).__name__
    skipped = left_out(class_name)
    exact = class_name not in FROZEN_PARAMETER_NUMERICS
    differing = [problem for name, run in every_function(model).items() if name not in skipped
                 for problem in [mismatch(name, run, exact)] if problem]
    assert not differing, f"{class_name} ({model_type}) under remote='local': " + "; ".join(differing)


def remote_failure_params() -> list:
    """One strict-xfail param per REMOTE_FAILURES row and model type of its class."""
    types = causal_lm_classes()
    return [pytest.param(model_type, function, id=f"{class_name}-{model_type}-{function}",
                         marks=pytest.mark.xfail(strict=True, reason=reason))
            for class_name, functions in REMOTE_FAILURES.items() for function, reason in functions.items()
            for model_type, type_class in types.items() if type_class == class_name]


@pytest.mark.parametrize("model_type, function", remote_failure_params())
def test_remote_failures_still_fail(model_type, function):
    problem = mismatch(function, every_function(validated_toy(model_type))[function])
    assert problem is None, problem


def test_every_remote_failure_row_names_a_function_run_here():
    run_here = set(FUNCTIONS) | set(TOOLKIT_FUNCTIONS)
    assert all(set(functions) <= run_here for functions in REMOTE_FAILURES.values()), REMOTE_FAILURES


def _frozen_numerics_types() -> list:
    types = causal_lm_classes()
    return [model_type for class_name in FROZEN_PARAMETER_NUMERICS
            for model_type, type_class in types.items() if type_class == class_name]


@pytest.mark.parametrize("model_type", _frozen_numerics_types())
def test_each_frozen_parameter_numerics_row_still_differs_in_plain_torch(model_type):
    """The bare HuggingFace module, no nnterp in its forward: frozen parameters change its logits (to rounding)."""
    module = validated_toy(model_type)._module
    differences = []
    for ids in (torch.tensor([[5, 9, 13, 17]]), torch.tensor([[5, 9, 13, 17, 21, 3, 8, 30, 41]])):
        with torch.no_grad():
            expected = module(ids).logits
            with frozen_parameters(module):
                frozen = module(ids).logits
        torch.testing.assert_close(frozen, expected)
        differences.append(not torch.equal(frozen, expected))
    assert any(differences), f"{model_type}: frozen parameters no longer change its logits: remove its row"
