"""Tiny offline models of every transformers causal-LM architecture."""

from ..errors import ToyConfigRejected, ToyModelUnsupported
from .build import ToyModel, build_toy_model, causal_lm_classes, resolve_model_type, toy_config, toy_fix
from .fixes import TOY_FIXES, ToyFix, UpstreamBug
from .tokenizer import toy_tokenizer

__all__ = ["TOY_FIXES", "ToyConfigRejected", "ToyFix", "ToyModel", "ToyModelUnsupported", "UpstreamBug",
           "build_toy_model", "causal_lm_classes", "resolve_model_type", "toy_config", "toy_fix", "toy_tokenizer"]
