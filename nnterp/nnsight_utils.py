"""nnterp 1.x import path of the nnsight helpers; deprecated: use the model's accessors and ``nnterp``'s functions.

1.x's grab-bag of helpers is split by idea in 2.x (:mod:`nnterp.toolkit.activations`, the accessors of
:class:`StandardizedTransformer`). This module keeps 1.x notebooks running: the activation functions are
re-exported, the accessor helpers (``get_layer_output(model, i)`` ...) are one-line shims over the accessors,
and importing a helper 2.x has no counterpart for raises `RemovedHelper` naming what to use instead. It warns
once with a FutureWarning, since it will be removed. See README, "Coming from nnterp 1.x".
"""

from __future__ import annotations

import warnings
from typing import Any

from .errors import RemovedHelper
from .toolkit.activations import collect_token_activations_batched, compute_next_token_probs, get_token_activations

__all__ = ["collect_token_activations_batched", "compute_next_token_probs", "get_token_activations",
           "get_num_layers", "get_layer", "get_layer_input", "get_layer_output", "get_attention",
           "get_attention_output", "get_mlp", "get_mlp_output", "get_logits", "get_unembed_norm", "get_unembed",
           "project_on_vocab", "get_next_token_probs"]


def get_num_layers(nn_model: Any) -> int:
    """1.x: ``nn_model.num_layers``."""
    return nn_model.num_layers


def get_layer(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.layers[layer]``."""
    return nn_model.layers[layer]


def get_layer_input(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.layers_input[layer]``."""
    return nn_model.layers_input[layer]


def get_layer_output(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.layers_output[layer]``."""
    return nn_model.layers_output[layer]


def get_attention(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.attentions[layer]``."""
    return nn_model.attentions[layer]


def get_attention_output(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.attentions_output[layer]``."""
    return nn_model.attentions_output[layer]


def get_mlp(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.mlps[layer]``."""
    return nn_model.mlps[layer]


def get_mlp_output(nn_model: Any, layer: int) -> Any:
    """1.x: ``nn_model.mlps_output[layer]``."""
    return nn_model.mlps_output[layer]


def get_logits(nn_model: Any) -> Any:
    """1.x: ``nn_model.logits``."""
    return nn_model.logits


def get_unembed_norm(nn_model: Any) -> Any:
    """1.x: ``nn_model.ln_final``."""
    return nn_model.ln_final


def get_unembed(nn_model: Any) -> Any:
    """1.x: ``nn_model.lm_head``."""
    return nn_model.lm_head


def project_on_vocab(nn_model: Any, hidden_state: Any) -> Any:
    """1.x: ``nn_model.project_on_vocab(hidden_state)``."""
    return nn_model.project_on_vocab(hidden_state)


def get_next_token_probs(nn_model: Any) -> Any:
    """1.x: ``nn_model.next_token_probs``."""
    return nn_model.next_token_probs


# 1.x helpers with no shim here, and what replaces each.
REMOVED = {
    "load_model": "StandardizedTransformer(model_name) (it loads the model and standardizes its names)",
    "collect_activations": "nnterp.get_token_activations(model, prompts, idx=-1, layers=...)",
    "collect_activations_session": "nnterp.collect_token_activations_batched(model, prompts, batch_size)",
    "collect_activations_batched": "nnterp.collect_token_activations_batched(model, prompts, batch_size)",
    "next_token_probs": "nnterp.compute_next_token_probs(model, prompts)",
}


def __getattr__(name: str) -> Any:
    if name in REMOVED:
        raise RemovedHelper(f"nnterp.nnsight_utils.{name} was removed in nnterp 2.0: use {REMOVED[name]}")
    raise AttributeError(f"module 'nnterp.nnsight_utils' has no attribute {name!r}")


warnings.warn("nnterp.nnsight_utils will be removed in a future release: use the model's accessors "
              "(model.layers_output[i], model.num_layers, model.project_on_vocab ...) and import "
              "get_token_activations, collect_token_activations_batched and compute_next_token_probs from nnterp",
              FutureWarning, stacklevel=2)
