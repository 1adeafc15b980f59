"""Resolve an architecture's native module paths onto the standardized names.

`resolve_architecture` turns a registry spec (plus a user's `RenameConfig`) into concrete
paths for one model; `ResolvedArchitecture.rename_dict` is what nnsight's ``rename=`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from ..errors import InvalidArgument, ModuleNotFoundForRename, RenamingError
from .registry import DEFAULT, ArchitectureSpec, Residual, spec_for

STANDARD_TOP = ("embed_tokens", "layers", "ln_final", "lm_head")
STANDARD_PER_LAYER = {"attention": "self_attn", "mlp": "mlp"}
PER_LAYER_FIELDS = ("attention", "mlp", "attention_output", "mlp_input", "mlp_output")


def _as_tuple(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class RenameConfig:
    """Describe an architecture nnterp does not know, or override what it knows.

    Each name field takes a native path (or a list of candidates) and is tried before the
    registry's. ``attn_prob_ops`` pins where attention probabilities are read: the chain of
    ``.source`` operation names from the attention module down to the probabilities,
    e.g. ``("attention_interface_1", "attn_weights_3")``.
    """

    embed_tokens: str | list[str] | None = None
    layers: str | list[str] | None = None
    ln_final: str | list[str] | None = None
    lm_head: str | list[str] | None = None
    attention: str | list[str] | None = None
    mlp: str | list[str] | None = None
    attention_output: str | list[str] | None = None
    mlp_input: str | list[str] | None = None
    mlp_output: str | list[str] | None = None
    residual: Residual | str | None = None
    attn_prob_ops: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or item.name == "residual":
                continue
            if not _is_path_or_paths(value, allow_str=item.name != "attn_prob_ops"):
                expected = "a tuple of operation names" if item.name == "attn_prob_ops" else \
                    "a dotted module path (str) or a list of them"
                raise InvalidArgument(f"RenameConfig({item.name}=...) must be {expected}, got "
                                      f"{type(value).__name__} {value!r:.80}")
        if self.residual is not None and self.residual not in {member.value for member in Residual}:
            raise InvalidArgument(f"RenameConfig(residual=...) must be one of "
                                  f"{[member.value for member in Residual]}, got {self.residual!r}")

    def user_paths(self, names: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """The paths this config gives for each of ``names`` (fields left None omitted)."""
        return {name: _as_tuple(getattr(self, name)) for name in names if getattr(self, name) is not None}

    def apply(self, spec: ArchitectureSpec) -> ArchitectureSpec:
        """The spec with this config's names tried first."""
        changes: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None or item.name == "attn_prob_ops":
                continue
            if item.name == "residual":
                changes["residual"] = Residual(value)
            else:
                changes[item.name] = _as_tuple(value) + getattr(spec.paths, item.name)
        return spec.like(**changes)


def _is_path_or_paths(value: Any, allow_str: bool) -> bool:
    """Whether ``value`` is a non-empty string (if allowed) or a non-empty list/tuple of them."""
    if isinstance(value, str):
        return allow_str and bool(value)
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, str) and v for v in value)


def _children_text(module: Any) -> str:
    return ", ".join(f"{n} ({type(m).__name__})" for n, m in module.named_children()) or "none"


def check_rename_config(rename_config: Any) -> None:
    """Raise InvalidArgument unless ``rename_config`` is None or a RenameConfig (a string is a common slip)."""
    if rename_config is not None and not isinstance(rename_config, RenameConfig):
        raise InvalidArgument(f"rename_config must be a RenameConfig, got {type(rename_config).__name__} "
                              f"{rename_config!r:.80}; e.g. rename_config=RenameConfig(layers='model.layers')")


def check_top_paths(model: Any, rename_config: RenameConfig, class_name: str) -> None:
    """Raise ModuleNotFoundForRename for a top-level RenameConfig path present nowhere in the model:
    a path the user gave is never silently replaced by the registry's default."""
    for name, paths in rename_config.user_paths(STANDARD_TOP).items():
        if not any(get_submodule(model, path) is not None for path in paths):
            raise ModuleNotFoundForRename(
                f"RenameConfig({name}={_shown(paths)}) names no module of this model. "
                f"Top-level modules: {_children_text(model)}", architecture=class_name, check="renaming",
                fix=f"pass the dotted path of the {name} module, as print(model) shows it")


def check_layer_paths(layers: Any, rename_config: RenameConfig, class_name: str) -> None:
    """The same for per-layer paths (relative to a layer): each must be present in some layer."""
    for name, paths in rename_config.user_paths(PER_LAYER_FIELDS).items():
        if not any(get_submodule(layer, path) is not None for layer in layers for path in paths):
            raise ModuleNotFoundForRename(
                f"RenameConfig({name}={_shown(paths)}) names no module of any layer (paths are relative to a "
                f"layer). Modules of layer 0: {_children_text(layers[0])}", architecture=class_name,
                check="renaming", fix=f"pass the path of the {name} module inside one layer, e.g. 'self_attn'")


def _shown(paths: tuple[str, ...]) -> str:
    return repr(paths[0]) if len(paths) == 1 else repr(list(paths))


def get_submodule(root: Any, path: str) -> Any | None:
    """The module at a dotted path (``*`` matches the first child that leads on), or None."""
    if not path:
        return root
    head, _, rest = path.partition(".")
    children = dict(root.named_children()) if head == "*" else {head: getattr(root, head, None)}
    for child in children.values():
        if child is None or not hasattr(child, "named_children"):
            continue
        found = get_submodule(child, rest) if rest else child
        if found is not None:
            return found
    return None


def find_path(root: Any, candidates: tuple[str, ...]) -> str | None:
    """The concrete dotted path of the first candidate present under ``root``."""
    for candidate in candidates:
        found = get_submodule(root, candidate)
        if found is not None:
            return module_path(root, found)
    return None


def module_path(root: Any, target: Any) -> str | None:
    """The dotted path of ``target`` under ``root``, found by identity."""
    for name, module in root.named_modules():
        if module is target:
            return name
    return None


@dataclass(frozen=True)
class ResolvedArchitecture:
    """Concrete paths of the standardized modules in one model.

    Per-layer tuples hold one entry per layer (``None`` where a layer lacks the module,
    e.g. the attention of a Mamba layer in a hybrid model).
    """

    class_name: str
    spec: ArchitectureSpec
    embed_tokens: str
    layers: str
    ln_final: str | None
    lm_head: str
    attention: tuple[str | None, ...]
    mlp: tuple[str | None, ...]
    attention_output: tuple[str | None, ...]
    mlp_input: tuple[str | None, ...]
    mlp_output: tuple[str | None, ...]
    attn_prob_ops: tuple[str, ...] | None = None
    head_transform: str | None = None
    # Standardized per-layer names that some layer's own child already has, for another module.
    native_names: frozenset[str] = frozenset()
    # Per layer: the spec's mlp_output_extra / residual_extra present in that layer, and the
    # factors (residual_scale_attr, output_scales) the block multiplies each output by.
    mlp_output_extra: tuple[tuple[str, ...], ...] = ()
    residual_extra: tuple[tuple[str, ...], ...] = ()
    residual_input: tuple[str | None, ...] = ()
    attention_scale: tuple[float, ...] = ()
    mlp_scale: tuple[float, ...] = ()
    residual_extra_scale: tuple[tuple[float, ...], ...] = ()

    @property
    def num_layers(self) -> int:
        return len(self.attention)

    @property
    def softmax_layers(self) -> tuple[int, ...]:
        """Layers whose attention path names softmax attention, not a token mixer (Mamba, RWKV...)."""
        if not self.spec.attention_facts.softmax_attention:
            return ()
        return tuple(i for i, path in enumerate(self.attention)
                     if path is not None and path not in self.spec.paths.token_mixers)

    @property
    def displaced_names(self) -> dict[str, str]:
        """Standardized top-level names that another native module holds (ModernBERT decoder's native
        ``lm_head`` is its head transform): name -> path of the module that should answer to it. nnsight
        refuses such aliases, so StandardizedTransformer binds them itself, after renaming the holder."""
        return {name: path for name in STANDARD_TOP
                if name == self.head_transform and (path := getattr(self, name)) != name}

    def rename_dict(self) -> dict[str, str]:
        """The nnsight ``rename=`` mapping: native path -> standardized name."""
        mapping = {path: name for name in STANDARD_TOP
                   if (path := getattr(self, name)) is not None and path != name and name not in self.displaced_names}
        if self.head_transform is not None:
            mapping[self.head_transform] = "head_transform"
        for field_name, standard in STANDARD_PER_LAYER.items():
            if standard in self.native_names:  # another module holds the name (LongCat's shortcut `mlp`
                continue                           # beside mlps[0]): reached through attentions[i] / mlps[i]
            for path in set(getattr(self, field_name)) - {None, standard} - set(self.spec.paths.token_mixers):
                mapping[path] = standard
        return {envoy_path(path): name for path, name in mapping.items()}


def envoy_path(path: str) -> str:
    """A module path as nnsight's envoy tree spells it: a module named like an envoy property
    (GIT's top-level ``output`` head) sits under a prefixed attribute (``E_output``)."""
    import inspect

    from nnsight.intervention.envoy import Envoy

    return ".".join(f"{Envoy.OVERLOAD_PREFIX}{part}" if inspect.isdatadescriptor(getattr(Envoy, part, None))
                    else part for part in path.split("."))


def _required(root: Any, candidates: tuple[str, ...], name: str, class_name: str, found: str | None = None) -> str:
    path = found or find_path(root, candidates)
    if path is None:
        top = ", ".join(f"{n} ({type(m).__name__})" for n, m in root.named_children())
        raise ModuleNotFoundForRename(
            f"no `{name}` module found; tried {list(candidates)}. Top-level modules: {top}",
            architecture=class_name, check="renaming",
            fix=f"pass rename_config=RenameConfig({name}='<path to the module>')",
        )
    return path


def _check_layer_list(layers: Any, path: str, class_name: str) -> None:
    """The module found as ``layers`` must hold the blocks: iterating it gives one or more modules (a
    ModuleList, a Sequential), not an Embedding's tensors or a ModuleDict's names."""
    blocks = list(layers) if hasattr(layers, "__iter__") and hasattr(layers, "__len__") else None
    if not blocks or not all(isinstance(block, torch.nn.Module) for block in blocks):
        what = "empty" if blocks == [] else f"a module of type {type(layers).__name__}, not a list of layers"
        raise RenamingError(f"`layers` ({path}) is {what}", architecture=class_name, check="renaming",
                            fix="pass rename_config=RenameConfig(layers='<path of the ModuleList holding the blocks>'),"
                                " as print(model) shows it")


def _per_layer(layers: Any, candidates: tuple[str, ...]) -> tuple[str | None, ...]:
    return tuple(_first_relative(layer, candidates) for layer in layers)


def _first_relative(layer: Any, candidates: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        if get_submodule(layer, candidate) is not None:
            return candidate
    return None


def resolve_architecture(model: Any, rename_config: RenameConfig | None = None) -> ResolvedArchitecture:
    """Find every standardized module of ``model`` (a HuggingFace PreTrainedModel)."""
    class_name = type(model).__name__
    spec = spec_for(type(model), getattr(model, "config", None))
    check_rename_config(rename_config)
    if rename_config is not None:
        spec = rename_config.apply(spec)
        check_top_paths(model, rename_config, class_name)
    if spec.unsupported:
        raise RenamingError(f"cannot be standardized: {spec.unsupported}", architecture=class_name, check="renaming")
    pre_norm_flag = spec.blocks.pre_norm_flag
    if pre_norm_flag and getattr(model.config, pre_norm_flag, True) is False:
        spec = spec.like(residual=Residual.NONE, note=f"post-norm blocks ({pre_norm_flag}=False)")
    paths, scale_attr = spec.paths, spec.blocks.residual_scale_attr
    embed = _required(model, paths.embed_tokens, "embed_tokens", class_name,
                      None if paths.embed_tokens else _hf_path(model, "get_input_embeddings"))
    layers_path = _required(model, paths.layers, "layers", class_name)
    lm_head = _required(model, paths.lm_head, "lm_head", class_name,
                        None if paths.lm_head else _head_path(model, layers_path))
    layers = model.get_submodule(layers_path)
    _check_layer_list(layers, layers_path, class_name)
    if rename_config is not None:
        check_layer_paths(layers, rename_config, class_name)
    attention = _per_layer(layers, paths.attention)
    mlp = _per_layer(layers, paths.mlp)
    attention_output = _per_layer(layers, paths.attention_output) if paths.attention_output else attention
    mlp_output = _per_layer(layers, paths.mlp_output) if paths.mlp_output else mlp
    residual_extra = _all_present(layers, paths.residual_extra)
    found = {"attention": attention, "mlp": mlp}
    native_names = frozenset(standard for field_name, standard in STANDARD_PER_LAYER.items()
                             for layer, path in zip(layers, found[field_name])
                             if path != standard and get_submodule(layer, standard) is not None)
    return ResolvedArchitecture(
        class_name=class_name, spec=spec, embed_tokens=embed, layers=layers_path, native_names=native_names,
        ln_final=find_path(model, paths.ln_final) or _final_norm(model, layers_path), lm_head=lm_head,
        head_transform=find_path(model, paths.head_transform),
        attention=attention, mlp=mlp,
        attention_output=attention_output, mlp_input=_per_layer(layers, paths.mlp_input) if paths.mlp_input else mlp,
        mlp_output=mlp_output, attn_prob_ops=rename_config.attn_prob_ops if rename_config else None,
        mlp_output_extra=_all_present(layers, paths.mlp_output_extra), residual_extra=residual_extra,
        residual_input=_per_layer(layers, paths.residual_input) if paths.residual_input else (),
        attention_scale=tuple(_scalar(layer, scale_attr) * _module_scale(layer, spec, path)
                              for layer, path in zip(layers, attention_output)),
        mlp_scale=tuple(_scalar(layer, scale_attr) * _module_scale(layer, spec, path)
                        for layer, path in zip(layers, mlp_output)),
        residual_extra_scale=tuple(tuple(_module_scale(layer, spec, path) for path in extra)
                                   for layer, extra in zip(layers, residual_extra)),
    )


def _final_norm(model: Any, layers_path: str) -> str | None:
    """Where no candidate names the final norm: the norm beside the layers that their parent's forward calls
    last (OPT inside BLIP-2: ``final_layer_norm``; Kosmos-2's text model: ``layer_norm``, not its embedding
    norm). Found from the parent's code, so a parent without a norm gives None (post-norm BERT)."""
    from .probing import call_order

    parent_path, _, _ = layers_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    norms = [name for name, child in parent.named_children() if "norm" in type(child).__name__.lower()]
    order = call_order(type(parent))  # type: ignore[arg-type]  # classes are hashable
    called = [name for name in norms if name in order]
    if not called:
        return None
    last = max(called, key=lambda name: order[name])
    return f"{parent_path}.{last}" if parent_path else last


def _module_scale(layer: Any, spec: ArchitectureSpec, path: str | None) -> float:
    """The factor a block multiplies one module's output by before adding it (``output_scales``)."""
    return next((_scalar(layer, attribute) for module, attribute in spec.blocks.output_scales if module == path), 1.0)


def _all_present(layers: Any, paths: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """Per layer, every one of ``paths`` present in it (not the first: they all contribute)."""
    return tuple(tuple(path for path in paths if get_submodule(layer, path) is not None) for layer in layers)


def _scalar(layer: Any, attribute: str) -> float:
    """A layer's scalar attribute as a float (1.0 when unnamed or absent)."""
    value = getattr(layer, attribute, None) if attribute else None
    return 1.0 if value is None else float(value)


def _hf_path(model: Any, getter: str) -> str | None:
    """Path of the module a HuggingFace getter returns (input/output embeddings), if any."""
    try:
        target = getattr(model, getter)()
    except (AttributeError, NotImplementedError):
        return None
    return module_path(model, target) if target is not None else None


def _head_path(model: Any, layers: str) -> str | None:
    """The outermost module holding the output embeddings but not the layers: the whole head (BERT's ``cls``),
    not a wrapper around the whole language model (Kosmos-2's ``text_model``, which holds ``lm_head``)."""
    path = _hf_path(model, "get_output_embeddings")
    if not path:
        return None
    parts = path.split(".")
    return next(".".join(parts[:depth]) for depth in range(1, len(parts) + 1)
                if not (layers + ".").startswith(".".join(parts[:depth]) + "."))


def get_rename_dict(model: Any = None, rename_config: RenameConfig | None = None) -> dict[str, str]:
    """The ``rename=`` mapping for plain nnsight models.

    With a model: exactly the paths of that model. Without: every native spelling the
    default spec knows, for use on a model you have not built yet.
    """
    if model is not None:
        return resolve_architecture(model, rename_config).rename_dict()
    paths = (rename_config.apply(DEFAULT) if rename_config else DEFAULT).paths
    mapping = {path: name for name in ("layers", "ln_final") for path in getattr(paths, name) if "*" not in path}
    mapping.update(dict.fromkeys(paths.embed_tokens_spellings, "embed_tokens"))
    mapping.update(dict.fromkeys(paths.lm_head_spellings, "lm_head"))
    mapping.update(dict.fromkeys(paths.attention_aliases, "self_attn"))
    mapping.update(dict.fromkeys(paths.mlp_aliases, "mlp"))
    return mapping
