"""Local against remote="local" results, compared as plain values: one comparison for every remote test."""

from __future__ import annotations

from typing import Any

import torch

from nnterp.errors import NNterpError


def comparable(result: Any) -> Any:
    """A function's result as plain values: tensors, lists, dicts (ActivationCache, result dataclasses)."""
    if isinstance(result, torch.Tensor):
        return result
    if isinstance(result, (list, tuple)):
        return [comparable(item) for item in result]
    if isinstance(result, dict):
        return {key: comparable(value) for key, value in result.items()}
    values = getattr(result, "_values", None)  # ActivationCache
    if isinstance(values, dict):
        return comparable(values)
    if hasattr(result, "__dict__"):
        return comparable(vars(result))
    return result


def outcome(run, remote) -> Any:
    """The function's result as plain values, or its typed refusal as (class name, message)."""
    try:
        return comparable(run(remote))
    except NNterpError as error:
        return type(error).__name__, str(error)


def equal(local: Any, remote: Any, exact: bool = True) -> bool:
    """Bitwise equal, dtype included: a request runs the same weights on the same inputs in the same batches.
    ``exact=False``: equal to float rounding (torch.testing.assert_close's tolerances for the dtype)."""
    if isinstance(local, torch.Tensor):
        if not (isinstance(remote, torch.Tensor) and local.dtype == remote.dtype and local.shape == remote.shape):
            return False
        if exact:
            return torch.equal(local, remote)
        try:
            torch.testing.assert_close(remote, local, equal_nan=True)
        except AssertionError:
            return False
        return True
    if isinstance(local, (list, tuple)):
        return (isinstance(remote, (list, tuple)) and len(local) == len(remote)
                and all(equal(a, b, exact) for a, b in zip(local, remote)))
    if isinstance(local, dict):
        return isinstance(remote, dict) and local.keys() == remote.keys() and all(
            equal(local[key], remote[key], exact) for key in local)
    if not exact and isinstance(local, float) and isinstance(remote, float):
        return abs(local - remote) <= 1e-5 + 1.3e-6 * abs(local)
    return local == remote
