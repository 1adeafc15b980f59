"""Toy architectures that build but fail a load-time check or a research function, each with the precise reason.

Tests mark these xfail(strict=True): the day one starts passing, the suite says so and the row must go.
Keyed by HuggingFace class name, like the registry (``nnterp.core.registry``) and the toy fixes
(``nnterp.toy.TOY_FIXES``); ``tests/test_architecture_facts.py`` checks every key names a real class. An
architecture the registry marks ``unsupported`` is xfailed from that row and not restated here.
"""

import pytest
import transformers

from nnterp.core.registry import ARCHITECTURES
from nnterp.toy import UpstreamBug, causal_lm_classes, resolve_model_type

# Toys that fail a check on the transformers releases before a model's behaviour changed: xfail there only.
UPSTREAM_FAILURES: dict[str, UpstreamBug] = {
    "CpmAntForCausalLM": UpstreamBug(
        "5.16.0", "CPM-Ant's head is as wide as its input embedding, prompt rows included: the logits have "
                  "vocab_size + prompt_types * prompt_length columns, not vocab_size"),
    # qwen4_exp and qwen4_exp_text; measured on 5.20.2: every padded query row of the indexed-attention layer is
    # NaN, so are its logits
    "Qwen4ExpForCausalLM": UpstreamBug(
        "5.23.0", "Qwen4-Exp's eager attention adds the indexer's float selection mask (finfo.min where not "
                  "selected) to the causal mask, which overflows to -inf where both mask a key: padding queries "
                  "mask every key and their softmax is NaN, so attn_probs_effect meets NaN logits"),
}

# Architectures that build and load but fail a load-time check.
KNOWN_LIMITS: dict[str, str] = {
    "BltForCausalLM": "byte latent transformer: local encoder, global transformer and local decoder have separate "
                      "layer stacks, so there is no single `layers` list",
    "ReformerModelWithLMHead": "reversible residual layers keep two streams (attention output and hidden state) side "
                               "by side; LSH and local attention take their softmax as exp(scores - logsumexp) "
                               "within chunks of sorted hash buckets, so there is no (batch, heads, seq, seq) "
                               "probability tensor to locate",
}

# Architectures that validate but on which the research functions cannot run yet.
TOOLKIT_FAILURES: dict[str, str] = {
    "Inkling2ForCausalLM": "the final norm reads a learned depth mix of the block states (embeddings and every "
                           "block-boundary layer's input) with the last layer's output, so one layer's hidden "
                           "state cannot be projected the way the model reads out (relative logit error 0.83)",
    "Inkling2LoopForCausalLM": "as Inkling2ForCausalLM, the final norm reads a learned depth mix (final_input) of "
                               "the block states with the last layer's output: projecting that mix gives the logits "
                               "exactly, projecting the last layer's output does not (relative logit error 0.878)",
    "HrmTextForCausalLM": "looped model: its H and L stacks run several cycles and the logits come from the H "
                          "stack's last call, while `layers` (the L stack) is read at its first call, so the last "
                          "layer's logit lens is not the model's readout (relative logit error 0.015)",
    "ProphetNetForCausalLM": "HF ProphetNet's n-gram predicting streams (and so its logits) change when other "
                             "prompts in the batch add right padding (plain HF logits differ by 1.8e-3 on the toy; "
                             "the main stream is exact), so batched activations cannot equal single-prompt ones",
}


# Architectures that validate but on which an analysis function (nnterp.toolkit.analysis) breaks an identity it must
# keep, where the registry's facts do not explain it (tests/test_analysis_architectures.py: heads, DLA,
# accumulated residual, cache).
ANALYSIS_FAILURES: dict[str, str] = {}

# Architectures on which direct_logit_attribution's own identity check (components plus bias against the model's
# logit, nnterp/analysis/dla.py) refuses with NotDecomposable where the registry's facts do not predict it, with
# the reason; tests/test_analysis_architectures.py requires that refusal there and nowhere else.
DLA_REFUSALS: dict[str, str] = {
    "HrmTextForCausalLM": "looped model (see TOOLKIT_FAILURES): the logits come from the H stack's last call while "
                          "`layers` is read at its first, so the components plus bias miss the logit by 7.0e-4 "
                          "(logit -0.075): 7,500 float32 eps of the logit's rounding scale, over DLA's 64",
}


# One analysis function failing on an architecture where the others pass, by class name then function name
# (tests/test_analysis_remote.py runs each function locally and under the server simulation on three
# architectures; tests/test_analysis_architectures.py runs activation_patching on every one).
ANALYSIS_FUNCTION_FAILURES: dict[str, dict[str, str]] = {
    "HrmTextForCausalLM": {
        "activation_patching": "looped model (see TOOLKIT_FAILURES): `layers` is read and patched at the L stack's "
                               "first call while the logits come from later cycles, so patching the last layer's "
                               "output at the last position gives a metric of -0.2511, not the clean -0.2516 "
                               "(corrupted: -0.2510); batched patches equal one per forward",
    },
    "Inkling2LoopForCausalLM": {
        "activation_patching": "the final norm reads a learned depth mix of the block states (see TOOLKIT_FAILURES): "
                               "patching the last layer's output at the last position gives a metric of 0.129, not "
                               "the clean -6.2e-5",
    },
}


def registry_unsupported() -> dict[str, str]:
    """The architectures whose registry row says they cannot be standardized, with that reason."""
    return {class_name: f"registry: {spec.unsupported}" for class_name, spec in ARCHITECTURES.items()
            if spec.unsupported}


def _failing_here(failures: dict[str, UpstreamBug]) -> dict[str, str]:
    """The failures the installed transformers still has, with their reasons."""
    version = transformers.__version__
    return {class_name: f"transformers {version}: {bug.reason} (changed in {bug.fixed_in})"
            for class_name, bug in failures.items() if bug.affects(version)}


# Every architecture that fails load-time validation here: known limits, registry refusals, upstream bugs.
KNOWN_FAILURES: dict[str, str] = KNOWN_LIMITS | registry_unsupported() | _failing_here(UPSTREAM_FAILURES)


# The architectures CI's lower-bound stage checks (`nox -s lower_bound`, marker `representative`): one of each
# way attention and blocks are written (interface-based and older forwards, fused qkv, alibi, parallel blocks,
# post-norm, sandwich norms with soft-capping, MoE, sliding windows, a state-space hybrid). The marker goes
# on the class's own model type only (llama, not the other types built with LlamaForCausalLM).
REPRESENTATIVE = ("GPT2LMHeadModel", "GPTNeoXForCausalLM", "LlamaForCausalLM", "MistralForCausalLM",
                  "Qwen2ForCausalLM", "Qwen3MoeForCausalLM", "Gemma2ForCausalLM", "Phi3ForCausalLM",
                  "FalconForCausalLM", "BloomForCausalLM", "OPTForCausalLM", "Olmo2ForCausalLM", "MambaForCausalLM")


def new_types() -> dict[str, str]:
    """The model types of the installed transformers that the last committed report lacks (the report of the
    installed version set in compat_reports/, else the newest older one), each with what it is new in.

    An upstream release that adds a type adds a finding, not a failure: the tests run these non-strictly and
    the terminal summary names each one not yet verified with its measured reason (tests/conftest.py). Every
    other type is held strictly to the lists above, so a type that passed in the committed report and fails
    now turns the suite red."""
    from nnterp.compat.baseline import last_committed_report, novelty
    from nnterp.compat.lookup import shipped_report_directory
    from nnterp.compat.schema import current_versions
    from nnterp.compat.store import find_reports

    folder = shipped_report_directory()
    versions = current_versions()
    baseline = last_committed_report(versions, find_reports([folder] if folder else []))
    if baseline is None:
        return {}
    since = novelty(versions, baseline.versions)
    return {model_type: since for model_type in causal_lm_classes() if f"toy:{model_type}" not in baseline.model_ids()}


NEW_TYPES: dict[str, str] = new_types()


def toy_params(xfails: dict[str, str], leave_out: dict[str, str] | None = None) -> list:
    """One pytest param per toy model type (id ``Class-type``, marker ``toy_architecture``), strict xfail where
    ``xfails`` names its class, a non-strict xfail and marker ``new_type`` for a type the committed reports lack
    (``NEW_TYPES``), marker ``representative`` for the own type of a REPRESENTATIVE class, without the
    types whose class ``leave_out`` names."""
    representative = {resolve_model_type(class_name) for class_name in REPRESENTATIVE}

    def marks(model_type: str, class_name: str) -> list:
        found = [pytest.mark.toy_architecture]
        if class_name in xfails:
            found.append(pytest.mark.xfail(strict=True, reason=xfails[class_name]))
        elif model_type in NEW_TYPES:
            found += [pytest.mark.new_type(model_type, class_name, NEW_TYPES[model_type]),
                      pytest.mark.xfail(strict=False, reason=f"{NEW_TYPES[model_type]}: not yet verified")]
        if model_type in representative:
            found.append(pytest.mark.representative)
        return found

    return [pytest.param(model_type, id=f"{class_name}-{model_type}", marks=marks(model_type, class_name))
            for model_type, class_name in causal_lm_classes().items() if class_name not in (leave_out or {})]



# Architectures whose plain HuggingFace forward rounds differently once the parameters are frozen, as an NDIF server
# freezes them (and the server simulation does), even under torch.no_grad: no nnterp code involved. Measured with the
# bare module on transformers 5.25.0, logits of one prompt, frozen against not; tests/test_remote_architectures.py
# checks that each row still differs. Their remote results are compared with the local ones to float rounding.
FROZEN_PARAMETER_NUMERICS: dict[str, str] = {
    "MambaForCausalLM": "frozen parameters change the logits by 2.4e-7",
    "FalconMambaForCausalLM": "frozen parameters change the logits by 7.2e-7 to 9.5e-7",
    "JambaForCausalLM": "frozen parameters change a 9-token prompt's logits by 8.9e-8",
}

# Functions taking remote= that fail on an architecture not named above, by class name then function name
# (tests/test_remote_architectures.py runs each on every architecture, locally and under remote="local", and
# marks each row a strict xfail). Measured on transformers 5.24.0: every row fails identically locally and under
# the server simulation (same error, same message); on no architecture does a remote result differ from the local.
_NO_GENERATION = "transformers' own generate fails on the toy"
REMOTE_FAILURES: dict[str, dict[str, str]] = {
    **{class_name: {function: f"{_NO_GENERATION}: the toy's generation config has no pad_token_id and MusicGen's "
                              "generate builds its delay pattern mask with it ('Tensor' * None)"
                    for function in ("steered_generate", "skipped_generate", "patched_generate")}
       for class_name in ("MusicgenForCausalLM", "MusicgenMelodyForCausalLM")},
    "ProphetNetForCausalLM": {function: f"{_NO_GENERATION}: HF ProphetNet's cached generate of a left-padded batch "
                                        "raises '`position_ids` are incorrect' (skipped_generate, uncached, runs)"
                              for function in ("steered_generate", "patched_generate")},
    "RwkvForCausalLM": {function: "RWKV's blocks write the recurrent state in place (state[i][:, :, layer_id] = "
                                  "...), so the backward pass finds a tensor modified after autograd saved it"
                        for function in ("attribution_patching", "attribution_patching_nodes")},
    "HrmTextForCausalLM": {function: "looped model (see TOOLKIT_FAILURES): `layers` is read at the L stack's first "
                                     "call, which HRM runs under torch.no_grad (only its last cycles carry "
                                     "gradients), so the read values have no gradient to hook"
                           for function in ("attribution_patching", "attribution_patching_nodes",
                                            "edge_attribution_patching")},
}
