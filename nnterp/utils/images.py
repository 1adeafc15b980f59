"""A deterministic noise image: what validation and the toy vision-language models feed a model when no real
image matters, since every image processor resizes it to what its model takes."""

from __future__ import annotations

from typing import Any

from .extras import require_extra


def noise_image(size: tuple[int, int] = (64, 64), seed: int = 0) -> Any:
    """A seeded random RGB image (PIL) of ``size`` = (width, height); MissingExtra without Pillow."""
    require_extra("vlm", "a noise image (nnterp.utils.images.noise_image)", ("PIL",))
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")
