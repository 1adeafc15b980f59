"""Per-class corrections for the toy vision-language models: one row per image-text-to-text class, keyed by its
HuggingFace class name like ``TOY_FIXES`` and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fixes import ToyFix, UpstreamBug

__all__ = ["VISION_TOY_FIXES", "VisionToyFix", "UpstreamBug"]


@dataclass(frozen=True)
class VisionToyFix(ToyFix):
    """What one image-text-to-text class needs beyond the generic shrink (``ToyFix``'s config fields apply).

    ``image_processor`` and ``processor`` are keyword arguments of the image processor and of the processor
    (image sizes, patch sizes, how many tokens an image takes); ``processor_class`` and
    ``image_processor_class`` name other classes than the auto mappings' (transformers names). ``prompt``
    is the sample text, ``{image}`` standing for the processor's image token; ``image_size`` is the
    sample image's (width, height). ``special_tokens`` are added to the toy tokenizer beside those the
    processor class spells; ``tokenizer_tokens`` set attributes of the tokenizer (``image_token``) that
    some processors read.
    """

    image_processor: dict[str, Any] = field(default_factory=dict)
    processor: dict[str, Any] = field(default_factory=dict)
    processor_class: str | None = None
    image_processor_class: str | None = None
    prompt: str = "{image} What is in the picture?"
    image_size: tuple[int, int] = (32, 32)
    special_tokens: tuple[str, ...] = ()
    tokenizer_tokens: dict[str, str] = field(default_factory=dict)


# A CLIP tower at 28 x 28 pixels in 14-pixel patches: four patch tokens and its class token.
_SMALL_CLIP = {"vision_config": {"image_size": 28, "patch_size": 14}}
_SMALL_CLIP_IMAGES = {"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}}

# M-RoPE splits each head's rotary frequencies into temporal, height and width sections, which must sum to
# head_dim / 2 (8 for the toys' 16); the defaults fit head_dim 128.
_SMALL_MROPE = {"rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}}

VISION_TOY_FIXES: dict[str, VisionToyFix] = {
    # LLaVA 1.5 drops the CLIP class token ("default" strategy); the processor counts it, then removes it
    "LlavaForConditionalGeneration": VisionToyFix(sub_configs=_SMALL_CLIP, image_processor=_SMALL_CLIP_IMAGES,
                                                  processor={"num_additional_image_tokens": 1}),
    # Qwen2-VL places its M-RoPE positions from the vision-start token before each image's pad tokens; 56 x 56
    # pixels make 4 x 4 patches of 14, merged 2 x 2 into four image tokens
    "Qwen2VLForConditionalGeneration": VisionToyFix(
        prompt="<|vision_start|>{image}<|vision_end|>What is in the picture?", image_size=(56, 56),
        image_processor={"min_pixels": 56 * 56, "max_pixels": 56 * 56}, sub_configs={"text_config": _SMALL_MROPE}),
}
