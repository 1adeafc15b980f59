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
from nnterp.core.accessors import check_layer_index
from nnterp.core.module_accessor import ModuleAccessor
from nnterp.core.rename import RenameConfig, get_rename_dict
from nnterp.errors import (
    CommandLineError,
    InputTooLong,
    InputTooLongWarning,
    InvalidArgument,
    LayerIndexError,
    LayerIndexTypeError,
    ModelNotFound,
    ModuleNotFoundForRename,
    NNterpError,
    PromptError,
    RemoteRequestError,
    RemovedHelper,
    RenamingError,
    ShapeMismatch,
    ToolkitInputError,
    ToolkitTypeError,
)
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


def _trace(prompt: Any, **kwargs: Any) -> Callable[[Models], None]:
    def call(models: Models) -> None:
        with models.llama.trace(prompt, **kwargs):
            models.llama.logits.save()
    return call


def _invoke(prompt: Any) -> Callable[[Models], None]:
    def call(models: Models) -> None:
        with models.llama.trace() as tracer:
            with tracer.invoke(prompt):
                models.llama.logits.save()
    return call


def _scan(models: Models, prompt: Any) -> Any:
    """``model.scan(prompt)`` (fake tensors: shapes, no values), the shape of layer 0's output."""
    with models.llama.scan(prompt):
        shape = models.llama.layers_output[0].shape.save()
    return shape


def _import_legacy(name: str) -> Any:
    """``from nnterp.nnsight_utils import <name>``, as a 1.x notebook writes it."""
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = importlib.import_module("nnterp.nnsight_utils")
    exec(f"from nnterp.nnsight_utils import {name}", {})
    return module


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
    # what a trace takes, checked where it enters (nnterp.utils.inputs): model.trace, tracer.invoke, model.generate
    Case("trace empty string", _trace(""), PromptError, "tokenizes to no token"),
    Case("trace empty list", _trace([]), PromptError, "the trace's input is an empty list"),
    Case("trace None", _trace(None), PromptError, "the trace's input is None"),
    Case("trace int", _trace(123), ToolkitTypeError, "the trace's input is int (123)"),
    Case("trace mixed list", _trace(["a", 5]), ToolkitTypeError, "the trace's input[1] is int (5)"),
    Case("trace ids mixed with text", _trace([[1, 2], [3, "x"]]), ToolkitTypeError, "the trace's input[1][1] is str"),
    Case("trace float tensor", _trace(torch.zeros(1, 3)), ToolkitTypeError, "torch.float32 tensor, not token ids"),
    Case("trace empty tensor", _trace(torch.zeros(1, 0, dtype=torch.long)), PromptError, "empty tensor"),
    Case("trace object", _trace(object()), ToolkitTypeError, "the trace's input is object"),
    Case("invoke empty string", _invoke(""), PromptError, "tokenizes to no token"),
    Case("invoke None", _invoke(None), PromptError, "the trace's input is None"),
    Case("scan empty string", lambda m: _scan(m, ""), PromptError, "tokenizes to no token"),
    Case("scan None", lambda m: _scan(m, None), PromptError, "the trace's input is None"),
    Case("generate empty list", lambda m: m.llama.generate([], max_new_tokens=1), PromptError, "empty list"),
    Case("remote typo", _trace("Hi", remote="lokal"), InvalidArgument, "remote='lokal' (str) (did you mean 'local'?)"),
    Case("remote int", _trace("Hi", remote=1), InvalidArgument, "remote=1 (int)"),
    Case("remote None", _trace("Hi", remote=None), InvalidArgument, "remote=None (NoneType)"),
    Case("session remote int", lambda m: m.llama.session(remote=1), InvalidArgument, "remote=1 (int)"),
    Case("remote True on a model built in memory", _trace("Hi", remote=True), RemoteRequestError,
         "this model has none"),
    # the model argument and the layers it names
    Case("empty model string", _load(""), ModelNotFound, "model is ''"),
    Case("blank model string", _load("   "), ModelNotFound, "pass a hub id"),
    Case("RenameConfig layers on an Embedding", _load_raw(rename_config=RenameConfig(layers="model.embed_tokens")),
         RenamingError, "`layers` (model.embed_tokens) is a module of type Embedding, not a list of layers"),
    Case("RenameConfig layers on a norm", _load_raw(rename_config=RenameConfig(layers="model.norm")),
         RenamingError, "is a module of type LlamaRMSNorm, not a list of layers"),
    # hidden states of the wrong size, k outside the vocabulary
    Case("project_on_vocab wrong hidden size", lambda m: m.llama.project_on_vocab(torch.zeros(3, 7)),
         ToolkitInputError, "hidden size 64, got shape (3, 7)"),
    Case("project_on_vocab wrong hidden size in a trace",
         _in_trace("llama", lambda model: model.project_on_vocab(model.layers_output[0][..., :7])),
         ToolkitInputError, "hidden size 64"),
    Case("get_topk_closest_tokens wrong hidden size", lambda m: m.llama.get_topk_closest_tokens(torch.zeros(3, 7)),
         ToolkitInputError, "hidden size 64, got shape (3, 7)"),
    Case("get_topk_closest_tokens k past the vocabulary",
         lambda m: m.llama.get_topk_closest_tokens(torch.zeros(64), k=10**6), ToolkitInputError,
         "k is 1000000: pass an int from 1 to the vocabulary size"),
    Case("get_topk_closest_tokens k 0", lambda m: m.llama.get_topk_closest_tokens(torch.zeros(64), k=0),
         ToolkitInputError, "k is 0"),
    Case("get_topk_closest_tokens k bool", lambda m: m.llama.get_topk_closest_tokens(torch.zeros(64), k=True),
         ToolkitInputError, "k is True"),
    # nnterp 1.x helpers 2.0 has no shim for
    Case("1.x load_model", lambda m: _import_legacy("load_model"), RemovedHelper,
         "nnsight_utils.load_model was removed in nnterp 2.0: use StandardizedTransformer(model_name)"),
    Case("1.x collect_activations", lambda m: _import_legacy("collect_activations"), RemovedHelper,
         "use nnterp.get_token_activations"),
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


def test_the_1x_accessor_helpers_read_what_the_accessors_read(models: Models):
    with pytest.warns(FutureWarning, match="nnterp.nnsight_utils will be removed"):
        import importlib
        import sys

        sys.modules.pop("nnterp.nnsight_utils", None)
        legacy = importlib.import_module("nnterp.nnsight_utils")
    model = models.llama
    with torch.no_grad(), model.trace("The cat sat"):
        hidden = legacy.get_layer_output(model, legacy.get_num_layers(model) - 1).save()
        lens = legacy.project_on_vocab(model, hidden).save()
        logits = legacy.get_logits(model).save()
    assert legacy.get_num_layers(model) == model.num_layers == 2
    torch.testing.assert_close(lens, logits)
    with pytest.raises(AttributeError, match="no attribute 'no_such_helper'"):
        legacy.no_such_helper  # noqa: B018 - the lookup is the test


def test_scan_runs_on_fake_tensors_past_the_input_checks(models: Models):
    assert tuple(_scan(models, "The cat sat")) == (1, len("The cat sat"), models.llama.hidden_size)


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
