"""Weight processing as a view: a processed copy of the model, the user's model left bit for bit as it was.

``process_weights`` builds a fresh copy of the HuggingFace model (same class, config and weights, no parameter shared
with the original: tied embeddings are untied in the copy) and, in the copy only:

- folds each norm into the linear maps that read it (``fold_ln``): a norm computing ``gain * P(x) / scale(x) +
  bias`` feeding ``W x + c`` becomes a norm with gain 1 and bias 0 feeding ``(W diag(gain)) x + (W bias + c)``;
  the readers are found by what the model computes (the linear maps whose input is the norm's output on a probe),
  the gain and bias by calling the norm;
- centres the writing weights (``center_writing_weights``): the embeddings, each attention's output projection and
  each MLP's down projection write vectors of zero mean. Only where every folded norm centres its input (LayerNorm):
  a mean in the stream then changes nothing downstream. RMSNorm does not centre, so on Llama-like models this is
  skipped with that reason, as TransformerLens skips it;
- centres the unembedding (``center_unembed``): each hidden direction's unembedding row has zero mean over the
  vocabulary, which shifts every logit of a position by the same constant. Log-probabilities are unchanged.

- folds the value biases into the output projection's bias (``fold_value_biases``): a head's attention
  probabilities sum to 1 over the keys, so its value bias adds the same vector ``b_V`` to its output at every
  position, which the output projection maps to ``W_O b_V``; the copy's value biases become 0 and its output
  projection's bias (made where it has none) takes ``W_O b_V`` summed over the heads (under grouped-query attention
  each query head takes its key/value head's bias). The value slices are found as `head_weights` finds them; a model
  whose heads do not decompose skips this step and says why.

The copy is checked before it is returned: its log-softmax equals the original's on a probe prompt (NotDecomposable
otherwise, with the measured difference).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from ...errors import NotDecomposable
from .readout import _norm_facts

if TYPE_CHECKING:
    from ...models.standardized import StandardizedTransformer

PROBE = "The quick brown fox jumps over the lazy dog"
LOG_PROB_TOLERANCE = 1e-3  # largest |log-softmax difference| accepted between the copy and the original (float32)


@dataclass(frozen=True)
class ProcessedModel:
    """The processed copy (``model``, a StandardizedTransformer), and what was done to it: the norms folded, the
    writing modules centred, whether the unembedding was centred, and why a step asked for was skipped."""

    model: StandardizedTransformer
    folded_norms: tuple[str, ...]
    centered_writers: tuple[str, ...]
    centered_unembed: bool
    skipped: tuple[str, ...]
    folded_value_biases: tuple[str, ...] = ()  # the output projections that took their heads' value biases


def _linear_weight(module: torch.nn.Module) -> torch.Tensor | None:
    """A Linear's weight as (out, in), a Conv1D's transposed to it (a view); None for anything else."""
    if type(module) is torch.nn.Linear:
        return module.weight
    weight = getattr(module, "weight", None)
    return weight.T if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) else None


def fresh_copy(hf_model: torch.nn.Module) -> torch.nn.Module:
    """A new model of the same class and config holding copies of the weights, tied ones untied."""
    config = copy.deepcopy(cast(Any, hf_model).config)
    config.tie_word_embeddings = False
    if hasattr(config, "get_text_config"):
        config.get_text_config().tie_word_embeddings = False
    fresh = type(hf_model)(config).to(next(hf_model.parameters()).dtype).eval()
    state = {name: value.detach().clone() for name, value in hf_model.state_dict().items()}
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    if unexpected or any(name not in _tied_names(hf_model) for name in missing):
        raise NotDecomposable(f"[{type(hf_model).__name__}] a fresh copy does not take the model's weights (missing "
                              f"{missing}, unexpected {unexpected})")
    for name in missing:  # untied: the copy's head gets the shared weight's values
        target = fresh.get_submodule(name.rpartition(".")[0])
        source = dict(hf_model.named_parameters(remove_duplicate=False))[name]
        setattr(target, name.rpartition(".")[2], torch.nn.Parameter(source.detach().clone()))
    return fresh


def _tied_names(hf_model: torch.nn.Module) -> set[str]:
    """Parameter names that share their tensor with an earlier name (tied weights: state_dict lists them once)."""
    seen: dict[int, str] = {}
    tied = set()
    for name, parameter in hf_model.named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            tied.add(name)
        seen.setdefault(id(parameter), name)
    return tied | set(dict(hf_model.named_parameters(remove_duplicate=False))) - set(hf_model.state_dict())


def _recorder(into: dict, name: str, pick: Any) -> Any:
    """A forward hook storing ``pick(args, output)`` under ``name``."""
    return lambda _, args, output: into.__setitem__(name, pick(args, output))


def _readers(fresh: torch.nn.Module, inputs: dict, hidden: int) -> dict[str, list[str]]:
    """For each norm-like module (a leaf with a 1-D weight of the hidden size), the linear modules whose input is
    its output on ``inputs`` (the same memory, shape and strides), found with forward hooks on the copy."""
    outputs: dict[str, torch.Tensor] = {}
    reads: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in fresh.named_modules():
        weight = getattr(module, "weight", None)
        if not list(module.children()) and isinstance(weight, torch.Tensor) and weight.shape == (hidden,):
            handles.append(module.register_forward_hook(_recorder(outputs, name, lambda args, output: output)))
        elif _linear_weight(module) is not None:
            handles.append(module.register_forward_hook(_recorder(reads, name, lambda args, output: args[0])))
    try:
        with torch.no_grad():
            fresh(**inputs)
    finally:
        for handle in handles:
            handle.remove()

    def same(first: torch.Tensor, second: torch.Tensor) -> bool:
        return first.data_ptr() == second.data_ptr() and first.shape == second.shape and \
            first.stride() == second.stride()
    return {norm: [linear for linear, read in reads.items() if same(read, output)] for norm, output in outputs.items()}


def _fold(fresh: torch.nn.Module, norm_name: str, readers: list[str], hidden: int) -> bool:
    """Fold one norm into its readers; whether it centres. NotDecomposable if its gain is not its weight."""
    norm = fresh.get_submodule(norm_name)
    weight = cast(torch.Tensor, norm.weight)
    own_bias = getattr(norm, "bias", None)
    bias, centers, gain = _norm_facts(norm, hidden, weight.detach()[None])
    if not torch.allclose(gain, weight, rtol=1e-4, atol=1e-6) or (own_bias is None and bias.abs().max() > 0):
        raise NotDecomposable(f"{norm_name} ({type(norm).__name__}) does not compute weight * x / scale + bias (its "
                              "measured gain is not its weight), so it cannot be folded")
    # fold the weight itself: the gain measured on the +-1 probe carries the norm's eps (1 / sqrt(1 + eps), a
    # relative 5e-6 for eps 1e-5), which would scale every reader by it
    gain = weight.detach().clone()
    for name in readers:
        module = fresh.get_submodule(name)
        matrix = cast(torch.Tensor, _linear_weight(module))
        added = matrix @ bias
        matrix.mul_(gain[None, :])
        if added.abs().max() > 0:
            if getattr(module, "bias", None) is None:
                module.bias = torch.nn.Parameter(added.clone())
            else:
                cast(torch.Tensor, module.bias).add_(added)
    weight.fill_(1.0)
    if isinstance(own_bias, torch.Tensor):
        own_bias.zero_()
    return centers


def process_weights(model: StandardizedTransformer, fold_ln: bool = True, center_writing_weights: bool = True,
                    center_unembed: bool = True, fold_value_biases: bool = True) -> ProcessedModel:
    """A processed copy of ``model`` (see the module docstring); ``model`` itself is not changed. Example::

        processed = process_weights(model)
        processed.model.trace(...)  # logits equal up to a constant per position; log-probabilities equal
    """
    from ...models.standardized import StandardizedTransformer

    hidden = model.hidden_size
    fresh = fresh_copy(model._module)
    probe = dict(model.tokenizer(PROBE, return_tensors="pt"))
    folded, writers, centers, value_biases = [], [], [], []
    skipped: list[str] = []
    with torch.no_grad():
        if fold_ln:
            for norm, readers in _readers(fresh, probe, hidden).items():
                if readers:
                    centers.append(_fold(fresh, norm, readers, hidden))
                    folded.append(norm)
        if fold_value_biases:  # after fold_ln, which adds each norm's bias to the value biases
            value_biases = _fold_value_biases(model, fresh, skipped)
        if center_writing_weights:
            if folded and all(centers):
                writers = _center_writers(model, fresh, probe, hidden)
            else:
                skipped.append("center_writing_weights: " + (
                    "the norms do not centre their input (RMSNorm), so a mean in the stream would change them"
                    if folded else "it needs fold_ln (the centred stream is read through folded LayerNorms)"))
        head = fresh.get_submodule(model.architecture.lm_head)
        matrix = _linear_weight(head)
        if center_unembed and matrix is None:
            skipped.append(f"center_unembed: the head {model.architecture.lm_head} ({type(head).__name__}) is not "
                           "one linear map")
        elif center_unembed and matrix is not None:
            matrix.sub_(matrix.mean(dim=0, keepdim=True))
            if isinstance(getattr(head, "bias", None), torch.Tensor):
                cast(torch.Tensor, head.bias).sub_(cast(torch.Tensor, head.bias).mean())
    processed = StandardizedTransformer(fresh, tokenizer=model.tokenizer,
                                        enable_attention_probs=model.attention_probabilities.enabled)
    _check_log_probs(model, processed, probe)
    return ProcessedModel(processed, tuple(folded), tuple(writers), center_unembed and matrix is not None,
                          tuple(skipped), tuple(value_biases))


def _fold_value_biases(model: StandardizedTransformer, fresh: torch.nn.Module, skipped: list[str]) -> list[str]:
    """In the copy, each layer's value biases moved into its output projection's bias (see the module docstring);
    the projections that took them. Where the model's heads do not decompose, nothing moves and ``skipped`` says
    why. No attention with a biased linear map: nothing to find, and no probe forward."""
    from ...errors import NNterpError
    from .head_matrices import head_weights

    attentions = model._attention_modules()
    if not any(isinstance(getattr(module, "bias", None), torch.Tensor)
               for attention in attentions if attention is not None for module in attention.modules()
               if _linear_weight(module) is not None):
        return []
    try:
        found = head_weights(model)  # on the model itself: a probe forward, nothing changed
    except NNterpError as error:
        skipped.append(f"fold_value_biases: {error}")
        return []
    names = {id(module): name for name, module in model._module.named_modules()}
    projections = []
    for layer, weights in found.items():
        values = fresh.get_submodule(f"{names[id(attentions[layer])]}.{weights.value_projection}")
        bias = getattr(values, "bias", None)
        columns = weights.value_columns
        if not isinstance(bias, torch.Tensor) or columns is None:
            continue
        per_query_head = bias.detach()[columns].repeat_interleave(weights.group, dim=0).flatten()
        name = names[id(model.heads_output.projection(layer)._module)]
        projection = fresh.get_submodule(name)
        added = cast(torch.Tensor, _linear_weight(projection)) @ per_query_head
        if getattr(projection, "bias", None) is None:
            projection.bias = torch.nn.Parameter(added.clone())
        else:
            cast(torch.Tensor, projection.bias).add_(added)
        bias[columns.flatten()] = 0.0
        projections.append(name)
    return projections


def _center_writers(model: StandardizedTransformer, fresh: torch.nn.Module, probe: dict, hidden: int) -> list[str]:
    """Centre every module writing into the stream: embeddings of the hidden size, each attention's output
    projection (``heads_output``'s) and each MLP's down projection (its linear child whose output is the MLP's
    on the probe, measured with forward hooks on the copy)."""
    names = {id(module): name for name, module in model._module.named_modules()}
    writers = [name for name, module in fresh.named_modules()
               if isinstance(module, torch.nn.Embedding) and module.embedding_dim == hidden]
    writers += [names[id(model.heads_output.projection(index)._module)] for index in range(model.num_layers)]
    writers += _down_projections(model, fresh, probe, names)
    for name in writers:
        module = fresh.get_submodule(name)
        if isinstance(module, torch.nn.Embedding):
            module.weight.sub_(module.weight.mean(dim=-1, keepdim=True))
            continue
        matrix = cast(torch.Tensor, _linear_weight(module))
        matrix.sub_(matrix.mean(dim=0, keepdim=True))
        if isinstance(getattr(module, "bias", None), torch.Tensor):
            cast(torch.Tensor, module.bias).sub_(cast(torch.Tensor, module.bias).mean())
    return writers


def _down_projections(model: StandardizedTransformer, fresh: torch.nn.Module, probe: dict,
                      names: dict[int, str]) -> list[str]:
    """Each MLP's linear child (`neurons.projection_candidates`) whose output is the MLP's own on the probe."""
    from .neurons import projection_candidates

    outputs: dict[str, torch.Tensor] = {}
    watched = []
    for index in range(model.num_layers):
        if model.architecture.mlp[index] is None:
            continue
        mlp_path = f"{model.architecture.layers}.{index}.{model.architecture.mlp[index]}"
        watched.append((mlp_path, [f"{mlp_path}.{child}" for child, _ in projection_candidates(model, index)[1]]))

    def record(path: str) -> Any:
        return lambda _, args, output: outputs.__setitem__(path, output[0] if isinstance(output, tuple) else output)
    handles = [fresh.get_submodule(path).register_forward_hook(record(path))
               for mlp, candidates in watched for path in (mlp, *candidates)]
    try:
        fresh(**probe)
    finally:
        for handle in handles:
            handle.remove()
    found = []
    for mlp, candidates in watched:
        matching = [path for path in candidates if outputs[path].shape == outputs[mlp].shape
                    and torch.equal(outputs[path], outputs[mlp])]
        if not matching:
            raise NotDecomposable(f"[{model.architecture.class_name}] {mlp}'s output is not one linear child's "
                                  "output, so its writing weights cannot be centred; pass center_writing_weights=False")
        found.append(matching[-1])
    return found


def _check_log_probs(model: StandardizedTransformer, processed: StandardizedTransformer, probe: dict) -> None:
    """NotDecomposable unless the copy's log-softmax equals the original's on the probe."""
    with torch.no_grad():
        original = model._module(**probe).logits.log_softmax(-1)
        copied = processed._module(**probe).logits.log_softmax(-1)
    error = (original - copied).abs().max().item()
    if error > LOG_PROB_TOLERANCE:
        raise NotDecomposable(f"[{model.architecture.class_name}] the processed copy's log-probabilities differ from "
                              f"the model's by {error:.3g} (over {LOG_PROB_TOLERANCE}): a folded norm, a centred "
                              "writer or a folded value bias is read by something else; pass fold_ln / "
                              "center_writing_weights / fold_value_biases=False")
