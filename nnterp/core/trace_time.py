"""The members a standardized model offers inside a trace, written once for the client and the server.

`StandardizedTransformer` (on the client) and its remote twin (`nnterp.core.remote.RemoteStandardized`, what
a request rebuilds on an NDIF server) both inherit `TraceTimeMembers`. It reads the architecture only
through `TraceFacts`: plain values and functions, computed from the registry row on the client. So this
module is shipped by value with remote requests and imports only torch and nnterp modules that are
shipped too (accessors, errors, steering).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from ..errors import RenamingError, ToolkitInputError
from .accessors import check_layer_index, check_shape, differentiable, walk
from .steering import steer as _steer

if TYPE_CHECKING:
    from collections.abc import Sequence


class TraceFacts:
    """What the trace-time members need to know of the architecture, as plain values and functions
    (computed from the registry row on the client; a plain class, so shipping it needs no dataclasses)."""

    def __init__(self, *, class_name: str, has_ln_final: bool, has_head_transform: bool, codebooks: bool,
                 multi_stream: bool, readout: Callable[[Any, Any], Any] | None, base_path: str,
                 skip_passes_inputs: bool, logit_transforms: tuple[tuple[Callable[[Any, float], Any], float], ...]):
        self.class_name = class_name
        self.has_ln_final, self.has_head_transform = has_ln_final, has_head_transform
        self.codebooks = codebooks  # one embedding and one head per codebook (MusicGen)
        # several residual streams, and how to collapse them: (base model, streams (rows, 1, streams, hidden))
        # -> (rows, 1, hidden), None where the row registers no readout
        self.multi_stream, self.readout = multi_stream, readout
        self.base_path = base_path  # the module holding `layers` ("" for the root)
        self.skip_passes_inputs = skip_passes_inputs  # a skipped block hands its extra inputs back (xLSTM)
        self.logit_transforms = logit_transforms  # (transform, config value) pairs the config switches on


def unembed(head: Any, hidden_state: Any, codebooks: bool) -> Any:
    """The head (envoy or module) on a hidden state; with codebooks, one head each, stacked as the model
    does: (batch * codebooks, seq, vocab)."""
    if not codebooks:
        return head(hidden_state)
    return torch.stack([codebook_head(hidden_state) for codebook_head in head], dim=1).flatten(0, 1)


class TraceTimeMembers:
    """Inside-a-trace members: embeddings, logits, inputs, the logit lens, skipping and steering."""

    _facts: TraceFacts
    _hidden_view: Any
    layers: Any
    layers_input: Any
    embed_tokens: Any
    ln_final: Any
    head_transform: Any
    lm_head: Any
    inputs: Any
    output: Any

    if TYPE_CHECKING:  # properties on the client, plain values on the server
        @property
        def num_layers(self) -> int: ...

        @property
        def layer_output_arity(self) -> int: ...

    @property
    def token_embeddings(self) -> Any:
        """The token embeddings (output of ``embed_tokens``), readable and writable; with several
        codebooks (MusicGen), the sum of their embeddings, which the model feeds its first layer
        (a write then reads the earlier codebooks itself, so write it before reading it)."""
        if self._facts.codebooks:
            embeddings = sum(differentiable(codebook.output) for codebook in self.embed_tokens)
        else:
            embeddings = differentiable(self.embed_tokens.output)
        return self._hidden_view.canonical(embeddings) if self._hidden_view else embeddings

    @token_embeddings.setter
    def token_embeddings(self, value: Any) -> None:
        if self._hidden_view:
            value = self._hidden_view.native(value)
        if not self._facts.codebooks:
            self.embed_tokens.output = value
            return
        *earlier, last = list(self.embed_tokens)
        for codebook in earlier:  # the last codebook's embedding makes the sum equal the value
            value = value - codebook.output
        last.output = value

    def track_activation_gradients(self) -> None:
        """Inside a trace, before any layer: make the token embeddings carry gradients, so that every activation
        after them has a gradient under ``backward()`` whether or not the parameters do (frozen parameters, a
        server that freezes them). Accessor reads do the same for what they read (nnterp.core.accessors.differentiable);
        this reaches the whole forward from its start. See nnterp.utils.gradients."""
        for module in (list(self.embed_tokens) if self._facts.codebooks else [self.embed_tokens]):
            differentiable(module.output)

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
    def input_size(self) -> Any:
        return self.input_ids.shape

    def _model_kwargs(self) -> dict:
        args, kwargs = self.inputs
        return kwargs if not args else {"input_ids": args[0], **kwargs}

    def collapse_streams(self, state: Any) -> Any:
        """One hidden state from a multi-stream state (..., streams, hidden), as the model reads out its last
        layer; identity on single-stream models. ``project_on_vocab(collapse_streams(layers_output[i]))`` is
        the logit lens on any architecture."""
        facts = self._facts
        if not facts.multi_stream:
            return state
        if facts.readout is None:
            raise RenamingError("has several residual streams but no stream readout in its registry row, so they "
                                "cannot be collapsed into one hidden state", architecture=facts.class_name,
                                check="logit_lens", fix="add a readout to the row's Streams(...)")
        leading = state.shape[:-2]
        rows = state.reshape(-1, 1, *state.shape[-2:])
        base = walk(self, facts.base_path) if facts.base_path else self
        return facts.readout(base, rows).reshape(*leading, state.shape[-1])

    def project_on_vocab(self, hidden_state: Any) -> Any:
        """Logits of a hidden state through the final norm and the unembedding (the logit lens).

        On multi-stream models give it one hidden state: `collapse_streams` of a layer output."""
        check_hidden_size(self, hidden_state, "project_on_vocab")
        if self._facts.has_ln_final:
            hidden_state = self.ln_final(hidden_state)
        if self._facts.has_head_transform:
            hidden_state = self.head_transform(hidden_state)
        logits = unembed(self.lm_head, hidden_state, self._facts.codebooks)
        for transform, value in self._facts.logit_transforms:
            logits = transform(logits, value)
        return logits

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
        with the layer's own arity, or (hidden, *their own extra inputs) where the registry says the model
        reads those back (xLSTM's state)."""
        arity = self.layer_output_arity
        if not arity:
            return hidden
        if self._facts.skip_passes_inputs:
            extra = list(self.layers[index].inputs[0][1:arity])
            return (hidden, *extra, *[None] * (arity - 1 - len(extra)))
        return (hidden, *[None] * (arity - 1))

    def steer(self, layers: int | Sequence[int], steering_vector: torch.Tensor, factor: float = 1,
              positions: int | Sequence[int] | None = None) -> None:
        """Add ``factor * steering_vector`` to the output of each given layer (at ``positions``, default all)."""
        _steer(self, layers, steering_vector, factor, positions)  # type: ignore[arg-type]  # same members


def check_hidden_size(model: Any, hidden_state: Any, what: str) -> None:
    """``hidden_state`` ends in the model's hidden size (one hidden state per row): a ToolkitInputError otherwise,
    before a norm or the unembedding fails on it with a raw shape error."""
    try:
        hidden = model.hidden_size
    except (AttributeError, RenamingError):  # no config key for it: the unembedding says
        return
    shape = tuple(getattr(hidden_state, "shape", ()))
    if not shape or shape[-1] != hidden:
        raise ToolkitInputError(f"{what} takes hidden states ending in the model's hidden size {hidden}, got shape "
                                f"{shape}: pass a layer's output (batch, seq, {hidden}) or one state ({hidden},)")
