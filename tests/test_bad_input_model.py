"""Bad input to the model side of nnterp (loading, renaming, accessors, interventions, CLI): each case is one row
of a table (the bad call, the typed error it must raise, a fragment of the message), plus a property test over
layer indices and a check that loading leaves the caller's tokenizer alone."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nnterp import StandardizedTransformer
from nnterp.__main__ import main
from nnterp.accessors import check_layer_index
from nnterp.errors import (CommandLineError, InputTooLong, InputTooLongWarning, InvalidArgument, LayerIndexError,
                           LayerIndexTypeError, ModelNotFound, ModuleNotFoundForRename, NNterpError, ShapeMismatch,
                           ToolkitInputError)
from nnterp.module_accessor import ModuleAccessor
from nnterp.rename import RenameConfig, get_rename_dict
from nnterp.toy import build_toy_model
from nnterp.toy.standardized import standardized_toy


class Models:
    """Toy models built on first use, shared by every row."""

    @cached_property
    def llama(self) -> Any:
        return standardized_toy("llama")

    @cached_property
    def gpt2(self) -> Any:
        return standardized_toy("gpt2")

    @cached_property
    def raw_llama(self) -> Any:
        return build_toy_model("llama")


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Models], Any]
    error: type[NNterpError]
    fragment: str


def _in_trace(model_name: str, action: Callable[[Any], None]) -> Callable[[Models], None]:
    """A call running ``action(model)`` inside a trace on a short prompt."""
    def call(models: Models) -> None:
        model = getattr(models, model_name)
        with model.trace("The cat sat"):
            action(model)
    return call


def _assign(accessor: str, index: int, shape: tuple[int, ...]) -> Callable[[Any], None]:
    def action(model: Any) -> None:
        getattr(model, accessor)[index] = torch.zeros(shape)
    return action


def _load(model: Any, **kwargs: Any) -> Callable[[Models], Any]:
    return lambda models: StandardizedTransformer(model, **kwargs)


def _load_raw(**kwargs: Any) -> Callable[[Models], Any]:
    return lambda models: StandardizedTransformer(models.raw_llama.model, tokenizer=models.raw_llama.tokenizer,
                                                  **kwargs)


def _too_long(model_name: str, extra: int) -> Callable[[Models], None]:
    def call(models: Models) -> None:
        model = getattr(models, model_name)
        limit, _ = model.position_limit
        with model.trace(torch.zeros(1, limit + extra, dtype=torch.long)):
            model.logits.save()
    return call


CASES = [
    # layer indices: integer-like or refused by type
    Case("bool index", lambda m: m.llama.layers_output[True], LayerIndexTypeError, "True (bool) is not an integer"),
    Case("numpy bool index", lambda m: m.llama.attentions[np.bool_(True)], LayerIndexTypeError, "is not an integer"),
    Case("float index", lambda m: m.llama.layers_output[1.0], LayerIndexTypeError, "1.0 (float)"),
    Case("string index", lambda m: m.llama.layers_output["1"], LayerIndexTypeError, "'1' (str)"),
    Case("slice index", lambda m: m.llama.layers_output[0:1], LayerIndexTypeError, "(slice)"),
    Case("float tensor index", lambda m: m.llama.mlps[torch.tensor(1.0)], LayerIndexTypeError, "Tensor"),
    Case("1-d tensor index", lambda m: m.llama.mlps[torch.tensor([0, 1])], LayerIndexTypeError, "Tensor"),
    Case("index out of range", lambda m: m.llama.layers_output[2], LayerIndexError, "valid indices 0..1"),
    Case("skip_layer bool", lambda m: m.llama.skip_layer(True), LayerIndexTypeError, "(bool)"),
    Case("skip_layers start after end", lambda m: m.llama.skip_layers(1, 0), ToolkitInputError, "is after end_layer"),
    Case("steer float layer", lambda m: m.llama.steer(0.5, torch.zeros(m.llama.hidden_size)), LayerIndexTypeError,
         "(float)"),
    Case("ModuleAccessor float layer", lambda m: ModuleAccessor(m.raw_llama.model).get_attention(1.5),
         LayerIndexTypeError, "(float)"),
    # flags and rename_config
    Case("check_renaming string", _load_raw(check_renaming="no"), InvalidArgument,
         "check_renaming must be True or False, got 'no'"),
    Case("enable_attention_probs int", _load_raw(enable_attention_probs=1), InvalidArgument,
         "enable_attention_probs must be True or False"),
    Case("rename_config string", _load_raw(rename_config="model.layers"), InvalidArgument,
         "rename_config must be a RenameConfig"),
    Case("get_rename_dict rename_config string", lambda m: get_rename_dict(m.raw_llama.model, "model.layers"),
         InvalidArgument, "rename_config must be a RenameConfig"),
    Case("RenameConfig module for path", lambda m: RenameConfig(layers=torch.nn.Linear(2, 2)), InvalidArgument,
         "RenameConfig(layers=...) must be a dotted module path"),
    Case("RenameConfig empty path", lambda m: RenameConfig(lm_head=""), InvalidArgument, "RenameConfig(lm_head=...)"),
    Case("RenameConfig bad residual", lambda m: RenameConfig(residual="diagonal"), InvalidArgument,
         "RenameConfig(residual=...) must be one of"),
    Case("RenameConfig missing layers", _load_raw(rename_config=RenameConfig(layers="model.nonexistent")),
         ModuleNotFoundForRename, "RenameConfig(layers='model.nonexistent') names no module of this model. "
         "Top-level modules: model (LlamaModel)"),
    Case("RenameConfig missing attention", _load_raw(rename_config=RenameConfig(attention="nonexistent_attn")),
         ModuleNotFoundForRename, "Modules of layer 0: self_attn"),
    Case("ModuleAccessor missing lm_head",
         lambda m: ModuleAccessor(m.raw_llama.model, RenameConfig(lm_head=["head", "out"])), ModuleNotFoundForRename,
         "RenameConfig(lm_head=['head', 'out'])"),
    # the model argument
    Case("torch Linear", _load(torch.nn.Linear(2, 2)), InvalidArgument, "torch.nn.modules.linear.Linear"),
    Case("None", _load(None), InvalidArgument, "got builtins.NoneType"),
    Case("int", _load(42), InvalidArgument, "got builtins.int"),
    Case("ModuleAccessor on None", lambda m: ModuleAccessor(None), InvalidArgument,
         "ModuleAccessor takes a torch module"),
    Case("ModuleAccessor on Linear", lambda m: ModuleAccessor(torch.nn.Linear(2, 2)), ModuleNotFoundForRename,
         "no `embed_tokens` module found"),
    Case("missing absolute path", _load("/nonexistent/nnterp-model"), ModelNotFound, "no model at local path"),
    Case("missing relative path", _load("./nnterp-no-such-model"), ModelNotFound, "no model at local path"),
    Case("missing home path", _load("~/nnterp-no-such-model"), ModelNotFound, "no model at local path"),
    Case("missing nested path", _load("models/org/nnterp-no-such-model"), ModelNotFound, "no model at local path"),
    # values of the wrong shape, found inside the trace
    Case("layers_output wrong shape", _in_trace("llama", _assign("layers_output", 0, (3,))), ShapeMismatch,
         "layer 0's output expects a value of shape (1, "),
    Case("layers_input wrong shape", _in_trace("llama", _assign("layers_input", 1, (1, 2, 3))), ShapeMismatch,
         "got shape (1, 2, 3)"),
    Case("mlps_output wrong shape", _in_trace("llama", _assign("mlps_output", -1, (5,))), ShapeMismatch,
         "layer 1's contribution"),
    Case("skip_layer skip_with wrong shape",
         _in_trace("llama", lambda model: model.skip_layer(0, skip_with=torch.zeros(1, 2, 3))), ShapeMismatch,
         "skip_with for layer 0 expects"),
    Case("skip_layers skip_with wrong shape",
         _in_trace("llama", lambda model: model.skip_layers(0, 1, skip_with=torch.zeros(7))), ShapeMismatch,
         "got shape (7,)"),
    # inputs past the learned positions
    Case("GPT-2 input past n_positions", _too_long("gpt2", 1), InputTooLong,
         "learned position embeddings for 512 positions only"),
]


@pytest.fixture(scope="module")
def models() -> Models:
    return Models()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_raises_a_typed_error(models: Models, case: Case):
    assert issubclass(case.error, NNterpError)
    with pytest.raises(case.error) as raised:
        case.call(models)
    assert case.fragment in str(raised.value)


def test_every_case_is_typed():
    assert len(CASES) >= 30 and all(issubclass(case.error, NNterpError) for case in CASES)


def test_input_past_a_rotary_context_warns(models: Models):
    with pytest.warns(InputTooLongWarning, match="longer than this LlamaForCausalLM's"):
        _too_long("llama", 1)(models)
    _, learned = models.llama.position_limit
    assert not learned


def test_input_at_the_limit_runs_quietly(models: Models, recwarn):
    _too_long("gpt2", 0)(models)
    assert not [w for w in recwarn if issubclass(w.category, InputTooLongWarning)]


@pytest.mark.parametrize("argv", [
    ["toy", "nosuchtype"],
    ["validate", "nosuchtype"],
    ["report", "--reports-dir", "/nonexistent/reports", "--out", "/nonexistent/site"],
    ["status", "LlamaForCausalLM", "--reports-dir", "/nonexistent/reports"],
    ["report", "--diff", "/nonexistent/old.json", "/nonexistent/new.json"],
])
def test_cli_bad_argument_is_one_line_and_exit_2(argv, capsys, tmp_path):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"python -m nnterp {argv[0]}: error:") and "\n" not in err and "Traceback" not in err


def test_cli_corrupt_diff_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert main(["report", "--diff", str(bad), str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_cli_error_is_typed():
    assert issubclass(CommandLineError, NNterpError)


INDEX_VALUES = st.one_of(
    st.integers(-6, 6),
    st.integers(-6, 6).map(np.int64),
    st.integers(-6, 6).map(torch.tensor),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none(),
    st.integers(-3, 3).map(lambda i: slice(i, None)),
    st.integers(-3, 3).map(lambda i: torch.tensor(float(i))),
    st.lists(st.integers(0, 1), min_size=1, max_size=2).map(torch.tensor),
)


@settings(max_examples=300, deadline=None)
@given(index=INDEX_VALUES, num_layers=st.integers(1, 4))
def test_layer_index_is_an_integer_in_range_or_a_typed_error(index, num_layers):
    integer_like = not isinstance(index, bool) and (
        isinstance(index, (int, np.integer)) or isinstance(index, torch.Tensor) and index.ndim == 0
        and not index.is_floating_point() and index.dtype != torch.bool)
    if not integer_like:
        with pytest.raises(LayerIndexTypeError, match="is not an integer"):
            check_layer_index(index, num_layers)
        return
    value = int(index)
    if -num_layers <= value < num_layers:
        assert check_layer_index(index, num_layers) == value % num_layers
        assert type(check_layer_index(index, num_layers)) is int
    else:
        with pytest.raises(LayerIndexError, match=f"valid indices 0..{num_layers - 1}"):
            check_layer_index(index, num_layers)


def test_loading_leaves_the_callers_tokenizer_alone():
    toy = build_toy_model("gpt2")
    tokenizer = toy.tokenizer
    tokenizer.padding_side = "right"
    tokenizer.pad_token = None
    model = StandardizedTransformer(toy.model, tokenizer=tokenizer)
    assert tokenizer.padding_side == "right" and tokenizer.pad_token is None
    assert model.tokenizer is not tokenizer
    assert model.tokenizer.padding_side == "left" and model.tokenizer.pad_token is not None
