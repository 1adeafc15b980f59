"""StandardizedVLM: a vision-language model whose language side has the standardized interface of every
causal LM, and whose image side (vision tower, its layers, the projector into the language model, the
positions image features take) is exposed under standard names."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from ..core.accessors import LayerwiseIO, rewrap, unwrap, walk
from ..core.registry import VisionFacts
from ..core.rename import envoy_path, find_path
from ..errors import ImageMismatch, InvalidArgument, RemoteRequestError, RenamingError, VisionUnavailable
from ..utils.extras import require_extra
from ..utils.image_inputs import (
    image_count,
    image_mismatch,
    is_marker_error,
    marker_counts,
    not_images,
    per_prompt_images,
)
from ..utils.images import noise_image
from ..utils.inputs import batched_ids
from ..utils.tokenizer_copy import own_processor, own_tokenizer
from .standardized import StandardizedTransformer, _hub_options


@dataclass(frozen=True)
class ResolvedVision:
    """Concrete paths of a vision-language model's image side (None where it has no such part)."""

    vision_tower: str | None
    vision_layers: str | None
    projector: str | None
    image_token_id: int | None


def _vision_tower_path(model: torch.nn.Module, facts: VisionFacts) -> str | None:
    """The registry's candidate, else the submodule built from the model's vision config (its config has the
    vision config's class): found by what the model's own code builds, not by its attribute name."""
    found = find_path(model, facts.vision_tower)
    if found is not None:
        return found
    vision_config = getattr(model.config, "vision_config", None)
    if vision_config is None:
        return None
    for name, module in model.named_modules():
        if name and type(getattr(module, "config", None)) is type(vision_config):
            return name
    return None


def _vision_layers_path(model: torch.nn.Module, tower: str | None, facts: VisionFacts) -> str | None:
    """The registry's candidate, else the longest stack of identical blocks inside the vision tower."""
    found = find_path(model, facts.vision_layers)
    if found is not None or tower is None:
        return found
    best: tuple[int, str] | None = None
    for name, module in model.get_submodule(tower).named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0 and \
                len({type(block) for block in module}) == 1 and (best is None or len(module) > best[0]):
            best = (len(module), name)
    return None if best is None else f"{tower}.{best[1]}"


def _image_token_id(model: torch.nn.Module, facts: VisionFacts, processor: Any) -> int | None:
    """The id of the token each image feature replaces: the config's (top level, then text config), else the
    processor's."""
    config: Any = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for source in (config, text_config):
        for key in facts.image_token_keys:
            value = getattr(source, key, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    value = getattr(processor, "image_token_id", None)
    return value if isinstance(value, int) else None


def resolve_vision(model: torch.nn.Module, facts: VisionFacts, processor: Any = None) -> ResolvedVision:
    """Find a vision-language model's vision tower, vision layers, projector and image token."""
    tower = _vision_tower_path(model, facts)
    projector = find_path(model, facts.projector)
    return ResolvedVision(vision_tower=tower, vision_layers=_vision_layers_path(model, tower, facts),
                          projector=projector, image_token_id=_image_token_id(model, facts, processor))


def _pad_batches(processor: Any) -> None:
    """Make the processor pad a batch of prompts: nnsight hands it ``trace([p1, p2], images=...)`` without
    ``padding=``, and processors take their tokenizer's init arguments as defaults."""
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.init_kwargs["padding"] = True


# Keywords of an encoding that carry images (or other media): their presence means the markers got them.
_MEDIA_KEYS = ("pixel", "image", "video", "vision", "audio", "input_features")


def _invoke_prompts(inputs: tuple, kwargs: dict[str, Any]) -> list[str] | None:
    """The text prompts of one invoke (positional, or the processor's ``text=``); None where it is not text."""
    data = inputs[0] if inputs else kwargs.get("text")
    if isinstance(data, str):
        return [data]
    if isinstance(data, (list, tuple)) and data and all(isinstance(prompt, str) for prompt in data):
        return list(data)
    return None


class StandardizedVLM(StandardizedTransformer):
    """An image-text-to-text model: the language model under the standardized names and accessors of
    :class:`StandardizedTransformer`, the image side under ``vision_tower``, ``vision_layers_output[i]``,
    ``image_embeddings`` (the projector's output) and ``image_token_mask``, validated when it loads on a
    prompt holding an image.

    Example::

        model = StandardizedVLM("llava-hf/llava-1.5-7b-hf")
        with model.trace(model.image_prompt("What is this?"), images=[image]):
            image_positions = model.image_token_mask.save()
            hidden = model.layers_output[10].save()

    ``model`` is a hub id, a local path, or a built model (then pass ``processor=``; it is copied, and the
    copy's tokenizer is ``model.tokenizer``). ``sample_image`` is the image validation runs with (default:
    64 x 64 seeded noise). A prompt's image markers and its images must match (``image_markers`` counts the
    markers): markers without images, an ``images=`` that is not images, or different counts raise
    :class:`~nnterp.errors.ImageMismatch`. Everything else is as for :class:`StandardizedTransformer`. Needs the
    ``vlm`` extra (``pip install "nnterp[vlm]"``): :class:`~nnterp.errors.MissingExtra` otherwise.
    """

    def __init__(self, model: str | torch.nn.Module, *, processor: Any = None, sample_image: Any = None,
                 **kwargs: Any):
        # Before transformers loads a processor: its image processor needs Pillow, SmolVLM's num2words.
        require_extra("vlm", "StandardizedVLM")
        if not isinstance(model, str) and processor is None:
            raise InvalidArgument("a built vision-language model needs its processor: pass processor=<the "
                                  "model's processor> (e.g. AutoProcessor.from_pretrained(<its checkpoint>))")
        kwargs.setdefault("task", "image-text-to-text")
        self._processor_given = processor
        self._sample_image = sample_image
        super().__init__(model, **kwargs)

    def _own_preprocessors(self, tokenizer: Any, kwargs: dict[str, Any]) -> Any:
        """A copy of the caller's processor, whose tokenizer is the model's: nnsight pads that tokenizer on the
        left for a causal model, and the processor pads every batch with it."""
        if self._processor_given is None:
            return super()._own_preprocessors(tokenizer, kwargs)
        processor = kwargs["processor"] = own_processor(self._processor_given)
        if tokenizer is not None:
            processor.tokenizer = own_tokenizer(tokenizer)
        return getattr(processor, "tokenizer", None)

    def _lazy_load_preprocessors(self, repo_id: str, kwargs: dict[str, Any]) -> Any:
        """The processor of a model loaded lazily (``dispatch=False``), which nnsight's meta load no longer
        sources (see StandardizedTransformer._lazy_load_preprocessors); its tokenizer is the model's."""
        from transformers import AutoProcessor

        if kwargs.get("processor") is None:
            kwargs["processor"] = AutoProcessor.from_pretrained(repo_id, **_hub_options(kwargs))
        return getattr(kwargs["processor"], "tokenizer", None)

    def _resolve_names(self, module: torch.nn.Module) -> dict[str, str]:
        """The language side through the registry like any causal LM, then the image side's names."""
        names = super()._resolve_names(module)
        _pad_batches(self.processor)  # a loaded one (hub id, path) too
        self.vision = resolve_vision(module, self.architecture.spec.vision, self.processor)
        self._check_language_layers()
        taken = set(names.values())
        image_side = {self.vision.vision_tower: "vision_tower", self.vision.projector: "multi_modal_projector"}
        for path, name in image_side.items():
            if path is not None and path != name and name not in taken:
                names[envoy_path(path)] = name
        return names

    def _check_language_layers(self) -> None:
        """Refuse layers that are not the language model's: inside the vision tower, or under no module that
        also holds the token embeddings (a Q-Former's, which a wildcard candidate can reach first)."""
        arch, tower = self.architecture, self.vision.vision_tower
        inside_tower = tower is not None and (arch.layers + ".").startswith(tower + ".")
        shared = arch.layers.split(".")[0] == arch.embed_tokens.split(".")[0]
        if inside_tower or not shared:
            raise RenamingError(f"the layers found ({arch.layers}) are not the language model's: "
                                + ("they are inside the vision tower" if inside_tower else
                                   f"no module holds both them and the token embeddings ({arch.embed_tokens})"),
                                architecture=arch.class_name, check="renaming",
                                fix="pass rename_config=RenameConfig(layers='<path of the language model layers>')")

    def _remote_backend(self, remote: Any, blocking: bool, job_id: Any, verbose: bool) -> Any:
        """Refused: the request would carry the processor and the image side's state, which an NDIF server has
        no code for (its image inputs would too)."""
        raise RemoteRequestError("remote execution (remote=...) of a StandardizedVLM is not supported yet: its "
                                 "processor and image-side state cannot be shipped to an NDIF server; trace it "
                                 "locally, or trace the model with nnsight's TransformersModel")

    def _build_accessors(self, enable_attention_probs: bool, switched_from: str | None) -> None:
        super()._build_accessors(enable_attention_probs, switched_from)
        path = self.vision.vision_layers
        count = len(self._module.get_submodule(path)) if path else 0
        self._vision_layers = LayerwiseIO(count, lambda i: walk(self, f"{path}.{i}"), "output") if path else None

    # -- inputs ----------------------------------------------------------------

    def image_prompt(self, text: str, images: int = 1) -> str:
        """``text`` after ``images`` images, as the model's chat template lays out a user turn (its image
        markers included), or after the processor's image token where the processor has no template."""
        processor = self.processor
        if getattr(processor, "chat_template", None):
            content = [{"type": "image"}] * images + [{"type": "text", "text": text}]
            return processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                 add_generation_prompt=False)
        token = getattr(processor, "image_token", None)
        if not isinstance(token, str):
            raise VisionUnavailable(f"{type(processor).__name__} has neither a chat template nor an image token; "
                                    "write the prompt with the model's image markers yourself")
        return token * images + text

    invokes_batch = False  # nnsight cannot batch two invokes of processor encodings

    def probe_inputs(self, prompts: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Validation's invoke: each prompt after one image, as the model's chat template places it."""
        image = self._sample_image if self._sample_image is not None else noise_image()
        return ([self.image_prompt(prompt) for prompt in prompts],), {"images": [[image] for _ in prompts]}

    # -- images and their markers --------------------------------------------------

    @cached_property
    def image_marker_ids(self) -> frozenset[int]:
        """The token ids that mark where an image goes in a prompt, as the tokenizer writes them (before the
        processor expands a marker into the image's tokens): the image token, and the special tokens the chat
        template writes for an image and not for text (Gemma 3's begin-of-image token, which is not its image
        token; Qwen2-VL's vision start and end)."""
        ids = set() if self.vision.image_token_id is None else {self.vision.image_token_id}
        tokenizer = self.tokenizer
        if tokenizer is None:
            return frozenset(ids)
        try:
            with_image, text_only = (tokenizer(self.image_prompt("x", images=count), add_special_tokens=False)
                                     ["input_ids"] for count in (1, 0))
        except Exception:  # noqa: BLE001 - a template that cannot write a turn without an image: the image token only
            return frozenset(ids)
        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        ids |= {token for token in Counter(with_image) - Counter(text_only) if token in special}
        return frozenset(ids)

    def image_markers(self, prompts: str | list[str]) -> list[int]:
        """How many images each prompt marks (``image_marker_ids``), counted on its tokens."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        return [marker_counts(torch.tensor(self.tokenizer(prompt, add_special_tokens=False)["input_ids"],
                                           dtype=torch.long), self.image_marker_ids)[0] for prompt in prompts]

    def _batch(self, invokes: list, fn: Any) -> tuple:
        """nnsight's batching (the processor encodes text with images), refusing prompts whose image markers
        and images do not match with an ImageMismatch that names each prompt's counts: ``images=`` that are not
        images before, the processor's refusal during, and markers left without images (the model would read
        them as words) after. Every trace, generate and toolkit call on the model goes through here."""
        for index, (inputs, kwargs) in enumerate(invokes):
            for key in ("images", "image"):
                problem = not_images(kwargs[key]) if kwargs.get(key) is not None else None
                if problem is not None:
                    raise self._mismatch(problem, [(inputs, kwargs)])
                if kwargs.get(key) is not None and image_count(kwargs[key]) == 0:
                    # no image at all ([], [[]]): as None (the processor would encode an empty image tensor)
                    kwargs = {**kwargs, key: None}
                    invokes = [*invokes[:index], (inputs, kwargs), *invokes[index + 1:]]
        try:
            batched = super()._batch(invokes, fn)
        except ValueError as error:
            if not is_marker_error(error):
                raise
            raise self._mismatch(f"image markers and images do not match ({type(self.processor).__name__}: "
                                 f"{error})", invokes) from error
        self._check_markers_have_images(batched, invokes)
        return batched

    def _mismatch(self, problem: str, invokes: list) -> ImageMismatch:
        """The ImageMismatch for ``problem``, with the markers of the invokes' prompts and their images."""
        prompts: list[str] = []
        images: list[int] | None = []
        total = 0
        for inputs, kwargs in invokes:
            texts = _invoke_prompts(inputs, kwargs)
            if texts is None:
                continue
            given = kwargs.get("images", kwargs.get("image"))
            each = per_prompt_images(given, len(texts))
            images = None if each is None or images is None else images + each
            prompts += texts
            total += image_count(given)
        return image_mismatch(problem, prompts, self.image_markers(prompts), images, total)

    def _check_markers_have_images(self, batched: tuple, invokes: list) -> None:
        """Refuse an encoding whose ``input_ids`` hold image markers while it carries no image: tokenized
        without the images (``images=`` missing or None, a toolkit call or an encoding without them), the
        model would run it as text."""
        from torch._subclasses.fake_tensor import FakeTensor, unset_fake_temporarily

        ids, kwargs = batched_ids(batched)
        media = any(any(part in key for part in _MEDIA_KEYS) and value is not None and
                    not (isinstance(value, torch.Tensor) and value.numel() == 0) for key, value in kwargs.items())
        if media or ids is None or ids.is_floating_point() or isinstance(ids, FakeTensor) or ids.device.type == "meta":
            return
        with unset_fake_temporarily():
            markers = marker_counts(ids, self.image_marker_ids, kwargs.get("attention_mask"))
        if any(markers):
            prompts = [prompt for inputs, given in invokes for prompt in _invoke_prompts(inputs, given) or []]
            raise image_mismatch("image markers without images (the model would read them as words)",
                                 prompts if len(prompts) == len(markers) else None, markers, [0] * len(markers))

    # -- the image side ----------------------------------------------------------

    @property
    def image_token_id(self) -> int:
        """The id of the token each image feature replaces in ``input_ids``."""
        if self.vision.image_token_id is None:
            raise VisionUnavailable(f"{self.architecture.class_name}: no image token id in the config (tried "
                                    f"{list(self.architecture.spec.vision.image_token_keys)}) or the processor")
        return self.vision.image_token_id

    @property
    def image_token_mask(self) -> Any:
        """Inside a trace: (batch, seq) booleans, True where the input holds an image token (the positions
        image features take in the language model). Read it before any layer."""
        return self.input_ids == self.image_token_id

    @property
    def num_vision_layers(self) -> int:
        return len(self._vision_layers) if self._vision_layers is not None else 0

    @property
    def vision_layers_output(self) -> LayerwiseIO:
        """``vision_layers_output[i]``: the output of the vision tower's layer i, in the tower's own layout."""
        if self._vision_layers is None:
            raise VisionUnavailable(f"{self.architecture.class_name}: no vision tower with layers found "
                                    f"(tower: {self.vision.vision_tower})")
        return self._vision_layers

    @property
    def image_embeddings(self) -> Any:
        """Inside a trace: the projector's output, the image features as the language model receives them."""
        return unwrap(self._projector().output)

    @image_embeddings.setter
    def image_embeddings(self, value: Any) -> None:
        envoy = self._projector()
        envoy.output = rewrap(envoy.output, value)

    def _projector(self) -> Any:
        if self.vision.projector is None:
            raise VisionUnavailable(f"{self.architecture.class_name}: no projector found (tried "
                                    f"{list(self.architecture.spec.vision.projector)})")
        return walk(self, self.vision.projector)

