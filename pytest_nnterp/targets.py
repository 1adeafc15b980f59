"""What the suite checks: toy models and real models, each with an id readable in test names."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Target:
    """One model the suite loads: a toy (by model type) or a real model (hub id or local path)."""

    model_id: str  # "toy:llama" or the hub id / path
    kind: str  # "toy" or "real"
    architecture: str  # HuggingFace class name (the report's key)
    label: str  # the test-id part: "LlamaForCausalLM-toy"
    path: str = ""  # where a real model loads from, when not its id
    task: str = "text-generation"  # or "image-text-to-text": loaded as a StandardizedVLM

    @property
    def source(self) -> str:
        """What to load: the model type of a toy, the path or id of a real model."""
        if self.kind != "toy":
            return self.path or self.model_id
        return self.model_id.removeprefix(VLM_TOY_PREFIX).removeprefix("toy:")


# Model ids of toy vision-language models whose type the causal-LM mapping also holds (its text-only toy keeps
# "toy:<type>"); names on the command line ask for them as "vlm:<type or class>" (nnterp.toy.vision).
VLM_TOY_PREFIX = "toy-vlm:"


def toy_targets(names: tuple[str, ...]) -> list[Target]:
    """Toy targets for class names / model types ("vlm:NAME": the vision-language toy of a type both mappings
    hold), or for 'all': every causal-LM type, then every image-text-to-text type as a vision-language model."""
    from nnterp.toy import causal_lm_classes, resolve_model_type
    from nnterp.toy.vision import image_text_to_text_classes, resolve_toy_name

    classes, vision_classes = causal_lm_classes(), image_text_to_text_classes()
    types: list[str] = []
    vision_types: list[str] = []
    if "all" in names:
        types, vision_types = list(classes), list(vision_classes)
    for name in (name for name in names if name != "all"):
        try:
            model_type, vision = resolve_toy_name(name)
        except KeyError as error:
            raise pytest.UsageError(f"--nnterp-classes: {error.args[0]}") from None
        (vision_types if vision else types).append(model_type)
    canonical = {classes[t]: resolve_model_type(classes[t]) for t in types}
    text = [Target(f"toy:{t}", "toy", classes[t],
                   f"{classes[t]}-toy" if canonical[classes[t]] == t else f"{classes[t]}-toy:{t}")
            for t in dict.fromkeys(types)]
    return text + [Target(f"{VLM_TOY_PREFIX if t in classes else 'toy:'}{t}", "toy", vision_classes[t],
                          f"{vision_classes[t]}-toy-vlm:{t}" if t in classes else f"{vision_classes[t]}-toy:{t}",
                          task="image-text-to-text") for t in dict.fromkeys(vision_types)]


def real_targets(names: tuple[str, ...]) -> list[Target]:
    """Real-model targets, ``ID`` or ``LABEL=PATH`` (report the model under LABEL, load it from PATH).

    The architecture comes from the model's config when it can be read offline.
    """
    targets = []
    for name in names:
        label, _, path = name.partition("=") if "=" in name else (name, "", name)
        architecture = _architecture_of(path)
        targets.append(Target(label, "real", architecture, f"{architecture}-{label}", path, task_of(architecture)))
    return targets


def _architecture_of(name: str) -> str:
    try:
        from pathlib import Path

        from transformers import AutoConfig

        gguf = Path(name)
        config = (AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name) if name.endswith(".gguf")
                  else AutoConfig.from_pretrained(name))
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except Exception:  # noqa: BLE001 - unknown until the model loads; the load will report why
        return "unknown"
    if config.architectures:
        return config.architectures[0]
    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type, "unknown")  # GGUF configs name no class


def task_of(architecture: str) -> str:
    """"image-text-to-text" for a class of that mapping outside the causal-LM one, else "text-generation"."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    vision = set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.values()) - set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    return "image-text-to-text" if architecture in vision else "text-generation"
