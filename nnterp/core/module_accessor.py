"""Standardized access to a plain PyTorch HuggingFace model, without nnsight."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidArgument
from .accessors import check_layer_index
from .rename import RenameConfig, resolve_architecture


class ModuleAccessor:
    """``ModuleAccessor(hf_model).layers`` is the model's ``nn.ModuleList`` of blocks, whatever its native name.

    Useful to attach hooks or read weights with the same names as StandardizedTransformer.
    """

    def __init__(self, model: Any, rename_config: RenameConfig | None = None):
        if not isinstance(model, torch.nn.Module):
            raise InvalidArgument(f"ModuleAccessor takes a torch module (a HuggingFace PreTrainedModel), got "
                                  f"{type(model).__module__}.{type(model).__qualname__}")
        self.model = model
        self.architecture = resolve_architecture(model, rename_config)

    @property
    def embed_tokens(self) -> Any:
        return self.model.get_submodule(self.architecture.embed_tokens)

    @property
    def layers(self) -> Any:
        return self.model.get_submodule(self.architecture.layers)

    @property
    def ln_final(self) -> Any:
        path = self.architecture.ln_final
        return self.model.get_submodule(path) if path is not None else None

    @property
    def head_transform(self) -> Any:
        """The module between ln_final and lm_head where the head is two modules (ModernBERT decoder), else None."""
        path = self.architecture.head_transform
        return self.model.get_submodule(path) if path is not None else None

    @property
    def lm_head(self) -> Any:
        return self.model.get_submodule(self.architecture.lm_head)

    def get_layers(self) -> Any:
        return self.layers

    def get_attention(self, layer: int) -> Any:
        return self._sublayer(layer, self.architecture.attention)

    def get_mlp(self, layer: int) -> Any:
        return self._sublayer(layer, self.architecture.mlp)

    def _sublayer(self, layer: int, paths: tuple[str | None, ...]) -> Any:
        layer = check_layer_index(layer, len(paths))
        path = paths[layer]
        return self.layers[layer].get_submodule(path) if path is not None else None
