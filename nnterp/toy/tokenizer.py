"""A byte-level tokenizer built in code, so toy models never touch the hub."""

from __future__ import annotations

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
VOCAB_SIZE = 320  # 256 byte symbols, the special tokens, padding up to a round size


def toy_tokenizer(pad_first: bool = False):
    """A fast byte-level BPE tokenizer (no merges) with pad/bos/eos/unk tokens.

    Every string round-trips through it, and its vocabulary is small enough to keep
    embedding matrices tiny. A fresh object each call (a few milliseconds), because
    wrappers set padding options on the tokenizer they are given. ``pad_first`` gives the
    pad token id 0, for models that read id 0 as padding whatever the mask (CPM-Ant).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {SPECIAL_TOKENS["pad_token"]: 0} if pad_first else {}
    for symbol in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[symbol] = len(vocab)
    for token in SPECIAL_TOKENS.values():
        vocab.setdefault(token, len(vocab))
    while len(vocab) < VOCAB_SIZE:
        vocab[f"<extra_{len(vocab)}>"] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
