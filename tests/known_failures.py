"""Toy architectures that build but fail a load-time check, each with the precise reason.

Tests mark these xfail(strict=True): the day one starts passing, the suite says so and the
row must go. Keyed by model type.
"""

import pytest
import transformers

from nnterp.toy import UpstreamBug, causal_lm_classes

# Toys that fail a check on the transformers releases before a model's behaviour changed: xfail there only.
UPSTREAM_FAILURES: dict[str, UpstreamBug] = {
    "cpmant": UpstreamBug("5.16.0", "CPM-Ant's head is as wide as its input embedding, prompt rows included: the "
                                    "logits have vocab_size + prompt_types * prompt_length columns, not vocab_size"),
    # measured on 5.20.2: every padded query row of the indexed-attention layer is NaN, so are its logits
    **dict.fromkeys(("qwen4_exp", "qwen4_exp_text"), UpstreamBug(
        "5.23.0", "Qwen4-Exp's eager attention adds the indexer's float selection mask (finfo.min where not "
                  "selected) to the causal mask, which overflows to -inf where both mask a key: padding queries "
                  "mask every key and their softmax is NaN, so attn_probs_effect meets NaN logits")),
}


def _failing_here(failures: dict[str, UpstreamBug]) -> dict[str, str]:
    """The failures the installed transformers still has, with their reasons."""
    version = transformers.__version__
    return {model_type: f"transformers {version}: {bug.reason} (changed in {bug.fixed_in})"
            for model_type, bug in failures.items() if bug.affects(version)}


KNOWN_FAILURES: dict[str, str] = {
    "blt": "byte latent transformer: local encoder, global transformer and local decoder have separate layer "
           "stacks, so there is no single `layers` list",
    "xlm": "attentions, FFNs and norms are parallel ModuleLists wired by the model's loop: no per-layer block",
    "reformer": "reversible residual layers keep two streams (attention output and hidden state) side by side; "
                "LSH and local attention take their softmax as exp(scores - logsumexp) within chunks of "
                "sorted hash buckets, so there is no (batch, heads, seq, seq) probability tensor to locate",
} | _failing_here(UPSTREAM_FAILURES)

# Architectures that validate but on which the research functions cannot run yet.
TOOLKIT_FAILURES: dict[str, str] = {
    "inkling2_text": "the final norm reads a learned depth mix of the block states (embeddings and every "
                     "block-boundary layer's input) with the last layer's output, so one layer's hidden state "
                     "cannot be projected the way the model reads out (relative logit error 0.83)",
    "inkling2_loop_text": "as inkling2_text, the final norm reads a learned depth mix (final_input) of the block "
                          "states with the last layer's output: projecting that mix gives the logits exactly, "
                          "projecting the last layer's output does not (relative logit error 0.878)",
    "hrm_text": "looped model: its H and L stacks run several cycles and the logits come from the H stack's last "
                "call, while `layers` (the L stack) is read at its first call, so the last layer's logit lens is "
                "not the model's readout (relative logit error 0.015)",
    "prophetnet": "HF ProphetNet's n-gram predicting streams (and so its logits) change when other prompts in the "
                  "batch add right padding (plain HF logits differ by 1.8e-3 on the toy; the main stream is exact), "
                  "so batched activations cannot equal single-prompt ones",
}


# The architectures CI's lower-bound stage checks (`nox -s lower_bound`, marker `representative`): one of each
# way attention and blocks are written (interface-based and older forwards, fused qkv, alibi, parallel blocks,
# post-norm, sandwich norms with soft-capping, MoE, sliding windows, a state-space hybrid).
REPRESENTATIVE = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "qwen3_moe", "gemma2", "phi3", "falcon", "bloom",
                  "opt", "olmo2", "mamba")


def toy_params(xfails: dict[str, str], leave_out: dict[str, str] | None = None) -> list:
    """One pytest param per toy architecture (id ``Class-type``, marker ``toy_architecture``), strict xfail where
    ``xfails`` names it, marker ``representative`` for REPRESENTATIVE, without the types in ``leave_out``."""
    def marks(model_type: str) -> list:
        found = [pytest.mark.toy_architecture]
        if model_type in xfails:
            found.append(pytest.mark.xfail(strict=True, reason=xfails[model_type]))
        if model_type in REPRESENTATIVE:
            found.append(pytest.mark.representative)
        return found

    return [pytest.param(model_type, id=f"{class_name}-{model_type}", marks=marks(model_type))
            for model_type, class_name in causal_lm_classes().items() if model_type not in (leave_out or {})]
