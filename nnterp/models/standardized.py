"""StandardizedTransformer: one interface over every HuggingFace causal LM, through nnsight renaming."""

from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager, nullcontext
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator

import torch
from nnsight.modeling.transformers import TransformersModel

from ..checks.catalogue import CheckResult
from ..compat.lookup import warn_for_architecture
from ..core.accessors import (
    AttentionProbabilities,
    BatchFolded,
    LayerwiseContribution,
    LayerwiseIO,
    LayerwiseModules,
    walk,
)
from ..core.aliases import bind_where_resolvable
from ..core.attention_probs import locate_attention_probabilities
from ..core.eager_attention import use_eager_attention
from ..core.heads import head_accessors
from ..core.remote import RemoteMixin
from ..core.rename import RenameConfig, ResolvedArchitecture, check_rename_config, resolve_architecture
from ..core.trace_time import TraceFacts, TraceTimeMembers, check_hidden_size, unembed
from ..errors import (
    InputTooLong,
    InputTooLongWarning,
    InvalidArgument,
    ModelNotFound,
    RenamingError,
    ToolkitInputError,
    ValidationFailed,
)
from ..utils.inputs import batched_ids, check_token_rows, check_trace_input
from ..utils.restore import restored_on_failure
from ..utils.tokenizer_copy import own_tokenizer


def _config_ints(config: Any, keys: Iterable[str]) -> Iterator[int]:
    """The int values of ``keys``, in order, in the text config of multimodal models, then in the config."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for source in (text_config, config):
        for key in keys:
            value = getattr(source, key, None)
            if isinstance(value, int):
                yield value


def _config_value(config: Any, keys: Iterable[str], what: str, architecture: str) -> int:
    """The first present config key, looked up in the text config of multimodal models."""
    for value in _config_ints(config, keys):
        return value
    raise RenamingError(f"config has none of {list(keys)} for {what}", architecture=architecture,
                        check="config", fix=f"register the config key for {what} in the architecture's registry row")


def _load_gguf(path: str, tokenizer: Any) -> tuple[torch.nn.Module, Any]:
    """A GGUF file's model (dequantized) and, unless one is given, its embedded tokenizer."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM, AutoTokenizer

    file = Path(path)
    if not file.is_file():
        raise ModelNotFound(f"no GGUF file at {path}; pass the path of an existing .gguf file")
    model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name)
    return model, tokenizer or AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)


# The per-layer accessors every StandardizedTransformer has, in the order they are built.
ACCESSOR_NAMES = ("attentions", "mlps", "layers_input", "layers_output", "attentions_input", "attentions_output",
                  "mlps_input", "mlps_output", "attention_probabilities",
                  "heads_output", "queries", "keys", "values")

# Config keys giving the longest input a model was built or trained for, first present wins.
POSITION_LIMIT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length", "seq_length",
                       "max_seq_len", "context_length")
_HUB_ID = re.compile(r"^[A-Za-z0-9_][\w.-]*(/[\w.-]+)?$")
# A learned position table may hold a few extra rows (OPT offsets positions by 2).
LEARNED_POSITION_SLACK = 2


def _check_arguments(model: Any, rename_config: Any, flags: dict[str, Any]) -> None:
    """Refuse arguments of the wrong type before anything loads (and before any network access)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InvalidArgument(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    check_rename_config(rename_config)  # before anything loads
    if isinstance(model, str):
        if not model.strip():
            raise ModelNotFound(f"model is {model!r}: pass a hub id like 'gpt2' or 'org/name', the path of a local "
                                "folder holding config.json, a .gguf file, or a built HuggingFace causal LM")
        _check_local_path(model)
    elif not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise InvalidArgument(
            f"model must be a hub id, a local path, a .gguf file or a HuggingFace causal LM (PreTrainedModel), "
            f"got {type(model).__module__}.{type(model).__qualname__}"
            + ("" if model is None else "; a plain torch module has no config to standardize"))


def _check_local_path(model: str) -> None:
    """Fail fast, without the network, on a model string that looks like a local path and names nothing.

    Path-looking: starts with / . ~, or holds a separator without being a hub id ('gpt2', 'org/name')."""
    looks_local = model.startswith(("/", ".", "~")) or (os.sep in model or "/" in model) and not _HUB_ID.match(model)
    path = os.path.expanduser(model)
    if looks_local and not os.path.exists(path):
        raise ModelNotFound(f"no model at local path {model!r} (resolved to {os.path.abspath(path)}); "
                            "pass an existing folder holding config.json, or a hub id like 'gpt2' or 'org/name'")


def _hub_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The loading options of ``kwargs`` that a preprocessor's ``from_pretrained`` takes as well."""
    return {key: kwargs[key] for key in ("revision", "trust_remote_code", "token") if key in kwargs}


class _FirstLayerDone(Exception):
    """Stops the forward that measures a layer's output structure once the first layer has returned."""


@contextmanager
def _forward_hook(module: torch.nn.Module, hook: Callable[..., Any]) -> Iterator[None]:
    """``hook`` on ``module``'s forward for the block, removed however the block ends."""
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _arity(layer_output: Any) -> int:
    """0 for a bare tensor, n for a tuple or list of n elements."""
    return len(layer_output) if isinstance(layer_output, (tuple, list)) else 0


class StandardizedTransformer(RemoteMixin, TraceTimeMembers, TransformersModel):
    """A causal LM with standardized module names and accessors, validated when it loads.

    Example::

        model = StandardizedTransformer("gpt2")
        with model.trace("The cat sat"):
            hidden = model.layers_output[3].save()
            model.layers_output[5] = model.layers_output[5] * 0.5
            probs = model.next_token_probs.save()

    ``model`` is a hub id or local path (loaded with ``device_map="auto"``), a ``.gguf`` file, or an
    already built ``PreTrainedModel`` (then pass ``tokenizer=``). ``check_renaming=False`` skips the
    load-time checks; ``enable_attention_probs=True`` runs attention eagerly so that
    ``attention_probabilities[i]`` exists (a built model is switched to eager in place).
    """

    def __init__(self, model: str | torch.nn.Module, *, tokenizer: Any = None,
                 rename_config: RenameConfig | None = None, enable_attention_probs: bool = False,
                 check_renaming: bool = True, device_map: str | dict | None = "auto", **kwargs: Any):
        _check_arguments(model, rename_config,
                         {"check_renaming": check_renaming, "enable_attention_probs": enable_attention_probs})
        # A built model that fails to load is put back as the caller had it (training flags, attention, nnsight's
        # controller, hooks: nnterp.utils.restore); one that loads stays in eval mode, and eager if asked.
        with restored_on_failure(model):
            tokenizer = self._own_preprocessors(tokenizer, kwargs)
            self._rename_config = rename_config
            self._standard_rename: dict[str, str] = {}
            kwargs.setdefault("task", "text-generation")
            if isinstance(model, str) and model.endswith(".gguf"):
                model, tokenizer = _load_gguf(model, tokenizer)
            if isinstance(model, str):
                if device_map is not None:
                    kwargs.setdefault("device_map", device_map)
                kwargs.setdefault("dispatch", True)
                if enable_attention_probs:
                    kwargs["attn_implementation"] = "eager"
                if not kwargs["dispatch"] and tokenizer is None:
                    tokenizer = self._lazy_load_preprocessors(model, kwargs)
            # The attention a built model had before being switched to eager (None: eager already, or not switched).
            switched_from = use_eager_attention(model) if enable_attention_probs and not isinstance(model, str) \
                else None
            # nnsight binds the names while it builds the tree, unless they wait for it (see nnterp.core.aliases): they
            # do, except where an ``envoys=`` map may be keyed by them, which nnsight reads while building.
            self._names_wait_for_tree = "envoys" not in kwargs
            super().__init__(model, tokenizer=tokenizer, rename=self._standard_rename, **kwargs)
            self._bind_waiting_names()
            self._bind_displaced_names()
            self._layer_output_arity: int | Exception | None = None
            if self.dispatched and not check_renaming:  # else learned from validation's forward, or at dispatch
                self._layer_output_arity = self._measure_layer_output_arity()
            self._facts = self._trace_facts()
            self._build_accessors(enable_attention_probs, switched_from)
            self.check_results: list[CheckResult] = []
            if check_renaming:
                with self._arity_from_next_forward():
                    self.validate()
            warn_for_architecture(type(self._module).__name__, model_id=model if isinstance(model, str) else None)

    def _own_preprocessors(self, tokenizer: Any, kwargs: dict[str, Any]) -> Any:
        """A copy of the caller's tokenizer (see nnterp.utils.tokenizer_copy): nnsight sets its pad token and padding
        side, and the caller's own object is left alone."""
        return own_tokenizer(tokenizer) if tokenizer is not None else None

    def _lazy_load_preprocessors(self, repo_id: str, kwargs: dict[str, Any]) -> Any:
        """The tokenizer of a model loaded lazily (``dispatch=False``). nnsight's meta load asks the task's
        pipeline class which preprocessors it loads, and transformers' pipelines stopped saying (5.23): the
        pipeline is then handed none and cannot guess one for a model built on meta."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(repo_id, **_hub_options(kwargs))

    def probe_inputs(self, prompts: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The arguments of one invoke running ``prompts`` (validation's forward): the prompts themselves."""
        return (prompts,), {}

    # Whether nnsight batches several invokes of probe_inputs into one forward (not processor encodings).
    invokes_batch = True

    # -- building --------------------------------------------------------------
    # The load path, in order. nnsight calls back into this class once, in step 2:
    #   1. __init__ checks the arguments and hands nnsight ``rename=self._standard_rename``, empty;
    #   2. nnsight obtains the torch module and passes it through _wrap (a built model), _load (hub id or
    #      path) or _load_meta (lazy); each calls _adopt, which puts the model in eval mode, resolves its
    #      registry row into ``self.architecture`` and holds back the rename mapping it gives, while nnsight
    #      builds the envoy tree;
    #   3. back in __init__: _bind_waiting_names (the mapping into ``self._standard_rename``, bound where it
    #      resolves), _bind_displaced_names (names nnsight refuses to alias), the layer-output arity,
    #      the accessors (_build_accessors, one loop over ACCESSOR_NAMES), then validation and the
    #      compatibility-report lookup.

    def _wrap(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self._adopt(super()._wrap(module, *args, **kwargs))

    def _load(self, repo_id: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self._adopt(super()._load(repo_id, *args, **kwargs))

    def _load_meta(self, repo_id: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self._adopt(super()._load_meta(repo_id, *args, **kwargs))

    def _adopt(self, module: torch.nn.Module) -> torch.nn.Module:
        """Resolve the architecture before nnsight builds the envoy tree, and the names to bind on it."""
        if module.training:
            module.eval()  # dropout would make every numeric check (and every result) noisy
        names = self._resolve_names(module)
        if self._names_wait_for_tree and "_children" not in self.__dict__:
            self._waiting_names = names  # bound by _bind_waiting_names once the tree exists
        else:  # nnsight binds them as it builds the tree; at dispatch the tree is kept, and its names with it
            self._standard_rename.clear()
            self._standard_rename.update(names)
        return module

    def _resolve_names(self, module: torch.nn.Module) -> dict[str, str]:
        """``module``'s registry row as ``self.architecture``, and the rename mapping (native path -> standard
        name) it gives."""
        self.architecture: ResolvedArchitecture = resolve_architecture(module, self._rename_config)
        return self.architecture.rename_dict()

    def _bind_waiting_names(self) -> None:
        """The names _adopt held back, now in nnsight's ``rename`` (every envoy shares the dict) and bound."""
        names = self.__dict__.pop("_waiting_names", None)
        if names:
            self._standard_rename.update(names)
            bind_where_resolvable(self, self._standard_rename)

    def dispatch(self) -> None:
        """nnsight's lazy weight loading, then what the model learns from its own weights (layer output arity)."""
        was_dispatched = self.dispatched
        super().dispatch()
        if not was_dispatched:
            self._layer_output_arity = self._measure_layer_output_arity()

    def _trace_facts(self) -> TraceFacts:
        """What the trace-time members (shared with the remote twin) need of the registry row."""
        arch, spec = self.architecture, self.architecture.spec
        return TraceFacts(class_name=arch.class_name, has_ln_final=arch.ln_final is not None,
                          has_head_transform=arch.head_transform is not None, codebooks=bool(spec.layout.codebooks.key),
                          multi_stream=bool(spec.layout.streams), readout=spec.layout.streams.readout,
                          base_path=arch.layers.rpartition(".")[0], skip_passes_inputs=spec.blocks.skip_passes_inputs,
                          logit_transforms=tuple(spec.head.active_transforms(self._module.config, type(self._module))))

    def _bind_displaced_names(self) -> None:
        """Point standardized names that a native module of that name held (now renamed) at their module.

        nnsight refuses an alias onto a name a child module had, so the envoy is bound as an instance
        attribute and recorded in nnsight's ``_aliases``, so that its printing and paths agree."""
        for name, path in self.architecture.displaced_names.items():
            setattr(self, name, walk(self, path))
            self._aliases[name] = path

    def _build_accessors(self, enable_attention_probs: bool, switched_from: str | None) -> None:
        arch = self.architecture
        layer_envoys = list(self.layers)
        if len(layer_envoys) != arch.num_layers:
            raise RenamingError(f"`layers` has {len(layer_envoys)} entries, expected {arch.num_layers}",
                                architecture=arch.class_name, check="renaming")

        def sublayer(paths: tuple[str | None, ...], what: str) -> Callable[[int], Any]:
            def locate(index: int) -> Any:
                path = paths[index]
                if path is None:
                    raise RenamingError(f"layer {index} has no {what} module", architecture=arch.class_name,
                                        check="renaming", fix=f"pass RenameConfig({what}='<path in the layer>')")
                return walk(self.layers[index], path)
            return locate

        def folded(locate, accessor: str):
            """Serve the accessor's tensor unfolded where the native one folds the batch (OPT's MLP)."""
            return (lambda i: BatchFolded(locate(i))) if accessor in layout.batch_folded else locate

        n, layout = arch.num_layers, arch.spec.layout
        layer_view, hidden_view = layout.layer_view(self._module.config), layout.hidden_view()
        self._hidden_view = hidden_view
        attention_output = folded(sublayer(arch.attention_output, "attention_output"), "attentions_output")
        mlp_output = folded(sublayer(arch.mlp_output, "mlp_output"), "mlps_output")
        mlp_extra = arch.mlp_output_extra or ((),) * n
        flat_mlp_input = sublayer(arch.mlp_input, "mlp_input") if layout.mlp_output_flat else None
        accessors: dict[str, Callable[[], Any]] = {  # one entry per name of ACCESSOR_NAMES, built in this order
            "attentions": lambda: LayerwiseModules(n, sublayer(arch.attention, "attention")),
            "mlps": lambda: LayerwiseModules(n, sublayer(arch.mlp, "mlp")),
            "layers_input": lambda: LayerwiseIO(n, lambda i: self.layers[i], "input", layer_view),
            "layers_output": lambda: LayerwiseIO(n, lambda i: self.layers[i], "output", layer_view),
            "attentions_input": lambda: LayerwiseIO(
                n, folded(sublayer(arch.attention, "attention"), "attentions_input"), "input", hidden_view),
            "attentions_output": lambda: LayerwiseContribution(
                n, lambda i: [attention_output(i)], arch.attention_scale, view=hidden_view),
            "mlps_input": lambda: LayerwiseIO(
                n, folded(sublayer(arch.mlp_input, "mlp_input"), "mlps_input"), "input", hidden_view),
            "mlps_output": lambda: LayerwiseContribution(
                n, lambda i: [mlp_output(i)] + [walk(self.layers[i], path) for path in mlp_extra[i]], arch.mlp_scale,
                flat_input=flat_mlp_input, view=hidden_view),
            "attention_probabilities": lambda: AttentionProbabilities(
                n, self.attentions, self._locate_probabilities, enable_attention_probs, arch.class_name,
                batch_folded="attention_probabilities" in layout.batch_folded, switched_from=switched_from),
            **head_accessors(self),  # heads_output, queries, keys, values (nnterp.core.heads)
        }
        for name in ACCESSOR_NAMES:
            setattr(self, name, accessors[name]())

    def _locate_probabilities(self) -> tuple:
        arch = self.architecture
        if arch.attn_prob_ops is not None:
            from ..core.attention_probs import ProbabilitiesLocation, undecorated
            return tuple(ProbabilitiesLocation("", arch.attn_prob_ops, undecorated(type(m).forward)) if m else None
                         for m in self._attention_modules())
        softmax = set(arch.softmax_layers)  # token mixers (Mamba, RWKV...) compute no probabilities
        modules = [m if i in softmax else None for i, m in enumerate(self._attention_modules())]
        by_class: dict[type, Any] = {}
        for module in modules:
            if module is not None and type(module) not in by_class:
                by_class[type(module)] = locate_attention_probabilities(module,
                                                                        arch.spec.attention_facts.attn_prob_call)
        return tuple(by_class[type(m)] if m is not None else None for m in modules)

    def _attention_modules(self) -> list[torch.nn.Module | None]:
        layers = self._module.get_submodule(self.architecture.layers)
        return [layer.get_submodule(path) if path else None for layer, path in zip(layers, self.architecture.attention)]

    # -- inputs ----------------------------------------------------------------

    def _batch_size(self, *inputs: Any, **kwargs: Any) -> int:
        """nnsight's count of an invoke's rows, after the check of what it is (nnterp.utils.inputs): the first place
        every trace input passes, a trace's own and each ``tracer.invoke``'s."""
        check_trace_input(inputs, kwargs)
        return super()._batch_size(*inputs, **kwargs)

    def _batch(self, invokes: list, fn: Any) -> tuple:
        """nnsight's batching of a trace's inputs, then the checks of the batched ids: some token in every row,
        and a length within the model's positions."""
        batched = super()._batch(invokes, fn)
        ids, kwargs = batched_ids(batched)
        if ids is not None and ids.ndim >= 2:
            check_token_rows(ids, kwargs.get("attention_mask"))
            self._check_input_length(ids.shape[1])
        return batched

    def _check_input_length(self, length: int) -> None:
        """Raise InputTooLong past a learned position table (the model would index out of range), warn past
        a configured context the model can still compute (rotary, ALiBi: it was not trained that long)."""
        limit, learned = self.position_limit
        if limit is None or length <= limit:
            return
        message = (f"input of {length} tokens is longer than this {self.architecture.class_name}'s "
                   f"{limit} positions")
        if learned:
            raise InputTooLong(f"{message}: it has learned position embeddings for {limit} positions only, so the "
                               f"model would index out of range; truncate to {limit} tokens "
                               f"(tokenizer(..., truncation=True, max_length={limit}))")
        warnings.warn(f"{message} (config); it runs, but results past {limit} tokens are outside what it was "
                      "trained on", InputTooLongWarning, stacklevel=4)

    @cached_property
    def position_limit(self) -> tuple[int | None, bool]:
        """(the config's position limit or None, whether an embedding table of about that size holds learned
        positions). Read from the config and the modules, never from the architecture's name; computed once,
        not on every trace."""
        limit = next((value for value in _config_ints(self._module.config, POSITION_LIMIT_KEYS)
                      if not isinstance(value, bool) and value > 0), None)
        if limit is None:
            return None, False
        embed = self._module.get_submodule(self.architecture.embed_tokens)
        learned = any(isinstance(module, torch.nn.Embedding) and module is not embed
                      and limit <= module.num_embeddings <= limit + LEARNED_POSITION_SLACK
                      for module in self._module.modules())
        return limit, learned

    # -- facts -----------------------------------------------------------------

    @property
    def layer_output_arity(self) -> int:
        """What a layer returns: 0 for a bare tensor, n for a tuple or list of n elements (Bloom, Falcon, xLSTM).
        ``skip_layers`` hands the model back that structure. Learned from the model itself once its weights
        are loaded (at construction, or at nnsight's lazy dispatch)."""
        if self._layer_output_arity is None:
            self.dispatch()
        if isinstance(self._layer_output_arity, Exception):
            raise RenamingError(f"the structure of a layer's output is unknown: a two-token forward failed "
                                f"({type(self._layer_output_arity).__name__}: {self._layer_output_arity})",
                                architecture=self.architecture.class_name, check="skip_layers",
                                fix="skip layers by hand: model.layers[i].skip(<the layer's output>)")
        return self._layer_output_arity  # type: ignore[return-value]  # set by dispatch

    @contextmanager
    def _arity_from_next_forward(self) -> Iterator[None]:
        """Learn the layer-output arity from the first layer's output in the next forward (validation's), so
        that loading runs no forward of its own for it; measured separately if that forward never got there."""
        if not self.dispatched:  # nnsight's dispatch measures it when the weights load
            yield
            return
        seen: list[Any] = []
        first = self._module.get_submodule(self.architecture.layers)[0]
        with _forward_hook(first, lambda module, args, output: seen.append(output)):
            yield
        # Only once the block ran through: one that raises (a validation failing the construction) needs none.
        self._layer_output_arity = _arity(seen[0]) if seen else self._measure_layer_output_arity()

    def _measure_layer_output_arity(self) -> int | Exception:
        """One plain forward of a two-token input (one row per codebook), stopped right after the first layer
        returns; the error instead if the forward fails before it (raised only if skip_layers needs it)."""
        seen: list[Any] = []

        def stop(module: torch.nn.Module, args: Any, output: Any) -> None:
            seen.append(output)
            raise _FirstLayerDone

        first = self._module.get_submodule(self.architecture.layers)[0]
        # Two tokens, not one: a one-token input without a cache position takes the generation path of some
        # forwards (transformers 5.5-5.15's Git adds a cache length to position_ids that are None there).
        ids = self.tokenizer("a", return_tensors="pt")["input_ids"][:, -1:]
        ids = ids.repeat(self.architecture.spec.layout.codebooks.count(self._module.config), 2)
        with _forward_hook(first, stop):
            try:
                with torch.no_grad():
                    self._module(input_ids=ids.to(next(self._module.parameters()).device))
            except _FirstLayerDone:
                pass
            except Exception as error:  # noqa: BLE001 - kept, and raised where the arity is needed
                return error
        if not seen:
            return LookupError("the first layer did not run on a two-token input")
        return _arity(seen[0])

    @property
    def num_layers(self) -> int:
        return self.architecture.num_layers

    @property
    def num_heads(self) -> int:
        return _config_value(self._module.config, self.architecture.spec.head.num_heads_keys, "the number of heads",
                             self.architecture.class_name)

    @property
    def hidden_size(self) -> int:
        return _config_value(self._module.config, self.architecture.spec.head.hidden_size_keys, "the hidden size",
                             self.architecture.class_name)

    @property
    def num_prefix_positions(self) -> int:
        """Learned positions the model puts before every input (CPM-Ant's prompt), 0 for most: hidden
        states have that many more positions than the input ids, the logits do not."""
        return self.architecture.spec.layout.prefix_positions(self._module.config)

    @property
    def num_streams(self) -> int:
        """Residual streams per token: 1, or several (hyper-connections, AltUp, ProphetNet's n-gram streams)."""
        return self.architecture.spec.layout.streams.total(self._module.config)

    @property
    def token_state_shape(self) -> tuple[int, ...]:
        """The shape of one token's state in ``layers_output``: (hidden,), or (streams, hidden)."""
        if not self.architecture.spec.layout.streams:
            return (self.hidden_size,)
        return (self.num_streams, self.hidden_size)

    @property
    def vocab_size(self) -> int:
        return _config_value(self._module.config, self.architecture.spec.head.vocab_size_keys, "the vocabulary size",
                             self.architecture.class_name)

    def get_topk_closest_tokens(self, hidden_state: torch.Tensor, k: int = 5) -> list[list[str]]:
        """The k tokens whose logits are highest for a hidden state, per row (outside a trace)."""
        check_hidden_size(self, hidden_state, "get_topk_closest_tokens")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.vocab_size:
            raise ToolkitInputError(f"k is {k!r}: pass an int from 1 to the vocabulary size ({self.vocab_size})")
        arch = self.architecture
        head = self._module.get_submodule(arch.lm_head)
        weight = next(head.parameters())
        with torch.no_grad():
            hidden = hidden_state.to(weight.device, weight.dtype)
            for path in (arch.ln_final, arch.head_transform):
                hidden = self._module.get_submodule(path)(hidden) if path is not None else hidden
            logits = unembed(head, hidden, self._facts.codebooks)
        top = logits.reshape(-1, logits.shape[-1]).topk(k, dim=-1).indices
        return [self.tokenizer.convert_ids_to_tokens(row.tolist()) for row in top]

    # -- validation ------------------------------------------------------------

    def validate_quietly(self) -> list[CheckResult]:
        """Run the load-time checks and return their results without raising."""
        from ..checks import run_load_checks

        # the plain two-token forward failed: learn the arity from this forward (a VLM's holds an image)
        arity_unknown = isinstance(self._layer_output_arity, Exception)
        with self._arity_from_next_forward() if arity_unknown else nullcontext():
            self.check_results = run_load_checks(self)
        return self.check_results

    def validate(self) -> list[CheckResult]:
        """Run the load-time checks; raise ValidationFailed if any fails."""
        self.validate_quietly()
        if any(result.failed for result in self.check_results):
            raise ValidationFailed(self.check_results, architecture=self.architecture.class_name)
        return self.check_results
