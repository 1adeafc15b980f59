"""Research interventions on a StandardizedTransformer: logit lens, patchscopes, steering.

``logit_lens``, ``patchscope_lens`` and ``patchscope_generate`` run the model themselves and take
``remote`` (``False``, ``True`` for NDIF, or ``"local"`` to simulate NDIF's serialization);
``steer`` is called inside a trace the caller opens; it lives in the core (:mod:`nnterp.core.steering`),
since the model's own ``model.steer`` is built on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..core.accessors import select_layers
from ..core.steering import steer
from ..errors import (
    ChatTemplateMissing,
    NNterpError,
    TokenIndexError,
    ToolkitInputError,
    ToolkitTypeError,
)
from ..utils.positions import position_index
from .activations import _padded, at_columns, prompt_list, token_columns

if TYPE_CHECKING:
    from ..models.standardized import StandardizedTransformer

DEFAULT_REPEAT_WORDS = ("hello", "world", "apple", "table")
REPEAT_INSTRUCTION = "Repeat each word I send you, exactly as written."


@dataclass(frozen=True)
class TargetPrompt:
    """A patchscope target: the prompt, and the token position that receives the patched hidden state.

    ``index_to_patch`` counts tokens of the tokenized prompt (special tokens included); negative
    indices count from the end, which stays right under the left padding of a batch.
    """

    prompt: str
    index_to_patch: int


# -- target prompts ------------------------------------------------------------


def repeat_prompt(words: Sequence[str] | None = None, rel: str = " ", sep: str = "\n",
                  placeholder: str = "?") -> TargetPrompt:
    """The patchscopes identity prompt ``"w1{rel}w1{sep}w2{rel}w2{sep}...{placeholder}"``.

    Patched at its last token (the placeholder's), it asks the model to say what the patched
    hidden state stands for. Example::

        repeat_prompt(["king", "hello"])  # TargetPrompt("king king\\nhello hello\\n?", -1)
    """
    words = DEFAULT_REPEAT_WORDS if words is None else words
    prompt = "".join(f"{word}{rel}{word}{sep}" for word in words) + placeholder
    return TargetPrompt(prompt, -1)


def it_repeat_prompt(tokenizer: Any, words: Sequence[str] | None = None, complete_prompt: bool = True,
                     add_user_instr: bool = True) -> TargetPrompt:
    """The repeat prompt as a chat, for instruction-tuned models.

    Each word is a user turn answered by an assistant turn repeating it; the last user turn is the
    placeholder ``"?"``, which ``index_to_patch`` points at. ``complete_prompt`` appends the
    assistant header, so the next token is the model's repetition of the patched word (otherwise
    the prompt ends on the placeholder's turn). ``add_user_instr`` opens the first user turn with
    an instruction to repeat.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ChatTemplateMissing(
            f"{type(tokenizer).__name__} has no chat template, expected one for it_repeat_prompt; "
            "use repeat_prompt() for base models, or set tokenizer.chat_template")
    words = DEFAULT_REPEAT_WORDS if words is None else words
    placeholder = "?"
    messages = []
    for word in words:
        messages += [{"role": "user", "content": word}, {"role": "assistant", "content": word}]
    messages.append({"role": "user", "content": placeholder})
    if add_user_instr:
        messages[0] = {"role": "user", "content": f"{REPEAT_INSTRUCTION}\n\n{messages[0]['content']}"}
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=complete_prompt)
    end = prompt.rindex(placeholder) + len(placeholder)
    return TargetPrompt(prompt, _token_index_of_prefix_end(tokenizer, prompt, end))


def _token_index_of_prefix_end(tokenizer: Any, text: str, end: int) -> int:
    """Negative index of the token that ends the first ``end`` characters of ``text``."""
    full = tokenizer(text)["input_ids"]
    prefix = tokenizer(text[:end])["input_ids"]
    if full[:len(prefix)] != prefix:
        raise NNterpError(f"tokenizing {text[:end]!r} gave tokens that are not a prefix of the whole prompt's; "
                          "expected the placeholder to end on a token boundary: pick another placeholder")
    return len(prefix) - 1 - len(full)


def _absolute_to_negative(model: StandardizedTransformer, target: TargetPrompt) -> int:
    """``index_to_patch`` counted from the end, checked to fall inside the target prompt."""
    if not isinstance(target, TargetPrompt):
        raise ToolkitTypeError(f"a target prompt is {type(target).__name__} ({target!r:.60}), expected a "
                               "TargetPrompt: build one with TargetPrompt(prompt, index_to_patch) or repeat_prompt()")
    index = position_index(target.index_to_patch, "index_to_patch")
    length = len(model.tokenizer(prompt_list(target.prompt, "the target prompt")[0])["input_ids"])
    if not -length <= index < length:
        raise TokenIndexError(f"index_to_patch {index} is outside {target.prompt!r} ({length} tokens); "
                              f"expected an index in -{length}..{length - 1}")
    return index if index < 0 else index - length


def _targets(target_patch_prompts: TargetPrompt | Sequence[TargetPrompt] | None, num_sources: int
             ) -> list[TargetPrompt]:
    """One target per source: a single target (or none, meaning the repeat prompt) is shared."""
    if target_patch_prompts is None:
        target_patch_prompts = repeat_prompt()
    if isinstance(target_patch_prompts, TargetPrompt):
        return [target_patch_prompts] * num_sources
    if not isinstance(target_patch_prompts, (list, tuple)):
        raise ToolkitTypeError(f"target_patch_prompts is {type(target_patch_prompts).__name__}, expected a "
                               "TargetPrompt or a list of them: wrap the prompt as TargetPrompt(prompt, -1)")
    targets = list(target_patch_prompts)
    if len(targets) == 1:
        return targets * num_sources
    if len(targets) != num_sources:
        raise ToolkitInputError(f"got {len(targets)} target prompts for {num_sources} sources; "
                         "expected one target prompt, or one per source")
    return targets


# -- lenses --------------------------------------------------------------------


def logit_lens(model: StandardizedTransformer, prompts: str | Sequence[str], remote: bool | str = False,
               images: Any = None) -> torch.Tensor:
    """Next-token probabilities read off every layer's output at each prompt's own last token (whatever the
    padding side; a pre-tokenized mapping is read through its ``attention_mask``).

    Returns a float32 CPU tensor (batch, num_layers, vocab); its last layer is ``next_token_probs``.
    ``images`` (a vision-language model): one image, or a list of images, per prompt.
    Example::

        probs = logit_lens(model, "The capital of France is")
        model.tokenizer.decode(probs[0, -1].argmax())  # ' Paris'
    """
    inputs, layout = _padded(model, prompts, images)
    columns = token_columns(layout, -1, model.num_prefix_positions)
    with torch.no_grad(), model.trace(inputs, remote=remote) as tracer:
        # only each prompt's last token is kept per layer, and all layers go through the final norm and
        # the unembedding in one call: one pass over the head's weights instead of one per layer
        last = [at_columns(model.layers_output[layer], columns) for layer in range(model.num_layers)]
        states = model.collapse_streams(torch.stack(last, dim=1))  # (batch, layers, hidden)
        probs = model.project_on_vocab(states).float().softmax(dim=-1).cpu().save()
        tracer.stop()  # the model's own head over every position is never read
    return probs.detach()


def last_token_latents(model: StandardizedTransformer, prompts: str | Sequence[str],
                       layers: int | Sequence[int] | None = None, remote: bool | str = False) -> torch.Tensor:
    """The last token's hidden state at each layer's output: (num_layers_selected, batch, hidden), on CPU."""
    from .activations import get_token_activations

    return get_token_activations(model, prompt_list(prompts), idx=-1, layers=layers, remote=remote)


def _latents_by_layer(model: StandardizedTransformer, layers: list[int], source_prompts: Sequence[str] | None,
                      latents: torch.Tensor | None, remote: bool | str) -> torch.Tensor:
    """(len(layers), num_sources, hidden) from the source prompts, or from given latents.

    Given latents are indexed by layer when they cover every layer, else matched to ``layers`` in order.
    """
    if source_prompts is not None and latents is None:
        return last_token_latents(model, source_prompts, layers, remote)
    if latents is None or source_prompts is not None:
        raise ToolkitInputError("pass exactly one of source_prompts and latents")
    state = model.token_state_shape  # (hidden,), or (streams, hidden) on multi-stream models
    if tuple(latents.shape[2:]) != state:
        raise ToolkitInputError(f"latents have shape {tuple(latents.shape)}, expected "
                         f"(num_layers, num_sources, {', '.join(map(str, state))})")
    if latents.shape[0] == model.num_layers:
        return latents[layers]
    if latents.shape[0] == len(layers):
        return latents
    raise ToolkitInputError(f"latents cover {latents.shape[0]} layers, expected {model.num_layers} (every layer) "
                     f"or {len(layers)} (one per selected layer)")


def _patch(model: StandardizedTransformer, layer: int, positions: list[int], latents: torch.Tensor) -> None:
    """Write ``latents[row]`` at ``positions[row]`` of ``layers_output[layer]``, inside a trace."""
    output = model.layers_output[layer]
    latents = latents.to(device=output.device, dtype=output.dtype)
    if len(set(positions)) == 1:
        output[:, positions[0]] = latents
    else:
        for row, position in enumerate(positions):
            output[row, int(position)] = latents[row]


def patchscope_lens(model: StandardizedTransformer, source_prompts: str | Sequence[str] | None = None,
                    target_patch_prompts: TargetPrompt | Sequence[TargetPrompt] | None = None,
                    layers: int | Sequence[int] | None = None, latents: torch.Tensor | None = None,
                    remote: bool | str = False) -> torch.Tensor:
    """Next-token probabilities of target prompts patched with the sources' last-token hidden states.

    For each layer, the source's ``layers_output[layer][:, -1]`` replaces the target's
    ``layers_output[layer]`` at ``index_to_patch``. One target (default: ``repeat_prompt()``) is
    shared by every source, or give one per source. ``latents`` (num_layers, num_sources, hidden)
    may replace the source prompts. Returns a float32 CPU tensor (num_sources, num_layers_selected,
    vocab). Runs one trace for the sources, then one per layer over all the targets. Example::

        probs = patchscope_lens(model, ["I adopted a cat"], repeat_prompt(), layers=[5, 10])
        model.tokenizer.decode(probs[0, 1].argmax())  # ' cat'
    """
    layers = select_layers(layers, model.num_layers)
    source_latents = _latents_by_layer(model, layers, None if source_prompts is None else prompt_list(source_prompts),
                                       latents, remote)
    targets = _targets(target_patch_prompts, source_latents.shape[1])
    from_end = torch.tensor([_absolute_to_negative(model, target) for target in targets])
    inputs, layout = _padded(model, [target.prompt for target in targets])
    columns = token_columns(layout, from_end, model.num_prefix_positions)  # each target's own token
    positions = columns.tolist() if isinstance(columns, torch.Tensor) else [columns] * len(targets)
    last = token_columns(layout, -1)
    per_layer = []
    for layer, layer_latents in zip(layers, source_latents):
        with torch.no_grad(), model.trace(inputs, remote=remote):
            _patch(model, layer, positions, layer_latents)
            probs = at_columns(model.logits, last).float().softmax(dim=-1).cpu().save()
        per_layer.append(probs.detach())
    return torch.stack(per_layer, dim=1)


def patchscope_generate(model: StandardizedTransformer, prompts: str | Sequence[str],
                        target_patch_prompt: TargetPrompt, max_length: int = 50,
                        layers: int | Sequence[int] | None = None, remote: bool | str = False
                        ) -> dict[int, list[str]]:
    """Greedy continuations of the target prompt patched with each prompt's last-token hidden state.

    The patch is applied at the first forward of the generation (the prompt's); ``max_length`` is the
    number of new tokens. Returns, per layer, the generated text (prompt excluded) per source prompt.
    """
    layers = select_layers(layers, model.num_layers)
    source_latents = last_token_latents(model, prompts, layers, remote)
    position = _absolute_to_negative(model, target_patch_prompt)
    targets = [target_patch_prompt.prompt] * source_latents.shape[1]
    prompt_length = len(model.tokenizer(target_patch_prompt.prompt)["input_ids"])
    texts = {}
    for layer, layer_latents in zip(layers, source_latents):
        with torch.no_grad(), model.generate(targets, max_new_tokens=max_length, do_sample=False,
                                             remote=remote) as tracer:
            _patch(model, layer, [position] * len(targets), layer_latents)
            ids = tracer.result.save()
        texts[layer] = model.tokenizer.batch_decode(ids[:, prompt_length:], skip_special_tokens=True)
    return texts


__all__ = ["TargetPrompt", "it_repeat_prompt", "last_token_latents", "logit_lens", "patchscope_generate",
           "patchscope_lens", "repeat_prompt", "steer"]
