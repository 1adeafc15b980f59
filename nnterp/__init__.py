"""nnterp: one standardized interface to every HuggingFace transformer, built on nnsight.

Heavy modules (torch, transformers, nnsight) load only when a name that needs them is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "StandardizedTransformer": ".standardized",
    "RenameConfig": ".rename",
    "get_rename_dict": ".rename",
    "ModuleAccessor": ".module_accessor",
    "ArchitectureSpec": ".registry",
    "Residual": ".registry",
    "register_architecture": ".registry",
    "CheckResult": ".checks",
    "CheckName": ".checks",
    "Status": ".checks",
    "NNterpError": ".errors",
    "RenamingError": ".errors",
    "ModuleNotFoundForRename": ".errors",
    "ValidationFailed": ".errors",
    "LayerIndexError": ".errors",
    "AttentionProbabilitiesUnavailable": ".errors",
    "ToolkitInputError": ".errors",
    "ToolkitTypeError": ".errors",
    "PromptError": ".errors",
    "InvalidArgument": ".errors",
    "LayerIndexTypeError": ".errors",
    "ShapeMismatch": ".errors",
    "ModelNotFound": ".errors",
    "InputTooLong": ".errors",
    "InputTooLongWarning": ".errors",
    "CommandLineError": ".errors",
    "TargetError": ".errors",
    "TokenIndexError": ".errors",
    "SteeringVectorError": ".errors",
    "ExportDependencyMissing": ".errors",
    "steer": ".interventions",
    "logit_lens": ".interventions",
    "patchscope_lens": ".interventions",
    "patchscope_generate": ".interventions",
    "TargetPrompt": ".interventions",
    "repeat_prompt": ".interventions",
    "it_repeat_prompt": ".interventions",
    "last_token_latents": ".interventions",
    "ChatTemplateMissing": ".interventions",
    "get_token_activations": ".activations",
    "collect_token_activations_batched": ".activations",
    "compute_next_token_probs": ".activations",
    "Prompt": ".prompts",
    "run_prompts": ".prompts",
    "get_first_tokens": ".prompts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nnterp' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
