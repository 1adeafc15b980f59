"""The model's own copy of the caller's tokenizer (or processor), made without re-parsing its vocabulary.

nnsight sets the pad token and padding side of the tokenizer it is handed, and every padded encode of a fast
tokenizer rewrites its Rust backend's padding (``set_truncation_and_padding``): none of that may reach the
caller's object. ``copy.deepcopy`` isolates it, but deep-copies the backend by serializing it to JSON and
parsing it back (100-250 ms on SmolLM2's 49k-token vocabulary). Here every Python attribute is still deep-copied
(cheap: a few small dicts and strings), and only the Rust ``tokenizers.Tokenizer`` is not: the copy gets a new
one over the same model, normalizer, pre-tokenizer, post-processor and decoder (shared, so never parsed again),
with its own added tokens, padding and truncation. Neither nnterp, nnsight nor transformers' encoding mutates
those shared parts: an encode only sets the padding and truncation, which are the copy's own, and transformers
replaces a post-processor (``update_post_processor``) rather than editing it. A tokenizer without a Rust backend
(a Python or SentencePiece one) is deep-copied whole, as before.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tokenizers import Tokenizer

T = TypeVar("T")

# The pipeline parts a copy shares with the caller's Rust tokenizer, besides its model (each is reference-counted
# in the tokenizers library: sharing one copies a pointer).
_SHARED_BACKEND_PARTS = ("normalizer", "pre_tokenizer", "post_processor", "decoder")


def own_tokenizer(tokenizer: T) -> T:
    """A copy of ``tokenizer`` whose every setting (pad token, padding side, special tokens, backend padding and
    truncation, added tokens) is its own: changing it never changes ``tokenizer``."""
    return copy.deepcopy(tokenizer, _backend_memo(tokenizer))


def own_processor(processor: T) -> T:
    """A deep copy of ``processor`` whose tokenizer is copied by :func:`own_tokenizer`."""
    tokenizer = getattr(processor, "tokenizer", None)
    memo = {} if tokenizer is None else {id(tokenizer): own_tokenizer(tokenizer)}
    return copy.deepcopy(processor, memo)


def _backend_memo(tokenizer: Any) -> dict[int, Any]:
    """A ``copy.deepcopy`` memo standing the tokenizer's Rust backend in for :func:`_backend_copy` of it."""
    backend = getattr(tokenizer, "__dict__", {}).get("_tokenizer")
    if backend is None:
        return {}
    from tokenizers import Tokenizer  # loaded already: it built the backend

    return {id(backend): _backend_copy(backend)} if isinstance(backend, Tokenizer) else {}


def _backend_copy(backend: Tokenizer) -> Tokenizer:
    """A new ``tokenizers.Tokenizer`` sharing ``backend``'s model and pipeline parts, with its own added tokens,
    padding, truncation and special-token splitting. The added tokens are added back in id order, as the
    library's own deserializer does, so they come back at their ids (the tests compare ``to_str()``)."""
    from tokenizers import Tokenizer

    clone = Tokenizer(backend.model)
    for part in _SHARED_BACKEND_PARTS:
        value = getattr(backend, part)
        if value is not None:
            setattr(clone, part, value)
    added = backend.get_added_tokens_decoder()
    clone.add_tokens([added[index] for index in sorted(added)])
    clone.encode_special_tokens = backend.encode_special_tokens
    if backend.padding is not None:
        clone.enable_padding(**backend.padding)
    if backend.truncation is not None:
        clone.enable_truncation(**backend.truncation)
    return clone
