"""Index-by-layer views used inside a trace: ``model.layers_output[3]``, ``model.attention_probabilities[5]``.

Each view reads or writes one value per layer through nnsight. Tuple outputs (a block
returning ``(hidden, weights)``) are unwrapped on read and re-wrapped on write, so user
code always sees the hidden-state tensor.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, Literal

import torch

from ..errors import (
    AttentionProbabilitiesUnavailable,
    LayerIndexError,
    LayerIndexTypeError,
    RenamingError,
    ShapeMismatch,
    ToolkitInputError,
)

if TYPE_CHECKING:
    from .attention_probs import ProbabilitiesLocation


def unwrap(value: Any) -> Any:
    """The hidden-state part of a module output (first element of a tuple, or of a list as GPT-1 returns)."""
    return value[0] if isinstance(value, (tuple, list)) else value


def rewrap(current: Any, value: Any) -> Any:
    """``value`` in place of the hidden-state part of the module output ``current``."""
    if isinstance(current, list):
        return [value, *current[1:]]
    return (value, *current[1:]) if isinstance(current, tuple) else value


def as_integer_index(index: Any) -> int:
    """``index`` as a plain int if it is integer-like (int, numpy integer, 0-d integer tensor).

    Bools, floats, strings, slices and anything else raise LayerIndexTypeError: ``True`` is not
    layer 1, and ``1.0`` is refused rather than truncated.
    """
    if isinstance(index, torch.Tensor):
        if index.ndim != 0 or index.dtype == torch.bool or index.is_floating_point() or index.is_complex():
            raise LayerIndexTypeError(index)
        return int(index.item())
    if isinstance(index, bool) or type(index).__name__ == "bool_":  # numpy.bool_ without importing numpy
        raise LayerIndexTypeError(index)
    try:
        return operator.index(index)
    except TypeError:
        raise LayerIndexTypeError(index) from None


def differentiable(value: Any) -> Any:
    """``value``, an activation read inside a trace, carrying gradients under ``backward()`` even where the forward
    builds no graph because every parameter before it is frozen (a memory-saving habit, and what an NDIF server does
    at load). Every accessor read and ``model.track_activation_gradients()`` go through here: the one place gradients
    of activations are made possible.

    A floating tensor that does not require grad (in grad mode) is multiplied in place by a one that does: the same
    tensor object, with the same values, now in a graph that every later computation extends. Nothing is assigned, so
    the read stays the model's own tensor and in-place edits of it reach the model in every execution mode (an NDIF
    sandbox included). Under ``torch.no_grad`` or ``torch.inference_mode``, where the tensor already requires grad,
    or where the trace is served copies (`served_as_copies`: no gradient can come back there), it is returned
    untouched."""
    if (isinstance(value, torch.Tensor) and torch.is_grad_enabled() and not value.requires_grad
            and value.is_floating_point() and not value.is_inference() and not served_as_copies()):
        value.mul_(torch.ones((), dtype=value.dtype, device=value.device, requires_grad=True))
    return value


def served_as_copies() -> bool:
    """Whether the running trace is served copies of values computed in another process, where no gradient can
    flow back to them: an interleaver that instruments no module of its own (ndif's sandbox runner, which holds a
    weightless model and receives each value from the model's process). A copy made to require grad would go back
    to that process as a leaf that requires grad, and the model's in-place edits of it would fail."""
    from nnsight.intervention.interleaver import Interleaver, Mediator

    try:
        interleaver = Mediator.current("an activation").interleaver
    except ValueError:  # read outside a run (a unit test's stand-in envoy)
        return False
    return type(interleaver).instrument is not Interleaver.instrument


def check_layer_index(index: Any, num_layers: int) -> int:
    """A non-negative layer index, or a LayerIndexError saying how many layers there are
    (LayerIndexTypeError for a value that is not an integer)."""
    position = as_integer_index(index)
    if not -num_layers <= position < num_layers:
        raise LayerIndexError(position, num_layers)
    return position % num_layers


def select_layers(layers: int | Iterable[int] | None, num_layers: int) -> list[int]:
    """Non-negative layer indices for a ``layers=`` argument: one, several, or every layer (None). An empty
    selection is refused (it would make an empty result: a cache of nothing, a grid of no row)."""
    if layers is None:
        return list(range(num_layers))
    if isinstance(layers, (str, bytes, slice)) or not isinstance(layers, Iterable) or \
            isinstance(layers, torch.Tensor) and layers.ndim == 0:
        return [check_layer_index(layers, num_layers)]
    chosen = [check_layer_index(layer, num_layers) for layer in layers]
    if not chosen:
        raise ToolkitInputError(f"layers is empty ({layers!r}): pass None for every layer, an int, or a non-empty "
                                "list of layer indices")
    return chosen


def check_shape(what: str, current: Any, value: Any) -> None:
    """Raise ShapeMismatch if ``value`` would replace the tensor ``current`` with one of another shape.

    Runs inside a trace, where nnsight hands real tensors to this code; anything that is not a
    tensor on both sides (a value only known later) is left for the model to take or refuse.
    """
    if isinstance(current, torch.Tensor) and isinstance(value, torch.Tensor) and value.shape != current.shape:
        raise ShapeMismatch(what, tuple(current.shape), tuple(value.shape))


def walk(envoy: Any, path: str) -> Any:
    """The envoy at a dotted path of native module names below ``envoy``.

    Children are looked up by module name first: a submodule named like an envoy attribute
    (BERT's ``output``) is moved off that attribute by nnsight, so ``getattr`` would read
    the parent's output instead.
    """
    for part in path.split("."):
        child = envoy._child_map.get(part) if hasattr(envoy, "_child_map") else None
        envoy = child if child is not None else getattr(envoy, part)
    return envoy


class LayerwiseModules:
    """``model.attentions[i]`` / ``model.mlps[i]``: the envoy of one sublayer per layer."""

    def __init__(self, num_layers: int, locate: Callable[[int], Any]):
        self._num_layers = num_layers
        self._locate = locate

    def __getitem__(self, index: int) -> Any:
        return self._locate(check_layer_index(index, self._num_layers))

    def __len__(self) -> int:
        return self._num_layers


class TorchOps:
    """A chain of tensor methods, ``(("permute", (1, 2, 0, 3)),)``: a layout conversion as plain torch, which
    pickles as data (a remote request ships it to a server without nnterp)."""

    def __init__(self, ops: tuple):
        self.ops = ops

    def __call__(self, value: Any) -> Any:
        for name, args in self.ops:
            value = getattr(value, name)(*args)
        return value


def stream_ops(layout_name: str, streams: int) -> tuple[tuple, tuple]:
    """(to canonical, to native) ops of the registry's StreamLayout member ``layout_name`` (a test checks
    them against ``StreamLayout.to_canonical`` / ``to_native``)."""
    return {
        "STREAM_AXIS": ((), ()),
        "CONCATENATED": ((("unflatten", (-1, (streams, -1))),), (("flatten", (-2,)),)),
        "LEADING": ((("permute", (1, 2, 0, 3)),), (("permute", (2, 0, 1, 3)),)),
        "SEQUENCE": ((("unflatten", (1, (1 + streams, -1))), ("transpose", (1, 2))),
                     (("transpose", (1, 2)), ("flatten", (1, 2)))),
    }[layout_name]


class HeadsOutput(LayerwiseModules):
    """``model.heads_output[i]``: each head's output before the output projection, (batch, seq, heads, head_dim).

    A view of the projection's input: in-place edits (``heads_output[3][:, :, 2] = 0``) and assignments
    reach the model. Summed through the projection it is ``attentions_output[i]`` (plus its bias).
    ``locate`` gives layer i's output projection envoy, ``num_heads`` its number of heads (nnterp.core.heads finds
    both on the client; a remote request carries them resolved)."""

    _splits: Any = None  # the client's nnterp.core.heads.HeadSplits (the analysis functions read it); never shipped

    def __init__(self, num_layers: int, locate: Callable[[int], Any], num_heads: Callable[[int], int]):
        super(HeadsOutput, self).__init__(num_layers, locate)
        self._heads = num_heads

    def __getitem__(self, index: int) -> Any:
        position = check_layer_index(index, self._num_layers)
        heads = differentiable(self._locate(position).input).unflatten(-1, (self._heads(position), -1))
        # A view, never an assignment: in-place edits reach the projection's input in every execution mode (an
        # assignment would ship the value at read time in an NDIF sandbox, losing later edits). The projection reads
        # the view's base, not the view, so `heads.grad` is served from the base's gradient: the marker nnsight sets on
        # a batch's rows for the same reason (nnsight.intervention.backward).
        heads._nnsight_batch = True
        return heads

    def __setitem__(self, index: int, value: Any) -> None:
        position = check_layer_index(index, self._num_layers)
        check_shape(f"layer {position}'s heads_output", self[position], value)
        self._locate(position).input = value.flatten(-2)

    def projection(self, index: int) -> Any:
        """The envoy of layer ``index``'s output projection (its weight maps heads to the residual stream)."""
        return self._locate(check_layer_index(index, self._num_layers))


class AttentionArgument(LayerwiseModules):
    """``model.queries[i]`` / ``keys[i]`` / ``values[i]``: what the attention function is handed,
    (batch, heads, seq, head_dim), after rotary embeddings where the model applies them; keys and
    values have the model's key/value heads (grouped-query attention: fewer than the query heads).
    Readable, editable in place and assignable. ``call`` gives layer i's attention call as (submodule path
    below the attention, nnsight operation label, position of the queries among the call's positional inputs:
    1 for ``f(self, query, key, value)``, 0 for a helper method ``self.f(query, key, value)``, whose inputs
    hold no module); ``argument`` is the served tensor's place among (query, key, value)."""

    _splits: Any = None  # the client's nnterp.core.heads.HeadSplits; never shipped

    def __init__(self, num_layers: int, attentions: Any, call: Callable[[int], tuple[str, str, int]],
                 argument: int, name: str):
        super(AttentionArgument, self).__init__(num_layers, self._operation)
        self._attentions, self._call, self._argument, self._name = attentions, call, argument, name

    def _operation(self, index: int) -> Any:
        submodule, label = self._call(index)[:2]
        envoy = self._attentions[index]
        return getattr((walk(envoy, submodule) if submodule else envoy).source, label)

    def _position(self, index: int) -> int:
        """Where the served tensor sits among layer ``index``'s attention call's positional inputs."""
        return self._call(index)[2] + self._argument

    def __getitem__(self, index: int) -> Any:
        position = check_layer_index(index, self._num_layers)
        return differentiable(self._operation(position).inputs[0][self._position(position)])

    def __setitem__(self, index: int, value: Any) -> None:
        position = check_layer_index(index, self._num_layers)
        operation = self._operation(position)
        argument = self._position(position)
        args, kwargs = operation.inputs
        check_shape(f"layer {position}'s {self._name}", args[argument], value)
        operation.inputs = (tuple(args[:argument]) + (value,) + tuple(args[argument + 1:]), kwargs)


class TensorView:
    """Serves a module's native tensor in nnterp's layout (a view: in-place edits reach the model),
    and converts assigned values back: several residual streams as (batch, seq, streams, hidden),
    sequence-first models (XLNet) as (batch, seq, hidden)."""

    def __init__(self, canonical: Callable[[Any], Any], native: Callable[[Any], Any]):
        self.canonical, self.native = canonical, native

    @classmethod
    def streams(cls, layout: Any, count: int) -> TensorView:
        to_canonical, to_native = stream_ops(layout.name, count)
        return cls(TorchOps(to_canonical), TorchOps(to_native))

    @classmethod
    def sequence_first(cls) -> TensorView:
        return cls(TorchOps((("transpose", (0, 1)),)), TorchOps((("transpose", (0, 1)),)))


class LayerwiseIO(LayerwiseModules):
    """``model.layers_output[i] = x`` and friends: one module side (input or output) per layer.

    With a `TensorView`, values are read in nnterp's layout and assignments converted back.
    """

    def __init__(self, num_layers: int, locate: Callable[[int], Any], side: Literal["input", "output"],
                 view: TensorView | None = None):
        super().__init__(num_layers, locate)
        self._side = side
        self.view = view

    def __getitem__(self, index: int) -> Any:
        value = differentiable(unwrap(getattr(super(LayerwiseIO, self).__getitem__(index), self._side)))
        return self.view.canonical(value) if self.view else value

    def __setitem__(self, index: int, value: Any) -> None:
        envoy = super(LayerwiseIO, self).__getitem__(index)
        check_shape(f"layer {check_layer_index(index, self._num_layers)}'s {self._side}", self[index], value)
        if self.view:
            value = self.view.native(value)
        if self._side == "input":
            envoy.input = value
            return
        current = envoy.output
        envoy.output = rewrap(current, value)


class LayerwiseContribution(LayerwiseModules):
    """``attentions_output[i]`` / ``mlps_output[i]``: exactly what a sublayer adds to the residual stream.

    Usually one module's output, read and written as is. Some blocks scale it before adding
    (Granite's residual_multiplier) or add sibling modules' outputs with it (shared experts):
    reading then sums and scales; writing stores, in the last module to run, the value that
    makes the block add exactly what was assigned.
    """

    def __init__(self, num_layers: int, locate: Callable[[int], list[Any]], scales: tuple[float, ...],
                 flat_input: Callable[[int], Any] | None = None, view: TensorView | None = None):
        super().__init__(num_layers, locate)
        self._scales = scales
        self.view = view
        # For modules returning (batch*seq, hidden) (Llama 4's MoE): the envoy whose input has
        # the (batch, seq, hidden) shape to view the output as.
        self._flat_input = flat_input

    def __getitem__(self, index: int) -> Any:
        shape = unwrap(self._flat_input(index).input).shape if self._flat_input else None
        envoys = super(LayerwiseContribution, self).__getitem__(index)
        layer = check_layer_index(index, self._num_layers)
        parts = [differentiable(unwrap(envoy.output)) for envoy in envoys]  # in run order
        if len(parts) > 1:  # kept for an assignment that follows: it can no longer read the modules that ran
            _read_parts()[id(self), layer] = parts
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        if shape is not None:
            total = total.view(*shape[:-1], total.shape[-1])  # a view: in-place edits reach the model
        scale = self._scales[layer] if self._scales else 1.0
        total = self.view.canonical(total) if self.view else total
        return total if scale == 1.0 else total * scale

    def __setitem__(self, index: int, value: Any) -> None:
        envoys = super(LayerwiseContribution, self).__getitem__(index)
        layer = check_layer_index(index, self._num_layers)
        read = _read_parts().pop((id(self), layer), None) if len(envoys) > 1 else None
        # The modules before the last one: as read just before (they already ran), or read now, in run order.
        earlier = read[:-1] if read is not None else [unwrap(envoy.output) for envoy in envoys[:-1]]
        current = envoys[-1].output
        if read is not None and unwrap(current) is not read[-1]:
            raise ToolkitInputError(f"layer {layer}'s contribution sums {len(envoys)} modules and was read at an "
                                    "earlier call than this assignment: read it again just before assigning it")
        if not self._flat_input:  # (reading the flat module's input again could come after its output)
            first = earlier[0] if earlier else unwrap(current)
            check_shape(f"layer {layer}'s contribution", self.view.canonical(first) if self.view else first, value)
        if self.view:
            value = self.view.native(value)
        if self._flat_input:
            value = value.reshape(-1, value.shape[-1])
        scale = self._scales[layer] if self._scales else 1.0
        if scale != 1.0:
            value = value / scale
        for part in earlier:
            value = value - part
        envoys[-1].output = rewrap(current, value)


def _read_parts() -> dict:
    """The running invoke's summed contributions read so far, by (accessor, layer): the modules' outputs, in run
    order, so that assigning a contribution after reading it needs no second read of the modules that already ran
    (nnsight serves a module's output only while the model is at it)."""
    from nnsight.intervention.interleaver import Mediator

    mediator = Mediator.current("a summed contribution")
    parts = getattr(mediator, "_nnterp_read_parts", None)
    if parts is None:
        parts = mediator._nnterp_read_parts = {}
    return parts


def _batch_rows() -> tuple[int, int, int, bool]:
    """The running invoke's rows: (combined batch size, start, size, whether invokes are batched)."""
    from nnsight.intervention.interleaver import Mediator

    mediator = Mediator.current("a batch-folded value")
    batcher = getattr(mediator.interleaver, "batcher", None)
    if batcher is None or mediator.batch_group is None:
        raise RenamingError("a batch-folded value was read outside an invoke with inputs")
    start, size = mediator.batch_group
    return batcher.total, start, size, batcher.batching


class BatchFolded:
    """An envoy (module or operation) whose tensor folds the batch into its leading dim, served unfolded.

    Older code computes attention probabilities as (batch*heads, q, k) and OPT runs its MLP on
    (batch*seq, hidden) rows. nnsight scopes a value to an invoke's rows only when its leading
    dim is the batch, so these are served whole: this views them as (batch, -1, ...) and keeps
    the running invoke's rows (a view, so in-place edits reach the model); assigning splices
    the invoke's rows back and folds again.
    """

    def __init__(self, envoy: Any):
        self._envoy = envoy

    @staticmethod
    def _unfold(value: torch.Tensor) -> torch.Tensor:
        total, start, size, batching = _batch_rows()
        if value.shape[0] % total:  # nnsight already narrowed it: its leading dim was the batch
            return value.view(size, -1, *value.shape[1:])
        unfolded = value.view(total, -1, *value.shape[1:])
        return unfolded.narrow(0, start, size) if batching else unfolded

    def _fold(self, current: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        total, start, size, batching = _batch_rows()
        if batching and current.shape[0] % total == 0:  # served whole: splice this invoke's rows in
            full = current.view(total, -1, *current.shape[1:])
            value = torch.cat([full[:start], value.to(full.dtype), full[start + size:]])
        return value.reshape(-1, *value.shape[2:])

    @property
    def input(self) -> Any:
        return self._unfold(self._envoy.input)

    @input.setter
    def input(self, value: Any) -> None:
        self._envoy.input = self._fold(self._envoy.input, value)

    @property
    def output(self) -> Any:
        return self._unfold(self._envoy.output)

    @output.setter
    def output(self, value: Any) -> None:
        self._envoy.output = self._fold(self._envoy.output, value)


class AttentionProbabilities(LayerwiseModules):
    """``model.attention_probabilities[i]``: the softmax output of layer i, (batch, heads, seq, seq).

    Reading gives the tensor the attention multiplies with its values; assigning or editing
    it in place changes what the model computes.
    """

    def __init__(self, num_layers: int, attentions: LayerwiseModules,
                 locations: tuple[ProbabilitiesLocation | None, ...] | Callable[[], tuple], enabled: bool,
                 architecture: str, batch_folded: bool = False, switched_from: str | None = None):
        super().__init__(num_layers, self._operation)
        # The implementation a built model had before nnterp switched it to eager (None: not switched).
        self.switched_from = switched_from
        self._attentions = attentions
        self._locations = locations  # or the function finding them, called on first use (reading source costs)
        self._batch_folded = batch_folded  # the softmax output is (batch*heads, q, k)
        self._enabled = enabled
        self._architecture = architecture

    def _operation(self, index: int) -> Any:
        location = self._location(index)
        envoy = self._attentions[index]
        if location.submodule:
            envoy = walk(envoy, location.submodule)
        source = envoy.source
        for op in location.ops[:-1]:
            source = getattr(source, op).source
        operation = getattr(source, location.ops[-1])
        return BatchFolded(operation) if self._batch_folded else operation

    def _location(self, index: int) -> ProbabilitiesLocation:
        if not self._enabled:
            raise AttentionProbabilitiesUnavailable(
                "attention probabilities are off: load the model with enable_attention_probs=True "
                "(it switches attention to the eager implementation, where probabilities exist)"
            )
        location = self.locations[index]
        if location is None:
            available = [i for i, found in enumerate(self.locations) if found is not None]
            raise AttentionProbabilitiesUnavailable(
                f"[{self._architecture}] layer {index} computes no softmax attention probabilities "
                f"(layers that do: {available or 'none'}); pass RenameConfig(attn_prob_ops=...) if they exist"
            )
        return location

    @property
    def locations(self) -> tuple:
        """Per layer, where its softmax probabilities are computed (None where none are): found by reading the
        attention forwards on first use, so a model loaded without attention probabilities never pays for it."""
        if callable(self._locations):
            self._locations = self._locations()
        return self._locations

    @locations.setter
    def locations(self, locations: tuple) -> None:
        self._locations = locations

    @property
    def enabled(self) -> bool:
        return self._enabled

    def __getitem__(self, index: int) -> Any:
        return differentiable(super(AttentionProbabilities, self).__getitem__(index).output)

    def __setitem__(self, index: int, value: Any) -> None:
        super(AttentionProbabilities, self).__getitem__(index).output = value

    def print_source(self, layer: int | None = None) -> None:
        """Print the source of the function computing the probabilities, labelled by nnsight."""
        from nnsight.intervention.source import Source, compiled

        index = self._first_located() if layer is None else check_layer_index(layer, self._num_layers)
        location = self._location(index)
        chain = " -> ".join(((location.submodule,) if location.submodule else ()) + location.ops)
        print(f"Layer {index}: attention probabilities are `{chain}` in {location.function.__qualname__}:")
        print(Source(None, prefix="", compiled=compiled(location.function)))

    def _first_located(self) -> int:
        for index, location in enumerate(self.locations):
            if location is not None:
                return index
        raise RenamingError("no layer of this model computes softmax attention probabilities",
                            architecture=self._architecture)
