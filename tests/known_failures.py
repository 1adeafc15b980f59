"""Toy architectures that build but fail a load-time check, each with the precise reason.

Tests mark these xfail(strict=True): the day one starts passing, the suite says so and the
row must go. Keyed by model type.
"""


KNOWN_FAILURES: dict[str, str] = {
    "blt": "byte latent transformer: local encoder, global transformer and local decoder have separate layer "
           "stacks, so there is no single `layers` list",
    "deepseek_v4": "compressed-KV attention layers attend over compressed key blocks as well as tokens, so their "
                   "probabilities are (batch, heads, seq, seq + compressed); io_shapes has no declared shape for it",
    "longcat_flash": "each layer runs two attention/MLP pairs plus a shortcut MoE; the probe's fixed read order "
                     "raises OutOfOrderError and `attentions[i]` is ambiguous",
    "inkling2_text": "layers mix earlier block states through learned attention over depth; no additive residual "
                     "and layer 5's located probabilities do not sum to 1 (not yet investigated)",
    "modernbert-decoder": "logits are decoder(lm_head(norm(h))): the native `lm_head` is a transform and the "
                          "unembedding is a separate top-level `decoder`; nnsight refuses to alias over it",
    "musicgen": "several codebook embeddings are summed before the decoder; token_embeddings is read out of order",
    "musicgen_melody": "several codebook embeddings are summed before the decoder; token_embeddings is read out "
                       "of order",
    "xlm": "attentions, FFNs and norms are parallel ModuleLists wired by the model's loop: no per-layer block",
    "xlnet": "two-stream attention; its contribution before the residual is an einsum inside post_attention, "
             "not a module, and the located probabilities belong to the branch that does not run",
    "reformer": "reversible residual layers keep two streams concatenated; LSH/local attention exposes no "
                "softmax probabilities to locate",
}

_STREAMS = ("layer outputs hold several residual streams, so the logit lens and patching, which read one hidden "
            "state per token, have no single stream to use yet")

# Architectures that validate but on which the research functions cannot run yet.
TOOLKIT_FAILURES: dict[str, str] = {
    "cpmant": "batched activations differ from single-prompt runs even with right padding and the prompt "
              "prefix offset applied (cause not yet found)",
    "gemma3n_text": _STREAMS + " (AltUp)",
    "hy_v4": _STREAMS + " (hyper-connections)",
    "qwen4_exp": _STREAMS + " (hyper-connections)",
    "qwen4_exp_text": _STREAMS + " (hyper-connections)",
}
