"""StandardizedVLM on toy LLaVA and Qwen2-VL: validation with an image, the image-side accessors, and the
language-side toolkit on prompts holding images."""

from __future__ import annotations

import pytest
import torch

from nnterp import StandardizedVLM
from nnterp.checks import ReportStatus
from nnterp.errors import InvalidArgument
from nnterp.toy.vision import build_toy_vlm

VLM_TYPES = ("llava", "qwen2_vl")


@pytest.fixture(scope="module", params=VLM_TYPES)
def toy_and_model(request):
    toy = build_toy_vlm(request.param)
    model = StandardizedVLM(toy.model, processor=toy.processor, sample_image=toy.image, enable_attention_probs=True)
    return toy, model


def _prompts(model):
    return [model.image_prompt("What is in the picture?"), model.image_prompt("Describe it")]


def test_every_load_check_passes_on_a_prompt_holding_an_image(toy_and_model):
    _, model = toy_and_model
    assert [(result.name.value, result.status) for result in model.check_results] == [
        ("renaming", ReportStatus.PASSED), ("io_shapes", ReportStatus.PASSED),
        ("residual_identity", ReportStatus.PASSED), ("attn_probs", ReportStatus.PASSED)]


def test_the_language_side_and_the_image_side_are_found(toy_and_model):
    toy, model = toy_and_model
    assert model.num_layers == toy.model.config.get_text_config().num_hidden_layers
    assert model.num_vision_layers == 2
    assert model.image_token_id == toy.processor.image_token_id
    assert model.vision_tower._module is toy.model.model.get_submodule(model.vision.vision_tower.removeprefix("model."))


def test_image_token_mask_marks_the_positions_image_embeddings_fill(toy_and_model):
    toy, model = toy_and_model
    with torch.no_grad(), model.trace(_prompts(model), images=[[toy.image], [toy.image]]):
        ids = model.input_ids.save()
        mask = model.image_token_mask.save()
        embeddings = model.image_embeddings.save()
        first_input = model.layers_input[0].save()
    assert mask.shape == ids.shape and mask.dtype == torch.bool
    assert torch.equal(mask, ids == toy.processor.image_token_id)
    assert int(mask.sum()) == embeddings.reshape(-1, embeddings.shape[-1]).shape[0] > 0
    # what the language model receives at the image positions is the projector's output, in order
    assert torch.equal(first_input[mask], embeddings.reshape(-1, embeddings.shape[-1]))


def test_editing_image_embeddings_reaches_the_language_model(toy_and_model):
    toy, model = toy_and_model
    prompts, images = _prompts(model), [[toy.image], [toy.image]]
    with torch.no_grad(), model.trace(prompts, images=images):
        mask = model.image_token_mask.save()
        model.image_embeddings = torch.zeros_like(model.image_embeddings)
        first_input = model.layers_input[0].save()
        edited = model.logits.save()
    with torch.no_grad(), model.trace(prompts, images=images):
        plain = model.logits.save()
    assert torch.equal(first_input[mask], torch.zeros_like(first_input[mask]))
    assert not torch.allclose(edited[:, -1], plain[:, -1])


def test_vision_layers_output_feeds_the_image_embeddings(toy_and_model):
    toy, model = toy_and_model
    images = [[toy.image], [toy.image]]
    with torch.no_grad(), model.trace(_prompts(model), images=images):
        plain = model.image_embeddings.save()
    with torch.no_grad(), model.trace(_prompts(model), images=images):
        model.vision_layers_output[0] = model.vision_layers_output[0] * 2
        edited = model.image_embeddings.save()
    assert edited.shape == plain.shape and not torch.allclose(edited, plain)


def test_logit_lens_and_steering_run_on_the_language_side(toy_and_model):
    toy, model = toy_and_model
    images = [[toy.image], [toy.image]]
    vector = torch.linspace(-1, 1, model.hidden_size)
    with torch.no_grad(), model.trace(_prompts(model), images=images):
        last = model.project_on_vocab(model.layers_output[-1]).save()
        logits = model.logits.save()
    with torch.no_grad(), model.trace(_prompts(model), images=images):
        plain = model.layers_output[0].save()
    with torch.no_grad(), model.trace(_prompts(model), images=images):
        model.steer(0, vector, factor=0.5)
        steered = model.layers_output[0].save()
    torch.testing.assert_close(last, logits)
    torch.testing.assert_close(steered - plain, (0.5 * vector).expand_as(plain))


def test_a_padded_batch_equals_each_prompt_alone(toy_and_model):
    toy, model = toy_and_model
    prompts = _prompts(model)
    with torch.no_grad(), model.trace(prompts, images=[[toy.image], [toy.image]]):
        batched = model.logits[:, -1].save()
    for row, prompt in enumerate(prompts):
        with torch.no_grad(), model.trace(prompt, images=[toy.image]):
            alone = model.logits[:, -1].save()
        torch.testing.assert_close(batched[row:row + 1], alone, atol=1e-5, rtol=1e-4)


def test_text_only_tracing_works_where_the_model_allows_it(toy_and_model):
    _, model = toy_and_model
    with torch.no_grad(), model.trace("no image here"):
        mask = model.image_token_mask.save()
        logits = model.logits.save()
    assert not mask.any() and logits.shape[:2] == mask.shape


def test_attention_probabilities_cover_text_and_image_positions(toy_and_model):
    toy, model = toy_and_model
    with torch.no_grad(), model.trace(model.image_prompt("Hi"), images=[toy.image]):
        mask = model.image_token_mask.save()
        probs = model.attention_probabilities[0].save()
    seq = mask.shape[1]
    assert probs.shape[-2:] == (seq, seq)
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    text_after_image = seq - 1  # the last position is text and sees every image position
    assert probs[0, :, text_after_image][:, mask[0]].sum() > 0


def test_a_built_model_without_its_processor_is_refused():
    toy = build_toy_vlm("llava")
    with pytest.raises(InvalidArgument, match="processor="):
        StandardizedVLM(toy.model)


def test_the_callers_processor_is_left_alone():
    toy = build_toy_vlm("llava")
    side, init = toy.processor.tokenizer.padding_side, dict(toy.processor.tokenizer.init_kwargs)
    model = StandardizedVLM(toy.model, processor=toy.processor, sample_image=toy.image)
    assert model.processor is not toy.processor and model.tokenizer is model.processor.tokenizer
    assert toy.processor.tokenizer.padding_side == side and toy.processor.tokenizer.init_kwargs == init


# -- the toolkit on prompts holding images --------------------------------------


def test_logit_lens_with_images_ends_at_the_models_next_token_probabilities(toy_and_model):
    from nnterp import logit_lens

    toy, model = toy_and_model
    prompts = _prompts(model)
    probs = logit_lens(model, prompts, images=[toy.image, toy.image])
    assert probs.shape == (2, model.num_layers, probs.shape[-1])
    for row, prompt in enumerate(prompts):
        with torch.no_grad(), model.trace(prompt, images=[toy.image]):
            alone = model.next_token_probs.save()
        torch.testing.assert_close(probs[row, -1], alone[0].float(), atol=1e-5, rtol=1e-4)


def test_batched_activation_collection_with_images_equals_each_prompt_alone(toy_and_model):
    from nnterp import collect_token_activations_batched

    toy, model = toy_and_model
    prompts = _prompts(model) + [model.image_prompt("A third, longer prompt about the picture")]
    images = [toy.image, [toy.image], toy.image]  # one image, or a list of images, per prompt
    collected = collect_token_activations_batched(model, prompts, batch_size=2, images=images, progress=False)
    assert collected.shape == (model.num_layers, 3, model.hidden_size)
    for row, prompt in enumerate(prompts):
        with torch.no_grad(), model.trace(prompt, images=[toy.image]):
            states = []
            for layer in range(model.num_layers):
                states.append(model.layers_output[layer][0, -1])
            last = torch.stack(states).save()
        torch.testing.assert_close(collected[:, row], last, atol=1e-5, rtol=1e-4)


def test_a_tensor_image_traces_like_the_same_pil_image(toy_and_model):
    import numpy as np

    toy, model = toy_and_model
    tensor = torch.from_numpy(np.asarray(toy.image).copy()).permute(2, 0, 1)  # (channels, height, width), uint8
    prompt = model.image_prompt("What is in the picture?")
    with torch.no_grad(), model.trace(prompt, images=[tensor]):
        from_tensor = model.logits.save()
    with torch.no_grad(), model.trace(prompt, images=[toy.image]):
        from_pil = model.logits.save()
    torch.testing.assert_close(from_tensor, from_pil)


def test_images_need_one_entry_per_prompt_and_a_vision_language_model(toy_and_model):
    from nnterp import StandardizedTransformer, logit_lens
    from nnterp.errors import ToolkitInputError
    from nnterp.toy import build_toy_model

    toy, model = toy_and_model
    with pytest.raises(ToolkitInputError, match="2 entries for 1 prompts"):
        logit_lens(model, [model.image_prompt("Hi")], images=[toy.image, toy.image])
    text = build_toy_model("llama")
    text_model = StandardizedTransformer(text.model, tokenizer=text.tokenizer)
    with pytest.raises(ToolkitInputError, match="needs a vision-language model"):
        logit_lens(text_model, "Hi", images=[toy.image])


def test_remote_execution_is_refused_with_the_reason(toy_and_model):
    from nnterp.errors import RemoteRequestError

    toy, model = toy_and_model
    with pytest.raises(RemoteRequestError, match="StandardizedVLM is not supported yet"):
        with torch.no_grad(), model.trace(model.image_prompt("Hi"), images=[toy.image], remote="local"):
            model.logits.save()


def test_a_saved_folder_loads_with_its_processor_and_validates(tmp_path):
    toy = build_toy_vlm("llava")
    toy.model.save_pretrained(tmp_path)
    toy.processor.save_pretrained(tmp_path)
    model = StandardizedVLM(str(tmp_path), device_map="cpu", sample_image=toy.image)
    assert all(result.status in (ReportStatus.PASSED, ReportStatus.NOT_APPLICABLE) for result in model.check_results)
    assert type(model.processor).__name__ == "LlavaProcessor" and model.tokenizer is model.processor.tokenizer
    prompts = [model.image_prompt("Hi"), model.image_prompt("A longer prompt")]
    with torch.no_grad(), model.trace(prompts, images=[[toy.image], [toy.image]]):
        logits = model.logits[:, -1].save()
    with torch.no_grad():
        for row, prompt in enumerate(prompts):
            reference = toy.model(**toy.processor(text=[prompt], images=[[toy.image]], return_tensors="pt")).logits
            torch.testing.assert_close(logits[row], reference[0, -1], atol=1e-5, rtol=1e-4)


def test_a_saved_folder_loads_lazily_with_its_processor(tmp_path):
    """dispatch=False: the processor is loaded from the folder (nnsight's meta load no longer sources it), and the
    first trace dispatches the real weights under the same names."""
    toy = build_toy_vlm("llava")
    toy.model.save_pretrained(tmp_path)
    toy.processor.save_pretrained(tmp_path)
    model = StandardizedVLM(str(tmp_path), dispatch=False, check_renaming=False, sample_image=toy.image)
    assert not model.dispatched and type(model.processor).__name__ == "LlavaProcessor"
    prompt = model.image_prompt("Hi")
    with torch.no_grad(), model.trace(prompt, images=[toy.image]):
        logits = model.logits[:, -1].save()
    assert model.dispatched and model.vision_tower._module is model._module.model.vision_tower
    with torch.no_grad():
        reference = toy.model(**toy.processor(text=[prompt], images=[[toy.image]], return_tensors="pt")).logits
    torch.testing.assert_close(logits[0], reference[0, -1], atol=1e-5, rtol=1e-4)


def test_generation_with_an_image_equals_the_plain_models(toy_and_model):
    toy, model = toy_and_model
    prompt = model.image_prompt("What is in the picture?")
    with torch.no_grad(), model.generate(prompt, images=[toy.image], max_new_tokens=4, do_sample=False) as tracer:
        generated = tracer.result.save()
    encoding = toy.processor(text=[prompt], images=[[toy.image]], return_tensors="pt")
    with torch.no_grad():
        reference = toy.model.generate(**encoding, max_new_tokens=4, do_sample=False)
    assert torch.equal(generated, reference)
