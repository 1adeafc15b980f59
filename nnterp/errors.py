"""The nnterp error family: every message names what was found, what was expected, and the fix."""

from __future__ import annotations


class NNterpError(Exception):
    """Base class of every error nnterp raises on purpose."""


class RenamingError(NNterpError):
    """A model could not be mapped onto the standardized interface, or the mapping is wrong.

    Carries the architecture and the check that failed so that callers (the loader, the
    pytest plugin) can report them without parsing the message.
    """

    def __init__(self, message: str, *, architecture: str | None = None, check: str | None = None,
                 fix: str | None = None):
        self.architecture = architecture
        self.check = check
        self.fix = fix
        parts = [f"[{architecture}] " if architecture else "", message]
        if fix:
            parts.append(f"\nFix: {fix}")
        super().__init__("".join(parts))


class ModuleNotFoundForRename(RenamingError):
    """A standardized module (layers, lm_head, ...) was not found in the model."""


class ValidationFailed(RenamingError):
    """A load-time check on the renamed model failed (shape, residual identity, attention sums...)."""

    def __init__(self, results: list, *, architecture: str | None = None):
        self.results = results
        failed = [result for result in results if result.failed]
        lines = [f"{len(failed)} load-time check(s) failed:"]
        lines += [f"  - {result.name.value}: {result.message}" for result in failed]
        fixes = sorted({result.fix for result in failed if result.fix})
        super().__init__("\n".join(lines), architecture=architecture, check=failed[0].name.value if failed else None,
                         fix="; ".join(fixes) if fixes else
                         "pass check_renaming=False to load anyway, or describe the model with RenameConfig")


class LayerIndexError(NNterpError, IndexError):
    """A layer index outside the model's layers."""

    def __init__(self, index: int, num_layers: int):
        super().__init__(
            f"layer index {index} is out of range: this model has {num_layers} layers "
            f"(valid indices 0..{num_layers - 1}, or negative from the end)"
        )


class AttentionProbabilitiesUnavailable(NNterpError):
    """attention_probabilities was used on a model where they are not enabled or not found."""
