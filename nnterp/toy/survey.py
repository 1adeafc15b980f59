"""Which toy models build and run here, and why the others do not."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .build import build_toy_model, causal_lm_classes


@dataclass(frozen=True)
class ToyStatus:
    """Outcome of building one toy model and running one forward pass on it."""

    model_type: str
    class_name: str
    ok: bool
    parameters: int = 0
    seconds: float = 0.0
    reason: str = ""


def toy_status(model_type: str) -> ToyStatus:
    """Build one toy model and run a forward pass; never raises, the failure is the reason."""
    import torch

    class_name = causal_lm_classes()[model_type]
    start = time.perf_counter()
    try:
        toy = build_toy_model(model_type)
        batch = toy.tokenizer(["hello world"], return_tensors="pt")
        with torch.no_grad():
            toy.model(**batch)
    except Exception as error:  # noqa: BLE001 - the error is the result we report
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        return ToyStatus(model_type, class_name, False, seconds=time.perf_counter() - start, reason=reason)
    parameters = sum(parameter.numel() for parameter in toy.model.parameters())
    return ToyStatus(model_type, class_name, True, parameters, time.perf_counter() - start)


def survey(model_types: list[str] | None = None) -> list[ToyStatus]:
    """The status of every (or the given) causal-LM model type of the installed transformers."""
    return [toy_status(model_type) for model_type in model_types or list(causal_lm_classes())]
