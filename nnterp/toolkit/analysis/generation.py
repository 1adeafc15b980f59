"""Interventions that apply to every generated token, through nnsight's ``tracer.all()``: one mechanism
(`intervened_generate`: an intervention called at every forward of a greedy generation) behind steering,
skipping layers and patching a layer's activations."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import torch

from ...core.accessors import select_layers
from ...utils.positions import TokenLayout, position_list
from .patching import SEQUENCE_SECOND, _check_accessor, _set_positions

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer


def _left_padded(model: StandardizedTransformer, prompts: str | Sequence[str]) -> dict:
    """The prompts tokenized with left padding: every prompt's continuation starts at the same column."""
    from ..activations import prompt_list

    return dict(model.tokenizer(prompt_list(prompts), return_tensors="pt", padding=True, padding_side="left"))


def _generate(model: StandardizedTransformer, inputs: dict, intervene: Callable[[Any, int], None],
              max_new_tokens: int, remote: bool | str, generate_kwargs: dict) -> list[str]:
    """The continuations of ``inputs`` (left-padded), ``intervene(model, step)`` run at every forward."""
    generate_kwargs.setdefault("do_sample", False)
    with warnings.catch_warnings():
        # the open loop below ends by design when generation stops; nnsight says so, for every call
        warnings.filterwarnings("ignore", ".*was never reached: the loop asked for a step", UserWarning)
        with torch.no_grad(), model.generate(max_new_tokens=max_new_tokens, remote=remote, **generate_kwargs) \
                as tracer:
            with tracer.invoke(inputs):
                for step in tracer.all():  # an open loop: it ends with the generation, so nothing may follow it here
                    intervene(model, step)
                    model.logits.shape  # noqa: B018 - the step's last read, so a step `intervene` leaves alone ends
            with tracer.invoke():  # the whole batch, once generation is done
                ids = tracer.result.save()
    return model.tokenizer.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def intervened_generate(model: StandardizedTransformer, prompts: str | Sequence[str],
                        intervene: Callable[[Any, int], None], max_new_tokens: int = 20, remote: bool | str = False,
                        **generate_kwargs: Any) -> list[str]:
    """Greedy continuations (prompt excluded, prompts left-padded) with ``intervene(model, step)`` called inside
    the trace at every forward of the generation: step 0 runs the prompt, step k the k-th new token (one
    position; the earlier ones are in the key/value cache). `steered_generate`, `skipped_generate` and
    `patched_generate` are made of it.

    ``intervene`` reads and writes the model's accessors in execution order, as in a trace; with ``remote=``
    it is shipped by value, so it names only the model, torch and plain values. Example::

        def zero_last_mlp(model, step):
            model.mlps_output[-1] = torch.zeros_like(model.mlps_output[-1])

        intervened_generate(model, "I think that", zero_last_mlp, max_new_tokens=10)
    """
    return _generate(model, _left_padded(model, prompts), intervene, max_new_tokens, remote, generate_kwargs)


def steered_generate(model: StandardizedTransformer, prompts: str | Sequence[str], layers: int | Sequence[int],
                     steering_vector: torch.Tensor, factor: float = 1.0, max_new_tokens: int = 20,
                     remote: bool | str = False, **generate_kwargs: Any) -> list[str]:
    """Greedy continuations (prompt excluded) with ``factor * steering_vector`` added to the output of
    ``layers`` at every forward of the generation: the prompt's and each new token's.

    ``factor=0`` gives the plain continuation. Example::

        steered_generate(model, "I think that", layers=10, steering_vector=vector, factor=4)
    """
    def steer(model: Any, step: int) -> None:
        model.steer(layers, steering_vector, factor)

    return intervened_generate(model, prompts, steer, max_new_tokens, remote, **generate_kwargs)


def skipped_generate(model: StandardizedTransformer, prompts: str | Sequence[str], layers: int | Iterable[int],
                     max_new_tokens: int = 20, remote: bool | str = False, **generate_kwargs: Any) -> list[str]:
    """Greedy continuations (prompt excluded) with each of ``layers`` skipped (its output is its input) at every
    forward of the generation. No layers gives the plain continuation. Example::

        skipped_generate(model, "I think that", layers=range(10, 14))

    Runs without the key/value cache unless ``use_cache=True`` is passed: a skipped layer fills none, and many
    models read the cached length from layer 0's (CPM-Ant, DeepSeek-V4, MVP, XGLM; RWKV's next block writes
    into the state the skipped one never made), so every step recomputes the whole sequence instead.
    """
    generate_kwargs.setdefault("use_cache", False)
    no_layers = isinstance(layers, (list, tuple, range)) and len(layers) == 0  # documented: the plain continuation
    chosen = [] if no_layers else sorted(set(select_layers(layers, model.num_layers)))  # in execution order

    def skip(model: Any, step: int) -> None:
        for layer in chosen:
            model.skip_layer(layer)

    return intervened_generate(model, prompts, skip, max_new_tokens, remote, **generate_kwargs)


def patched_generate(model: StandardizedTransformer, prompts: str | Sequence[str], layer: int,
                     value: torch.Tensor, positions: int | Sequence[int] | None = None,
                     accessor: str = "layers_output", max_new_tokens: int = 20, remote: bool | str = False,
                     **generate_kwargs: Any) -> list[str]:
    """Greedy continuations (prompt excluded) with ``accessor[layer]`` set to ``value`` during generation.

    With ``positions`` (counted in each prompt, negative from its end), the prompt's forward gets ``value``
    there, broadcast to (batch, positions, ...): the accessor's value at those positions, such as the same
    positions of another prompt's run. Every generated token reads them through the key/value cache. With
    ``positions=None``, every position of every forward (the prompt's and each new token's) gets ``value``
    broadcast to (batch, seq, ...): a vector, say. Patching positions with the model's own values gives the
    plain continuation. Example::

        with model.trace("The capital of Italy is"):
            rome = model.layers_output[8][:, -1].save()
        patched_generate(model, "The capital of France is", layer=8, value=rome, positions=-1)
    """
    _check_accessor(model, accessor, SEQUENCE_SECOND)  # _set_positions indexes (batch, seq, ...)
    inputs = _left_padded(model, prompts)
    rows = columns = None
    if positions is not None:
        layout = TokenLayout.from_mask(inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])))
        chosen = [layout.check(position, "positions") for position in position_list(positions, "positions")]
        rows = torch.arange(len(layout.lengths)).unsqueeze(1)  # each prompt's own tokens, after its left padding
        columns = model.num_prefix_positions + torch.stack([layout.columns(position) for position in chosen], dim=1)

    def patch(model: Any, step: int) -> None:
        if rows is None or step == 0:
            _set_positions(getattr(model, accessor), layer, value, rows, columns)

    return _generate(model, inputs, patch, max_new_tokens, remote, generate_kwargs)
