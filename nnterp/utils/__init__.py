"""Layer 1, with ``nnterp.errors``: small utilities that know nothing of models. Lazy package exports,
optional extras, token positions in a padded batch, trace inputs, image inputs, tokenizer copies, gradient mode,
and putting a model back after a failed construction. They import only torch, the standard library and
``nnterp.errors`` (see ARCHITECTURE.md)."""
