"""nnterp: one standardized interface to every HuggingFace transformer, built on nnsight.

Heavy modules (torch, transformers, nnsight) load only when a name that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .utils.lazy import lazy_exports

__version__ = "2.0.0"  # the one place the version is written: pyproject.toml reads it

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from .checks import CheckName, CheckResult, ReportStatus, run_checks
    from .core.module_accessor import ModuleAccessor
    from .core.registry import (
        ArchitectureSpec,
        AttentionFacts,
        BlockSemantics,
        Codebooks,
        HeadFacts,
        ModulePaths,
        Residual,
        StreamLayout,
        Streams,
        TensorLayout,
        VisionFacts,
        register_architecture,
    )
    from .core.rename import RenameConfig, get_rename_dict
    from .errors import (
        ArchitectureAlreadyRegistered,
        AttentionProbabilitiesUnavailable,
        AttentionScoresUnavailable,
        CacheKeyError,
        ChatTemplateMissing,
        CommandLineError,
        ExportDependencyMissing,
        GradientUnavailable,
        HeadsUnavailable,
        ImageMismatch,
        InputTooLong,
        InputTooLongWarning,
        InvalidArgument,
        LayerIndexError,
        LayerIndexTypeError,
        MetricError,
        MissingExtra,
        ModelNotFound,
        ModuleNotFoundForRename,
        NNterpError,
        NonFiniteValue,
        NotDecomposable,
        PositionAlignmentError,
        PromptError,
        RemoteRequestError,
        RemovedHelper,
        RenamingError,
        SandboxBackwardUnsupported,
        ShapeMismatch,
        SteeringVectorError,
        TargetError,
        TokenIndexError,
        ToolkitInputError,
        ToolkitTypeError,
        ToyModelUnsupported,
        ValidationFailed,
        VisionUnavailable,
    )
    from .models.standardized import StandardizedTransformer
    from .models.vlm import StandardizedVLM
    from .toolkit.activations import collect_token_activations_batched, compute_next_token_probs, get_token_activations
    from .toolkit.analysis.cache import ActivationCache, run_with_cache
    from .toolkit.analysis.dla import AttributionResult, direct_logit_attribution
    from .toolkit.analysis.generation import intervened_generate, patched_generate, skipped_generate, steered_generate
    from .toolkit.analysis.circuits import composition_scores, ov_circuit, qk_circuit, singular_directions, top_tokens
    from .toolkit.analysis.detectors import HeadDetection, detect_heads, repeated_random_tokens
    from .toolkit.analysis.factored import FactoredMatrix
    from .toolkit.analysis.head_matrices import HeadWeights, head_weights
    from .toolkit.analysis.neurons import NeuronAttribution, neuron_attribution
    from .toolkit.analysis.partial import run_layers
    from .toolkit.analysis.edge_attribution import EdgeAttribution, edge_attribution_patching
    from .toolkit.analysis.node_attribution import NodeAttribution, attribution_patching_nodes
    from .toolkit.analysis.path_patches import PathPatchingResult, path_patching
    from .toolkit.analysis.weights import ProcessedModel, process_weights
    from .toolkit.analysis.patching import PatchingResult, activation_patching, attribution_patching
    from .toolkit.analysis.residual import (
        AccumulatedResidual,
        ResidualDecomposition,
        accumulated_resid,
        decompose_resid,
    )
    from .toolkit.interventions import (
        TargetPrompt,
        it_repeat_prompt,
        last_token_latents,
        logit_lens,
        patchscope_generate,
        patchscope_lens,
        repeat_prompt,
        steer,
    )
    from .toolkit.prompts import Prompt, get_first_tokens, run_prompts

_EXPORTS = {
    "StandardizedTransformer": ".models.standardized",
    "StandardizedVLM": ".models.vlm",
    "VisionFacts": ".core.registry",
    "VisionUnavailable": ".errors",
    "RenameConfig": ".core.rename",
    "get_rename_dict": ".core.rename",
    "ModuleAccessor": ".core.module_accessor",
    "ArchitectureSpec": ".core.registry",
    "ModulePaths": ".core.registry",
    "BlockSemantics": ".core.registry",
    "TensorLayout": ".core.registry",
    "AttentionFacts": ".core.registry",
    "HeadFacts": ".core.registry",
    "Streams": ".core.registry",
    "Codebooks": ".core.registry",
    "StreamLayout": ".core.registry",
    "Residual": ".core.registry",
    "register_architecture": ".core.registry",
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
    "AttentionScoresUnavailable": ".errors",
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
    "SandboxBackwardUnsupported": ".errors",
    "ToyModelUnsupported": ".errors",
    "ArchitectureAlreadyRegistered": ".errors",
    "ChatTemplateMissing": ".errors",
    "steer": ".toolkit.interventions",
    "logit_lens": ".toolkit.interventions",
    "patchscope_lens": ".toolkit.interventions",
    "patchscope_generate": ".toolkit.interventions",
    "TargetPrompt": ".toolkit.interventions",
    "repeat_prompt": ".toolkit.interventions",
    "it_repeat_prompt": ".toolkit.interventions",
    "last_token_latents": ".toolkit.interventions",
    "get_token_activations": ".toolkit.activations",
    "collect_token_activations_batched": ".toolkit.activations",
    "compute_next_token_probs": ".toolkit.activations",
    "Prompt": ".toolkit.prompts",
    "run_prompts": ".toolkit.prompts",
    "get_first_tokens": ".toolkit.prompts",
    "HeadsUnavailable": ".errors",
    "NotDecomposable": ".errors",
    "direct_logit_attribution": ".toolkit.analysis.dla",
    "AttributionResult": ".toolkit.analysis.dla",
    "decompose_resid": ".toolkit.analysis.residual",
    "accumulated_resid": ".toolkit.analysis.residual",
    "ResidualDecomposition": ".toolkit.analysis.residual",
    "AccumulatedResidual": ".toolkit.analysis.residual",
    "run_with_cache": ".toolkit.analysis.cache",
    "ActivationCache": ".toolkit.analysis.cache",
    "activation_patching": ".toolkit.analysis.patching",
    "attribution_patching": ".toolkit.analysis.patching",
    "PatchingResult": ".toolkit.analysis.patching",
    "attribution_patching_nodes": ".toolkit.analysis.node_attribution",
    "NodeAttribution": ".toolkit.analysis.node_attribution",
    "path_patching": ".toolkit.analysis.path_patches",
    "PathPatchingResult": ".toolkit.analysis.path_patches",
    "edge_attribution_patching": ".toolkit.analysis.edge_attribution",
    "EdgeAttribution": ".toolkit.analysis.edge_attribution",
    "steered_generate": ".toolkit.analysis.generation",
    "skipped_generate": ".toolkit.analysis.generation",
    "patched_generate": ".toolkit.analysis.generation",
    "run_layers": ".toolkit.analysis.partial",
    "neuron_attribution": ".toolkit.analysis.neurons",
    "NeuronAttribution": ".toolkit.analysis.neurons",
    "process_weights": ".toolkit.analysis.weights",
    "ProcessedModel": ".toolkit.analysis.weights",
    "FactoredMatrix": ".toolkit.analysis.factored",
    "head_weights": ".toolkit.analysis.head_matrices",
    "HeadWeights": ".toolkit.analysis.head_matrices",
    "ov_circuit": ".toolkit.analysis.circuits",
    "qk_circuit": ".toolkit.analysis.circuits",
    "composition_scores": ".toolkit.analysis.circuits",
    "singular_directions": ".toolkit.analysis.circuits",
    "top_tokens": ".toolkit.analysis.circuits",
    "detect_heads": ".toolkit.analysis.detectors",
    "HeadDetection": ".toolkit.analysis.detectors",
    "repeated_random_tokens": ".toolkit.analysis.detectors",
    "intervened_generate": ".toolkit.analysis.generation",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
