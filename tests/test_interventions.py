"""Logit lens, patchscopes and steering: invariants on toy models, research results on SmolLM2."""

import pytest
import torch

from nnterp import StandardizedTransformer
from nnterp.errors import LayerIndexError
from nnterp.toolkit.interventions import (
    ChatTemplateMissing,
    TargetPrompt,
    it_repeat_prompt,
    last_token_latents,
    logit_lens,
    patchscope_generate,
    patchscope_lens,
    repeat_prompt,
    steer,
)

from .conftest import standardized_toy

TOY_ARCHITECTURES = ["llama", "gpt2", "bloom", "gemma2", "qwen2", "falcon", "opt", "mamba"]
REMOTES = [False, "local"]
PROMPTS = ["The quick brown fox", "Hello"]


@pytest.fixture(scope="module", params=TOY_ARCHITECTURES)
def toy(request):
    return standardized_toy(request.param, enable_attention_probs=False)


def plain_next_token_probs(model, prompts):
    with model.trace(prompts):
        probs = model.next_token_probs.save()
    return probs.detach().float()


def baseline_logits(model):
    with model.trace(PROMPTS[0]):
        logits = model.logits.save()
    return logits


# -- toy models: invariants, locally and serialized as NDIF would --------------


@pytest.mark.parametrize("remote", REMOTES)
def test_logit_lens_last_layer_is_the_next_token_distribution(toy, remote):
    probs = logit_lens(toy, PROMPTS, remote=remote)
    assert probs.shape == (len(PROMPTS), toy.num_layers, toy.vocab_size)
    assert probs.dtype == torch.float32 and probs.device.type == "cpu"
    assert torch.allclose(probs.sum(-1), torch.ones(len(PROMPTS), toy.num_layers), atol=1e-5)
    assert torch.allclose(probs[:, -1], plain_next_token_probs(toy, PROMPTS), atol=1e-5)


@pytest.mark.parametrize("remote", REMOTES)
def test_patchscope_with_the_targets_own_hidden_state_changes_nothing(toy, remote):
    target = repeat_prompt()
    probs = patchscope_lens(toy, [target.prompt, target.prompt], target, remote=remote)
    assert probs.shape == (2, toy.num_layers, toy.vocab_size)
    baseline = plain_next_token_probs(toy, target.prompt)
    assert torch.allclose(probs, baseline.expand(2, toy.num_layers, -1), atol=1e-5)


@pytest.mark.parametrize("remote", REMOTES)
def test_patchscope_generate_with_the_targets_own_hidden_state_is_plain_generation(llama, remote):
    target = repeat_prompt()
    texts = patchscope_generate(llama, [target.prompt], target, max_length=4, layers=[0, 1], remote=remote)
    with llama.generate(target.prompt, max_new_tokens=4, do_sample=False) as tracer:
        ids = tracer.result.save()
    plain = llama.tokenizer.decode(ids[0, len(llama.tokenizer(target.prompt)["input_ids"]):],
                                   skip_special_tokens=True)
    assert texts == {0: [plain], 1: [plain]}


def test_patchscope_generate_applies_the_patch_on_the_first_forward(llama):
    """The first generated token of a patched generation is the patchscope lens's top token."""
    target = repeat_prompt()
    source = ["The quick brown fox"]
    lens = patchscope_lens(llama, source, target, layers=[0])
    texts = patchscope_generate(llama, source, target, max_length=1, layers=[0])
    assert texts[0] == [llama.tokenizer.decode(lens[0, 0].argmax(), skip_special_tokens=True)]


def test_patchscope_patches_one_position_per_target(llama):
    """A foreign hidden state changes the target's output; a positive index survives the batch's left padding."""
    target = repeat_prompt()
    longer = "Hello there " + target.prompt
    targets = [target, TargetPrompt(longer, len(llama.tokenizer(longer)["input_ids"]) - 1)]
    probs = patchscope_lens(llama, PROMPTS[:1] * 2, targets, layers=[0])
    assert probs.shape == (2, 1, llama.vocab_size)
    assert not torch.allclose(probs[0, 0], plain_next_token_probs(llama, target.prompt), atol=1e-3)
    alone = patchscope_lens(llama, PROMPTS[:1], TargetPrompt(longer, -1), layers=[0])
    assert torch.allclose(probs[1], alone[0], atol=1e-5)


def test_patchscope_accepts_latents_indexed_by_layer(llama):
    target = repeat_prompt()
    latents = last_token_latents(llama, PROMPTS)
    assert latents.shape == (llama.num_layers, len(PROMPTS), llama.hidden_size)
    from_latents = patchscope_lens(llama, target_patch_prompts=target, latents=latents, layers=[1])
    from_prompts = patchscope_lens(llama, PROMPTS, target, layers=[1])
    assert torch.equal(from_latents, from_prompts)


def test_patchscope_refuses_bad_arguments(llama):
    target = repeat_prompt()
    with pytest.raises(ValueError, match="exactly one of"):
        patchscope_lens(llama, target_patch_prompts=target)
    with pytest.raises(ValueError, match="one per source"):
        patchscope_lens(llama, PROMPTS + ["x"], [target, target])
    with pytest.raises(ValueError, match="expected"):
        patchscope_lens(llama, latents=torch.zeros(5, 1, llama.hidden_size), target_patch_prompts=target)
    with pytest.raises(LayerIndexError):
        patchscope_lens(llama, PROMPTS, target, layers=[llama.num_layers])


def test_repeat_prompt_text_and_index():
    assert repeat_prompt(["king", "hello"]) == TargetPrompt("king king\nhello hello\n?", -1)
    assert repeat_prompt(["a"], rel=" -> ", sep="; ", placeholder="X").prompt == "a -> a; X"
    assert repeat_prompt().prompt.endswith("\n?")


def test_it_repeat_prompt_needs_a_chat_template(llama):
    with pytest.raises(ChatTemplateMissing, match="no chat template"):
        it_repeat_prompt(llama.tokenizer)


@pytest.mark.parametrize("remote", REMOTES)
def test_steer_adds_the_vector_and_factor_zero_changes_nothing(llama, remote):
    vector = torch.randn(llama.hidden_size)
    with llama.trace(PROMPTS[0], remote=remote):
        steer(llama, 0, vector, factor=0)
        unsteered = llama.logits.save()
    with llama.trace(PROMPTS[0], remote=remote):
        before = llama.layers_output[0].clone().save()
        steer(llama, [0], vector, factor=2, positions=-1)
        after = llama.layers_output[0].save()
    assert torch.equal(unsteered, baseline_logits(llama))
    assert torch.allclose(after[0, -1] - before[0, -1], 2 * vector, atol=1e-5)
    assert torch.equal(after[0, :-1], before[0, :-1])


# -- SmolLM2-135M-Instruct: research results ----------------------------------

FRANCE = ["I spent my holidays in France", "The best cheese comes from France", "She was born in France",
          "We drove across France"]
ITALY = ["I spent my holidays in Italy", "The best cheese comes from Italy", "She was born in Italy",
         "We drove across Italy"]
SOURCES = {" cat": "I adopted a small cat", " house": "They bought a big house", " river": "We swam in the river",
           " king": "The crown belongs to the king"}


@pytest.fixture(scope="module")
def smollm2(smollm2_hf):
    model, tokenizer = smollm2_hf
    return StandardizedTransformer(model, tokenizer=tokenizer)


def token_id(model, text):
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens, expected one"
    return ids[0]


@pytest.mark.real_model
def test_logit_lens_finds_paris_in_the_last_layers(smollm2):
    probs = logit_lens(smollm2, "The capital of France is")
    paris = token_id(smollm2, " Paris")
    assert probs[0, -1].argmax().item() == paris
    in_top5 = [layer for layer in range(smollm2.num_layers) if paris in probs[0, layer].topk(5).indices]
    print(f"' Paris' in the logit lens top-5 at layers {in_top5}")
    assert in_top5[0] == 28, f"' Paris' first enters the top-5 at layer {in_top5[0]} (measured: 28)"
    assert in_top5 == [28, 29]
    assert torch.allclose(logit_lens(smollm2, "The capital of France is", remote="local"), probs, atol=1e-6)


@pytest.mark.real_model
def test_patchscope_repeat_prompt_recovers_the_source_word(smollm2):
    layers = list(range(0, smollm2.num_layers, 3))
    probs = patchscope_lens(smollm2, list(SOURCES.values()), repeat_prompt(), layers=layers)
    recovered = {word: [layer for column, layer in enumerate(layers)
                        if probs[row, column].argmax().item() == token_id(smollm2, word)]
                 for row, word in enumerate(SOURCES)}
    print(f"layers whose patch recovers the source word: {recovered}")
    for word, found in recovered.items():
        assert {0, 3, 6, 9} <= set(found), f"{word!r} recovered at layers {found}, measured at 0-9 and beyond"
        assert not {24, 27} & set(found), f"{word!r} recovered at late layers {found}, measured: never after 15"


@pytest.mark.real_model
def test_chat_repeat_prompt_recovers_the_source_word_at_middle_layers(smollm2):
    target = it_repeat_prompt(smollm2.tokenizer)
    ids = smollm2.tokenizer(target.prompt)["input_ids"]
    assert smollm2.tokenizer.decode(ids[target.index_to_patch]) == "?"
    assert target.prompt.endswith("<|im_start|>assistant\n")
    probs = patchscope_lens(smollm2, list(SOURCES.values()), target, layers=[10, 14])
    for row, word in enumerate(SOURCES):  # the assistant turn starts without a space
        assert (probs[row].argmax(-1) == token_id(smollm2, word.strip())).all(), word


@pytest.mark.real_model
def test_patchscope_generate_says_the_source_word(smollm2):
    texts = patchscope_generate(smollm2, [SOURCES[" cat"], SOURCES[" king"]], repeat_prompt(), max_length=5,
                                layers=[6, 12])
    assert set(texts) == {6, 12}
    for layer, (cat, king) in texts.items():
        assert cat.startswith(" cat") and king.startswith(" king"), (layer, cat, king)


@pytest.mark.real_model
def test_france_minus_italy_steering_turns_rome_into_paris(smollm2):
    layer = 10
    france = last_token_latents(smollm2, FRANCE, layer)[0].mean(0)
    italy = last_token_latents(smollm2, ITALY, layer)[0].mean(0)
    vector = france - italy
    paris, rome = token_id(smollm2, " Paris"), token_id(smollm2, " Rome")
    prompt = "The capital of Italy is"
    base = plain_next_token_probs(smollm2, prompt)[0]
    with smollm2.trace(prompt):
        smollm2.steer(layer, vector, factor=0)
        unchanged = smollm2.next_token_probs.save()
    with smollm2.trace(prompt):
        smollm2.steer(layer, vector, factor=1)
        steered = smollm2.next_token_probs.save()
    steered = steered[0].float()
    print(f"steering layer {layer}: P(' Paris') {base[paris]:.4f} -> {steered[paris]:.4f}, "
          f"P(' Rome') {base[rome]:.4f} -> {steered[rome]:.4f}")
    assert torch.equal(unchanged[0].float(), base)
    assert base.argmax().item() == rome and steered.argmax().item() == paris
    assert steered[paris] - base[paris] > 0.5, "measured +0.79"
    assert steered[rome] < 0.01 < base[rome], "measured 0.38 -> 0.00003"
