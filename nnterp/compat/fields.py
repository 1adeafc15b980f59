"""The words a compatibility report is made of: its schema version, the packages of its version set, the kinds of
model and the tasks it records. Shared by the dataclasses (``schema``) and the file validation (``validation``),
so that neither imports the other's module for them."""

from __future__ import annotations

from typing import Literal, get_args

SCHEMA_VERSION = 1
VERSIONED_PACKAGES = ("nnterp", "transformers", "nnsight", "torch")
ModelKind = Literal["toy", "real"]
MODEL_KINDS: tuple[ModelKind, ...] = get_args(ModelKind)
# What a model was tested as: a causal LM (StandardizedTransformer) or a vision-language model (StandardizedVLM).
Task = Literal["text-generation", "image-text-to-text"]
TEXT_GENERATION: Task = "text-generation"
