"""nnterp 1.3.0's construction seconds (the construct rows' ``vs nnterp 1.3.0`` column), measured in a second
interpreter on the same toy models, saved with ``save_pretrained``."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

NNTERP13_CHILD = r"""
import json, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from nnterp import StandardizedTransformer
folders, rounds, device = json.loads(sys.argv[1])
result = {}
for name, folder in folders.items():
    times = []
    for _ in range(rounds):
        model = AutoModelForCausalLM.from_pretrained(folder).eval().to(device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        start = time.perf_counter()
        StandardizedTransformer(model, tokenizer=tokenizer)
        times.append(time.perf_counter() - start)
    result[name] = times[1:]
print("NNTERP13", json.dumps(result))
"""


def nnterp13_construction(python: str | None, toys: list[str], rounds: int, device: torch.device
                          ) -> dict[str, list[float]]:
    """nnterp 1.3.0's construction seconds per toy, in the interpreter given, on the same saved toys."""
    if not python:
        return {}
    from nnterp.toy import build_toy_model

    with tempfile.TemporaryDirectory() as folder:
        folders = {}
        for name in toys:
            toy = build_toy_model(name)
            folders[name] = str(Path(folder) / name)
            toy.model.save_pretrained(folders[name])
            toy.tokenizer.save_pretrained(folders[name])
        done = subprocess.run([python, "-I", "-c", NNTERP13_CHILD, json.dumps([folders, rounds + 1, str(device)])],
                              capture_output=True, text=True, timeout=1800, cwd=folder)
    line = next((line for line in done.stdout.splitlines() if line.startswith("NNTERP13 ")), None)
    if done.returncode or line is None:
        sys.exit(f"the nnterp 1.3.0 interpreter {python} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(line.removeprefix("NNTERP13 "))
