"""Which toy models build and run here, and why the others do not."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .build import build_toy_model, causal_lm_classes
from .vision import build_toy_vlm, image_text_to_text_classes


@dataclass(frozen=True)
class ToyStatus:
    """Outcome of building one toy model and running one forward pass on it."""

    model_type: str
    class_name: str
    ok: bool
    parameters: int = 0
    seconds: float = 0.0
    reason: str = ""
    task: str = "text-generation"


def toy_status(model_type: str, task: str = "text-generation") -> ToyStatus:
    """Build one toy model (a vision-language one for task "image-text-to-text") and run a forward pass on a
    prompt (with its sample image); never raises, the failure is the reason."""
    import torch

    vision = task == "image-text-to-text"
    class_name = (image_text_to_text_classes() if vision else causal_lm_classes())[model_type]
    start = time.perf_counter()
    try:
        if vision:
            toy_vlm = build_toy_vlm(model_type)
            model, batch = toy_vlm.model, toy_vlm.inputs()
        else:
            toy = build_toy_model(model_type)
            model, batch = toy.model, dict(toy.tokenizer(["hello world"], return_tensors="pt"))
        with torch.no_grad():
            model(**batch)
    except Exception as error:  # noqa: BLE001 - the error is the result we report
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return ToyStatus(model_type, class_name, False, seconds=time.perf_counter() - start, reason=reason,
                         task=task)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return ToyStatus(model_type, class_name, True, parameters, time.perf_counter() - start, task=task)


def survey(model_types: list[str] | None = None, vision_types: list[str] | None = None) -> list[ToyStatus]:
    """The status of the given causal-LM and vision-language model types; when neither is given, of every
    causal-LM type and every image-text-to-text type (those in both mappings twice: text-only, then with images)."""
    if model_types is None and vision_types is None:
        model_types, vision_types = list(causal_lm_classes()), list(image_text_to_text_classes())
    return [toy_status(model_type) for model_type in model_types or []] + \
        [toy_status(model_type, "image-text-to-text") for model_type in vision_types or []]
