"""nnterp: one standardized interface to every HuggingFace transformer, built on nnsight.

Heavy modules (torch, transformers, nnsight) load only when a name that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "2.0.0"  # the one place the version is written: pyproject.toml reads it

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from .activations import collect_token_activations_batched, compute_next_token_probs, get_token_activations
    from .analysis.cache import ActivationCache, run_with_cache
    from .analysis.dla import AttributionResult, direct_logit_attribution
    from .analysis.generation import intervened_generate, patched_generate, skipped_generate, steered_generate
    from .analysis.patching import PatchingResult, activation_patching, attribution_patching
    from .analysis.residual import AccumulatedResidual, ResidualDecomposition, accumulated_resid, decompose_resid
    from .checks import CheckName, CheckResult, ReportStatus, run_checks
    from .errors import (ArchitectureAlreadyRegistered, AttentionProbabilitiesUnavailable, ChatTemplateMissing,
        CommandLineError, ExportDependencyMissing, InputTooLong, InputTooLongWarning, InvalidArgument,
        LayerIndexError, LayerIndexTypeError, MissingExtra, ModelNotFound, ModuleNotFoundForRename, NNterpError,
        PromptError, RenamingError, ShapeMismatch, SteeringVectorError, TargetError, TokenIndexError,
        ToolkitInputError, ToolkitTypeError, ToyModelUnsupported, ValidationFailed)
    from .errors import HeadsUnavailable, NotDecomposable, VisionUnavailable
    from .errors import MetricError, NonFiniteValue, PositionAlignmentError
    from .errors import CacheKeyError, GradientUnavailable, ImageMismatch, RemovedHelper
    from .interventions import (TargetPrompt, it_repeat_prompt, last_token_latents, logit_lens, patchscope_generate,
        patchscope_lens, repeat_prompt, steer)
    from .module_accessor import ModuleAccessor
    from .prompts import Prompt, get_first_tokens, run_prompts
    from .registry import (ArchitectureSpec, AttentionFacts, BlockSemantics, Codebooks, HeadFacts, ModulePaths,
        Residual, StreamLayout, Streams, TensorLayout, VisionFacts, register_architecture)
    from .rename import RenameConfig, get_rename_dict
    from .standardized import StandardizedTransformer
    from .vlm import StandardizedVLM

_EXPORTS = {
    "StandardizedTransformer": ".standardized",
    "StandardizedVLM": ".vlm",
    "VisionFacts": ".registry",
    "VisionUnavailable": ".errors",
    "RenameConfig": ".rename",
    "get_rename_dict": ".rename",
    "ModuleAccessor": ".module_accessor",
    "ArchitectureSpec": ".registry",
    "ModulePaths": ".registry",
    "BlockSemantics": ".registry",
    "TensorLayout": ".registry",
    "AttentionFacts": ".registry",
    "HeadFacts": ".registry",
    "Streams": ".registry",
    "Codebooks": ".registry",
    "StreamLayout": ".registry",
    "Residual": ".registry",
    "register_architecture": ".registry",
    "CheckResult": ".checks",
    "CheckName": ".checks",
    "ReportStatus": ".checks",
    "run_checks": ".checks",
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
    "PositionAlignmentError": ".errors",
    "MetricError": ".errors",
    "NonFiniteValue": ".errors",
    "ImageMismatch": ".errors",
    "CacheKeyError": ".errors",
    "GradientUnavailable": ".errors",
    "RemovedHelper": ".errors",
    "SteeringVectorError": ".errors",
    "ExportDependencyMissing": ".errors",
    "MissingExtra": ".errors",
    "RemoteRequestError": ".errors",
    "ServerSimulation": ".remote",
    "ToyModelUnsupported": ".errors",
    "ArchitectureAlreadyRegistered": ".errors",
    "ChatTemplateMissing": ".errors",
    "steer": ".interventions",
    "logit_lens": ".interventions",
    "patchscope_lens": ".interventions",
    "patchscope_generate": ".interventions",
    "TargetPrompt": ".interventions",
    "repeat_prompt": ".interventions",
    "it_repeat_prompt": ".interventions",
    "last_token_latents": ".interventions",
    "get_token_activations": ".activations",
    "collect_token_activations_batched": ".activations",
    "compute_next_token_probs": ".activations",
    "Prompt": ".prompts",
    "run_prompts": ".prompts",
    "get_first_tokens": ".prompts",
    "HeadsUnavailable": ".errors",
    "NotDecomposable": ".errors",
    "direct_logit_attribution": ".analysis.dla",
    "AttributionResult": ".analysis.dla",
    "decompose_resid": ".analysis.residual",
    "accumulated_resid": ".analysis.residual",
    "ResidualDecomposition": ".analysis.residual",
    "AccumulatedResidual": ".analysis.residual",
    "run_with_cache": ".analysis.cache",
    "ActivationCache": ".analysis.cache",
    "activation_patching": ".analysis.patching",
    "attribution_patching": ".analysis.patching",
    "PatchingResult": ".analysis.patching",
    "steered_generate": ".analysis.generation",
    "skipped_generate": ".analysis.generation",
    "patched_generate": ".analysis.generation",
    "intervened_generate": ".analysis.generation",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
