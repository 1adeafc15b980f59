"""What a vision-language model's prompts and images must agree on: each prompt's image markers (the tokens
its chat template writes where an image goes) and its images. Shared by StandardizedVLM's trace batching
(nnterp.models.vlm) and the toolkit's ``images=`` (nnterp.toolkit.activations), so both refuse a mismatch with an
:class:`~nnterp.errors.ImageMismatch` that names each prompt's counts and what to pass."""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

from ..errors import ImageMismatch, NNterpError

WHAT_TO_PASS = ("pass one list of images per prompt, as many as its image markers (images=[[image]] for one "
                "prompt, images=[[image], [image]] for two), and write the markers with model.image_prompt(text, "
                "images=n); a prompt without markers runs as text")

IMAGE_TYPES = "a PIL image, an image tensor or array, or the path or URL of an image file"


def is_image(value: Any) -> bool:
    """A PIL image, a tensor or array with a height and a width, or the path of an existing file or an http(s)
    URL (which transformers' image loading opens): what an image processor takes. Numbers, None and other
    strings are not (checked without importing Pillow or numpy)."""
    if isinstance(value, str):
        return value.startswith(("http://", "https://")) or os.path.isfile(os.path.expanduser(value))
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(value, pil.Image):
        return True
    numpy = sys.modules.get("numpy")
    arrays = (torch.Tensor,) if numpy is None else (torch.Tensor, numpy.ndarray)
    return isinstance(value, arrays) and value.ndim >= 2


def described(value: Any) -> str:
    """``value`` as an error message names it: its type and the start of its repr."""
    return f"{type(value).__name__} ({value!r:.60})"


def not_images(images: Any) -> str | None:
    """Why ``images=`` (of a trace: one image, a list of images, or one list per prompt) holds something that
    is not an image, or None where it holds only images (an empty list included)."""
    if is_image(images):
        return None
    if not isinstance(images, (list, tuple)):
        return f"images={described(images)} is not an image nor a list of images"
    for index, entry in enumerate(images):
        inner = entry if isinstance(entry, (list, tuple)) else [entry]
        for position, image in enumerate(inner):
            if not is_image(image):
                where = f"images[{index}]" + (f"[{position}]" if isinstance(entry, (list, tuple)) else "")
                return f"{where} is {described(image)}, not an image ({IMAGE_TYPES})"
    return None


def image_count(images: Any) -> int:
    """How many images ``images`` (an image, or lists of them nested) holds; 0 for anything else."""
    if isinstance(images, (list, tuple)):
        return sum(image_count(entry) for entry in images)
    return int(is_image(images))


def per_prompt_images(images: Any, prompts: int) -> list[int] | None:
    """How many images each of ``prompts`` prompts gets from a trace's ``images=``: one prompt gets them
    all, a batch one list each; None where a batch's images are not one list per prompt (the processor hands
    them out in order)."""
    if images is None or not (isinstance(images, (list, tuple)) or is_image(images)):
        return [0] * prompts
    if prompts == 1:
        return [image_count(images)]
    if isinstance(images, (list, tuple)) and len(images) == prompts and \
            all(isinstance(entry, (list, tuple)) for entry in images):
        return [image_count(entry) for entry in images]
    return None


def is_marker_error(error: BaseException) -> bool:
    """A processor's ValueError about its image tokens and the images passed (not one of nnterp's own)."""
    text = str(error).lower()
    return not isinstance(error, NNterpError) and "image" in text and "token" in text


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _named(prompt: Any, row: int) -> str:
    if not isinstance(prompt, str):
        return f"row {row} of the input"
    short = prompt if len(prompt) <= 48 else prompt[:47] + "…"
    return f"prompt {row} ({short!r})"


def counts(prompts: list[Any] | None, markers: list[int] | None, images: list[int] | None,
           total_images: int | None = None) -> str:
    """Which prompt holds how many image markers and how many images it got: ``markers`` and ``images`` per
    prompt (None where not known), ``total_images`` where only the batch's total is known."""
    rows = len(markers) if markers is not None else len(images) if images is not None else \
        len(prompts) if prompts is not None else 0
    parts = []
    for row in range(rows):
        name = _named(prompts[row] if prompts is not None and row < len(prompts) else None, row)
        held = f" holds {_plural(markers[row], 'image marker')}" if markers is not None else ""
        got = f"{' and' if held else ''} got {_plural(images[row], 'image')}" if images is not None else ""
        parts.append(name + held + got)
    text = "; ".join(parts)
    if images is None and total_images is not None:
        text += f"{'; ' if text else ''}{_plural(total_images, 'image')} in all"
    return text


def image_mismatch(problem: str, prompts: list[Any] | None, markers: list[int] | None, images: list[int] | None,
                   total_images: int | None = None) -> ImageMismatch:
    """The ImageMismatch for ``problem``: what it is, each prompt's counts, and what to pass."""
    return ImageMismatch(f"{problem}: {counts(prompts, markers, images, total_images)}. To trace images, "
                         f"{WHAT_TO_PASS}")


def marker_counts(ids: torch.Tensor, marker_ids: frozenset[int], attention_mask: Any = None) -> list[int]:
    """How many images each row of ``ids`` marks: the count of its most frequent marker token (a template
    may write several per image, such as Qwen2-VL's vision start, image pad and vision end), pads left out."""
    ids = ids if ids.ndim > 1 else ids[None]
    real = torch.ones_like(ids, dtype=torch.bool)
    if isinstance(attention_mask, torch.Tensor) and attention_mask.numel() == ids.numel():
        real = attention_mask.reshape(ids.shape).bool()
    found = [((ids == marker) & real).sum(dim=-1) for marker in sorted(marker_ids)]
    if not found:
        return [0] * ids.shape[0]
    return [int(count) for count in torch.stack(found).amax(dim=0).reshape(-1).tolist()]
