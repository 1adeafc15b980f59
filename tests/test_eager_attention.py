"""Switching a built model to eager attention, attention classes chosen at build included.

Older modeling files (transformers 5.0's DiffLlama, Nemotron, Moshi) pick one attention class per
implementation from a ``*_ATTENTION_CLASSES`` table when the model is built; the table here stands
in for them, so the test does not depend on which releases still have one.
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import torch

from nnterp.core.eager_attention import use_eager_attention
from nnterp.toy.standardized import standardized_toy


class ToyAttention(torch.nn.Module):
    def __init__(self, hidden: int = 8):
        super().__init__()
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1) @ v


class ToySdpaAttention(ToyAttention):
    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


class Unlisted(ToySdpaAttention):
    """A subclass no table lists: left as it is."""


def _modeling_file(monkeypatch) -> None:
    """Register a module holding the classes and their implementation table, as a modeling file does."""
    modeling = types.ModuleType("toy_modeling_with_attention_table")
    for cls in (ToyAttention, ToySdpaAttention, Unlisted):
        monkeypatch.setattr(cls, "__module__", modeling.__name__)
    modeling.TOY_ATTENTION_CLASSES = {"eager": ToyAttention, "sdpa": ToySdpaAttention}
    monkeypatch.setitem(sys.modules, modeling.__name__, modeling)


def test_an_attention_class_chosen_at_build_becomes_its_eager_base(monkeypatch):
    _modeling_file(monkeypatch)
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.config = SimpleNamespace(_attn_implementation="sdpa")
    model.chosen, model.unlisted = ToySdpaAttention(), Unlisted()
    x = torch.randn(1, 5, 8)
    with torch.no_grad():
        before = model.chosen(x)
    assert use_eager_attention(model) == "sdpa"
    assert type(model.chosen) is ToyAttention and type(model.unlisted) is Unlisted
    with torch.no_grad():
        assert torch.allclose(model.chosen(x), before, atol=1e-6)  # same weights, now through the softmax


def test_a_built_sdpa_diffllama_yields_verified_probabilities():
    """Its attention class was chosen at build in transformers 5.0: the load checks must pass all the same."""
    model = standardized_toy("diffllama")
    checks = {result.name.value: result for result in model.check_results}
    assert checks["attn_probs"].passed
