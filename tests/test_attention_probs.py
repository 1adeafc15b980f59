"""Locating attention probabilities behind decorators: every depth, with or without functools.wraps.

The modules are built here, so these tests do not depend on how a transformers release decorates
its forwards (5.24 wrapped most of them in ``deprecate_kwarg``; earlier releases did not).
"""

from __future__ import annotations

import functools

import pytest
import torch
from nnsight import NNsight

from nnterp.core.attention_probs import locate_attention_probabilities, undecorated


def logged(function):
    """A decorator in the functools.wraps style (``__wrapped__`` set, name copied)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return function(*args, **kwargs)
    return wrapper


def renaming_kwarg(old: str, new: str):
    """A decorator factory like transformers' deprecate_kwarg: renames a keyword, no functools.wraps."""
    def decorate(function):
        def inner(*args, **kwargs):
            if old in kwargs:
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)
        return inner
    return decorate


class Attention(torch.nn.Module):
    """Single-head softmax attention; subclasses only change how ``forward`` is decorated."""

    def __init__(self, hidden: int = 8):
        super().__init__()
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)

    def forward(self, x, scale=1.0):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) * scale
        weights = torch.softmax(scores, dim=-1)
        weights = weights.to(v.dtype)
        return weights @ v


class WrappedAttention(Attention):
    @logged
    def forward(self, x, scale=1.0):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) * scale
        weights = torch.softmax(scores, dim=-1)
        return weights @ v


class NestedAttention(Attention):
    @logged
    @renaming_kwarg("temperature", "scale")
    @logged
    def forward(self, x, scale=1.0):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) * scale
        probs = scores.softmax(dim=-1)
        return probs @ v


class Core(torch.nn.Module):
    """A child module computing the probabilities, its forward decorated."""

    @renaming_kwarg("mask", "bias")
    def forward(self, q, k, v, bias=None):
        scores = q @ k.transpose(-1, -2)
        attn = torch.nn.functional.softmax(scores, dim=-1)
        return attn @ v


class AttentionWithCore(Attention):
    def __init__(self, hidden: int = 8):
        super().__init__(hidden)
        self.core = Core()

    @logged
    def forward(self, x, scale=1.0):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.core(q * scale, k, v)


class OlderAttention(Attention):
    """As older forwards write it (XGLM in transformers 5.0): the softmax in an fp16-upcast if/else, then an
    ``if output_attentions`` view of the probabilities with an else, before dropout meets the values."""

    def forward(self, x, scale=1.0, output_attentions=False):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = q @ k.transpose(-1, -2) * scale
        if weights.dtype == torch.float16:
            weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(torch.float16)
        else:
            weights = torch.softmax(weights, dim=-1)
        if output_attentions:
            reshaped = weights.view(weights.shape)
            weights = reshaped.view(weights.shape)
        else:
            reshaped = None
        probs = torch.nn.functional.dropout(weights, p=0.0, training=self.training)
        return probs @ v


def reference_probabilities(module: Attention, x: torch.Tensor) -> torch.Tensor:
    q, k, _ = module.qkv(x).chunk(3, dim=-1)
    return torch.softmax(q @ k.transpose(-1, -2), dim=-1)


def read_and_edit(module: Attention, x: torch.Tensor):
    """Probabilities read through nnsight at the located operation, and the output after making them uniform."""
    location = locate_attention_probabilities(module)
    assert location is not None
    traced = NNsight(module)

    def operation():
        envoy = traced
        for part in filter(None, location.submodule.split(".")):
            envoy = getattr(envoy, part)
        source = envoy.source
        for op in location.ops[:-1]:
            source = getattr(source, op).source
        return getattr(source, location.ops[-1])

    with traced.trace(x):
        read = operation().output.save()
    with traced.trace(x):
        operation().output = torch.full_like(operation().output, 1 / x.shape[1])
        edited = traced.output.save()
    return location, read, edited


@pytest.mark.parametrize("module_class", [Attention, WrappedAttention, NestedAttention, AttentionWithCore,
                                          OlderAttention],
                         ids=lambda cls: cls.__name__)
def test_probabilities_are_found_behind_any_decorator(module_class):
    torch.manual_seed(0)
    module = module_class().eval()
    x = torch.randn(2, 5, 8)
    location, read, edited = read_and_edit(module, x)
    with torch.no_grad():
        assert torch.allclose(read, reference_probabilities(module, x), atol=1e-6)
        _, _, v = module.qkv(x).chunk(3, dim=-1)
        assert torch.allclose(edited, v.mean(dim=1, keepdim=True).expand_as(v), atol=1e-6)
        assert not torch.allclose(edited, module(x), atol=1e-4)  # the edit reached the model
    assert location.submodule == ("core" if module_class is AttentionWithCore else "")


def test_the_label_is_on_a_statement_every_call_runs():
    """Past an upcast branch and an output_attentions block: the dropout both paths reach, not a branch."""
    assert locate_attention_probabilities(OlderAttention()).ops[0].startswith("probs_")


def test_undecorated_peels_every_layer_to_the_body():
    body = undecorated(NestedAttention.forward)
    assert body.__code__.co_firstlineno > 0 and "softmax" in body.__code__.co_names
    assert undecorated(Attention.forward) is Attention.forward
    assert undecorated(undecorated(NestedAttention.forward)) is body


def test_the_location_names_the_body_function():
    location = locate_attention_probabilities(NestedAttention())
    assert location is not None and location.function is undecorated(NestedAttention.forward)
    assert location.ops[0].startswith("probs_") or location.ops[0].startswith("scores_softmax")


def test_a_forward_without_softmax_has_no_location():
    class Mixer(torch.nn.Module):
        @logged
        def forward(self, x):
            return torch.cumsum(x, dim=1)

    assert locate_attention_probabilities(Mixer()) is None
