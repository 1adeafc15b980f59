"""Interventions that apply to every generated token: steered generation through nnsight's ``tracer.all()``."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Sequence

import torch

if TYPE_CHECKING:
    from ..standardized import StandardizedTransformer


def steered_generate(model: StandardizedTransformer, prompts: str | Sequence[str], layers: int | Sequence[int],
                     steering_vector: torch.Tensor, factor: float = 1.0, max_new_tokens: int = 20,
                     remote: bool | str = False, **generate_kwargs: Any) -> list[str]:
    """Greedy continuations (prompt excluded) with ``factor * steering_vector`` added to the output of
    ``layers`` at every forward of the generation: the prompt's and each new token's.

    ``factor=0`` gives the plain continuation. Example::

        steered_generate(model, "I think that", layers=10, steering_vector=vector, factor=4)
    """
    from ..activations import prompt_list

    # left padding: every prompt's continuation starts at the same column
    inputs = dict(model.tokenizer(prompt_list(prompts), return_tensors="pt", padding=True, padding_side="left"))
    generate_kwargs.setdefault("do_sample", False)
    with warnings.catch_warnings():
        # the open loop below ends by design when generation stops; nnsight says so, for every call
        warnings.filterwarnings("ignore", ".*was never reached: the loop asked for a step", UserWarning)
        with torch.no_grad(), model.generate(max_new_tokens=max_new_tokens, remote=remote, **generate_kwargs) \
                as tracer:
            with tracer.invoke(inputs):
                for _ in tracer.all():  # an open loop: it ends with the generation, so nothing may follow it here
                    model.steer(layers, steering_vector, factor)
            with tracer.invoke():  # the whole batch, once generation is done
                ids = tracer.result.save()
    return model.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
