"""The patching row: ``activation_patching`` of ``layers_output`` over every layer x position against the same
number of plain forwards in the same batch sizes (goal <= 3x)."""

from __future__ import annotations

import argparse
from typing import Any, Callable

import torch

from benchmarks.hooks import right_padded
from benchmarks.subject import Subject
from benchmarks.timing import Row, compare, same

# (clean, corrupted) prompts and (clean, corrupted) answers, by model; the toy's tokenizer spells by character,
# so its prompts pair up only with country names of equal length
PATCHING = {"smollm2": (("The capital of France is", "The capital of Italy is"), (" Paris", " Rome")),
            "toy": (("The capital of Spain is", "The capital of Italy is"), (" Madrid", " Rome"))}


def answer_ids(tokenizer: Any, answers: tuple[str, str]) -> tuple[int, int]:
    """The first token where the two answers' tokens part (each answer's only token on a word-level vocabulary)."""
    first, second = (tokenizer(answer, add_special_tokens=False)["input_ids"] for answer in answers)
    return next((a, b) for a, b in zip(first, second) if a != b)


def plain_patching_forwards(hf: Any, tokenizer: Any, prompts: tuple[str, str], cells: int, per_forward: int,
                            metric: Callable[[torch.Tensor], torch.Tensor], device: torch.device) -> torch.Tensor:
    """The forwards activation patching needs, without nnsight and without patching: the clean prompt and the
    corrupted one once each, then the corrupted prompt repeated once per cell, ``per_forward`` rows a batch,
    the metric of every row read. Returns the (clean, corrupted) metrics."""
    clean, _ = right_padded(tokenizer, [prompts[0]], device)
    corrupted, _ = right_padded(tokenizer, [prompts[1]], device)
    with torch.no_grad():
        metrics = [metric(hf(**clean).logits).float().mean(), metric(hf(**corrupted).logits).float().mean()]
        for start in range(0, cells, per_forward):
            rows = min(per_forward, cells - start)
            metric(hf(**{key: value.repeat(rows, 1) for key, value in corrupted.items()}).logits).cpu()
    return torch.stack(metrics).cpu()


def activation_patching_row(args: argparse.Namespace, subject: Subject) -> Row:
    """``activation_patching`` over every layer and position against the plain forwards it needs, after checking
    that the grid is sane: patching the last layer's last position gives the clean metric back, and patching a
    position before the prompts differ leaves the corrupted one."""
    from nnterp import activation_patching
    from nnterp.toolkit.analysis.patching import DEFAULT_PATCHES_PER_FORWARD

    model, hf, device = subject.model, subject.hf, subject.device
    prompts, answers = PATCHING[args.model]
    right, wrong = answer_ids(model.tokenizer, answers)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, -1, right] - logits[:, -1, wrong]

    def ours() -> Any:
        return activation_patching(model, prompts[0], prompts[1], metric, progress=False)

    def floor() -> torch.Tensor:
        return plain_patching_forwards(hf, model.tokenizer, prompts, cells, DEFAULT_PATCHES_PER_FORWARD, metric,
                                       device)

    result = ours()
    cells = result.values.numel()
    same(torch.tensor([result.clean_metric, result.corrupted_metric]), floor(), "activation_patching metrics")
    assert result.values.shape == (model.num_layers, len(result.positions)), result.values.shape
    same(result.values[-1, -1], torch.tensor(result.clean_metric), "activation_patching, last layer and position",
         rtol=1e-3)
    clean_ids, corrupted_ids = (model.tokenizer(prompt)["input_ids"] for prompt in prompts)
    shared = next(index for index, (a, b) in enumerate(zip(clean_ids, corrupted_ids)) if a != b)
    same(result.values[:, :shared], torch.full((model.num_layers, shared), result.corrupted_metric),
         "activation_patching, positions before the prompts differ", rtol=1e-3)
    return compare("activation_patching", ours, floor, ("activation_patching", "plain forwards, same batches"),
                   rounds=args.rounds, device=device, goal=3.0, check=None,
                   note=f"{subject.label}, layers_output, {model.num_layers} layers x {len(result.positions)} "
                        f"positions = {cells} runs + clean + corrupted, {DEFAULT_PATCHES_PER_FORWARD} a forward")
