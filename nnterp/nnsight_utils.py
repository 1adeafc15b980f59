"""nnterp 1.x import path of the activation helpers; deprecated: import them from ``nnterp``.

1.x's grab-bag of nnsight helpers is split by idea here (:mod:`nnterp.activations`, the accessors of
:class:`StandardizedTransformer`); this module re-exports the activation functions only and warns
once with a FutureWarning, since it will be removed. See README, "Coming from nnterp 1.x".
"""

import warnings

from .activations import collect_token_activations_batched, compute_next_token_probs, get_token_activations

__all__ = ["collect_token_activations_batched", "compute_next_token_probs", "get_token_activations"]

warnings.warn("nnterp.nnsight_utils will be removed in a future release: import get_token_activations, "
              "collect_token_activations_batched and compute_next_token_probs from nnterp instead",
              FutureWarning, stacklevel=2)
