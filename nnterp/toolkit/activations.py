"""Collect hidden states at one token position, for a few prompts or for thousands.

Works on a StandardizedTransformer, and on a plain nnsight model renamed with
``get_rename_dict`` (anything with ``.layers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterable

import torch
from nnsight import save

from ..core.accessors import select_layers, unwrap
from ..errors import PromptError, ToolkitInputError, ToolkitTypeError
from ..utils.extras import require_extra
from ..utils.image_inputs import IMAGE_TYPES, counts, described, image_mismatch, is_image, is_marker_error
from ..utils.positions import TokenLayout, checked_position


def _layer_output(model: Any, layer: int) -> Any:
    """A layer's hidden-state output, through the standardized accessor when the model has one."""
    accessor = getattr(model, "layers_output", None)
    return accessor[layer] if accessor is not None else unwrap(model.layers[layer].output)


def _num_layers(model: Any) -> int:
    return model.num_layers if hasattr(model, "num_layers") else len(model.layers)


def _padding_side(model: Any) -> str:
    """Right, unless the registry says the model finds padding by itself on the other side (CPM-Ant)."""
    architecture = getattr(model, "architecture", None)  # plain nnsight models have no registry row
    return (architecture.spec.layout.padding_side if architecture is not None else "") or "right"


def prompt_list(prompts: Any, argument: str = "prompts") -> list[str]:
    """``prompts`` as a non-empty list of non-empty strings; a single string is one prompt.

    Anything else raises a :class:`PromptError` (None, ``[]``, ``""``) or a :class:`ToolkitTypeError`
    (an int, a list holding a non-string) naming the argument and what to pass.
    """
    if prompts is None:
        raise PromptError(f"{argument} is None: pass a string or a non-empty list of strings")
    items = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(items, (list, tuple)):
        raise ToolkitTypeError(f"{argument} is {type(prompts).__name__} ({prompts!r:.60}): "
                               "pass a string or a list of strings")
    if not items:
        raise PromptError(f"{argument} is empty: pass at least one prompt")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise ToolkitTypeError(f"{argument}[{index}] is {type(item).__name__} ({item!r:.60}), expected a "
                                   "string: pass every prompt as a string")
        if not item:
            raise PromptError(f"{argument}[{index}] is the empty string: it has no token to read; "
                              "remove it or give it some text")
    return list(items)


def _check_lengths(prompts: list[str], lengths: torch.Tensor) -> None:
    """Refuse prompts of no token (a trace checks lengths against the model's positions itself)."""
    for prompt, length in zip(prompts, lengths.tolist()):
        if length == 0:
            raise PromptError(f"prompt {prompt!r} tokenizes to no token: give it some text the tokenizer keeps")


def image_lists(images: Any, count: int, held: str = "") -> list[list[Any]]:
    """``images=`` of the toolkit as one list of images per prompt: an image (PIL or tensor) or a list of
    them per prompt, ``count`` prompts. A ToolkitInputError otherwise (a ToolkitTypeError for what is not an
    image: a number, None, a path...), whose message ends with ``held`` (what the prompts hold)."""
    held = f" ({held})" if held else ""
    if isinstance(images, (str, bytes)) or not isinstance(images, (list, tuple)):
        raise ToolkitTypeError(f"images is {described(images)}: pass one image ({IMAGE_TYPES}), or a list of "
                               f"images, per prompt{held}")
    if len(images) != count:
        raise ToolkitInputError(f"images has {len(images)} entries for {count} prompts: pass one image (or a list "
                                f"of images) per prompt, in the prompts' order{held}")
    lists = [list(entry) if isinstance(entry, (list, tuple)) else [entry] for entry in images]
    for index, entry in enumerate(lists):
        for image in entry:
            if not is_image(image):
                raise ToolkitTypeError(f"images[{index}] holds {described(image)}, not an image: pass one image "
                                       f"({IMAGE_TYPES}), or a list of images, per prompt{held}")
    return lists


def _encoded_with_images(model: Any, prompts: list[str], images: Any, side: str) -> dict[str, Any]:
    """A vision-language model's processor encoding of prompts with their images, padded on ``side``; the
    processor's image processor needs Pillow (MissingExtra without it). Images that are not images, or do not
    match the prompts' image markers, raise a ToolkitTypeError or an ImageMismatch naming each prompt's
    counts."""
    processor = getattr(model, "processor", None)
    if processor is None:
        raise ToolkitInputError(f"images= needs a vision-language model with a processor (StandardizedVLM); "
                                f"{type(model).__name__} has none")
    require_extra("vlm", "images= (encoded by the model's image processor)", ("PIL",))
    count_markers = getattr(type(model), "image_markers", None)  # StandardizedVLM's
    markers = count_markers(model, prompts) if callable(count_markers) else None
    per_prompt = image_lists(images, len(prompts), counts(prompts, markers, None) if markers is not None else "")
    try:
        return dict(processor(text=prompts, images=per_prompt, return_tensors="pt", padding=True,
                              padding_side=side))
    except ValueError as error:
        if not is_marker_error(error):
            raise
        raise image_mismatch(f"image markers and images do not match ({type(processor).__name__}: {error})",
                             prompts, markers, [len(entry) for entry in per_prompt]) from error


def _padded(model: Any, prompts: Any, images: Any = None) -> tuple[Any, TokenLayout | None]:
    """Prompts tokenized as one padded batch (with their images, through a vision-language model's
    processor), and where each prompt's real tokens sit in it (`nnterp.utils.positions.TokenLayout`).

    With right padding every real token sits where it would sit alone and a causal model never
    attends to the pads after it, so activations equal the unbatched ones on every architecture,
    including those whose positions ignore the attention mask (BART, RoBERTa, RWKV...). Models
    that ignore the mask and detect padding themselves get the side they expect. The side is
    chosen here, per call, so the tokenizer's own ``padding_side`` never matters. Already
    tokenized inputs (a mapping or a tensor of ids) pass through unchanged, their layout read off
    their ``attention_mask`` (padded on either side); without one, every token is real. The layout
    is None only for strings a model without a tokenizer tokenizes itself.
    """
    tokenizer = getattr(model, "tokenizer", None)
    side = _padding_side(model)
    if isinstance(prompts, (Mapping, torch.Tensor)):
        return prompts, _given_layout(prompts)
    prompts = prompt_list(prompts)
    if images is not None:
        batch = _encoded_with_images(model, prompts, images, side)
    elif tokenizer is None:
        return prompts, None
    else:
        batch = dict(tokenizer(prompts, return_tensors="pt", padding=True, padding_side=side))
    _check_lengths(prompts, batch["attention_mask"].sum(dim=1))
    return dict(batch), TokenLayout.from_mask(batch["attention_mask"])


def _given_layout(inputs: Mapping | torch.Tensor) -> TokenLayout | None:
    """The layout of already tokenized inputs: their attention mask's, or every token real."""
    if isinstance(inputs, Mapping) and inputs.get("attention_mask") is not None:
        return TokenLayout.from_mask(inputs["attention_mask"])
    ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else inputs
    if not isinstance(ids, torch.Tensor):
        return None
    ids = ids if ids.ndim == 2 else ids[None]
    return TokenLayout.full(ids.shape[0], ids.shape[1])


def token_columns(layout: TokenLayout | None, position: int | torch.Tensor, prefix: int = 0) -> torch.Tensor | int:
    """Where token ``position`` of each prompt sits in (batch, seq, ...) values whose first ``prefix`` columns are
    learned positions before the input (CPM-Ant): one column per row (``position`` one for every row, or one
    per row), planned on the client; without a layout nothing is padded, and one column serves every row."""
    if layout is None:
        return int(position) if position < 0 else prefix + int(position)
    return prefix + layout.columns(position)


def at_columns(values: Any, columns: torch.Tensor | int) -> Any:
    """Inside a trace: row ``b`` of (batch, seq, ...) ``values`` at column ``columns[b]`` (or ``columns``)."""
    if not isinstance(columns, torch.Tensor):
        return values[:, columns]
    rows = torch.arange(values.shape[0], device=values.device)
    return values[rows, columns.to(values.device)]


def get_token_activations(model: Any, prompts: str | list[str], idx: int = -1,
                          layers: int | Iterable[int] | None = None, remote: bool | str = False,
                          images: Any = None) -> torch.Tensor:
    """Hidden states at token ``idx`` of every prompt: (num_selected_layers, batch, hidden), on CPU.

    The forward pass stops after the last layer needed. ``idx`` indexes each prompt's own tokens
    (``-1`` is its last token), whatever the other prompts in the batch. ``images`` (a vision-language
    model) gives one image, or a list of images, per prompt; the prompts hold their image markers
    (``model.image_prompt``).
    """
    chosen = select_layers(layers, _num_layers(model))  # refuses an empty selection
    in_order = sorted(set(chosen))
    inputs, layout = _padded(model, prompts, images)
    idx = checked_position(idx, layout, "idx")
    columns = token_columns(layout, idx, getattr(model, "num_prefix_positions", 0))  # after learned prefix positions
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        collected = save({})  # saved whole: a remote run sends back saved values, not edits to client objects
        for layer in in_order:
            collected[layer] = at_columns(_layer_output(model, layer), columns).cpu()
        tracer.stop()
    return torch.stack([collected[layer] for layer in chosen])


def compute_next_token_probs(model: Any, prompts: str | list[str], remote: bool | str = False,
                             images: Any = None) -> torch.Tensor:
    """Next-token probabilities at the last token of every prompt: (batch, vocab), on CPU.

    The batch is padded here, per call, and each prompt is read at its own last token, so a row
    equals the prompt's unbatched result whatever the tokenizer's ``padding_side``. ``images``: as for
    ``get_token_activations``.
    """
    inputs, layout = _padded(model, prompts, images)
    last = token_columns(layout, -1)
    with torch.no_grad(), model.trace(inputs, remote=remote):
        logits = model.output.logits if not hasattr(model, "logits") else model.logits
        probs = at_columns(logits, last).softmax(dim=-1).cpu().save()
    return probs


def collect_token_activations_batched(model: Any, prompts: str | list[str], batch_size: int,
                                      layers: int | Iterable[int] | None = None, idx: int = -1,
                                      remote: bool | str = False, progress: bool = True,
                                      images: Any = None) -> torch.Tensor:
    """`get_token_activations` over many prompts in batches: (num_selected_layers, num_prompts, hidden), on CPU.

    Memory stays bounded by the output: each batch's activations are copied into one preallocated
    CPU tensor. Equal to the unbatched result whatever the batch size and padding side. A single
    string is one prompt, as everywhere in the toolkit.
    """
    prompts = prompt_list(prompts)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ToolkitTypeError(f"batch_size is {type(batch_size).__name__} ({batch_size!r}), expected an int >= 1")
    if batch_size < 1:
        raise ToolkitInputError(f"batch_size must be at least 1, got {batch_size}")
    per_prompt = image_lists(images, len(prompts)) if images is not None else None
    starts = range(0, len(prompts), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="collecting activations", unit="batch")
    result: torch.Tensor | None = None
    for start in starts:
        batch = prompts[start:start + batch_size]
        batch_images = per_prompt[start:start + batch_size] if per_prompt is not None else None
        activations = get_token_activations(model, batch, idx=idx, layers=layers, remote=remote,
                                            images=batch_images)
        if result is None:
            result = torch.empty(activations.shape[0], len(prompts), *activations.shape[2:], dtype=activations.dtype)
        result[:, start:start + len(batch)] = activations
    assert result is not None  # prompt_list refused an empty list
    return result
