"""nnterp.utils.positions: where each prompt's tokens sit in a padded batch, and what a position is (an int: a
boolean or a float is refused by every function that takes positions, never taken as position 1 or truncated)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nnterp import collect_token_activations_batched, get_token_activations, patchscope_lens, steer
from nnterp.errors import (
    NNterpError,
    PositionAlignmentError,
    PromptError,
    TokenIndexError,
    ToolkitInputError,
    ToolkitTypeError,
)
from nnterp.toolkit.analysis import (
    accumulated_resid,
    activation_patching,
    attribution_patching,
    decompose_resid,
    direct_logit_attribution,
    patched_generate,
    run_with_cache,
)
from nnterp.toolkit.interventions import TargetPrompt
from nnterp.utils.positions import TokenLayout, position_index, position_list

RIGHT = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
LEFT = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])


@pytest.mark.parametrize("mask, starts", [(RIGHT, [0, 0]), (LEFT, [0, 2])], ids=["right", "left"])
def test_a_layout_reads_each_prompts_tokens_off_the_mask(mask, starts):
    layout = TokenLayout.from_mask(mask)
    assert layout.starts.tolist() == starts and layout.lengths.tolist() == [4, 2] and layout.padded
    assert layout.columns(-1).tolist() == [3, starts[1] + 1]  # each prompt's last real token
    assert layout.columns(0).tolist() == [0, starts[1]]  # each prompt's first real token
    index, pads = layout.right_aligned()
    values = torch.arange(8).view(2, 4) * mask  # the pads read 0
    assert values.gather(1, index)[:, -2:].tolist() == [[2, 3], [values[1, starts[1]], values[1, starts[1] + 1]]]
    assert pads.tolist() == [[False] * 4, [True, True, False, False]]


def test_a_mask_with_a_gap_or_an_empty_row_is_refused():
    with pytest.raises(ToolkitInputError, match=r"row 0 has padding between real tokens \(\[1, 0, 1\]\)"):
        TokenLayout.from_mask(torch.tensor([[1, 0, 1]]))
    with pytest.raises(PromptError, match="prompt 1 has no real token"):
        TokenLayout.from_mask(torch.tensor([[1, 1], [0, 0]]))


def test_a_position_is_an_int_inside_every_prompt():
    layout = TokenLayout.from_mask(RIGHT)
    assert [layout.check(position, "idx") for position in (-2, 1, np.int64(-1), torch.tensor(0))] == [-2, 1, -1, 0]
    with pytest.raises(TokenIndexError, match=r"idx 2 is outside the shortest prompt \(2 tokens\).*-2\.\.1"):
        layout.check(2, "idx")
    assert position_list((0, np.int32(-1)), "positions") == [0, -1]
    for bad in (True, np.True_, 1.0, torch.tensor(True), torch.tensor([1]), "1", None):
        with pytest.raises(ToolkitTypeError, match="not positions"):
            position_index(bad, "positions")
    with pytest.raises(ToolkitInputError, match="positions is empty"):
        position_list([], "positions")


def _metric(logits):
    return logits[:, -1, 5] - logits[:, -1, 7]


CLEAN, CORRUPTED = ["hello world", "a cat"], ["hello wirld", "a dog"]

# Every public function taking positions (or a token index), called with ``bad`` where the position goes.
TAKE_POSITIONS = {
    "get_token_activations": lambda model, bad: get_token_activations(model, CLEAN, idx=bad),
    "collect_token_activations_batched": lambda model, bad: collect_token_activations_batched(
        model, CLEAN, 2, idx=bad, progress=False),
    "run_with_cache": lambda model, bad: run_with_cache(model, CLEAN, positions=bad),
    "run_with_cache[list]": lambda model, bad: run_with_cache(model, CLEAN, positions=[0, bad]),
    "run_with_cache[slice]": lambda model, bad: run_with_cache(model, CLEAN, positions=slice(bad, None)),
    "direct_logit_attribution": lambda model, bad: direct_logit_attribution(model, CLEAN, 5, position=bad),
    "decompose_resid": lambda model, bad: decompose_resid(model, CLEAN, position=bad),
    "accumulated_resid": lambda model, bad: accumulated_resid(model, CLEAN, position=bad),
    "activation_patching": lambda model, bad: activation_patching(model, CLEAN, CORRUPTED, _metric, positions=bad),
    "attribution_patching": lambda model, bad: attribution_patching(model, CLEAN, CORRUPTED, _metric,
                                                                    positions=[bad]),
    "patched_generate": lambda model, bad: patched_generate(model, CLEAN, 0, torch.zeros(model.hidden_size),
                                                            positions=bad, max_new_tokens=1),
    "patchscope_lens": lambda model, bad: patchscope_lens(model, "hi", TargetPrompt("a b ?", bad), layers=[0]),
    "steer": lambda model, bad: _steer(model, bad),
}


def _steer(model, positions):
    with model.trace("Hello world"):
        steer(model, 0, torch.ones(model.hidden_size), positions=positions)
        model.logits.save()


@pytest.mark.parametrize("bad", [True, False, 1.0], ids=["True", "False", "float"])
@pytest.mark.parametrize("name", sorted(TAKE_POSITIONS))
def test_booleans_and_floats_are_not_positions_anywhere(llama, name, bad):
    with pytest.raises(ToolkitTypeError, match=f"is {type(bad).__name__} .*not positions") as info:
        TAKE_POSITIONS[name](llama, bad)
    assert isinstance(info.value, NNterpError)


def test_a_numpy_integer_is_a_position(llama):
    cache = run_with_cache(llama, CLEAN, positions=np.int64(-1))
    torch.testing.assert_close(cache["layers_output", 0], run_with_cache(llama, CLEAN, positions=-1)["layers_output",
                                                                                                       0])


def test_a_slice_selecting_different_counts_per_prompt_is_refused(llama):
    with pytest.raises(ToolkitInputError, match=r"selects \[5, 3\] tokens of prompts of \[11, 5\] tokens"):
        run_with_cache(llama, CLEAN, positions=slice(2, 7))


def test_a_right_padded_batch_tokenized_by_the_caller_is_read_at_each_prompts_last_token(llama):
    """The reported case: DLA on a right-padded mapping read the short prompt's pad (off by 0.30)."""
    tokenized = dict(llama.tokenizer(CLEAN, return_tensors="pt", padding=True, padding_side="right"))
    batched = direct_logit_attribution(llama, tokenized, 5)
    alone = direct_logit_attribution(llama, CLEAN[1], 5)
    torch.testing.assert_close(batched.logits[1:], alone.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched.contributions[1:], alone.contributions, rtol=1e-5, atol=1e-5)


# -- clean and corrupted prompts of different token lengths --------------------------------------------------------


@pytest.mark.parametrize("patching", [activation_patching, attribution_patching], ids=lambda f: f.__name__)
@pytest.mark.parametrize("positions", [None, 0, [1, -1]], ids=["every", "0", "1,-1"])
def test_a_pair_of_different_lengths_is_not_patched_from_the_start(llama, patching, positions):
    with pytest.raises(PositionAlignmentError, match=r"equal token lengths.*\[11, 5\] and \[11, 9\].*positions=-1"):
        patching(llama, CLEAN, ["hello wirld", "a big dog"], _metric, positions=positions)


def _patched_by_hand(model, clean, corrupted, layer):
    """The metric of ``corrupted`` with layer ``layer``'s output at its last token taken from ``clean``'s last."""
    with torch.no_grad(), model.trace(clean):
        last = model.layers_output[layer][:, -1].save()
    with torch.no_grad(), model.trace(corrupted):
        model.layers_output[layer][:, -1] = last
        logits = model.logits.save()
    return _metric(logits).item()


def test_a_pair_of_different_lengths_is_patched_at_positions_from_the_end(llama):
    """-1 names each prompt's last token: the corrupted one's is patched with the clean one's."""
    corrupted = ["hello wirld", "a big dog"]
    result = activation_patching(llama, CLEAN, corrupted, _metric, positions=-1)
    expected = [sum(_patched_by_hand(llama, clean, dirty, layer) for clean, dirty in zip(CLEAN, corrupted)) / 2
                for layer in range(llama.num_layers)]
    assert result.values[:, 0].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-5)
    assert result.values[-1, 0].item() == pytest.approx(result.clean_metric, abs=1e-5)  # the last layer restores it
    estimate = attribution_patching(llama, CLEAN, corrupted, _metric, positions=-1)
    assert estimate.values.shape == result.values.shape and result.positions == estimate.positions == (-1,)
