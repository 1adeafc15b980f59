"""The lens rows: ``logit_lens`` and ``patchscope_lens`` against forward hooks doing the same (goal <= 1.3x)."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks.hooks import hidden, last_token_states, right_padded
from benchmarks.subject import LENS_PROMPTS, Subject
from benchmarks.timing import Row, compare


def plain_logit_lens(hf: Any, tokenizer: Any, prompts: list[str], device: torch.device) -> torch.Tensor:
    """Hooks on every layer during a full forward, then one norm + unembedding + softmax on the stack."""
    batch, last = right_padded(tokenizer, prompts, device)
    rows, kept = torch.arange(len(last), device=device), []
    handles = [layer.register_forward_hook(lambda module, args, output: kept.append(hidden(output)[rows, last]))
               for layer in hf.model.layers]
    try:
        with torch.no_grad():
            hf(**batch)
            return hf.lm_head(hf.model.norm(torch.stack(kept, dim=1))).float().softmax(dim=-1).cpu()
    finally:
        for handle in handles:
            handle.remove()


def plain_patchscope(hf: Any, tokenizer: Any, sources: list[str], target: str, layers: list[int],
                     device: torch.device) -> torch.Tensor:
    """Sources' last-token states by hooks, then per layer one forward of the targets with a hook writing
    the state at the target's last token, reading the next-token probabilities there."""
    batch, last = right_padded(tokenizer, sources, device)
    latents = last_token_states(hf, batch, last, layers)
    targets = dict(tokenizer([target] * len(sources), return_tensors="pt").to(device))
    per_layer = []
    for layer, latent in zip(layers, latents):
        def patch(module: Any, args: Any, output: Any, latent: torch.Tensor = latent) -> None:
            hidden(output)[:, -1] = latent

        handle = hf.model.layers[layer].register_forward_hook(patch)
        try:
            with torch.no_grad():
                per_layer.append(hf(**targets).logits[:, -1].float().softmax(dim=-1).cpu())
        finally:
            handle.remove()
    return torch.stack(per_layer, dim=1)


def logit_lens_row(args: argparse.Namespace, subject: Subject) -> Row:
    """``logit_lens`` at the last position of every layer against hooks + one norm and unembedding."""
    from nnterp import logit_lens

    model, hf, device = subject.model, subject.hf, subject.device
    return compare("logit_lens", lambda: logit_lens(model, LENS_PROMPTS),
                   lambda: plain_logit_lens(hf, model.tokenizer, LENS_PROMPTS, device),
                   ("logit_lens", "hooks + one norm/unembed"), rounds=args.rounds, device=device, goal=1.3,
                   note=f"{subject.where}, last position, all {model.num_layers} layers")


def patchscope_lens_row(args: argparse.Namespace, subject: Subject) -> Row:
    """``patchscope_lens`` on every ``--patchscope-every``-th layer against hooks writing the latent."""
    from nnterp import patchscope_lens, repeat_prompt

    model, hf, device = subject.model, subject.hf, subject.device
    layers = list(range(0, model.num_layers, args.patchscope_every))
    target = repeat_prompt()
    return compare("patchscope_lens", lambda: patchscope_lens(model, LENS_PROMPTS, target, layers=layers),
                   lambda: plain_patchscope(hf, model.tokenizer, LENS_PROMPTS, target.prompt, layers, device),
                   ("patchscope_lens", "hooks writing the latent"), rounds=args.rounds, device=device, goal=1.3,
                   note=f"{subject.where}, repeat_prompt(), {len(layers)} layers")
