"""StandardizedTransformer: one interface over every HuggingFace causal LM, through nnsight renaming."""

from __future__ import annotations

import copy
import os
import re
import warnings
from functools import cached_property
from typing import Any, Iterable, Iterator

import torch
from nnsight.modeling.transformers import TransformersModel

from .accessors import (AttentionProbabilities, BatchFolded, LayerwiseContribution, LayerwiseIO, LayerwiseModules,
                        TensorView, check_layer_index, check_shape, walk)
from .attention_probs import locate_attention_probabilities
from .compat.lookup import warn_for_architecture
from .eager_attention import use_eager_attention
from .errors import (InputTooLong, InputTooLongWarning, InvalidArgument, ModelNotFound, RenamingError,
                     ToolkitInputError, ValidationFailed)
from .rename import RenameConfig, ResolvedArchitecture, check_rename_config, resolve_architecture


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


class StandardizedTransformer(TransformersModel):
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
        if tokenizer is not None:  # nnsight sets pad token and padding side on it: leave the caller's own alone
            tokenizer = copy.deepcopy(tokenizer)
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
        # The attention a built model had before being switched to eager (None: eager already, or not switched).
        switched_from = use_eager_attention(model) if enable_attention_probs and not isinstance(model, str) else None
        super().__init__(model, tokenizer=tokenizer, rename=self._standard_rename, **kwargs)
        self._bind_displaced_names()
        self._build_accessors(enable_attention_probs, switched_from)
        self.check_results: list = []
        if check_renaming:
            self.validate()
        warn_for_architecture(type(self._module).__name__, model_id=model if isinstance(model, str) else None)

    # -- building --------------------------------------------------------------

    def _wrap(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self._adopt(super()._wrap(module, *args, **kwargs))

    def _load(self, repo_id: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self._adopt(super()._load(repo_id, *args, **kwargs))

    def _load_meta(self, repo_id: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self._adopt(super()._load_meta(repo_id, *args, **kwargs))

    def _adopt(self, module: torch.nn.Module) -> torch.nn.Module:
        """Resolve the architecture before nnsight builds the envoy tree, so renaming applies."""
        if module.training:
            module.eval()  # dropout would make every numeric check (and every result) noisy
        self.architecture: ResolvedArchitecture = resolve_architecture(module, self._rename_config)
        self._standard_rename.clear()
        self._standard_rename.update(self.architecture.rename_dict())
        return module

    def _bind_displaced_names(self) -> None:
        """Point standardized names that a native module of that name held (now renamed) at their module."""
        for name, path in self.architecture.displaced_names.items():
            object.__setattr__(self, name, walk(self, path))
            self._aliases[name] = path

    def _build_accessors(self, enable_attention_probs: bool, switched_from: str | None) -> None:
        arch = self.architecture
        layer_envoys = list(self.layers)
        if len(layer_envoys) != arch.num_layers:
            raise RenamingError(f"`layers` has {len(layer_envoys)} entries, expected {arch.num_layers}",
                                architecture=arch.class_name, check="renaming")

        def sublayer(paths: tuple[str | None, ...], what: str):
            def locate(index: int) -> Any:
                if paths[index] is None:
                    raise RenamingError(f"layer {index} has no {what} module", architecture=arch.class_name,
                                        check="renaming", fix=f"pass RenameConfig({what}='<path in the layer>')")
                return walk(self.layers[index], paths[index])
            return locate

        def folded(locate, accessor: str):
            """Serve the accessor's tensor unfolded where the native one folds the batch (OPT's MLP)."""
            return (lambda i: BatchFolded(locate(i))) if accessor in arch.spec.batch_folded else locate

        n = arch.num_layers
        self.attentions = LayerwiseModules(n, sublayer(arch.attention, "attention"))
        self.mlps = LayerwiseModules(n, sublayer(arch.mlp, "mlp"))
        layer_view = self._layer_view()
        self._hidden_view = hidden_view = TensorView.sequence_first() if arch.spec.sequence_first else None
        self.layers_input = LayerwiseIO(n, lambda i: self.layers[i], "input", layer_view)
        self.layers_output = LayerwiseIO(n, lambda i: self.layers[i], "output", layer_view)
        self.attentions_input = LayerwiseIO(n, folded(sublayer(arch.attention, "attention"), "attentions_input"),
                                            "input", hidden_view)
        attention_output = folded(sublayer(arch.attention_output, "attention_output"), "attentions_output")
        mlp_output = folded(sublayer(arch.mlp_output, "mlp_output"), "mlps_output")
        mlp_extra = arch.mlp_output_extra or ((),) * n
        self.attentions_output = LayerwiseContribution(n, lambda i: [attention_output(i)], arch.attention_scale,
                                                       view=hidden_view)
        self.mlps_input = LayerwiseIO(n, folded(sublayer(arch.mlp_input, "mlp_input"), "mlps_input"), "input",
                                      hidden_view)
        self.mlps_output = LayerwiseContribution(
            n, lambda i: [mlp_output(i)] + [walk(self.layers[i], path) for path in mlp_extra[i]], arch.mlp_scale,
            flat_input=sublayer(arch.mlp_input, "mlp_input") if arch.spec.mlp_output_flat else None, view=hidden_view)
        self.attention_probabilities = AttentionProbabilities(
            n, self.attentions, self._locate_probabilities(), enable_attention_probs, arch.class_name,
            batch_folded="attention_probabilities" in arch.spec.batch_folded, switched_from=switched_from)

    def _layer_view(self) -> TensorView | None:
        """How layer inputs/outputs are served when the native layout is not (batch, seq, hidden)."""
        spec = self.architecture.spec
        if spec.sequence_first:
            return TensorView.sequence_first()
        streams = spec.stream_count(self._module.config)
        return None if streams is None else TensorView.streams(spec.stream_layout, streams)

    def _locate_probabilities(self) -> tuple:
        arch = self.architecture
        if arch.attn_prob_ops is not None:
            from .attention_probs import ProbabilitiesLocation, undecorated
            return tuple(ProbabilitiesLocation("", arch.attn_prob_ops, undecorated(type(m).forward)) if m else None
                         for m in self._attention_modules())
        softmax = set(arch.softmax_layers)  # token mixers (Mamba, RWKV...) compute no probabilities
        modules = [m if i in softmax else None for i, m in enumerate(self._attention_modules())]
        by_class: dict[type, Any] = {}
        for module in modules:
            if module is not None and type(module) not in by_class:
                by_class[type(module)] = locate_attention_probabilities(module, arch.spec.attn_prob_call)
        return tuple(by_class[type(m)] if m is not None else None for m in modules)

    def _attention_modules(self) -> list[torch.nn.Module | None]:
        layers = self._module.get_submodule(self.architecture.layers)
        return [layer.get_submodule(path) if path else None for layer, path in zip(layers, self.architecture.attention)]

    # -- inputs ----------------------------------------------------------------

    def _batch(self, invokes: list, fn: Any) -> tuple:
        """nnsight's batching of a trace's inputs, then the length check against the model's positions."""
        batched = super()._batch(invokes, fn)
        args, kwargs = batched if len(batched) == 2 and isinstance(batched[1], dict) else ((), {})
        ids = kwargs.get("input_ids", args[0] if args and isinstance(args[0], torch.Tensor) else None)
        if isinstance(ids, torch.Tensor) and ids.ndim >= 2:
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
    def num_layers(self) -> int:
        return self.architecture.num_layers

    @property
    def num_heads(self) -> int:
        return _config_value(self._module.config, self.architecture.spec.num_heads_keys, "the number of heads",
                             self.architecture.class_name)

    @property
    def hidden_size(self) -> int:
        return _config_value(self._module.config, self.architecture.spec.hidden_size_keys, "the hidden size",
                             self.architecture.class_name)

    @property
    def num_prefix_positions(self) -> int:
        """Learned positions the model puts before every input (CPM-Ant's prompt), 0 for most: hidden
        states have that many more positions than the input ids, the logits do not."""
        key = self.architecture.spec.prefix_positions_key
        return int(getattr(self._module.config, key, 0)) if key else 0

    @property
    def num_streams(self) -> int:
        """Residual streams per token: 1, or several (hyper-connections, AltUp, ProphetNet's n-gram streams)."""
        spec = self.architecture.spec
        streams = spec.stream_count(self._module.config)
        return 1 if streams is None else spec.stream_layout.total_streams(streams)

    @property
    def token_state_shape(self) -> tuple[int, ...]:
        """The shape of one token's state in ``layers_output``: (hidden,), or (streams, hidden)."""
        if self.architecture.spec.residual_streams_key is None:
            return (self.hidden_size,)
        return (self.num_streams, self.hidden_size)

    @property
    def vocab_size(self) -> int:
        return _config_value(self._module.config, self.architecture.spec.vocab_size_keys, "the vocabulary size",
                             self.architecture.class_name)

    # -- trace-time values -----------------------------------------------------

    @property
    def token_embeddings(self) -> Any:
        """The token embeddings (output of ``embed_tokens``), readable and writable; with several
        codebooks (MusicGen), the sum of their embeddings, which the model feeds its first layer
        (a write then reads the earlier codebooks itself, so write it before reading it)."""
        if self.architecture.spec.codebooks_key:
            embeddings = sum(codebook.output for codebook in self.embed_tokens)
        else:
            embeddings = self.embed_tokens.output
        return self._hidden_view.canonical(embeddings) if self._hidden_view else embeddings

    @token_embeddings.setter
    def token_embeddings(self, value: Any) -> None:
        if self._hidden_view:
            value = self._hidden_view.native(value)
        if not self.architecture.spec.codebooks_key:
            self.embed_tokens.output = value
            return
        *earlier, last = list(self.embed_tokens)
        for codebook in earlier:  # the last codebook's embedding makes the sum equal the value
            value = value - codebook.output
        last.output = value

    @property
    def logits(self) -> Any:
        """The model's output logits, (batch, seq, vocab)."""
        return self.output.logits

    @property
    def next_token_probs(self) -> Any:
        """Softmax over the vocabulary at the last position, (batch, vocab)."""
        return self.logits[:, -1, :].softmax(dim=-1)

    @property
    def input_ids(self) -> Any:
        return self._model_kwargs()["input_ids"]

    @property
    def attention_mask(self) -> Any:
        return self._model_kwargs().get("attention_mask")

    @property
    def input_size(self) -> torch.Size:
        return self.input_ids.shape

    def _model_kwargs(self) -> dict:
        args, kwargs = self.inputs
        return kwargs if not args else {"input_ids": args[0], **kwargs}

    # -- interventions ---------------------------------------------------------

    def collapse_streams(self, state: Any) -> Any:
        """One hidden state from a multi-stream state (..., streams, hidden), as the model reads out its last
        layer; identity on single-stream models. ``project_on_vocab(collapse_streams(layers_output[i]))`` is
        the logit lens on any architecture."""
        readout = self.architecture.spec.stream_readout
        if self.architecture.spec.residual_streams_key is None:
            return state
        if readout is None:
            raise RenamingError("has several residual streams but no stream_readout in its registry row, so they "
                                "cannot be collapsed into one hidden state", architecture=self.architecture.class_name,
                                check="logit_lens", fix="add stream_readout to the architecture's registry row")
        leading = state.shape[:-2]
        rows = state.reshape(-1, 1, *state.shape[-2:])
        base_path = self.architecture.layers.rpartition(".")[0]  # the module holding `layers`
        base = walk(self, base_path) if base_path else self
        return readout(base, rows).reshape(*leading, state.shape[-1])

    def project_on_vocab(self, hidden_state: Any) -> Any:
        """Logits of a hidden state through the final norm and the unembedding (the logit lens).

        On multi-stream models give it one hidden state: `collapse_streams` of a layer output."""
        if self.architecture.ln_final is not None:
            hidden_state = self.ln_final(hidden_state)
        if self.architecture.head_transform is not None:
            hidden_state = self.head_transform(hidden_state)
        logits = self._unembed(self.lm_head, hidden_state)
        for transform, value in self._logit_transforms():
            logits = transform(logits, value)
        return logits

    def _unembed(self, head: Any, hidden_state: Any) -> Any:
        """The head (envoy or module) on a hidden state; one head per codebook stacks as the model does."""
        if not self.architecture.spec.codebooks_key:
            return head(hidden_state)
        return torch.stack([codebook_head(hidden_state) for codebook_head in head], dim=1).flatten(0, 1)

    def _logit_transforms(self) -> list:
        """The registry's logit transforms this model's config switches on, with their values."""
        from .registry import LOGIT_TRANSFORMS

        config = self._module.config.get_text_config()
        return [(transform, getattr(config, key)) for key, transform in LOGIT_TRANSFORMS.items()
                if isinstance(getattr(config, key, None), (int, float)) and not isinstance(getattr(config, key), bool)]

    def skip_layer(self, layer: int, skip_with: Any = None) -> None:
        """Skip one layer: its output becomes ``skip_with`` (default: its own input)."""
        self.skip_layers(layer, layer, skip_with)

    def skip_layers(self, start_layer: int, end_layer: int, skip_with: Any = None) -> None:
        """Skip layers ``start_layer..end_layer`` (inclusive); the stream passes through unchanged."""
        start = check_layer_index(start_layer, self.num_layers)
        end = check_layer_index(end_layer, self.num_layers)
        if start > end:
            raise ToolkitInputError(f"start_layer ({start_layer}) is after end_layer ({end_layer}): pass the first "
                                    "layer to skip, then the last (both included)")
        for index in range(start, end + 1):
            replacement = self.layers_input[index]
            if skip_with is not None:
                check_shape(f"skip_with for layer {index}", replacement, skip_with)
                replacement = skip_with
            if self.layers_input.view:  # nnterp's layout back to the block's own
                replacement = self.layers_input.view.native(replacement)
            self.layers[index].skip(self._as_layer_output(replacement, index))

    def _as_layer_output(self, hidden: Any, index: int) -> Any:
        """A skip replacement shaped like the layer's output: blocks returning tuples get (hidden, None, ...),
        with the arity the load-time probe observed, or (hidden, *their own extra inputs) where the
        registry says the model reads those back (xLSTM's state)."""
        arity = getattr(self, "_layer_output_arity", 0)
        if not arity:
            return hidden
        if self.architecture.spec.skip_passes_inputs:
            extra = list(self.layers[index].inputs[0][1:arity])
            return (hidden, *extra, *[None] * (arity - 1 - len(extra)))
        return (hidden, *[None] * (arity - 1))

    def steer(self, layers: int | list[int], steering_vector: torch.Tensor, factor: float = 1,
              positions: int | list[int] | None = None) -> None:
        """Add ``factor * steering_vector`` to the output of each given layer (at ``positions``, default all)."""
        from .interventions import steer

        steer(self, layers, steering_vector, factor, positions)

    def get_topk_closest_tokens(self, hidden_state: torch.Tensor, k: int = 5) -> list[list[str]]:
        """The k tokens whose logits are highest for a hidden state, per row (outside a trace)."""
        arch = self.architecture
        head = self._module.get_submodule(arch.lm_head)
        weight = next(head.parameters())
        with torch.no_grad():
            hidden = hidden_state.to(weight.device, weight.dtype)
            for path in (arch.ln_final, arch.head_transform):
                hidden = self._module.get_submodule(path)(hidden) if path is not None else hidden
            logits = self._unembed(head, hidden)
        top = logits.reshape(-1, logits.shape[-1]).topk(k, dim=-1).indices
        return [self.tokenizer.convert_ids_to_tokens(row.tolist()) for row in top]

    # -- validation ------------------------------------------------------------

    def validate_quietly(self) -> list:
        """Run the load-time checks and return their results without raising."""
        from .checks import run_load_checks

        self.check_results = run_load_checks(self)
        return self.check_results

    def validate(self) -> list:
        """Run the load-time checks; raise ValidationFailed if any fails."""
        self.validate_quietly()
        if any(result.failed for result in self.check_results):
            raise ValidationFailed(self.check_results, architecture=self.architecture.class_name)
        return self.check_results
