"""The ``vlm`` extra: Pillow and num2words are installed by ``pip install "nnterp[vlm]"`` (and the dev extra), not
by a plain install, and every feature that needs them raises MissingExtra naming the extra when one is missing."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import pytest
from packaging.requirements import Requirement

from nnterp import StandardizedVLM, get_token_activations, logit_lens
from nnterp.errors import MissingExtra, NNterpError
from nnterp.toy.vision import build_toy_vlm
from nnterp.utils.extras import EXTRAS
from nnterp.utils.images import noise_image

VLM_DISTRIBUTIONS = {"pillow", "num2words"}


@pytest.fixture
def hide(monkeypatch):
    """``hide("PIL")``: find_spec answers None for those modules, as where the package is not installed."""
    real_find_spec = importlib.util.find_spec

    def hide(*modules: str) -> None:
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *args: None if name in modules else real_find_spec(name, *args))

    return hide


@pytest.fixture(scope="module")
def toy_llava():
    toy = build_toy_vlm("llava")
    return toy, StandardizedVLM(toy.model, processor=toy.processor, sample_image=toy.image)


def test_missing_extra_is_an_nnterp_error_and_an_import_error():
    error = MissingExtra("vlm", ["pillow (module PIL)"], "StandardizedVLM")
    assert isinstance(error, NNterpError) and isinstance(error, ImportError)
    assert (error.extra, error.missing, error.feature) == ("vlm", ["pillow (module PIL)"], "StandardizedVLM")
    assert str(error) == ("StandardizedVLM needs pillow (module PIL), not installed (nnterp's optional 'vlm' "
                          'extra); install it: pip install "nnterp[vlm]"')


@pytest.mark.parametrize("hidden, named", [
    (("PIL", "num2words"), "pillow (module PIL) and num2words"),
    (("PIL",), "pillow (module PIL)"),
    (("num2words",), "num2words"),
])
def test_a_vision_language_model_needs_the_whole_extra_before_anything_loads(hide, hidden, named):
    hide(*hidden)
    # a hub id: refused before transformers is asked for the model or its processor (nothing is downloaded)
    with pytest.raises(MissingExtra, match=r'pip install "nnterp\[vlm\]"') as caught:
        StandardizedVLM("llava-hf/llava-1.5-7b-hf")
    assert caught.value.extra == "vlm" and f"StandardizedVLM needs {named}, not installed" in str(caught.value)


def test_a_noise_image_needs_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # what an environment without Pillow imports
    with pytest.raises(MissingExtra, match=r"noise image .* needs pillow \(module PIL\)") as caught:
        noise_image()
    assert caught.value.extra == "vlm"


@pytest.mark.parametrize("call", [get_token_activations, logit_lens])
def test_images_in_the_toolkit_need_pillow(toy_llava, hide, call):
    toy, model = toy_llava
    hide("PIL")
    with pytest.raises(MissingExtra, match=r"images= .* needs pillow \(module PIL\).*nnterp\[vlm\]"):
        call(model, [model.image_prompt("What is this?")], images=[toy.image])


def test_nothing_is_refused_when_the_extra_is_installed(toy_llava):
    toy, model = toy_llava
    assert noise_image().size == (64, 64)
    assert get_token_activations(model, [model.image_prompt("What is this?")], images=[toy.image]).shape[1] == 1


def _extras_requiring(distribution: str) -> set[str] | None:
    """The extras of the installed nnterp whose requirements name ``distribution`` (None: a plain install does)."""
    extras: set[str] = set()
    for line in importlib.metadata.requires("nnterp") or []:
        requirement = Requirement(line)
        if requirement.name.lower() != distribution:
            continue
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            return None
        extras |= {extra for extra in importlib.metadata.metadata("nnterp").get_all("Provides-Extra") or []
                   if requirement.marker.evaluate({"extra": extra})}
    return extras


@pytest.mark.parametrize("distribution", sorted(VLM_DISTRIBUTIONS))
def test_pillow_and_num2words_come_only_with_the_vlm_and_dev_extras(distribution):
    """Read from the installed metadata: after editing pyproject.toml, `pip install --no-deps -e .` refreshes it."""
    assert _extras_requiring(distribution) == {"vlm", "dev"}


def test_the_extras_table_names_what_the_extra_installs():
    assert set(EXTRAS["vlm"].values()) == VLM_DISTRIBUTIONS


def test_a_toy_vision_language_model_needs_the_extra(hide):
    hide("PIL")
    with pytest.raises(MissingExtra, match=r"toy vision-language model 'llava' needs pillow"):
        build_toy_vlm("llava")
