"""Senders and receivers of the residual stream, for path patching and edge attribution patching.

A *sender* writes to the residual stream: the embeddings (``"embed"``), a head (``"L3.H4"``), an attention
(``"L3.attn"``) or an MLP (``"L3.mlp"``). A *receiver* reads it: the residual entering a layer (``"L5.resid"``:
everything from layer 5 on reads it), an attention's input (``"L5.attn"``), one head's queries (``"L5.H2.q"``),
the keys or values of one key/value head (``"L5.KV1.k"``, ``"L5.KV1.v"``; with grouped-query attention several
query heads share them, and ``"L5.H2.k"`` names the key/value head query head 2 reads), an MLP's input
(``"L5.mlp"``) or the final residual, which the unembedding reads (``"final"``). A sender reaches a receiver when
it writes before the receiver reads: a head of layer 3 reaches layer 3's MLP (blocks running attention then MLP)
and everything from layer 4 on.

Each sender's *change* is what it writes to the residual on the clean run minus on the corrupted run, read
through the standardized accessors (a head's share through the output projection, as `decompose_resid` splits
an attention), on the additive residual streams `decompose_resid` supports (`NotDecomposable` elsewhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
from nnsight import save

from ...core.accessors import check_layer_index
from ...errors import ToolkitInputError

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

STEPS = 5  # places per layer where the stream is read or written (see `order`)
_SENDER = re.compile(r"^(?:embed|L(-?\d+)\.(?:H(\d+)|attn|mlp))$")
_RECEIVER = re.compile(r"^(?:final|L(-?\d+)\.(?:(?:H|KV)(\d+)\.[qkv]|attn|mlp|resid))$")


@dataclass(frozen=True)
class Node:
    """A sender (kind ``embed``, ``head``, ``attn``, ``mlp``) or a receiver (``resid``, ``attn``, ``q``, ``k``,
    ``v``, ``mlp``, ``final``) at ``layer``, with its head (query head for ``head`` and ``q``, key/value head
    for ``k`` and ``v``)."""

    kind: str
    layer: int | None = None
    head: int | None = None

    @property
    def label(self) -> str:
        if self.kind in ("embed", "final"):
            return self.kind
        if self.kind == "head":
            return f"L{self.layer}.H{self.head}"
        if self.kind in ("q", "k", "v"):
            return f"L{self.layer}.{'H' if self.kind == 'q' else 'KV'}{self.head}.{self.kind}"
        return f"L{self.layer}.{self.kind}"


def parse_senders(model: StandardizedTransformer, senders: Sequence[str] | None) -> list[Node]:
    """Sender labels as Nodes (None: every head of every layer that splits into heads), checked against the
    model on the client: HeadsUnavailable for a head of a layer that does not split into heads."""
    if senders is None:
        splits = model.heads_output._splits
        layers = [layer for layer in range(model.num_layers) if is_available(model, layer, "head")]
        if not layers:
            check_available(model, 0, "head")  # HeadsUnavailable: no layer has heads, naming what to use instead
        return [Node("head", layer, head) for layer in layers for head in range(splits.num_heads(layer))]
    return [_sender(model, label) for label in _labels(senders, "senders")]


# The accessor a node of each kind reads at its layer: a head's output, a head's queries, keys or values, a
# sublayer's output. (The residual around a layer is always there.)
NODE_ACCESSORS = {"head": "heads_output", "q": "queries", "k": "keys", "v": "values", "attn": "attentions_output",
                  "mlp": "mlps_output", "heads_output": "heads_output", "attentions_output": "attentions_output",
                  "mlps_output": "mlps_output"}


def check_available(model: StandardizedTransformer, layer: int, kind: str) -> None:
    """The typed refusal of reading a ``kind`` node at ``layer`` where the layer has none (HeadsUnavailable naming
    the layers that have heads; RenamingError for a layer without that sublayer, a Mamba layer's MLP), checked
    on the client, before a trace, so that a remote request refuses with the same typed error."""
    name = NODE_ACCESSORS.get(kind)
    if name is None:
        return
    accessor = getattr(model, name)
    if name == "heads_output":
        accessor.projection(layer)
    elif name in ("queries", "keys", "values"):
        accessor._call(layer)
    else:
        accessor._locate(layer)


def is_available(model: StandardizedTransformer, layer: int, kind: str) -> bool:
    """Whether layer ``layer`` has ``kind`` nodes (`check_available` passes)."""
    from ...errors import NNterpError

    try:
        check_available(model, layer, kind)
    except NNterpError:
        return False
    return True


def parse_receivers(model: StandardizedTransformer, receivers: Sequence[str]) -> list[Node]:
    """Receiver labels as Nodes, checked against the model, without repeats."""
    return list(dict.fromkeys(_receiver(model, label) for label in _labels(receivers, "receivers")))


def _labels(labels: Any, what: str) -> list[str]:
    items = [labels] if isinstance(labels, str) else list(labels)
    if not all(isinstance(item, str) for item in items):
        raise ToolkitInputError(f"{what} are labels such as 'L3.H4', 'L3.mlp', 'L5.H2.q' or 'final', got {labels!r}")
    return items


def _sender(model: StandardizedTransformer, label: str) -> Node:
    match = _SENDER.match(label.strip())
    if match is None:
        raise ToolkitInputError(f"sender {label!r} is not one of 'embed', 'L<layer>.H<head>', 'L<layer>.attn', "
                                "'L<layer>.mlp'")
    if label == "embed":
        return Node("embed")
    layer = check_layer_index(int(match.group(1)), model.num_layers)
    if match.group(2) is None:
        return _layer_node(model, layer, label)
    return Node("head", layer, _head(model, layer, int(match.group(2)), "head", label))


def _receiver(model: StandardizedTransformer, label: str) -> Node:
    match = _RECEIVER.match(label.strip())
    if match is None:
        raise ToolkitInputError(f"receiver {label!r} is not one of 'final', 'L<layer>.resid', 'L<layer>.attn', "
                                "'L<layer>.mlp', 'L<layer>.H<head>.q|k|v', 'L<layer>.KV<kv head>.k|v'")
    if label == "final":
        return Node("final")
    layer = check_layer_index(int(match.group(1)), model.num_layers)
    if match.group(2) is None:
        return _layer_node(model, layer, label)
    kind = label[-1]
    head = int(match.group(2))
    if kind != "q" and ".H" in label:  # the key/value head this query head reads
        head = _head(model, layer, head, "q", label) // _group(model, layer)
    return Node(kind, layer, _head(model, layer, head, kind, label))


def _layer_node(model: StandardizedTransformer, layer: int, label: str) -> Node:
    """The node of a whole sublayer or stream (``"L3.mlp"``, ``"L5.resid"``), checked to exist at its layer."""
    kind = label.rsplit(".", 1)[1]
    check_available(model, layer, kind)
    return Node(kind, layer)


def _group(model: StandardizedTransformer, layer: int) -> int:
    """How many query heads share one key/value head at ``layer``."""
    return model.heads_output._splits.num_heads(layer) // _kv_heads(model, layer)


def _kv_heads(model: StandardizedTransformer, layer: int) -> int:
    config = model.config
    config = getattr(config, "text_config", None) or config
    heads = model.heads_output._splits.num_heads(layer)
    return int(getattr(config, "num_key_value_heads", None) or heads)


def _head(model: StandardizedTransformer, layer: int, head: int, kind: str, label: str) -> int:
    check_available(model, layer, kind)
    count = model.heads_output._splits.num_heads(layer) if kind in ("head", "q") else _kv_heads(model, layer)
    if not 0 <= head < count:
        what = "heads" if kind in ("head", "q") else "key/value heads"
        raise ToolkitInputError(f"{label!r}: layer {layer} has {count} {what} (0..{count - 1})")
    return head


def parallel_blocks(model: StandardizedTransformer) -> bool:
    from ...core.registry import Residual

    return model.architecture.spec.blocks.residual is Residual.PARALLEL


def order(node: Node, model: StandardizedTransformer, sender: bool) -> int:
    """Where a sender writes to, or a receiver reads from, the stream, in run order: per layer the residual
    entering it, the attention's input, the attention's output, the MLP's input (with the attention's input in
    blocks running both on the same input), the MLP's output; the final residual after every layer."""
    if node.kind == "embed":
        return -1
    if node.kind == "final":
        return STEPS * model.num_layers
    assert node.layer is not None
    base = STEPS * node.layer
    if sender:
        return base + (4 if node.kind == "mlp" else 2)
    if node.kind == "resid":
        return base
    if node.kind == "mlp":
        return base + (1 if parallel_blocks(model) else 3)
    return base + 1


def reaches(sender: Node, receiver: Node, model: StandardizedTransformer) -> bool:
    """Whether ``sender`` writes to the stream before ``receiver`` reads it."""
    return order(sender, model, True) < order(receiver, model, False)


def sender_reads(senders: list[Node]) -> list[tuple[str, int]]:
    """The (accessor, layer) values giving the senders' terms, in run order (a head needs its layer's heads and
    attention output, to split the attention into heads)."""
    reads: set[tuple[str, int]] = set()
    for node in senders:
        if node.kind == "embed":
            reads.add(("layers_input", 0))
        elif node.kind == "head":
            reads |= {("heads_output", node.layer), ("attentions_output", node.layer)}  # type: ignore[arg-type]
        else:
            reads.add(("attentions_output" if node.kind == "attn" else "mlps_output", node.layer))  # type: ignore
    rank = {"layers_input": 0, "heads_output": 1, "attentions_output": 2, "mlps_output": 3}
    return sorted(reads, key=lambda read: (read[1], rank[read[0]]))


def read_values(model: Any, reads: list[tuple[str, int]]) -> list:
    """Inside a trace: the planned accessor values."""
    return [getattr(model, accessor)[layer] for accessor, layer in reads]


def run_reads(model: StandardizedTransformer, inputs: dict, reads: list[tuple[str, int]], metric: Any,
              alignment: Any, remote: bool | str) -> tuple[dict[tuple[str, int], torch.Tensor], torch.Tensor]:
    """One forward: the planned values and the metric."""
    from .patching import _metric

    with torch.no_grad(), model.trace(inputs, remote=remote):
        values = save(read_values(model, reads))
        value = save(_metric(metric, model.logits, alignment))
    return dict(zip(reads, values)), value


def sender_terms(model: StandardizedTransformer, senders: list[Node], values: dict[tuple[str, int], torch.Tensor]
                 ) -> list[torch.Tensor]:
    """What each sender writes to the residual stream, (batch, seq, hidden), from the values `run_reads` read."""
    from .residual import split_heads

    split: dict[int, list] = {}
    terms = []
    for node in senders:
        if node.kind == "embed":
            terms.append(values[("layers_input", 0)])
        elif node.kind == "head":
            layer = node.layer
            assert layer is not None
            if layer not in split:
                split[layer] = split_heads(model, layer, values[("heads_output", layer)],
                                           values[("attentions_output", layer)])
            terms.append(split[layer][node.head][1])  # type: ignore[index]
        else:
            terms.append(values[("attentions_output" if node.kind == "attn" else "mlps_output", node.layer)])  # type: ignore
    return terms


def sender_changes(model: StandardizedTransformer, senders: list[Node], clean: dict, corrupted: dict,
                   mask: torch.Tensor) -> list[torch.Tensor]:
    """Each sender's clean term minus its corrupted one, zero outside ``mask`` (batch, seq): the positions
    patched (never the padding)."""
    pairs = zip(sender_terms(model, senders, clean), sender_terms(model, senders, corrupted))
    return [((clean_term - corrupted_term) * mask[..., None].to(clean_term)).detach() for clean_term, corrupted_term
            in pairs]
