"""A toy model loaded the way the suite loads it: through StandardizedTransformer, attention probabilities on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .build import build_toy_model

if TYPE_CHECKING:
    from ..standardized import StandardizedTransformer


def standardized_toy(name: str, **kwargs: Any) -> StandardizedTransformer:
    """A StandardizedTransformer over a freshly built toy model (attention probabilities on unless told)."""
    from ..standardized import StandardizedTransformer

    toy = build_toy_model(name)
    return StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, **{"enable_attention_probs": True, **kwargs})
