"""Tiny, seeded image-text-to-text models (vision-language models) with a processor built in code.

The model is shrunk like the causal-LM toys (``nnterp.toy.build``); its processor pairs the
toy tokenizer, given the special tokens the processor class writes, with the model type's
Pillow image processor. Per-class corrections are rows of ``VISION_TOY_FIXES``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ToyModelUnsupported
from ..utils.extras import require_extra
from ..utils.images import noise_image
from .build import SEED, TOKEN_ID_FIELDS, _shrunk_fields, types_named, validated_config
from .fixes import UNDECLARED_PAD
from .tokenizer import toy_tokenizer
from .vision_fixes import VISION_TOY_FIXES, VisionToyFix

# Special-token spellings a processor class writes as string literals: <image>, <|image_pad|>, [IMG].
_SPECIAL_LITERAL = re.compile(r"""["'](<\|?[A-Za-z_][\w\-/:.]*\|?>|\[[A-Z][A-Z_]*\])["']""")
# Config fields holding a token id, matched by name (their defaults point into the real vocabulary).
_TOKEN_FIELD = re.compile(r"^(?P<stem>\w+?)_token_(id|index)$")
# Vision-tower sizes beyond the causal toys' SMALL_SIZES, set wherever a (sub)config has the field.
VISION_SMALL_SIZES: dict[str, Any] = {"depth": 2, "out_hidden_size": 64, "vision_layers": 2}
# How a command line asks for the vision-language toy of a type the causal-LM mapping also holds: vlm:gemma3.
VLM_NAME_PREFIX = "vlm:"
# The toy chat template: one user turn, each image written as the row's prompt writes it, then the text.
CHAT_TEMPLATE = ("{% for message in messages %}{% for part in message['content'] %}"
                 "{% if part['type'] == 'image' %}IMAGE{% else %}{{ part['text'] }}{% endif %}"
                 "{% endfor %}{% endfor %}")
# A run of special tokens (<|vision_start|>, [IMG]): the ones right before and right after the image in a row's
# prompt belong to the image's markup.
_MARKUP = r"(?:<[^<>\s]+>|\[[A-Z_]+\])*"


@dataclass(frozen=True)
class ToyVLM:
    """A toy vision-language model, its processor, and one sample prompt and image it runs on."""

    model: Any
    processor: Any
    model_type: str
    class_name: str
    prompt: str
    image: Any

    def inputs(self, prompts: list[str] | None = None) -> dict[str, Any]:
        """The processor's encoding of ``prompts`` (default: the sample prompt), one sample image per prompt."""
        prompts = prompts or [self.prompt]
        return dict(self.processor(text=prompts, images=[[self.image] for _ in prompts], return_tensors="pt",
                                   padding=True))


def image_text_to_text_classes() -> dict[str, str]:
    """Every model type of the installed transformers' image-text-to-text auto mapping -> class name."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return dict(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def resolve_vlm_type(name: str) -> str:
    """Accept a model type ("llava") or a class name ("LlavaForConditionalGeneration")."""
    matches = types_named(name, image_text_to_text_classes())
    if not matches:
        raise KeyError(f"{name!r} is neither a model type nor a class name of transformers' image-text-to-text "
                       "mapping; run `python -m nnterp toy --list` to see the toy models on offer.")
    return matches[0]


def resolve_toy_name(name: str) -> tuple[str, bool]:
    """A toy named on the command line: (model type, whether its vision-language toy is meant). A causal-LM type
    or class name first, then an image-text-to-text one; ``vlm:NAME`` asks for the vision-language toy of a type
    both mappings hold. A KeyError naming both mappings otherwise."""
    from .build import resolve_model_type

    try:
        if name.startswith(VLM_NAME_PREFIX):
            return resolve_vlm_type(name.removeprefix(VLM_NAME_PREFIX)), True
        try:
            return resolve_model_type(name), False
        except KeyError:
            return resolve_vlm_type(name), True
    except KeyError:
        raise KeyError(f"{name!r} is neither a model type nor a class name of transformers' causal-LM or "
                       "image-text-to-text mappings; run `python -m nnterp toy --list` to see the toy models on "
                       "offer.") from None


def vision_toy_fix(model_type: str) -> VisionToyFix:
    """The VISION_TOY_FIXES row of a model type's class, as it applies to the installed transformers."""
    import transformers

    fix = VISION_TOY_FIXES.get(model_type) or VISION_TOY_FIXES.get(image_text_to_text_classes()[model_type],
                                                                   VisionToyFix())
    return fix.on(transformers.__version__)  # type: ignore[return-value]  # replace() keeps the subclass


def transformers_class(name: str) -> Any:
    """A transformers class by name. The top level hands out a placeholder for a class whose module declares a
    torchvision need (PixtralProcessor, the video processors) even where the class itself never uses it: the
    real class then comes from its own module, imported beside the Pillow twins of its package's torchvision
    image-processing modules, which define the same helpers."""
    import transformers

    value = getattr(transformers, name)
    if type(value).__name__ == "DummyObject":  # the placeholder of a missing backend
        value = getattr(_import_beside_pil(value.__module__), name)
    return value


def _import_beside_pil(module_name: str) -> Any:
    """Import ``module_name`` while each ``image_processing_X`` module of its package stands in as its Pillow
    twin ``image_processing_pil_X`` (sys.modules restored afterwards)."""
    import importlib
    import pkgutil
    import sys

    package = importlib.import_module(module_name.rpartition(".")[0])
    names = {info.name for info in pkgutil.iter_modules(package.__path__)}
    aliases = {f"{package.__name__}.{name}": f"{package.__name__}.{twin}" for name in names
               if name.startswith("image_processing_") and not name.startswith("image_processing_pil_")
               and (twin := name.replace("image_processing_", "image_processing_pil_", 1)) in names}
    saved = {alias: sys.modules.get(alias) for alias in aliases}
    try:
        for alias, twin in aliases.items():
            sys.modules[alias] = importlib.import_module(twin)
        return importlib.import_module(module_name)
    finally:
        for alias, module in saved.items():
            if module is None:
                sys.modules.pop(alias, None)
            else:
                sys.modules[alias] = module


def _processor_classes(model_type: str, fix: VisionToyFix) -> tuple[type, type]:
    """The processor class and the Pillow image processor class of a model type (a row may name others)."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    processor_name = fix.processor_class or PROCESSOR_MAPPING_NAMES.get(model_type)
    image_names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    if isinstance(image_names, tuple):  # transformers 5.0: (slow, fast), the slow one runs on Pillow and numpy
        image_names = {kind: found for kind, found in zip(("pil", "fast"), image_names) if found}
    image_name = fix.image_processor_class or image_names.get("pil")
    if processor_name is None:
        raise ToyModelUnsupported(model_type, "transformers maps no processor class to it")
    if image_name is None:
        found = ", ".join(image_names.values()) or "none"
        raise ToyModelUnsupported(model_type, f"it has no Pillow image processor (image processors: {found}); the "
                                              "torchvision ones cannot load beside the CPU torch wheel")
    return transformers_class(processor_name), transformers_class(_pillow_name(image_name))


def _pillow_name(name: str) -> str:
    """A Pillow image processor's name as the installed transformers spells it: releases before the ``Pil``
    classes (5.0) call the Pillow one by the bare name (``Qwen2VLImageProcessor``)."""
    import transformers

    bare = name.removesuffix("Pil")
    return name if hasattr(transformers, name) or not hasattr(transformers, bare) else bare


def _processor_source(processor_class: type) -> str:
    """The source of a processor class and of its transformers model-specific bases (what it reads and spells)."""
    return "\n".join(inspect.getsource(klass) for klass in processor_class.__mro__
                     if klass.__module__.startswith("transformers.models."))


def _special_tokens(processor_class: type, fix: VisionToyFix) -> list[str]:
    """The special tokens the processor class spells in its source, and the row's own."""
    found = _SPECIAL_LITERAL.findall(_processor_source(processor_class))
    return list(dict.fromkeys(found + list(fix.special_tokens)))


def toy_processor(model_type: str, fix: VisionToyFix | None = None) -> Any:
    """The processor of a toy VLM: the toy tokenizer with the processor's special tokens, and the type's
    Pillow image processor with the row's settings."""
    fix = fix or vision_toy_fix(model_type)
    processor_class, image_processor_class = _processor_classes(model_type, fix)
    tokenizer = toy_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": _special_tokens(processor_class, fix)})
    for name, token in fix.tokenizer_tokens.items():  # e.g. tokenizer.image_token, read by some processors
        setattr(tokenizer, name, token)
    _tokenizer_attributes(processor_class, tokenizer)
    arguments: dict[str, Any] = {"image_processor": image_processor_class(**fix.image_processor),
                                 "tokenizer": tokenizer}
    parameters = inspect.signature(processor_class).parameters
    if "video_processor" in parameters:  # built where the processor reads its settings (MiniCPM-V), else None
        arguments["video_processor"] = transformers_class(fix.video_processor_class)() \
            if fix.video_processor_class else None
    if "feature_extractor" in parameters:  # an omni processor's audio side: the toys take images
        arguments["feature_extractor"] = None
    for name in processor_class.get_attributes():  # type: ignore[attr-defined]  # InstructBLIP's qformer_tokenizer
        if name.endswith("tokenizer") and name != "tokenizer" and name in parameters:
            arguments[name] = toy_tokenizer()
    processor = _images_only(processor_class)(**arguments, **fix.processor)
    for name, value in fix.processor_attributes.items():  # read by __call__ from the instance (Kosmos-2)
        setattr(processor, name, value)
    return processor


def _images_only(processor_class: type) -> type:
    """The processor class accepting the toys' video processor and a None feature extractor: the toys take
    images, and transformers checks a video processor against BaseVideoProcessor, which needs torchvision."""
    attributes = set(processor_class.get_attributes())  # type: ignore[attr-defined]  # a ProcessorMixin
    if not {"video_processor", "feature_extractor"} & attributes:
        return processor_class

    def check_argument_for_proper_class(self: Any, argument_name: str, argument: Any) -> Any:
        if argument_name == "video_processor" or (argument_name == "feature_extractor" and argument is None):
            return None
        return processor_class.check_argument_for_proper_class(self, argument_name, argument)  # type: ignore[attr-defined]

    return type(processor_class.__name__, (processor_class,),
                {"check_argument_for_proper_class": check_argument_for_proper_class, "__module__": __name__})


def _tokenizer_attributes(processor_class: type, tokenizer: Any) -> None:
    """Give the tokenizer each ``tokenizer.<name>_token`` (and ``_token_id``) the processor class reads from it
    (a checkpoint's tokenizer config declares them): the token spelled ``<name>``, added as special."""
    names = re.findall(r"tokenizer\.(\w+_token)(?:_id)?\b", _processor_source(processor_class))
    for name in dict.fromkeys(names):
        if name in ("pad_token", "bos_token", "eos_token", "unk_token") or hasattr(tokenizer, name):
            continue
        token = f"<{name.removesuffix('_token')}>"
        tokenizer.add_special_tokens({"additional_special_tokens": [token]}, replace_extra_special_tokens=False)
        setattr(tokenizer, name, token)
        setattr(tokenizer, f"{name}_id", tokenizer.convert_tokens_to_ids(token))


def _fill_from_config(processor: Any, config: Any) -> None:
    """Processor settings left None (LLaVA's patch_size, vision_feature_select_strategy) take the value the
    model's config, or its vision config, gives under the same name: a processor saved with a checkpoint
    states them, one built in code must agree with the model it feeds."""
    vision = getattr(config, "vision_config", None)
    for name, value in vars(processor).items():
        if value is None and not name.startswith("_"):
            found = getattr(config, name, None)
            found = found if found is not None else getattr(vision, name, None)
            if found is not None:
                setattr(processor, name, found)


def _token_id(processor: Any, stem: str) -> int | None:
    """The processor's id for a config token field's stem ("image" -> image_token_id or image_token)."""
    tokenizer = processor.tokenizer
    value = getattr(processor, f"{stem}_token_id", None)
    if isinstance(value, int):
        return value
    token = getattr(processor, f"{stem}_token", None)
    if isinstance(token, str) and token in tokenizer.get_vocab():
        return tokenizer.convert_tokens_to_ids(token)
    spelled = next((t for t in tokenizer.all_special_tokens if t.strip("<|>[]").lower() == stem.lower()), None)
    return tokenizer.convert_tokens_to_ids(spelled) if spelled else None


def _token_fields(declared: dict[str, Any], processor: Any) -> dict[str, int]:
    """Each ``*_token_id`` / ``*_token_index`` field of a config set to the processor's id for it; a field
    the processor has no token for keeps its value if it fits the toy vocabulary, else takes <unk>."""
    tokenizer, fields = processor.tokenizer, {}
    for name, value in declared.items():
        match = _TOKEN_FIELD.match(name)
        if not match or name in TOKEN_ID_FIELDS or not (value is None or isinstance(value, int)):
            continue
        found = _token_id(processor, match.group("stem"))
        if found is not None:
            fields[name] = found
        elif isinstance(value, int) and value >= len(tokenizer):
            fields[name] = tokenizer.unk_token_id
    return fields


def _vision_sizes(fields: dict[str, Any], default: Any) -> dict[str, Any]:
    """VISION_SMALL_SIZES applied to the config's fields and, recursively, to its sub-configs' (a vision
    tower's depth), where the config class has them."""
    fields = {**fields, **{key: value for key, value in VISION_SMALL_SIZES.items() if key in default.__dict__}}
    for name in getattr(default, "sub_configs", {}):
        sub = getattr(default, name, None)
        if hasattr(sub, "__dict__") and isinstance(fields.get(name), dict):
            fields[name] = _vision_sizes(fields[name], sub)
    return fields


def chat_template(prompt: str) -> str:
    """A chat template laying out images as the row's prompt does: the markup around ``{image}`` (the
    special tokens right before and after it) per image part, text parts as they are. A prompt without
    ``{image}`` belongs to a processor that writes the image tokens itself (BLIP-2): image parts render empty."""
    if "{image}" not in prompt:
        return CHAT_TEMPLATE.replace("IMAGE", "")
    before, _, after = prompt.partition("{image}")
    markup_after = re.match(_MARKUP, after).group(0)  # type: ignore[union-attr]  # the pattern matches ""
    markup_before = re.search(_MARKUP + "$", before).group(0)  # type: ignore[union-attr]
    image = markup_before + "{{ image_token }}" + markup_after
    return CHAT_TEMPLATE.replace("IMAGE", image)


def toy_vlm_config(model_type: str, processor: Any, fix: VisionToyFix) -> Any:
    """The small config of one image-text-to-text type, its token ids pointing at the processor's tokens."""
    import transformers

    config_class = transformers.CONFIG_MAPPING[model_type]
    default = config_class()
    fields = _vision_sizes(_shrunk_fields(default, processor.tokenizer, fix.layers), default)
    fields.update(_token_fields(default.__dict__, processor))
    text_name = next((name for name in getattr(default, "sub_configs", {}) if name.startswith("text")), None)
    text_default = getattr(default, text_name, None) if text_name else None
    if text_name and hasattr(text_default, "__dict__") and isinstance(fields.get(text_name), dict):
        fields[text_name].update(_token_fields(text_default.__dict__, processor))
    if text_name and isinstance(fields.get(text_name), dict) and UNDECLARED_PAD.affects(transformers.__version__):
        fields[text_name].setdefault("pad_token_id", None)  # declared, as the causal toys' rows do on 5.0
    fields = fix.apply(fields)  # the row's own values win over the token ids found
    config = validated_config(model_type, config_class, fields, default)
    for path, tokens in fix.token_fields.items():
        *parents, name = path.split(".")
        target = config
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, processor.tokenizer.convert_tokens_to_ids(tokens))
    return config


def build_toy_vlm(name: str, attn_implementation: str | None = None) -> ToyVLM:
    """A tiny, seeded, eval-mode vision-language model of one type, with its processor and a sample input.

    Raises ToyModelUnsupported for a type whose row (or whose missing processor) says no toy can run here, and
    MissingExtra without the ``vlm`` extra (image processors need Pillow).
    """
    import torch
    import transformers

    require_extra("vlm", f"the toy vision-language model {name!r}")
    model_type = resolve_vlm_type(name)
    fix = vision_toy_fix(model_type)
    if fix.unsupported:
        raise ToyModelUnsupported(model_type, fix.unsupported)
    processor = toy_processor(model_type, fix)
    config = toy_vlm_config(model_type, processor, fix)
    _fill_from_config(processor, config)
    options = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(SEED)
    model_class = getattr(transformers, image_text_to_text_classes()[model_type])
    model = model_class._from_config(config, **options)
    model.eval()
    # the text standing for an image: the row's, else the processor's image token (InstructBLIP's: an AddedToken)
    image_token = fix.image_placeholder or str(getattr(processor, "image_token", None) or "")
    processor.chat_template = chat_template(fix.prompt).replace("{{ image_token }}", image_token)
    return ToyVLM(model, processor, model_type, type(model).__name__,
                  fix.prompt.format(image=image_token), noise_image(fix.image_size))
