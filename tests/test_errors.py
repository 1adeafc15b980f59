"""The error family: one base class, messages that say what was wrong and what to do, one home per class."""

import importlib
import inspect
import pkgutil
import warnings
from types import SimpleNamespace

import pytest

import nnterp
import pytest_nnterp
from nnterp import errors
from nnterp.errors import (
    ArchitectureAlreadyRegistered,
    ChatTemplateMissing,
    InvalidArgument,
    LayerIndexError,
    LayerIndexTypeError,
    NNterpError,
    RenamingError,
    ShapeMismatch,
    ToolkitInputError,
    ToyConfigRejected,
    ToyModelUnsupported,
    ValidationFailed,
)


def _public_classes(module) -> list[type]:
    """The public exception and warning classes a module defines itself (not those it imports)."""
    return [value for name, value in vars(module).items() if inspect.isclass(value) and not name.startswith("_")
            and issubclass(value, BaseException) and value.__module__ == module.__name__]


def test_every_public_exception_of_errors_is_an_nnterp_error():
    found = [cls for cls in _public_classes(errors) if not issubclass(cls, Warning)]
    assert len(found) > 15 and ToyModelUnsupported in found and ChatTemplateMissing in found
    assert [cls.__name__ for cls in found if not issubclass(cls, NNterpError)] == []


def test_every_exception_nnterp_defines_is_an_nnterp_error():
    """Wherever it lives: a bare Exception subclass in any module would escape `except NNterpError`."""
    names = [info.name for package in (nnterp, pytest_nnterp)
             for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
             if not info.name.endswith("__main__")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated 1.x module paths say so on import
        modules = [importlib.import_module(name) for name in names]
    outside = [f"{cls.__module__}.{cls.__name__}" for module in modules for cls in _public_classes(module)
               if not issubclass(cls, (NNterpError, Warning))]
    assert outside == []


def test_the_errors_keep_their_builtin_parents():
    """Code written against the old classes (`except ValueError`, `except IndexError`) still catches them."""
    assert issubclass(ChatTemplateMissing, ToolkitInputError) and issubclass(ChatTemplateMissing, ValueError)
    assert issubclass(ArchitectureAlreadyRegistered, ValueError)
    assert issubclass(LayerIndexError, IndexError) and issubclass(LayerIndexTypeError, (InvalidArgument, TypeError))


def test_moved_errors_are_the_same_objects_at_their_old_import_paths():
    import nnterp.toolkit.interventions
    import nnterp.toy
    import nnterp.toy.build

    assert nnterp.toy.ToyModelUnsupported is nnterp.toy.build.ToyModelUnsupported is ToyModelUnsupported
    assert nnterp.toolkit.interventions.ChatTemplateMissing is nnterp.ChatTemplateMissing is ChatTemplateMissing


def test_the_errors_nnterp_exports_are_the_errors_classes():
    exported = [cls for cls in _public_classes(errors) if cls.__name__ in nnterp.__all__]
    assert len(exported) > 15
    assert [cls.__name__ for cls in exported if getattr(nnterp, cls.__name__) is not cls] == []


@pytest.mark.parametrize("error, found, todo", [
    (LayerIndexError(5, 2), "layer index 5 is out of range: this model has 2 layers", "valid indices 0..1"),
    (LayerIndexTypeError(1.0), "layer index 1.0 (float) is not an integer", "pass an int"),
    (ShapeMismatch("layers_output[0]", (1, 3, 64), (3, 64)), "expects a value of shape (1, 3, 64), got shape (3, 64)",
     "give a tensor of exactly that shape"),
    (RenamingError("no layers found", architecture="FooForCausalLM", fix="pass RenameConfig(layers=...)"),
     "[FooForCausalLM] no layers found", "Fix: pass RenameConfig(layers=...)"),
    (ArchitectureAlreadyRegistered("BloomForCausalLM"), "BloomForCausalLM already has a registry row",
     "pass override=True to replace it on purpose"),
    (ToyModelUnsupported("gemma3n", "its vision tower needs timm (not installed)"),
     "no toy model of 'gemma3n' can run here", "needs timm (not installed)"),
    (ToyConfigRejected("kolibri1_1", "index_num_heads must be between 1 and the number of query heads of key head 0"),
     "the config class of 'kolibri1_1' rejects its toy config: index_num_heads must be",
     "Fix: give the field a small value in nnterp.toy.build.SMALL_SIZES"),
])
def test_messages_say_what_was_wrong_and_what_to_do(error, found, todo):
    assert isinstance(error, NNterpError)
    assert found in str(error) and todo in str(error)


def test_a_failed_validation_names_each_failed_check_and_the_fixes():
    def result(name, failed, message, fix=""):
        return SimpleNamespace(name=SimpleNamespace(value=name), failed=failed, message=message, fix=fix)

    error = ValidationFailed([result("io_shapes", False, "ok"), result("residual_identity", True, "off by 0.3",
                                                                       "set attention_output")],
                             architecture="FooForCausalLM")
    assert str(error) == ("[FooForCausalLM] 1 load-time check(s) failed:\n  - residual_identity: off by 0.3\n"
                          "Fix: set attention_output")
    assert error.check == "residual_identity" and error.architecture == "FooForCausalLM"


def test_the_structured_fields_travel_with_the_error():
    error = ToyModelUnsupported("gemma3n", "needs timm")
    assert (error.model_type, error.reason) == ("gemma3n", "needs timm")
    assert ArchitectureAlreadyRegistered("BloomForCausalLM").class_name == "BloomForCausalLM"
