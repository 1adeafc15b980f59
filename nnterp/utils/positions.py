"""Token positions in a padded batch: a position counts each prompt's own tokens, and a negative one counts from
that prompt's last real token, whatever the padding side and whoever tokenized.

Every toolkit function that takes several prompts resolves its positions here: `TokenLayout` is where each
prompt's real tokens sit in the batch (read off the attention mask), `TokenLayout.columns` the column of a
position in each row, and `position_index` / `position_list` the one validator of what a position is (an int:
``True`` is not position 1).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import PromptError, TokenIndexError, ToolkitInputError, ToolkitTypeError


def position_index(value: Any, argument: str, expected: str = "an int token position") -> int:
    """``value`` as a plain int if it is integer-like (int, numpy integer, 0-d integer tensor); bools, floats and
    anything else raise a ToolkitTypeError naming ``argument`` and what was ``expected``."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not (value.dtype == torch.bool
                                                                    or value.is_floating_point()):
        return int(value.item())
    if not isinstance(value, (bool, torch.Tensor)) and type(value).__name__ != "bool_":  # numpy.bool_ too
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise ToolkitTypeError(f"{argument} is {type(value).__name__} ({value!r:.60}), expected {expected} (-1 is each "
                           "prompt's last token); booleans and floats are not positions")


def position_list(value: Any, argument: str) -> list[int]:
    """An int or a non-empty list / tuple of ints as a list of ints; anything else raises a ToolkitTypeError."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ToolkitInputError(f"{argument} is empty: pass an int or a non-empty list of token positions")
        return [position_index(item, f"{argument}[{index}]", "ints (token positions)")
                for index, item in enumerate(value)]
    if isinstance(value, (str, bytes, slice, range)) or value is None:
        raise ToolkitTypeError(f"{argument} is {type(value).__name__} ({value!r:.60}), expected ints: an int or a "
                               "list of int token positions")
    return [position_index(value, argument)]


def checked_position(position: Any, layout: TokenLayout | None, argument: str) -> int:
    """``position`` as an int inside every prompt of ``layout`` (``TokenLayout.check``), or any int position
    where the inputs came without one (a typed error otherwise)."""
    return layout.check(position, argument) if layout is not None else position_index(position, argument)


@dataclass(frozen=True)
class TokenLayout:
    """Where each prompt's real tokens sit in a padded batch: row ``b`` holds them in columns
    ``starts[b] .. starts[b] + lengths[b] - 1`` of ``width``."""

    starts: torch.Tensor
    lengths: torch.Tensor
    width: int

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> TokenLayout:
        """The layout an attention mask (batch, seq) describes; its real tokens must be contiguous in each row."""
        mask = torch.as_tensor(mask).bool()
        if mask.ndim != 2:
            raise ToolkitInputError(f"attention_mask has shape {tuple(mask.shape)}, expected (batch, seq)")
        lengths = mask.sum(dim=1)
        if bool((lengths == 0).any()):
            row = int((lengths == 0).nonzero()[0])
            raise PromptError(f"prompt {row} has no real token (its attention_mask row is all 0): give it some text")
        starts = mask.int().argmax(dim=1)
        columns = torch.arange(mask.shape[1])
        spans = (columns >= starts[:, None]) & (columns < (starts + lengths)[:, None])
        if not torch.equal(spans, mask):
            row = int((spans != mask).any(dim=1).nonzero()[0])
            raise ToolkitInputError(f"attention_mask row {row} has padding between real tokens "
                                    f"({mask[row].int().tolist()}): expected each prompt's tokens in one run, padded "
                                    "on the left or the right")
        return cls(starts, lengths, int(mask.shape[1]))

    @classmethod
    def full(cls, batch: int, width: int) -> TokenLayout:
        """A batch without padding: every row has ``width`` real tokens."""
        return cls(torch.zeros(batch, dtype=torch.long), torch.full((batch,), width), width)

    @property
    def shortest(self) -> int:
        return int(self.lengths.min())

    @property
    def padded(self) -> bool:
        """Whether some row has padding (prompts of different lengths)."""
        return self.shortest != self.width

    def check(self, position: Any, argument: str) -> int:
        """``position`` as an int inside every prompt (``-shortest <= position < shortest``), or a typed error."""
        index = position_index(position, argument)
        shortest = self.shortest
        if not -shortest <= index < shortest:
            raise TokenIndexError(f"{argument} {index} is outside the shortest prompt ({shortest} tokens): expected "
                                  f"an index in -{shortest}..{shortest - 1}; count from the end (-1 is each "
                                  "prompt's last token)")
        return index

    def columns(self, position: int | torch.Tensor) -> torch.Tensor:
        """The column of token ``position`` (one for every row, or one per row) of each prompt: (batch,)."""
        return self.starts + torch.as_tensor(position) % self.lengths

    def right_aligned(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(index, pads), both (batch, width): ``values.gather`` along the sequence with ``index`` moves each
        row's tokens to end at the last column, so ``-1`` is every prompt's last token; ``pads`` marks the
        columns before a row's first token."""
        columns = torch.arange(self.width)
        index = (self.starts + self.lengths - self.width)[:, None] + columns
        return index % self.width, columns < (self.width - self.lengths)[:, None]
