"""A failing construction, check or toolkit call leaves the caller's model, tokenizer and modules as they were
(nnterp.utils.restore).

Each construction path is made to fail on the model as the caller built it (never wrapped, in training mode), and
on the same modules while an earlier, working model wraps them. Either way everything observable about the torch
model (module classes, training flags, hooks, instance attributes such as nnsight's ``forward``, the attention
implementation of every config and sub-config, the parameters) and about the tokenizers (padding side, pad token,
init arguments) is as before, and the working model traces exactly as it did.

Needs pytest, nnterp, transformers, and for the vision-language models the ``vlm`` extra (Pillow).
"""

from __future__ import annotations

import copy
import importlib.util
from typing import Any, Callable

import pytest
import torch

from nnterp import StandardizedTransformer, activation_patching, steer
from nnterp.core.rename import RenameConfig
from nnterp.errors import ModuleNotFoundForRename, SteeringVectorError, ValidationFailed
from nnterp.toy import build_toy_model

PROMPT = "The cat sat on the"
WRONG_MLP_OUTPUT = RenameConfig(mlp_output="self_attn")  # resolves, but fails the residual identity check
NO_SUCH_LAYERS = RenameConfig(layers="model.no_such_layers")
VLM_TYPES = ("llava", "qwen2_vl")
needs_vlm = pytest.mark.skipif(importlib.util.find_spec("PIL") is None, reason="the vlm extra (Pillow) is needed")


# -- what is observable ----------------------------------------------------------------------------------------

def _configs(model: torch.nn.Module) -> dict[str, Any]:
    """Every distinct config of ``model``'s modules and their sub-configs at any depth, by where it was found."""
    found: dict[int, tuple[str, Any]] = {}
    pending = [(f"{name or '<root>'}.config", getattr(module, "config", None))
               for name, module in model.named_modules()]
    while pending:
        where, config = pending.pop(0)
        if config is None or id(config) in found:
            continue
        found[id(config)] = (where, config)
        pending += [(f"{where}.{key}", getattr(config, key, None)) for key in getattr(config, "sub_configs", {})]
    return dict(found.values())


def observable(model: torch.nn.Module, *tokenizers: Any) -> dict[str, Any]:
    """Everything a construction could change on ``model`` and ``tokenizers`` that a user could notice."""
    state: dict[str, Any] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        state[f"module {name or '<root>'}"] = {
            "type": type(module), "training": module.training, "forward_hooks": tuple(module._forward_hooks),
            "forward_pre_hooks": tuple(module._forward_pre_hooks), "backward_hooks": tuple(module._backward_hooks),
            "instance attributes": tuple(sorted(vars(module)))}
    for where, config in _configs(model).items():
        state[f"config {where}"] = getattr(config, "_attn_implementation", None)
    for name, parameter in model.named_parameters(remove_duplicate=False):
        state[f"parameter {name}"] = (id(parameter), parameter.requires_grad,
                                      float(parameter.detach().double().sum()))
    for index, tokenizer in enumerate(tokenizers):
        state[f"tokenizer {index}"] = {"padding_side": tokenizer.padding_side, "pad_token": tokenizer.pad_token,
                                       "init_kwargs": {key: repr(value) for key, value in
                                                       tokenizer.init_kwargs.items()}}
    return state


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {key: (before.get(key), after.get(key)) for key in before.keys() | after.keys()
            if before.get(key) != after.get(key)}


def raising(tokenizer: Any) -> Any:
    """A copy of ``tokenizer`` that refuses to encode anything (copies of it do too)."""
    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("this tokenizer refuses to encode")

    refusing = copy.deepcopy(tokenizer)
    refusing.__class__ = type("RefusingTokenizer", (type(tokenizer),), {"__call__": refuse})
    return refusing


@pytest.fixture(params=["never wrapped", "wrapped by a working model"])
def wrapped(request: pytest.FixtureRequest) -> bool:
    """Whether the failing construction is over modules an earlier, working model wraps."""
    return request.param == "wrapped by a working model"


def assert_failure_leaves_no_trace(model: torch.nn.Module, tokenizers: list[Any], fail: Callable[[], Any],
                                   error: type[BaseException], working: Callable[[], Any],
                                   run: Callable[[Any], torch.Tensor], wrapped: bool) -> None:
    """``fail()`` raises ``error`` and leaves ``model`` and ``tokenizers`` as they were: ``model`` as the caller
    built it (never wrapped, in training mode), or while ``working()``, a model over the same modules, wraps it:
    that model then runs (``run``) exactly as before, while the failed construction is still referenced."""
    good = working() if wrapped else None
    expected = run(good) if wrapped else None
    if good is None:
        model.train()
    else:
        tokenizers = [*tokenizers, good.tokenizer]
    before = observable(model, *tokenizers)
    with pytest.raises(error) as failure:  # held: the failed model lives on in its traceback, as in a notebook
        fail()
    assert changes(before, observable(model, *tokenizers)) == {}
    if good is None:
        assert all(module.training for module in model.modules()), "a failed construction left eval mode behind"
    else:
        assert torch.equal(run(good), expected)
    assert failure.value is not None


def _trace_layer_and_logits(model: StandardizedTransformer) -> torch.Tensor:
    with torch.no_grad(), model.trace(PROMPT):
        hidden = model.layers_output[0].save()
        logits = model.logits.save()
    return torch.cat([hidden.flatten(), logits.flatten()])


# -- StandardizedTransformer ------------------------------------------------------------------------------------

def _fail_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(model: Any) -> Any:
        raise ZeroDivisionError("a load check crashed")

    monkeypatch.setattr("nnterp.checks.run_load_checks", broken)


@pytest.mark.parametrize("how", ["a check fails", "a check raises"])
def test_a_failed_validation_leaves_the_model_as_it_was(how: str, monkeypatch: pytest.MonkeyPatch,
                                                         wrapped: bool) -> None:
    toy = build_toy_model("llama")
    toy.tokenizer.pad_token = None  # the model's copy gets one (nnsight pads with EOS), the caller's stays without
    rename_config, error = (WRONG_MLP_OUTPUT, ValidationFailed) if how == "a check fails" else (None, ZeroDivisionError)

    def fail() -> Any:
        with monkeypatch.context() as patch:
            if how == "a check raises":
                _fail_checks(patch)
            return StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, rename_config=rename_config)

    assert_failure_leaves_no_trace(toy.model, [toy.tokenizer], fail, error,
                                   lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer),
                                   _trace_layer_and_logits, wrapped)


def test_a_failed_renaming_leaves_the_model_as_it_was(wrapped: bool) -> None:
    toy = build_toy_model("llama")
    assert_failure_leaves_no_trace(
        toy.model, [toy.tokenizer],
        lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, rename_config=NO_SUCH_LAYERS),
        ModuleNotFoundForRename, lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer),
        _trace_layer_and_logits, wrapped)


def test_a_failed_construction_with_attention_probabilities_undoes_the_switch_to_eager(wrapped: bool) -> None:
    toy = build_toy_model("llama")
    built_with = toy.model.config._attn_implementation
    assert built_with != "eager"  # else there would be no switch to undo
    assert_failure_leaves_no_trace(
        toy.model, [toy.tokenizer],
        lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, rename_config=WRONG_MLP_OUTPUT,
                                        enable_attention_probs=True),
        ValidationFailed, lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer),
        _trace_layer_and_logits, wrapped)
    assert toy.model.config._attn_implementation == built_with


def test_a_failure_while_measuring_the_layer_output_leaves_no_hook(wrapped: bool) -> None:
    """With ``check_renaming=False`` the layer-output arity is measured by a forward stopped by a hook on the first
    layer; a failure there (here the tokenizer's) leaves no hook, which would stop every later forward."""
    toy = build_toy_model("llama")
    refusing = raising(toy.tokenizer)
    assert_failure_leaves_no_trace(
        toy.model, [toy.tokenizer, refusing],
        lambda: StandardizedTransformer(toy.model, tokenizer=refusing, check_renaming=False),
        ZeroDivisionError, lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer),
        _trace_layer_and_logits, wrapped)


def test_a_model_in_training_mode_stays_in_training_mode() -> None:
    toy = build_toy_model("llama")
    toy.model.train()
    with pytest.raises(ValidationFailed):
        StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, rename_config=WRONG_MLP_OUTPUT)
    assert [name for name, module in toy.model.named_modules() if not module.training] == []
    # and a construction that succeeds puts it in eval mode, as documented
    StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)
    assert not any(module.training for module in toy.model.modules())


def test_what_a_failed_construction_replaced_is_put_back_itself() -> None:
    """Not only the names: the caller's own instance ``forward`` (which nnsight's controller takes the place of) and
    the caller's hook are the very objects they were, and a module class swapped (older models' switch to eager)
    and a config's attention come back too (nnterp.utils.restore.ModuleState, driven by hand)."""
    from nnterp.utils.restore import ModuleState

    toy = build_toy_model("llama")
    layer = toy.model.model.layers[0]
    own_forward = layer.forward  # bound method, kept as an instance attribute (as torch.compile or a patch does)
    layer.forward = own_forward
    handle = layer.register_forward_hook(lambda module, args, output: None)
    own_hook = layer._forward_hooks[handle.id]
    with pytest.raises(ValidationFailed):
        StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, rename_config=WRONG_MLP_OUTPUT)
    assert vars(layer)["forward"] is own_forward and "__nnsight__" not in vars(layer)
    assert dict(layer._forward_hooks) == {handle.id: own_hook}

    state = ModuleState(toy.model)
    before = observable(toy.model)
    layer.__class__ = type("Swapped", (type(layer),), {})
    layer.register_forward_pre_hook(lambda module, args: None)
    del layer._forward_hooks[handle.id]
    toy.model.config._attn_implementation = "eager"
    state.restore()
    assert changes(before, observable(toy.model)) == {}
    assert dict(layer._forward_hooks) == {handle.id: own_hook}


# -- StandardizedVLM --------------------------------------------------------------------------------------------

def _vlm_run(image: Any) -> Callable[[Any], torch.Tensor]:
    def run(model: Any) -> torch.Tensor:
        with torch.no_grad(), model.trace(model.image_prompt("What is this?"), images=[[image]]):
            hidden = model.layers_output[0].save()
            logits = model.logits.save()
        return torch.cat([hidden.flatten(), logits.flatten()])
    return run


@needs_vlm
@pytest.mark.parametrize("name", VLM_TYPES)
@pytest.mark.parametrize("how", ["a bad sample image", "a rename config naming no module",
                                 "a failure measuring the layer output"])
def test_a_failed_vlm_construction_leaves_the_model_as_it_was(name: str, how: str, wrapped: bool) -> None:
    from nnterp import StandardizedVLM
    from nnterp.toy.vision import build_toy_vlm

    toy = build_toy_vlm(name)
    processor = toy.processor
    options: dict[str, Any] = {"sample_image": toy.image}
    error: type[BaseException] = ValidationFailed
    if how == "a bad sample image":
        options["sample_image"] = "not an image"
    elif how == "a rename config naming no module":
        options["rename_config"], error = NO_SUCH_LAYERS, ModuleNotFoundForRename
    else:
        processor = copy.deepcopy(toy.processor)
        processor.tokenizer = raising(toy.processor.tokenizer)
        options["check_renaming"], error = False, ZeroDivisionError
    assert_failure_leaves_no_trace(
        toy.model, [toy.processor.tokenizer, processor.tokenizer],
        lambda: StandardizedVLM(toy.model, processor=processor, enable_attention_probs=True, **options), error,
        lambda: StandardizedVLM(toy.model, processor=toy.processor, sample_image=toy.image), _vlm_run(toy.image),
        wrapped)


# -- the toolkit ------------------------------------------------------------------------------------------------

def _toolkit_failure_leaves_no_trace(fail: Callable[[StandardizedTransformer], Any],
                                     error: type[BaseException]) -> None:
    toy = build_toy_model("llama")
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)
    expected = _trace_layer_and_logits(model)
    before = observable(toy.model, toy.tokenizer, model.tokenizer)
    with pytest.raises(error):
        fail(model)
    assert changes(before, observable(toy.model, toy.tokenizer, model.tokenizer)) == {}
    assert torch.equal(_trace_layer_and_logits(model), expected)


def test_steering_with_a_wrong_shaped_vector_leaves_the_model_as_it_was() -> None:
    def fail(model: StandardizedTransformer) -> None:
        with model.trace(PROMPT):
            steer(model, layers=[0, 1], steering_vector=torch.ones(model.hidden_size + 1))

    _toolkit_failure_leaves_no_trace(fail, SteeringVectorError)


def test_activation_patching_with_a_metric_that_raises_leaves_the_model_as_it_was() -> None:
    def metric(logits: torch.Tensor) -> torch.Tensor:
        raise ZeroDivisionError("this metric refuses")

    _toolkit_failure_leaves_no_trace(
        lambda model: activation_patching(model, "The cat sat", "The dog sat", metric), ZeroDivisionError)
