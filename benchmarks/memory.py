"""The memory row: peak RSS of ``collect_token_activations_batched`` on many prompts against the output plus two
batches' peak (Linux with glibc only)."""

from __future__ import annotations

import argparse
import platform
import re
from pathlib import Path
from typing import Any, Callable

import torch


def _rss_kib(field_name: str) -> int:
    found = re.search(rf"{field_name}:\s+(\d+)", Path("/proc/self/status").read_text())
    assert found, f"no {field_name} in /proc/self/status"
    return int(found.group(1))


def _rss_follows_tensors() -> Callable[[], None]:
    """Make glibc hand large blocks straight back to the system, so RSS follows live tensors.

    By default freed blocks stay in per-thread arenas and a dynamic mmap threshold keeps growing, so
    RSS drifts by tens of MiB whatever the code does. Returns the function that trims the heap."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 << 10)  # M_MMAP_THRESHOLD: blocks of 64 KiB and more are mmapped, unmapped on free
    libc.mallopt(-1, 128 << 10)  # M_TRIM_THRESHOLD: give back a heap top above 128 KiB
    return lambda: libc.malloc_trim(0)


def peak_rss_growth(action: Callable[[], Any], trim: Callable[[], None]) -> tuple[int, Any]:
    """Bytes the process's peak RSS rises above its RSS before ``action`` (Linux: VmHWM reset by clear_refs)."""
    trim()
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    result = action()
    return (_rss_kib("VmHWM") - before) * 1024, result


def memory_row(args: argparse.Namespace, device: torch.device) -> dict:
    """Peak memory of ``collect_token_activations_batched`` on many prompts against the output plus two batches.

    A toy llama widened to 8 layers of 512 makes the output, not the allocator, what RSS sees. One batch's
    cost is its own peak RSS rise (after a warm-up batch): the forward's working memory and its activations.
    Runs last: it changes how glibc's allocator returns memory for the rest of the process."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return {"name": "collect_memory", "skipped": "needs Linux with glibc (VmHWM reset, mallopt)"}
    from transformers import AutoModelForCausalLM

    from nnterp import StandardizedTransformer, collect_token_activations_batched
    from nnterp.toy import toy_config, toy_tokenizer

    trim = _rss_follows_tensors()
    config = toy_config("llama")
    config.update({"hidden_size": 512, "intermediate_size": 512, "num_hidden_layers": 8, "head_dim": 128})
    torch.manual_seed(0)
    model = StandardizedTransformer(AutoModelForCausalLM.from_config(config).eval().to(device),
                                    tokenizer=toy_tokenizer())
    prompts = [f"item {i}" for i in range(args.memory_prompts)]
    batch = prompts[-args.batch_size:]  # the longest prompts

    def collect(some: list[str]) -> torch.Tensor:
        return collect_token_activations_batched(model, some, args.batch_size, progress=False)

    collect(batch)  # warm-up
    one_batch = max(peak_rss_growth(lambda: collect(batch), trim)[0] for _ in range(3))
    peak, output = peak_rss_growth(lambda: collect(prompts), trim)
    output_bytes = output.numel() * output.element_size()
    bound = output_bytes + 2 * one_batch
    return {"name": "collect_memory", "prompts": len(prompts), "batch_size": args.batch_size,
            "output_bytes": output_bytes, "one_batch_peak_bytes": one_batch, "peak_bytes": peak,
            "bound_bytes": bound, "peak_over_output": peak / output_bytes, "ok": peak <= bound,
            "note": "toy llama widened to 8 layers of 512; peak RSS rise over the RSS before the call"}


def isolated_memory_row(args: argparse.Namespace, device: torch.device) -> dict:
    """``memory_row`` in a fresh interpreter. Peak RSS is only the tensors' when nothing else has grown the
    allocator's arenas: after the other rows (SmolLM2 loaded and run) the same collection measured 67.7 MiB
    in-process against 38.3 MiB alone, with a batch's own rise measured at 9.9 MiB against 4.5 MiB."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(memory_row, (args, device))
