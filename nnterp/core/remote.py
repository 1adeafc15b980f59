"""Remote execution (NDIF) that needs nothing of nnterp on the server.

A remote request pickles the traced block and the model wrapper it names. An NDIF server has torch,
transformers and nnsight, not nnterp, and accepts only modules on its allow-list. So a
StandardizedTransformer pickles as its *remote twin* (`RemoteStandardized`, a TransformersModel
subclass shipped by value): its accessors are resolved on the client to nnsight envoys, labels and
head counts (`RESOLVERS`), its layout views are plain torch ops, and its facts (num_layers,
hidden_size...) plain values. The code that runs on the server (the accessor classes, the toolkit
helpers called inside traces, the error classes) is shipped by value from `SHIPPED_BY_VALUE`, whose
shipped parts use only torch, nnsight and the standard library. Its model key names nnsight's
TransformersModel, which the server resolves.

``remote="local"`` serializes the request as for NDIF and runs it here (nnsight's local simulation).
The strict simulation of an NDIF server, test machinery, lives outside the library, in
``pytest_nnterp.server_simulation``: installed (``use_local_backend``), ``remote="local"`` deserializes and runs
the request with nnterp unimportable, every module it references checked against `SERVER_MODULES`.
"""

from __future__ import annotations

import copy
import difflib
import types
from typing import Any, Callable, SupportsIndex

from nnsight.modeling.transformers import TransformersModel
from nnsight.tracing.backend import Backend

from ..errors import InvalidArgument, NNterpError, RemoteRequestError, RenamingError
from .accessors import LayerwiseContribution
from .trace_time import TraceFacts, TraceTimeMembers

# Modules whose objects a request ships by value: their code runs on the server. Each imports only
# torch, nnsight and the standard library at the places the shipped code reaches (a test checks).
SHIPPED_BY_VALUE = ("nnterp.core.remote", "nnterp.core.trace_time", "nnterp.core.accessors", "nnterp.core.steering",
                    "nnterp.errors", "nnterp.utils.positions", "nnterp.toolkit.activations",
                    "nnterp.toolkit.interventions", "nnterp.toolkit.analysis.residual",
                    "nnterp.toolkit.analysis.patching", "nnterp.toolkit.analysis.node_attribution",
                    "nnterp.toolkit.analysis.paths", "nnterp.toolkit.analysis.path_patches",
                    "nnterp.toolkit.analysis.edge_attribution", "nnterp.toolkit.analysis.cache_reads")

# What a request may reference on the server: package roots, and named standard-library modules.
# cloudpickle is nnsight's serializer, so every nnsight server has it.
SERVER_PACKAGES = ("torch", "transformers", "nnsight", "numpy", "cloudpickle")
SERVER_STDLIB = ("builtins", "copyreg", "types", "collections", "collections.abc", "operator", "math")
SERVER_MODULES = SERVER_PACKAGES + SERVER_STDLIB
# Never importable on the server: nnterp itself and its pytest plugin.
CLIENT_ONLY_PACKAGES = ("nnterp", "pytest_nnterp")


def allowed_on_server(module: str) -> bool:
    """Whether a request may reference ``module`` (a dotted name) on an NDIF server."""
    root = module.split(".")[0]
    return root in SERVER_PACKAGES or module in SERVER_STDLIB


def register_shipped_modules() -> None:
    """Have cloudpickle ship `SHIPPED_BY_VALUE` by value (by name: no import needed)."""
    import nnsight

    for name in SHIPPED_BY_VALUE:
        nnsight.register(name)


# -- resolving accessors on the client -------------------------------------------------


def _frozen_error(error: Exception) -> tuple:
    """An exception as (class, args, attributes): rebuilt without calling its ``__init__``, whose signature
    pickle's default (``cls(*args)``) does not always match."""
    return type(error), error.args, dict(vars(error))


def _raise(frozen: tuple) -> None:
    cls, args, attributes = frozen
    error = cls.__new__(cls)
    error.args = args
    vars(error).update(attributes)
    raise error


class Resolved:
    """A per-layer lookup resolved on the client: each layer's value (envoys, a label, a count), or the
    nnterp error looking it up raised, raised again when the layer is used, as locally."""

    def __init__(self, found: list, errors: list):
        self.found, self.errors = tuple(found), tuple(errors)

    @classmethod
    def of(cls, locate: Callable[[int], Any], num_layers: int) -> Resolved:
        # (no typing names in the body: nnsight ships this function as source, and a server lacks `typing`)
        found: list = []
        errors: list = []  # frozen errors (or None), raised again when the layer is used
        for index in range(num_layers):
            try:
                found.append(locate(index))
                errors.append(None)
            except NNterpError as error:
                found.append(None)
                errors.append(_frozen_error(error))
        return cls(found, errors)

    def __call__(self, index: int) -> Any:
        if self.errors[index] is not None:
            _raise(self.errors[index])
        return self.found[index]


def _resolved_layerwise(model: Any, name: str, resolved: dict) -> Any:
    """A copy of a LayerwiseModules accessor (io, contribution) holding envoys instead of client closures."""
    accessor = copy.copy(getattr(model, name))
    accessor._locate = Resolved.of(accessor._locate, model.num_layers)
    if isinstance(accessor, LayerwiseContribution) and accessor._flat_input is not None:
        accessor._flat_input = Resolved.of(accessor._flat_input, model.num_layers)
    return accessor


def _resolved_probabilities(model: Any, name: str, resolved: dict) -> Any:
    client = model.attention_probabilities
    probabilities = copy.copy(client)
    probabilities._attentions = resolved["attentions"]
    probabilities._locate = probabilities._operation  # bound to the copy, not to the client's accessor
    # Found on the client's accessor, which keeps them (reading the copy's would read every attention forward's
    # source again at each request), and not at all while probabilities are off: the server then raises before
    # reading them.
    located = client.locations if client.enabled else (None,) * model.num_layers
    probabilities.locations = tuple(  # without the forward function, which only print_source reads
        None if location is None else types.SimpleNamespace(submodule=location.submodule, ops=location.ops)
        for location in located)
    return probabilities


def _resolved_heads_output(model: Any, name: str, resolved: dict) -> Any:
    """The same HeadsOutput class, with its projections and head counts resolved (not the client's splits)."""
    accessor = copy.copy(model.heads_output)
    accessor._locate = Resolved.of(accessor._locate, model.num_layers)
    accessor._heads = Resolved.of(accessor._heads, model.num_layers)
    accessor._splits = None
    return accessor


def _resolved_attention_argument(model: Any, name: str, resolved: dict) -> Any:
    """The same AttentionArgument class, over the resolved attentions and with each layer's call resolved."""
    accessor = copy.copy(getattr(model, name))
    accessor._attentions = resolved["attentions"]
    accessor._call = Resolved.of(accessor._call, model.num_layers)
    accessor._locate = accessor._operation  # bound to the copy, not to the client's accessor
    accessor._splits = None
    return accessor


# How each of StandardizedTransformer's ACCESSOR_NAMES becomes its server form (a test checks they match).
RESOLVERS: dict[str, Callable[[Any, str, dict], Any]] = {
    **{name: _resolved_layerwise for name in ("attentions", "mlps", "layers_input", "layers_output",
                                              "attentions_input", "attentions_output", "mlps_input", "mlps_output")},
    "attention_probabilities": _resolved_probabilities,
    "heads_output": _resolved_heads_output,
    **{name: _resolved_attention_argument for name in ("queries", "keys", "values")},
}


def _resolved_accessors(model: Any) -> dict[str, Any]:
    """The model's accessors in their server form, in RESOLVERS' order (attentions before what uses it)."""
    resolved: dict[str, Any] = {}
    for name, resolve in RESOLVERS.items():
        resolved[name] = resolve(model, name, resolved)
    return resolved


# -- the twin --------------------------------------------------------------------------


def _detached(function: Callable) -> Callable:
    """A copy of a module-level function that cloudpickle ships by value (it is not importable by name)."""
    copied = types.FunctionType(function.__code__, function.__globals__, function.__name__, function.__defaults__,
                                function.__closure__)
    copied.__qualname__ = f"<shipped>.{function.__qualname__}"
    return copied


# Facts the trace-time members read, sent as plain values (properties on the client).
FACTS = ("num_layers", "num_heads", "hidden_size", "vocab_size", "num_prefix_positions", "num_streams",
         "token_state_shape", "layer_output_arity")


def _facts(model: Any) -> dict[str, Any]:
    """Plain values of the model's `FACTS`; one a model lacks (no config key) is left out (reading it on the
    server raises AttributeError instead of the client's RenamingError)."""
    facts = {}
    for name in FACTS:
        try:
            facts[name] = getattr(model, name)
        except RenamingError:
            continue
    return facts


def _shipped_facts(model: Any) -> TraceFacts:
    """The model's trace facts with its registry functions (stream readout, logit transforms) copied so
    that they ship by value: the registry stays on the client."""
    facts = model._facts
    return TraceFacts(**{**vars(facts), "readout": _detached(facts.readout) if facts.readout else None,
                         "logit_transforms": tuple((_detached(transform), value)
                                                   for transform, value in facts.logit_transforms)})


# State the client holds for loading, checks and planning, never needed in a trace (``_client_memo``: what the
# toolkit plans once per model on the client, by function name).
CLIENT_ONLY_STATE = ("architecture", "_rename_config", "check_results", "position_limit", "_standard_rename",
                     "_client_memo")


def twin_state(model: Any) -> dict[str, Any]:
    """The state of a StandardizedTransformer's remote twin: nnsight's state, resolved accessors, plain facts."""
    state = {key: value for key, value in TransformersModel.__getstate__(model).items()
             if key not in CLIENT_ONLY_STATE}
    state.update(_resolved_accessors(model))
    state.update(_facts(model))
    state["_facts"] = _shipped_facts(model)
    return state


def reduce_to_twin(model: Any) -> tuple:
    """``__reduce_ex__`` of a StandardizedTransformer: rebuilt as a `RemoteStandardized` from `twin_state`."""
    register_shipped_modules()
    return object.__new__, (RemoteStandardized,), twin_state(model)


class RemoteStandardized(TraceTimeMembers, TransformersModel):
    """What a StandardizedTransformer is on the server: nnsight's model with the same trace-time members
    (`TraceTimeMembers`, shared with the client), resolved accessors and plain facts, so that its code
    needs only torch and nnsight."""


# Public members of StandardizedTransformer a trace never uses: the twin leaves them out (a test checks that
# every public member is either here, a fact, an accessor, or one of RemoteStandardized's).
CLIENT_ONLY_MEMBERS = ("validate", "validate_quietly", "get_topk_closest_tokens", "position_limit", "dispatch",
                       "check_results", "architecture", "probe_inputs", "invokes_batch")


class RemoteMixin:
    """Remote-execution hooks of StandardizedTransformer: the twin for pickling, nnsight's model key, the check
    of ``remote=``, and the installed backend (`use_local_backend`) for ``remote="local"``."""

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple:
        return reduce_to_twin(self)

    def _remoteable_class(self) -> type:
        return TransformersModel  # the server resolves the key without nnterp

    def trace(self, *inputs: Any, remote: Any = False, **kwargs: Any) -> Any:
        check_remote(remote)
        return super().trace(*inputs, remote=remote, **kwargs)  # type: ignore[misc]  # nnsight's

    def session(self, *args: Any, remote: Any = False, **kwargs: Any) -> Any:
        check_remote(remote)
        return super().session(*args, remote=remote, **kwargs)  # type: ignore[misc]  # nnsight's

    def _remote_backend(self, remote: Any, blocking: bool, job_id: Any, verbose: bool) -> Backend:
        if remote == "local":
            if _LOCAL_BACKEND:
                return _LOCAL_BACKEND[0](self, verbose)
            return super()._remote_backend(remote, blocking, job_id, verbose)  # type: ignore[misc]  # nnsight's
        try:
            self.to_model_key()  # type: ignore[attr-defined]  # nnsight's
        except (OSError, ValueError) as error:  # a model built in memory has no hub id (HFValidationError)
            raise RemoteRequestError(
                f"remote={remote!r} sends the request to an NDIF server, which loads the model by its hub id, and "
                f"this model has none ({type(error).__name__}: {error}); load it by hub id to run it on NDIF, or "
                "pass remote='local' to run the request as a server would, here") from error
        from .remote_errors import translate_server_errors

        return translate_server_errors(
            super()._remote_backend(remote, blocking, job_id, verbose))  # type: ignore[misc]  # nnsight's


# What ``remote="local"`` runs: nnsight's local simulation (the request serialized and run here), unless a
# stricter one is installed (`use_local_backend`): pytest_nnterp.server_simulation plays an NDIF server.
_LOCAL_BACKEND: list[Callable[[Any, bool], Backend]] = []


def use_local_backend(factory: Callable[[Any, bool], Backend] | None) -> None:
    """Make ``remote="local"`` run ``factory(model, verbose)``'s backend (None: nnsight's local simulation)."""
    _LOCAL_BACKEND[:] = [] if factory is None else [factory]


def check_remote(remote: Any) -> None:
    """``remote`` is False, True, ``"local"`` or an NDIF host URL; anything else raises InvalidArgument (nnsight
    would take any other string as a host, and any truthy value as True)."""
    if isinstance(remote, bool) or remote == "local":
        return
    if isinstance(remote, str) and remote.startswith(("http://", "https://")):
        return
    close = isinstance(remote, str) and difflib.get_close_matches(remote.lower().strip(), ["local"], cutoff=0.6)
    hint = " (did you mean 'local'?)" if close else ""
    raise InvalidArgument(f"remote={remote!r} ({type(remote).__name__}){hint}: pass False (run here), True (NDIF), "
                          "'local' (run here as an NDIF server would) or an NDIF host URL (http://... or "
                          "https://...)")
