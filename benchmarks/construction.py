"""The cost of nnterp's wrapper: a trace against a bare nnsight trace (goal <= 1.1x), construction against one
traced forward (goal <= 2.5x: the measured floor of a validating trace is 1.8-2.2x), and the model's own
tokenizer copy against the ``copy.deepcopy`` it replaced (goal <= 0.1x on SmolLM2's tokenizer)."""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

import torch

from benchmarks.subject import GGUF, LENS_PROMPTS, Subject, smollm2_folder
from benchmarks.timing import Row, compare


def trace_row(args: argparse.Namespace, subject: Subject) -> Row:
    """One prompt's trace saving one layer output, through nnterp and through a bare nnsight wrapper."""
    model = subject.model

    def traced(wrapper: Any) -> None:
        with torch.no_grad(), wrapper.trace(LENS_PROMPTS[0]):
            wrapper.model.layers[min(5, model.num_layers - 1)].output.save()

    return compare("trace", lambda: traced(model), lambda: traced(subject.bare),
                   ("StandardizedTransformer.trace", "bare nnsight trace"), rounds=args.rounds * 4,
                   device=subject.device, goal=1.1, check=None,
                   note=f"{subject.label}, one prompt, one saved layer output")


def construct_rows(args: argparse.Namespace, device: torch.device, nnterp13: dict[str, list[float]]) -> list[Row]:
    """Wrapping + load-time validation of a freshly built toy (not timed) against one traced forward."""
    from nnterp import StandardizedTransformer
    from nnterp.toy import build_toy_model

    rows = []
    rounds = args.rounds * 2 + 1
    for name in args.toys:
        toy = build_toy_model(name)
        model = StandardizedTransformer(toy.model.to(device), tokenizer=toy.tokenizer)
        fresh = [build_toy_model(name) for _ in range(rounds + 1)]  # one per construction (and paired's warm-up):
        for toy in fresh:                                           # a module is wrapped once; building is not timed
            toy.model.to(device)

        def construct(fresh: list = fresh) -> None:
            toy = fresh.pop()
            StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)

        def forward(model: Any = model) -> None:
            with torch.no_grad(), model.trace(["The quick brown fox", "Hello world"]):
                model.logits.save()

        rows.append(compare(f"construct[{name}]", construct, forward,
                            ("StandardizedTransformer(model)", "one traced forward"), rounds=rounds, device=device,
                            goal=2.5, check=None, note="toy model, validation included; after one warm-up each",
                            nnterp13_s=nnterp13.get(name, [])))
    return rows


def _same_backend(ours: Any, floor: Any, what: str) -> None:
    if ours.backend_tokenizer.to_str() != floor.backend_tokenizer.to_str():
        sys.exit(f"{what}: the copy's backend differs from the tokenizer's")


def tokenizer_copy_rows(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """The model's own copy of the caller's tokenizer against the ``copy.deepcopy`` it replaced, on the toy
    tokenizer and (the lens model being SmolLM2) SmolLM2's 49k-token GGUF tokenizer."""
    from nnterp.utils.tokenizer_copy import own_tokenizer
    from nnterp.toy import toy_tokenizer

    tokenizers = {"toy": toy_tokenizer()}
    if args.model == "smollm2":
        from transformers import AutoTokenizer

        tokenizers["smollm2"] = AutoTokenizer.from_pretrained(smollm2_folder(), gguf_file=GGUF)
    rows = []
    for name, tokenizer in tokenizers.items():
        def ours(tokenizer: Any = tokenizer) -> Any:
            return own_tokenizer(tokenizer)

        def floor(tokenizer: Any = tokenizer) -> Any:
            return copy.deepcopy(tokenizer)

        rows.append(compare(f"tokenizer_copy[{name}]", ours, floor, ("own_tokenizer", "copy.deepcopy"),
                            rounds=args.rounds * 2 + 1, device=device, goal=0.1 if name == "smollm2" else None,
                            note=f"{tokenizer.backend_tokenizer.get_vocab_size()}-token vocabulary",
                            check=_same_backend))
    return rows
