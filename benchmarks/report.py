"""The one table of every row, and the JSON with provenance (like pytest-benchmark's: versions, machine,
commit and time, then every row with its raw per-round seconds)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

import torch

from benchmarks.timing import Row

REPO = Path(__file__).resolve().parent.parent


def _git(*argv: str) -> str:
    done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def provenance(args: argparse.Namespace, device: torch.device, nnterp13_python: str | None) -> dict:
    """pytest-benchmark's machine_info / commit_info / datetime, plus every library version that matters."""
    import nnsight
    import transformers

    import nnterp

    machine = {"node": platform.node(), "processor": platform.processor(), "machine": platform.machine(),
               "system": platform.system(), "release": platform.release(),
               "python_implementation": platform.python_implementation(), "python_version": platform.python_version(),
               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
               "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        machine["device_name"] = torch.cuda.get_device_name(device)
    versions = {"nnterp": getattr(nnterp, "__version__", _dist_version("nnterp")), "nnsight": nnsight.__version__,
                "transformers": transformers.__version__, "torch": torch.__version__}
    if nnterp13_python:
        versions["nnterp13_python"] = nnterp13_python
    if _dist_version("transformer-lens") != "unknown":
        versions["transformer_lens"] = _dist_version("transformer-lens")
    return {"machine_info": machine, "versions": versions, "options": vars(args),
            "commit_info": {"id": _git("rev-parse", "HEAD"), "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
                            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
                            "time": _git("log", "-1", "--format=%cI")},
            "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat()}


def render(rows: list[Row], memory: dict | None, device: torch.device) -> str:
    """The table of every timed row, then the memory row's line."""
    from tabulate import tabulate

    table = []
    for row in rows:
        low, high = row.ratio_range
        goal = "" if row.goal is None else f"<= {row.goal:g}x " + ("ok" if row.ok else "MISSED")
        nnterp13 = (f"{statistics.median(row.nnterp13_s) / statistics.median(row.ours_s):.1f}x faster"
                    if row.nnterp13_s else "")
        table.append([row.name, f"{row.ours} / {row.floor}", f"{statistics.median(row.ours_s) * 1000:.2f}",
                      f"{statistics.median(row.floor_s) * 1000:.2f}", f"{row.ratio:.3g}x", f"{low:.3g}-{high:.3g}",
                      goal, nnterp13, row.note])
    text = tabulate(table, headers=["row", "nnterp / floor", f"ours ms ({device.type})", "floor ms", "ratio",
                                    "per-round", "goal", "vs nnterp 1.3.0", "setup"])
    if memory is None:
        return text
    if "skipped" in memory:
        return text + f"\ncollect_memory: skipped ({memory['skipped']})"
    mib = 1 << 20
    return text + (f"\ncollect_memory: {memory['prompts']} prompts, batch {memory['batch_size']}: peak "
                   f"{memory['peak_bytes'] / mib:.1f} MiB for an output of {memory['output_bytes'] / mib:.1f} MiB "
                   f"(one batch {memory['one_batch_peak_bytes'] / mib:.1f} MiB; bound output + 2 batches "
                   f"{memory['bound_bytes'] / mib:.1f} MiB: {'ok' if memory['ok'] else 'OVER'})")


def write_json(path: Path, data: dict) -> None:
    """Sorted, indented, written atomically (temp file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    os.replace(handle.name, path)
