"""Prompts with target tokens, and the probability a model puts on each group of targets.

A :class:`Prompt` pairs a prompt string with categories of target words (``"target"``,
``"traps"``...); each word is tracked through the first token of the word with and without a
leading space, since a model may answer either way. :func:`run_prompts` sums, per category, the
probability the model puts on those tokens, at the next token or at every layer (logit lens).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch

from ..errors import TargetError, ToolkitInputError, ToolkitTypeError

ProbsFunc = Callable[..., torch.Tensor]


def _first_token(text: str, tokenizer: Any) -> int | None:
    """The first token id of ``text`` without special tokens, or None if it tokenizes to nothing."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return int(ids[0]) if len(ids) else None


def _as_word_list(words: str | Iterable[str]) -> list[str]:
    """``words`` as a list of strings; anything else raises a TypeError saying what to pass."""
    items = [words] if isinstance(words, str) else words
    if not isinstance(items, (list, tuple)):
        raise ToolkitTypeError(f"expected a string or a list of strings, got {items!r} ({type(items).__name__}); "
                               "pass e.g. 'Paris' or ['Paris', 'London']")
    for item in items:
        if not isinstance(item, str):
            raise ToolkitTypeError(f"expected a string or a list of strings, got {item!r} ({type(item).__name__}) "
                            f"in {words!r}; pass words as strings, e.g. ['Paris', 'London']")
    return list(items)


def get_first_tokens(words: str | list[str], tokenizer: Any) -> list[int]:
    """The first token of each word, with and without a leading space, deduplicated in order.

    A word that tokenizes to nothing (the empty string, say) is skipped with a ``UserWarning``; a
    word whose first token is the tokenizer's unknown token raises a :class:`TargetError`, since
    tracking ``<unk>`` would track every unknown word at once.

    >>> get_first_tokens(["Paris", "London"], tokenizer)  # doctest: +SKIP
    [12366, 7042, 21424, 3421]   # 'Paris', ' Paris', 'London', ' London' on SmolLM2
    """
    tokens: list[int] = []
    for word in _as_word_list(words):
        bare = word[1:] if word.startswith(" ") else word
        first = _first_token(bare, tokenizer)
        if first is None:
            warnings.warn(f"the word {word!r} tokenizes to no token: it is skipped", UserWarning, stacklevel=2)
            continue
        for token in (first, _first_token(" " + bare, tokenizer)):
            if token is not None and token == getattr(tokenizer, "unk_token_id", None):
                raise TargetError(f"the word {word!r} starts with the tokenizer's unknown token "
                                  f"{tokenizer.unk_token!r} (id {token}): the model cannot be asked for it; "
                                  "pick a word the tokenizer knows")
            if token is not None and token not in tokens:
                tokens.append(token)
    return tokens


@dataclass(frozen=True)
class Prompt:
    """A prompt and, per category, the target strings and the token ids tracked for them.

    >>> prompt = Prompt.from_strings("The capital of France is",  # doctest: +SKIP
    ...                              {"target": "Paris", "traps": ["London", "Madrid"]}, tokenizer)
    >>> run_prompts(model, [prompt])["target"]  # doctest: +SKIP
    tensor([0.7712])
    """

    prompt: str
    target_tokens: dict[str, list[int]]
    target_strings: dict[str, list[str]]

    def __post_init__(self) -> None:
        from .activations import prompt_list

        prompt_list(self.prompt, "prompt")  # a non-empty string, or a typed error
        if not isinstance(self.target_tokens, dict) or not self.target_tokens:
            raise TargetError(f"target_tokens is {self.target_tokens!r}: give at least one target category, "
                              "e.g. Prompt.from_strings(prompt, {'target': 'Paris'}, tokenizer)")

    @classmethod
    def from_strings(cls, prompt: str, targets: dict[str, str | list[str]], tokenizer: Any) -> Prompt:
        """Build a Prompt, tracking the first tokens of every target string (see :func:`get_first_tokens`)."""
        if not isinstance(targets, dict):
            raise ToolkitTypeError(f"targets is {type(targets).__name__} ({targets!r:.60}), expected a dict of "
                                   "category -> word(s), e.g. {'target': 'Paris'}")
        if not targets:
            raise TargetError("targets is empty: run_prompts would return nothing; give at least one category, "
                              "e.g. {'target': 'Paris'}")
        from .activations import prompt_list

        prompt_list(prompt, "prompt")
        strings = {category: _as_word_list(words) for category, words in targets.items()}
        tokens = {}
        for category, words in strings.items():
            tokens[category] = get_first_tokens(words, tokenizer)
            if not tokens[category]:
                raise TargetError(f"target category {category!r} has no token to track: its strings {words!r} "
                                 "all tokenize to nothing; give it at least one non-empty string")
        return cls(prompt=prompt, target_tokens=tokens, target_strings=strings)


def _categories(prompts: list[Prompt]) -> list[str]:
    """The categories every prompt shares; prompts with different categories raise a ValueError."""
    if not prompts:
        raise ToolkitInputError("run_prompts got no prompts: pass a non-empty list of Prompt objects")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, Prompt):
            raise ToolkitTypeError(f"prompts[{index}] is {type(prompt).__name__} ({prompt!r:.60}), expected a "
                                   "Prompt: build it with Prompt.from_strings(prompt, targets, tokenizer)")
    expected = list(prompts[0].target_tokens)
    for index, prompt in enumerate(prompts):
        if set(prompt.target_tokens) != set(expected):
            raise TargetError(f"prompt {index} ({prompt.prompt!r}) has target categories "
                             f"{sorted(prompt.target_tokens)}, prompt 0 has {sorted(expected)}: "
                             "give every prompt the same categories")
    return expected


def _next_token_probs(model: Any, prompts: list[str], remote: bool | str = False) -> torch.Tensor:
    """The default probabilities: next token at the last position, (batch, vocab)."""
    from .activations import compute_next_token_probs

    return compute_next_token_probs(model, prompts, remote=remote)


def _batch_probs(probs_func: ProbsFunc, model: Any, batch: list[str], remote: bool | str) -> torch.Tensor:
    """``probs_func`` on one batch, on CPU, checked to have one row per prompt and the vocabulary last."""
    probs = probs_func(model, batch, remote=remote)
    if not isinstance(probs, torch.Tensor) or probs.dim() < 2 or probs.shape[0] != len(batch):
        found = tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__
        raise ToolkitInputError(f"get_probs_func returned {found} for {len(batch)} prompts: expected a tensor "
                         "(batch, vocab) or (batch, layers, vocab) of probabilities")
    return probs.detach().cpu()


def _with_progress(starts: range, tqdm: Callable | bool | None) -> Iterable[int]:
    """``starts`` wrapped in a progress bar: ``tqdm`` itself if callable, tqdm's own if True."""
    if tqdm is True:
        from tqdm.auto import tqdm as progress_bar
    elif tqdm:
        progress_bar = tqdm
    else:
        return starts
    return progress_bar(starts, desc="running prompts", unit="batch")


def run_prompts(model: Any, prompts: list[Prompt], batch_size: int = 32, get_probs_func: ProbsFunc | None = None,
                remote: bool | str = False, tqdm: Callable | bool | None = None) -> dict[str, torch.Tensor]:
    """Per category, the summed probability of its target tokens for every prompt, on CPU.

    By default the probabilities are the next-token probabilities at the last position, and each
    value has shape (num_prompts,). ``get_probs_func(model, prompt_strings, remote=remote)`` may
    return per-layer probabilities instead, (batch, num_layers, vocab) as ``logit_lens`` does, and
    each value is then (num_prompts, num_layers). Prompts run ``batch_size`` at a time, each read
    at its own last token whatever the tokenizer's padding side. A single Prompt is one prompt.
    ``tqdm`` is a progress
    wrapper (``tqdm.auto.tqdm``), ``True`` for tqdm's, or None/False for none.

    >>> results = run_prompts(model, prompts, get_probs_func=logit_lens)  # doctest: +SKIP
    >>> results["target"].shape  # (num_prompts, num_layers)  # doctest: +SKIP
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ToolkitTypeError(f"batch_size is {type(batch_size).__name__} ({batch_size!r}), expected an int >= 1")
    if batch_size < 1:
        raise ToolkitInputError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(prompts, Prompt):
        prompts = [prompts]
    if prompts is None or not isinstance(prompts, (list, tuple)):
        raise ToolkitTypeError(f"prompts is {type(prompts).__name__}, expected a list of Prompt objects")
    categories = _categories(list(prompts))
    probs_func = get_probs_func or _next_token_probs
    starts = _with_progress(range(0, len(prompts), batch_size), tqdm)
    sums: dict[str, list[torch.Tensor]] = {category: [] for category in categories}
    for start in starts:
        batch = list(prompts[start:start + batch_size])
        probs = _batch_probs(probs_func, model, [prompt.prompt for prompt in batch], remote)
        for category in categories:
            rows = [probs[row, ..., prompt.target_tokens[category]].sum(dim=-1) for row, prompt in enumerate(batch)]
            sums[category].append(torch.stack(rows))
    return {category: torch.cat(parts) for category, parts in sums.items()}
