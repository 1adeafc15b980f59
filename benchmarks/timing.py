"""The one timing helper every row goes through, and the row it makes.

nnterp's call and the floor's are checked to compute the same thing, then timed in alternated rounds (the
order flips every round, so drift on the machine hits both alike); a row keeps every round's seconds and
reports the ratio of the medians and the range of the per-round ratios."""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

Check = Callable[[Any, Any, str], None]  # (nnterp's output, the floor's, the row's name): raises where they differ


@dataclass
class Row:
    """One comparison: nnterp's per-round seconds against the floor's, and what the goal is."""

    name: str
    ours: str
    floor: str
    ours_s: list[float]
    floor_s: list[float]
    goal: float | None = None  # the most ours / floor may be
    note: str = ""
    nnterp13_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours_s) / statistics.median(self.floor_s)

    @property
    def ratio_range(self) -> tuple[float, float]:
        per_round = [ours / floor for ours, floor in zip(self.ours_s, self.floor_s)]
        return min(per_round), max(per_round)

    @property
    def ok(self) -> bool | None:
        return None if self.goal is None else self.ratio <= self.goal

    def as_json(self) -> dict:
        data = asdict(self)
        data.update(ratio=self.ratio, ratio_range=list(self.ratio_range), ok=self.ok,
                    ours_median_s=statistics.median(self.ours_s), floor_median_s=statistics.median(self.floor_s))
        if self.nnterp13_s:
            data.update(nnterp13_median_s=statistics.median(self.nnterp13_s),
                        nnterp13_speedup=statistics.median(self.nnterp13_s) / statistics.median(self.ours_s))
        return data


def use_threads(threads: int | None) -> None:
    """torch's CPU threads for every row (None or 0: torch's own)."""
    if threads:
        torch.set_num_threads(threads)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(action: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call, with the device's queued work included."""
    _sync(device)
    start = time.perf_counter()
    action()
    _sync(device)
    return time.perf_counter() - start


def paired(ours: Callable[[], Any], floor: Callable[[], Any], rounds: int, device: torch.device
           ) -> tuple[list[float], list[float]]:
    """Per-round seconds of both, after one warm-up each; the order flips every round against drift."""
    ours(), floor()
    ours_s: list[float] = []
    floor_s: list[float] = []
    for index in range(rounds):
        pair = [(ours, ours_s), (floor, floor_s)]
        for action, times in pair if index % 2 else reversed(pair):
            times.append(seconds(action, device))
    return ours_s, floor_s


def same(ours: torch.Tensor, floor: torch.Tensor, what: str, rtol: float | None = None) -> None:
    """The benchmark compares equal work only: nnterp's result must be the floor's (within ``rtol`` relative
    where given, else torch's default tolerances for the dtype)."""
    torch.testing.assert_close(ours.cpu(), floor.cpu(), rtol=rtol, atol=None if rtol is None else 0.0,
                               msg=lambda m: f"{what}: nnterp differs from the floor: {m}")


def announce(row: Row) -> Row:
    """One line on stderr as each row finishes: a long run shows its progress, and a killed one its rows."""
    print(f"{row.name}: {row.ratio:.2f}x ({statistics.median(row.ours_s) * 1000:.1f} ms vs "
          f"{statistics.median(row.floor_s) * 1000:.1f} ms)", file=sys.stderr, flush=True)
    return row


def compare(name: str, ours: Callable[[], Any], floor: Callable[[], Any], labels: tuple[str, str], *,
            rounds: int, device: torch.device, goal: float | None = None, note: str = "",
            check: Check | None = same, nnterp13_s: list[float] | None = None) -> Row:
    """The row ``name``: ``ours`` against ``floor`` (described by ``labels``), their outputs first checked alike
    by ``check`` (equal tensors by default; None where they return nothing to compare), then ``paired`` for
    ``rounds`` rounds and announced."""
    if check is not None:
        check(ours(), floor(), name)
    ours_s, floor_s = paired(ours, floor, rounds, device)
    return announce(Row(name, labels[0], labels[1], ours_s, floor_s, goal, note, nnterp13_s or []))
