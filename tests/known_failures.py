"""Toy architectures that build but fail a load-time check, each with the precise reason.

Tests mark these xfail(strict=True): the day one starts passing, the suite says so and the
row must go. Keyed by model type.
"""

_MULTI_STREAM = ("layers carry several residual streams (layers_input is (batch, seq, streams, hidden) or "
                 "wider than hidden); a standard (batch, seq, hidden) view needs a decision on collapsing them")
_SHARED_BLOCK = ("hybrid layers wrap a shared transformer block beside the Mamba decoder; the registry "
                 "cannot yet describe that nesting, so those layers have no attention module")

KNOWN_FAILURES: dict[str, str] = {
    "blt": "byte latent transformer: local encoder, global transformer and local decoder have separate layer "
           "stacks, so there is no single `layers` list",
    "dbrx": "attention is nested in `norm_attn_norm`, which also returns the residual; no registry row yet",
    "deepseek_v4": _MULTI_STREAM + " (hyper-connections)",
    "hy_v4": _MULTI_STREAM + " (hyper-connections)",
    "qwen4_exp": _MULTI_STREAM + " (hyper-connection mixer)",
    "qwen4_exp_text": _MULTI_STREAM + " (hyper-connection mixer)",
    "gemma3n_text": _MULTI_STREAM + " (AltUp)",
    "falcon_h1": "the Mamba mixer runs before self_attn in parallel with it; the probe's fixed read order "
                 "(attention, then MLP) raises OutOfOrderError",
    "longcat_flash": "each layer runs two attention/MLP pairs plus a shortcut MoE; the probe's fixed read order "
                     "raises OutOfOrderError and `attentions[i]` is ambiguous",
    "inkling2_text": "layers mix earlier block states through learned attention over depth; no additive residual "
                     "and layer 5's located probabilities do not sum to 1 (not yet investigated)",
    "modernbert-decoder": "logits are decoder(lm_head(norm(h))): the native `lm_head` is a transform and the "
                          "unembedding is a separate top-level `decoder`; nnsight refuses to alias over it",
    "musicgen": "several codebook embeddings are summed before the decoder; token_embeddings is read out of order",
    "musicgen_melody": "several codebook embeddings are summed before the decoder; token_embeddings is read out "
                       "of order",
    "prophetnet": "decoder layers carry the main stream and n-gram streams joined along the sequence; the "
                  "registry marks it as not standardizable",
    "xlm": "attentions, FFNs and norms are parallel ModuleLists wired by the model's loop: no per-layer block",
    "xlnet": "two-stream attention; its contribution before the residual is an einsum inside post_attention, "
             "not a module, and the located probabilities belong to the branch that does not run",
    "reformer": "reversible residual layers keep two streams concatenated; LSH/local attention exposes no "
                "softmax probabilities to locate",
    "zamba": _SHARED_BLOCK,
    "zamba2": _SHARED_BLOCK,
}
