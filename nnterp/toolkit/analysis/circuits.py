"""Per-head OV and QK circuits as factored matrices, their singular directions read through the unembedding, and
composition scores between heads (Elhage et al., 2021).

In the row convention (``x @ M``), head h of a layer has ``OV = W_V @ W_O`` (what it writes, per residual it
attends to) and ``QK = W_Q @ W_K.T`` (its score of a query residual against a key residual, before the softmax's
scale). Both act on what the attention's projections read, the normed residual: fold the norm's gain in with
`process_weights` to read them on the unit-normed stream. Biases are left out, and so are rotary embeddings: the QK
matrix of a rotary model is the score of two tokens at the same position (TransformerLens' convention too). With
grouped-query attention, query head h reads key/value head ``h // (heads / kv_heads)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch

from ...errors import ToolkitInputError
from .factored import FactoredMatrix
from .head_matrices import HeadWeights, head_weights

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

Composition = Literal["q", "k", "v"]


def ov_circuits(weights: HeadWeights) -> FactoredMatrix:
    """Every head's OV matrix, (heads, hidden, hidden) kept as ``W_V (heads, hidden, d) @ W_O (heads, d, hidden)``."""
    return FactoredMatrix(weights.per_query_head(weights.values), weights.output)


def qk_circuits(weights: HeadWeights) -> FactoredMatrix:
    """Every head's QK matrix, (heads, hidden, hidden) kept as ``W_Q @ W_K.T`` (rotary embeddings excluded)."""
    return FactoredMatrix(weights.queries, weights.per_query_head(weights.keys).transpose(-1, -2))


def ov_circuit(model: StandardizedTransformer, layer: int, remote: bool | str = False) -> FactoredMatrix:
    """Layer ``layer``'s OV matrices, one per head: ``ov_circuit(model, 5).full()[h]`` is head h's (hidden, hidden)."""
    return ov_circuits(head_weights(model, layer, remote=remote)[_index(model, layer)])


def qk_circuit(model: StandardizedTransformer, layer: int, remote: bool | str = False) -> FactoredMatrix:
    """Layer ``layer``'s QK matrices, one per head (rotary embeddings excluded)."""
    return qk_circuits(head_weights(model, layer, remote=remote)[_index(model, layer)])


def _index(model: StandardizedTransformer, layer: int) -> int:
    return layer % model.num_layers


def composition_scores(model: StandardizedTransformer, kind: Composition, earlier: int, later: int,
                       remote: bool | str = False) -> torch.Tensor:
    """(earlier heads, later heads): how much each head of layer ``later`` reads what each head of layer ``earlier``
    writes, ``|A @ B|_F / (|A|_F |B|_F)`` with A the earlier OV and B the later QK (``"q"``: through the queries),
    QK transposed (``"k"``: the keys) or OV (``"v"``: the values). 0 for unrelated subspaces, 1 for aligned ones;
    random heads of rank d in hidden dimensions score about ``sqrt(d / hidden)``."""
    if kind not in ("q", "k", "v"):
        raise ToolkitInputError(f"composition kind {kind!r}: pass 'q', 'k' or 'v'")
    first, second = _index(model, earlier), _index(model, later)
    if first >= second:
        raise ToolkitInputError(f"layer {earlier} does not come before layer {later}: composition reads an earlier "
                                "head's output in a later layer")
    found = head_weights(model, [first, second], remote=remote)
    writer = ov_circuits(found[first])
    reader = {"q": qk_circuits, "k": lambda weights: qk_circuits(weights).T, "v": ov_circuits}[kind](found[second])
    return pair_scores(writer, reader)


def pair_scores(writer: FactoredMatrix, reader: FactoredMatrix) -> torch.Tensor:
    """``|W_e @ R_l|_F / (|W_e|_F |R_l|_F)`` for every pair (e, l) of heads, through the factors: with W = A B and
    R = C D, ``|A (B C) D|_F^2 = sum((A.T A) M * M (D D.T))`` for ``M = B C`` (head_dim x head_dim)."""
    gram_left = writer.left.transpose(-1, -2) @ writer.left  # (e, d, d)
    gram_right = reader.right @ reader.right.transpose(-1, -2)  # (l, d, d)
    middle = torch.einsum("eih,lhj->elij", writer.right, reader.left)
    squared = ((gram_left[:, None] @ middle) * (middle @ gram_right[None])).sum((-1, -2))
    return squared.clamp_min(0).sqrt() / (writer.norm()[:, None] * reader.norm()[None])


def top_tokens(model: StandardizedTransformer, directions: torch.Tensor, k: int = 5) -> list[list[str]]:
    """For each direction (..., hidden) in the residual stream, the ``k`` tokens whose unembedding rows it
    raises most (the rows of the head's weight, without the final norm)."""
    weight = model._module.get_submodule(model.architecture.lm_head).weight
    logits = directions.reshape(-1, directions.shape[-1]).to(weight) @ weight.detach().T
    tokenizer: Any = model.tokenizer
    return [[tokenizer.decode([token]) for token in row.topk(k).indices.tolist()] for row in logits]


def singular_directions(matrix: FactoredMatrix, count: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The top ``count`` singular triples (U (..., m, count), S (..., count), V (..., n, count)), each pair's sign
    chosen so that its output direction V's largest component is positive (the SVD fixes it only up to sign)."""
    left, values, right = matrix.svd()
    left, values, right = left[..., :count], values[..., :count], right[..., :count]
    largest = right.gather(-2, right.abs().argmax(-2, keepdim=True))
    sign = torch.where(largest < 0, -1.0, 1.0).to(right.dtype)
    return left * sign, values, right * sign
