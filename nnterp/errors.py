"""The nnterp error family: every message names what was found, what was expected, and the fix."""

from __future__ import annotations


class NNterpError(Exception):
    """Base class of every error nnterp raises on purpose."""


class RenamingError(NNterpError):
    """A model could not be mapped onto the standardized interface, or the mapping is wrong.

    Carries the architecture and the check that failed so that callers (the loader, the
    pytest plugin) can report them without parsing the message.
    """

    def __init__(self, message: str, *, architecture: str | None = None, check: str | None = None,
                 fix: str | None = None):
        self.architecture = architecture
        self.check = check
        self.fix = fix
        parts = [f"[{architecture}] " if architecture else "", message]
        if fix:
            parts.append(f"\nFix: {fix}")
        super(RenamingError, self).__init__("".join(parts))


class ModuleNotFoundForRename(RenamingError):
    """A standardized module (layers, lm_head, ...) was not found in the model."""


class ValidationFailed(RenamingError):
    """A load-time check on the renamed model failed (shape, residual identity, attention sums...)."""

    def __init__(self, results: list, *, architecture: str | None = None):
        self.results = results
        failed = [result for result in results if result.failed]
        lines = [f"{len(failed)} load-time check(s) failed:"]
        lines += [f"  - {result.name.value}: {result.message}" for result in failed]
        fixes = sorted({result.fix for result in failed if result.fix})
        super().__init__("\n".join(lines), architecture=architecture, check=failed[0].name.value if failed else None,
                         fix="; ".join(fixes) if fixes else
                         "pass check_renaming=False to load anyway, or describe the model with RenameConfig")


class LayerIndexError(NNterpError, IndexError):
    """A layer index outside the model's layers."""

    def __init__(self, index: int, num_layers: int):
        super(LayerIndexError, self).__init__(
            f"layer index {index} is out of range: this model has {num_layers} layers "
            f"(valid indices 0..{num_layers - 1}, or negative from the end)"
        )


class AttentionProbabilitiesUnavailable(NNterpError):
    """attention_probabilities was used on a model where they are not enabled or not found."""


class AttentionScoresUnavailable(AttentionProbabilitiesUnavailable):
    """Pre-softmax attention scores were asked of a model whose forward holds no such tensor (no eager softmax, or
    a softmax not handed the scores as an argument): the message names the architecture and why."""


class InvalidArgument(NNterpError, TypeError):
    """An argument of the wrong type or form (a flag that is not a bool, a model that is not a causal LM...)."""


class LayerIndexTypeError(InvalidArgument):
    """A layer index that is not an integer (bools, floats, strings, slices are refused, not coerced)."""

    def __init__(self, index: object):
        super(LayerIndexTypeError, self).__init__(
            f"layer index {index!r} ({type(index).__name__}) is not an integer: pass an int "
            "(numpy integers and 0-d integer tensors are accepted too)"
        )


class ShapeMismatch(NNterpError, ValueError):
    """A value assigned to an accessor, or a skip replacement, does not have the shape it replaces."""

    def __init__(self, what: str, expected: tuple, given: tuple):
        self.expected, self.given = tuple(expected), tuple(given)
        super(ShapeMismatch, self).__init__(f"{what} expects a value of shape {self.expected}, got shape {self.given}; "
                         "give a tensor of exactly that shape (expand or index yours)")


class ModelNotFound(NNterpError, FileNotFoundError):
    """A model argument that looks like a local path names nothing on disk."""


class InputTooLong(NNterpError, IndexError):
    """An input longer than the learned positions the model has (it would index out of range)."""


class InputTooLongWarning(UserWarning):
    """An input longer than the model's configured context; the model runs but was not trained on it."""


class ToolkitInputError(NNterpError, ValueError):
    """A research-toolkit function (activations, prompts, interventions, display) got an argument it
    cannot use; the message names the argument, what was found, and what to pass instead."""


class ToolkitTypeError(ToolkitInputError, TypeError):
    """A toolkit argument has the wrong type (an int where prompts go, a list as a steering vector...)."""


class PromptError(ToolkitInputError):
    """Prompts that cannot be run: None, an empty list, an empty string, a prompt of no tokens."""


class PositionAlignmentError(PromptError):
    """Clean and corrupted prompts of different token lengths, patched at a position counted from the start (or
    at every position): the position names different tokens in the two, so which token to patch is ambiguous."""


class MetricError(ToolkitInputError):
    """A patching metric that returns neither a scalar nor one number per prompt (shape ``(batch,)``)."""


class NonFiniteValue(NNterpError, ValueError):
    """A NaN or an infinity where a number is needed (a metric, a patching grid, the normaliser of one that is 0);
    the message names where it came from."""


class ImageMismatch(ToolkitInputError):
    """A vision-language model's prompt whose image markers and images do not match: markers without images
    (``images`` missing, None, 0 or a negative number), images without markers, or different counts. The
    message names what each prompt holds and what to pass."""


class CacheKeyError(ToolkitInputError, KeyError):
    """An ``ActivationCache`` key that names no cached value: an accessor or a layer the call did not cache."""

    def __str__(self) -> str:  # KeyError would print the message quoted, as a key's repr
        return str(self.args[0]) if self.args else ""


class GradientUnavailable(NNterpError, RuntimeError):
    """A gradient was asked where torch cannot compute one (inside ``torch.inference_mode``, or of a value that
    does not depend on what is read); the message names the cause and the fix."""


class TargetError(ToolkitInputError):
    """The targets of a Prompt: none given, or a word the tokenizer maps to its unknown token."""


class TokenIndexError(ToolkitInputError, IndexError):
    """A token index (``idx``, ``index_to_patch``, steering ``positions``) outside the prompt."""


class SteeringVectorError(ToolkitInputError):
    """A steering vector of the wrong shape, dtype or device for the layer it is added to."""


class ChatTemplateMissing(ToolkitInputError):
    """A chat prompt was asked of a tokenizer that has no chat template."""


class RemovedHelper(NNterpError, ImportError):
    """A nnterp 1.x helper that 2.0 removed was imported; the message names what replaces it."""


class ArchitectureAlreadyRegistered(NNterpError, ValueError):
    """``register_architecture`` was asked to add a row for a class the registry already has.

    The registry refuses to shadow a row silently: a built-in one, or one registered earlier.
    """

    def __init__(self, class_name: str):
        self.class_name = class_name
        super(ArchitectureAlreadyRegistered, self).__init__(
            f"{class_name} already has a registry row; pass override=True to replace it on purpose")


class ToyConfigRejected(NNterpError, ValueError):
    """A toy config its class's own validators reject, even with each integer field the shrink left at its
    default halved in turn (``nnterp.toy.build.validated_config``): a failure to fix, not a model to skip."""

    def __init__(self, model_type: str, rejection: str):
        super(ToyConfigRejected, self).__init__(
            f"the config class of {model_type!r} rejects its toy config: {rejection}; halving no single field the "
            "shrink left at its default satisfies it. Fix: give the field a small value in "
            "nnterp.toy.build.SMALL_SIZES, or the class a row of nnterp.toy.TOY_FIXES")
        self.model_type = model_type
        self.rejection = rejection


class ToyModelUnsupported(NNterpError):
    """No toy model of this type can run here (its row in ``nnterp.toy.TOY_FIXES`` says why, e.g. it needs
    CUDA kernels or a package that is not installed)."""

    def __init__(self, model_type: str, reason: str):
        super(ToyModelUnsupported, self).__init__(f"no toy model of {model_type!r} can run here: {reason}")
        self.model_type = model_type
        self.reason = reason


class CommandLineError(NNterpError):
    """A ``python -m nnterp`` argument names nothing usable (an unknown model type, a missing folder)."""


class ExportDependencyMissing(NNterpError, ImportError):
    """Saving a plot as an image needs kaleido and a Chrome or Chromium browser; the message says what to install."""


class MissingExtra(NNterpError, ImportError):
    """A feature needs packages of one of nnterp's optional extras (``vlm``: Pillow and num2words for
    vision-language models) that are not installed; the message names them and the install command."""

    def __init__(self, extra: str, missing: list[str], feature: str):
        self.extra, self.missing, self.feature = extra, list(missing), feature
        super(MissingExtra, self).__init__(
            f"{feature} needs {' and '.join(self.missing)}, not installed (nnterp's optional {extra!r} extra); "
            f'install it: pip install "nnterp[{extra}]"')


class RemoteRequestError(NNterpError):
    """A remote (NDIF) request would fail on the server: it references a module the server does not allow or
    have. The message names each module and what the request takes from it."""


class SandboxBackwardUnsupported(RemoteRequestError):
    """An NDIF server ran a request with a backward pass in its sandbox, which cannot run one (ndif 0.1.2's
    sandbox fails every ``with loss.backward():`` block, plain nnsight's included). The message names the limit
    and the ways around it: a trusted request, or running it locally."""


class VisionUnavailable(NNterpError):
    """A vision accessor (vision_tower, vision_layers_output, image_embeddings, image_token_mask) on a
    vision-language model that has no such part, or a text-only model."""


class HeadsUnavailable(NNterpError):
    """A per-head accessor (heads_output, queries, keys, values) on a layer that has no such split."""

    def __init__(self, accessor: str, layer: int, available: list[int], why: str, *, architecture: str = ""):
        self.accessor, self.layer, self.available = accessor, layer, available
        super(HeadsUnavailable, self).__init__(
            f"{f'[{architecture}] ' if architecture else ''}{accessor}[{layer}]: layer {layer} {why}; layers that "
            f"have {accessor}: {available or 'none'}; use attentions_output[{layer}] for the whole sublayer's "
            "output, or pick one of those layers")


class NotDecomposable(NNterpError):
    """The residual stream, or the readout from it to the logits, is not a sum of per-component terms on this
    architecture (several streams, no additive residual, a non-linear logit transform...): the message says which."""


class ReportSchemaError(NNterpError):
    """A report is not valid schema-version-1 JSON; the message names the field, what is wrong and what to do."""


class CorruptReportError(ReportSchemaError):
    """A report file is not valid JSON (or not readable text)."""


class ReportFileError(NNterpError, OSError):
    """A report cannot be written where it is: a link to a report in a folder nnterp cannot write, a file or folder
    in the way of the report's lock. The message names the path in the way and what to do. An ``OSError``, so that
    whatever falls back when a folder is unwritable (the pytest plugin's temp-folder report) falls back here too."""


class ReportLockError(ReportFileError):
    """The lock of a report cannot be taken: a folder stands where its lock file goes, or a file where the lock
    folder (``.locks/``) goes."""


class ReportWarning(UserWarning):
    """A report file was skipped or moved aside; the message names the file(s) and why."""


class NNterpCompatibilityWarning(UserWarning):
    """The loaded architecture failed nnterp's checks, or was not tested with the installed versions."""
