"""A toy model loaded the way the suite loads it: through StandardizedTransformer (or StandardizedVLM),
attention probabilities on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .build import build_toy_model

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer
    from ..models.vlm import StandardizedVLM


def standardized_toy(name: str, **kwargs: Any) -> StandardizedTransformer:
    """A StandardizedTransformer over a freshly built toy model (attention probabilities on unless told)."""
    from ..models.standardized import StandardizedTransformer

    toy = build_toy_model(name)
    return StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, **{"enable_attention_probs": True, **kwargs})


def standardized_toy_vlm(name: str, **kwargs: Any) -> StandardizedVLM:
    """A StandardizedVLM over a freshly built toy vision-language model, validated on its own sample image
    (attention probabilities on unless told)."""
    from ..models.vlm import StandardizedVLM
    from .vision import build_toy_vlm

    toy = build_toy_vlm(name)
    return StandardizedVLM(toy.model, processor=toy.processor, sample_image=toy.image,
                           **{"enable_attention_probs": True, **kwargs})
