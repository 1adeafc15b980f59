"""The collection rows: ``collect_token_activations_batched`` and ``run_with_cache`` (goal <= 1.2x) against a
forward-hook collector. (Their memory is ``memory.py``'s row.)"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks.hooks import keeping_layer_outputs, last_token_states, right_padded
from benchmarks.subject import LENS_PROMPTS, Subject
from benchmarks.timing import Row, compare, same


def plain_collect(hf: Any, tokenizer: Any, prompts: list[str], batch_size: int, device: torch.device
                  ) -> torch.Tensor:
    """Forward hooks keep every layer's last-token state, batch by batch, into one preallocated tensor."""
    layers = list(range(len(hf.model.layers)))
    out = torch.empty(len(layers), len(prompts), hf.config.hidden_size)
    for start in range(0, len(prompts), batch_size):
        batch, last = right_padded(tokenizer, prompts[start:start + batch_size], device)
        out[:, start:start + len(last)] = torch.stack(last_token_states(hf, batch, last, layers)).cpu()
    return out


def plain_cache(hf: Any, tokenizer: Any, prompts: list[str], device: torch.device) -> list[torch.Tensor]:
    """One forward with a hook on every decoder layer keeping its output hidden state, copied to the CPU
    (where ``run_with_cache`` puts its values by default)."""
    batch, _ = right_padded(tokenizer, prompts, device)
    layers = list(range(len(hf.model.layers)))
    with keeping_layer_outputs(hf, layers, lambda state: state.to("cpu")) as kept:
        hf(**batch)
    return [kept[layer] for layer in layers]


def collect_batched_row(args: argparse.Namespace, subject: Subject) -> Row:
    """Every layer's last-token state of ``--collect-prompts`` prompts, ``--batch-size`` at a time."""
    from nnterp import collect_token_activations_batched

    model, hf, device = subject.model, subject.hf, subject.device
    prompts = [f"Sample sentence number {i} is about" for i in range(args.collect_prompts)]
    return compare("collect_batched",
                   lambda: collect_token_activations_batched(model, prompts, args.batch_size, progress=False),
                   lambda: plain_collect(hf, model.tokenizer, prompts, args.batch_size, device),
                   ("collect_token_activations_batched", "hook collector"), rounds=args.rounds, device=device,
                   note=f"{subject.label}, {len(prompts)} prompts, batch {args.batch_size}, every layer")


def run_with_cache_row(args: argparse.Namespace, subject: Subject) -> Row:
    """``run_with_cache`` of every ``layers_output``, to the CPU."""
    from nnterp import run_with_cache

    model, hf, device = subject.model, subject.hf, subject.device

    def stacked_alike(cached: Any, kept: list[torch.Tensor], what: str) -> None:
        same(cached.stack("layers_output"), torch.stack(kept), what)

    return compare("run_with_cache", lambda: run_with_cache(model, LENS_PROMPTS, "layers_output"),
                   lambda: plain_cache(hf, model.tokenizer, LENS_PROMPTS, device),
                   ("run_with_cache", "hook collector"), rounds=args.rounds, device=device, goal=1.2,
                   note=f"{subject.where}, layers_output of all {model.num_layers} layers, to the CPU",
                   check=stacked_alike)
