"""Analyses researchers reach for TransformerLens for, on the original HuggingFace models: direct logit
attribution, residual decomposition, caches, activation, attribution, path and edge attribution patching, and
interventions on every generated token (steering, skipped layers, patched activations). One module per idea;
the public names load on first use.

Every function takes ``remote=`` (``False``, ``True`` for NDIF, ``"local"`` to run the serialized request here) and
passes it to each trace or generation it runs; the code those run (`residual.read_terms`, the patching helpers)
ships by value (``nnterp.core.remote.SHIPPED_BY_VALUE``) and names only plain values planned on the client."""

from __future__ import annotations

from ...utils.lazy import lazy_exports

_EXPORTS = {
    "direct_logit_attribution": ".dla",
    "AttributionResult": ".dla",
    "decompose_resid": ".residual",
    "accumulated_resid": ".residual",
    "ResidualDecomposition": ".residual",
    "AccumulatedResidual": ".residual",
    "Component": ".residual",
    "ComponentKind": ".residual",
    "run_with_cache": ".cache",
    "ActivationCache": ".cache",
    "activation_patching": ".patching",
    "attribution_patching": ".patching",
    "PatchingResult": ".patching",
    "attribution_patching_nodes": ".node_attribution",
    "NodeAttribution": ".node_attribution",
    "path_patching": ".path_patches",
    "PathPatchingResult": ".path_patches",
    "edge_attribution_patching": ".edge_attribution",
    "EdgeAttribution": ".edge_attribution",
    "intervened_generate": ".generation",
    "steered_generate": ".generation",
    "skipped_generate": ".generation",
    "patched_generate": ".generation",
    "run_layers": ".partial",
    "neuron_attribution": ".neurons",
    "NeuronAttribution": ".neurons",
    "process_weights": ".weights",
    "ProcessedModel": ".weights",
    "FactoredMatrix": ".factored",
    "head_weights": ".head_matrices",
    "HeadWeights": ".head_matrices",
    "ov_circuit": ".circuits",
    "qk_circuit": ".circuits",
    "composition_scores": ".circuits",
    "singular_directions": ".circuits",
    "top_tokens": ".circuits",
    "detect_heads": ".detectors",
    "HeadDetection": ".detectors",
    "repeated_random_tokens": ".detectors",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
