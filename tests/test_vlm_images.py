"""A vision-language model's image markers and images must match: markers without images, images that are
not images, counts that differ and images without markers raise a typed error naming each prompt's counts,
on toy LLaVA (one <image> marker), Gemma 3 (its begin-of-image marker is not its image token) and Qwen2-VL
(vision start, image pad and vision end per image)."""

from __future__ import annotations

import re

import pytest
import torch

from nnterp import StandardizedVLM
from nnterp.errors import ImageMismatch, ToolkitInputError, ToolkitTypeError
from nnterp.toy.vision import build_toy_vlm

VLM_TYPES = ("llava", "gemma3", "qwen2_vl")


@pytest.fixture(scope="module", params=VLM_TYPES)
def toy_and_model(request):
    toy = build_toy_vlm(request.param)
    return toy, StandardizedVLM(toy.model, processor=toy.processor, sample_image=toy.image)


def _trace(model, *args, **kwargs):
    with torch.no_grad(), model.trace(*args, **kwargs):
        logits = model.logits.save()
    return logits


def _counts(prompt_or_row: str, markers: int, images: int) -> str:
    """The message's words for one prompt's counts."""
    marker_words = f"{markers} image marker" + ("" if markers == 1 else "s")
    image_words = f"{images} image" + ("" if images == 1 else "s")
    return re.escape(prompt_or_row) + r".* holds " + marker_words + " and got " + image_words


@pytest.mark.parametrize("images", ["missing", None, 0, -1, []], ids=["missing", "None", "0", "-1", "[]"])
def test_markers_without_images_are_refused_with_the_counts(toy_and_model, images):
    _, model = toy_and_model
    prompt = model.image_prompt("What is in the picture?")
    kwargs = {} if images == "missing" else {"images": images}
    with pytest.raises(ImageMismatch, match=_counts("prompt 0", 1, 0)) as raised:
        _trace(model, prompt, **kwargs)
    assert "model.image_prompt" in str(raised.value) and "images=[[image]]" in str(raised.value)


@pytest.mark.parametrize("images", [3, "a picture", 1.5], ids=["int", "str", "float"])
def test_images_of_a_wrong_type_are_refused_naming_the_type(toy_and_model, images):
    _, model = toy_and_model
    with pytest.raises(ImageMismatch, match=re.escape(f"images={type(images).__name__} ({images!r})")) as raised:
        _trace(model, model.image_prompt("Hi"), images=images)
    assert re.search(_counts("prompt 0", 1, 0), str(raised.value))


@pytest.mark.parametrize("entry", [0, -1, None], ids=["0", "-1", "None"])
def test_a_list_entry_that_is_not_an_image_is_refused(toy_and_model, entry):
    toy, model = toy_and_model
    prompts = [model.image_prompt("Hi"), model.image_prompt("There")]
    with pytest.raises(ImageMismatch, match=re.escape(f"images[1][0] is {type(entry).__name__} ({entry!r})")) as raised:
        _trace(model, prompts, images=[[toy.image], [entry]])
    assert re.search(_counts("prompt 0", 1, 1), str(raised.value))
    assert re.search(_counts("prompt 1", 1, 0), str(raised.value))


def test_more_images_than_markers_are_refused(toy_and_model):
    toy, model = toy_and_model
    with pytest.raises(ImageMismatch, match=_counts("prompt 0", 1, 2)) as raised:
        _trace(model, model.image_prompt("Hi"), images=[toy.image, toy.image])
    assert isinstance(raised.value.__cause__, ValueError)  # the processor's own words, chained


def test_fewer_images_than_markers_are_refused(toy_and_model):
    toy, model = toy_and_model
    with pytest.raises(ImageMismatch, match=_counts("prompt 0", 2, 1)):
        _trace(model, model.image_prompt("Compare them", images=2), images=[toy.image])


def test_one_prompt_of_a_batch_short_of_its_image_is_named(toy_and_model):
    toy, model = toy_and_model
    prompts = [model.image_prompt("Hi"), model.image_prompt("There")]
    with pytest.raises(ImageMismatch, match=_counts("prompt 1", 1, 0)):
        _trace(model, prompts, images=[[toy.image], []])


def test_images_without_markers_are_refused(toy_and_model):
    toy, model = toy_and_model
    with pytest.raises(ImageMismatch, match=_counts("prompt 0 ('no markers here')", 0, 1)):
        _trace(model, "no markers here", images=[toy.image])


def test_an_encoding_holding_markers_without_images_is_refused(toy_and_model):
    """Tokenized without the processor's images (the tokenizer alone, as a toolkit call without images= does):
    the input holds the marker tokens and no image tensor."""
    _, model = toy_and_model
    encoding = dict(model.tokenizer([model.image_prompt("Hi"), "plain text"], return_tensors="pt", padding=True))
    with pytest.raises(ImageMismatch, match="markers without images") as raised:
        _trace(model, encoding)
    assert re.search(_counts("row 0 of the input", 1, 0), str(raised.value))
    assert re.search(_counts("row 1 of the input", 0, 0), str(raised.value))


def test_the_markers_include_the_templates_image_tokens(toy_and_model):
    _, model = toy_and_model
    prompt = model.image_prompt("Hi", images=2)
    marker_ids = model.image_marker_ids
    assert model.image_token_id in marker_ids
    assert set(model.tokenizer(prompt, add_special_tokens=False)["input_ids"]) & marker_ids
    assert model.image_markers([prompt, "plain text", model.image_prompt("Hi")]) == [2, 0, 1]


def test_direct_logit_attribution_on_markers_without_images_is_refused(toy_and_model):
    from nnterp.toolkit.analysis import direct_logit_attribution

    _, model = toy_and_model
    with pytest.raises(ImageMismatch, match=_counts("row 0 of the input", 1, 0)):
        direct_logit_attribution(model, model.image_prompt("What is in the picture?"), " a")


def test_the_toolkit_refuses_an_entry_that_is_not_an_image(toy_and_model):
    from nnterp import get_token_activations

    _, model = toy_and_model
    prompt = model.image_prompt("Hi")
    with pytest.raises(ToolkitTypeError, match=re.escape("images[0] holds int (0)")) as raised:
        get_token_activations(model, [prompt], images=[0])
    assert re.search(r"prompt 0 .* holds 1 image marker\)", str(raised.value))
    with pytest.raises(ToolkitTypeError, match=re.escape("images is int (-1)")):
        get_token_activations(model, [prompt], images=-1)


def test_the_toolkit_refuses_markers_and_images_that_differ(toy_and_model):
    from nnterp import get_token_activations

    toy, model = toy_and_model
    prompt = model.image_prompt("Hi")
    with pytest.raises(ImageMismatch, match=_counts("prompt 0", 1, 2)):
        get_token_activations(model, [prompt], images=[[toy.image, toy.image]])
    with pytest.raises(ImageMismatch, match=_counts("row 0 of the input", 1, 0)):
        get_token_activations(model, [prompt])  # no images: the tokenizer alone encodes the markers
    with pytest.raises(ToolkitInputError, match="0 entries for 1 prompts"):
        get_token_activations(model, [prompt], images=[])


def test_matching_markers_and_images_run_as_the_plain_model(toy_and_model):
    toy, model = toy_and_model
    prompts = [model.image_prompt("What is in the picture?"), model.image_prompt("Compare them", images=2)]
    logits = _trace(model, prompts, images=[[toy.image], [toy.image, toy.image]])
    with torch.no_grad():
        for row, (prompt, images) in enumerate(zip(prompts, [[toy.image], [toy.image, toy.image]])):
            reference = toy.model(**toy.processor(text=[prompt], images=[images], return_tensors="pt")).logits
            torch.testing.assert_close(logits[row, -1], reference[0, -1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("images", ["missing", None, []], ids=["missing", "None", "[]"])
def test_a_prompt_without_markers_runs_as_text_without_images(toy_and_model, images):
    _, model = toy_and_model
    kwargs = {} if images == "missing" else {"images": images}
    logits = _trace(model, "no image here", **kwargs)
    with torch.no_grad():
        reference = model._module(**model.tokenizer(["no image here"], return_tensors="pt")).logits
    torch.testing.assert_close(logits, reference)


def test_an_image_file_path_traces_like_the_image(tmp_path):
    from nnterp.toolkit.activations import get_token_activations
    from nnterp.toy.standardized import standardized_toy_vlm
    from nnterp.toy.vision import build_toy_vlm

    image = build_toy_vlm("llava").image
    model = standardized_toy_vlm("llava", enable_attention_probs=False)
    path = tmp_path / "image.png"
    image.save(path)
    prompt = model.image_prompt("What is this?")
    by_path = get_token_activations(model, [prompt], images=[str(path)])
    torch.testing.assert_close(by_path, get_token_activations(model, [prompt], images=[image]))
    with torch.no_grad(), model.trace(prompt, images=[str(path)]):
        traced = model.logits.save()
    with torch.no_grad(), model.trace(prompt, images=[image]):
        expected = model.logits.save()
    torch.testing.assert_close(traced, expected)
