"""Two small compatibility reports (an older and a newer version set) for the rendering tests."""

from __future__ import annotations

import json
from pathlib import Path

from nnterp.compat.schema import Report, report_filename

EVIL_MODEL = "<script>alert('x')</script>"
FAILURE = "relative error 0.5 > 1e-4 at layer 1"


def _check(status: str, message: str = "", value: float | None = None) -> dict:
    return {"status": status, "value": value, "message": message, "duration": 0.01}


def _model(kind: str, **checks: dict) -> dict:
    return {"kind": kind, "checks": checks}


def _report(versions: dict, updated: str, architectures: dict) -> dict:
    environment = {"python": "3.11.7", "platform": "Linux-x86_64", "updated": updated, "git_commit": None}
    return {"schema_version": 1, "versions": versions, "environment": environment,
            "architectures": {arch: {"models": models} for arch, models in architectures.items()}}


OLD = _report(
    {"nnterp": "0.1.0", "transformers": "5.22.0", "nnsight": "0.8.0", "torch": "2.12.0+cpu"},
    "2026-11-01T10:00:00+00:00",
    {
        "LlamaForCausalLM": {"toy:llama": _model("toy", renaming=_check("passed", "2 layers at model.layers"),
                                                 residual_identity=_check("passed", value=1e-7),
                                                 attn_probs=_check("passed"))},
        "GPT2LMHeadModel": {"toy:gpt2": _model("toy", renaming=_check("passed"), residual_identity=_check("passed"),
                                               attn_probs=_check("n/a", "no attention probabilities"))},
        "BloomForCausalLM": {"toy:bloom": _model("toy", renaming=_check("passed"),
                                                 residual_identity=_check("passed"))},
    },
)

NEW = _report(
    {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0+cpu"},
    "2026-11-23T06:20:00+00:00",
    {
        "LlamaForCausalLM": {"toy:llama": _model("toy", renaming=_check("passed", "2 layers at model.layers"),
                                                 residual_identity=_check("failed", FAILURE, 0.5),
                                                 attn_probs=_check("passed"))},
        "GPT2LMHeadModel": {"toy:gpt2": _model("toy", renaming=_check("passed"), residual_identity=_check("passed"),
                                               attn_probs=_check("n/a", "no attention probabilities"))},
        "BloomForCausalLM": {"toy:bloom": _model("toy", renaming=_check("load error", "ValueError: alibi missing"))},
        "MistralForCausalLM": {EVIL_MODEL: _model("real", renaming=_check("passed"),
                                                  residual_identity=_check("crashed", "worker died"),
                                                  io_shapes=_check("skipped", "needs a GPU"))},
    },
)


def report(data: dict) -> Report:
    return Report.from_dict(json.loads(json.dumps(data)))


def write_reports(folder: Path) -> tuple[Path, Path]:
    """Write OLD and NEW as report files in `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for data in (OLD, NEW):
        path = folder / report_filename(data["versions"])
        path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


# -- a history: 200 architectures across 7 version sets ---------------------------------------

HISTORY_TRANSFORMERS = ("5.0.0", "5.5.0", "5.10.0", "5.15.0", "5.20.0", "5.23.0", "5.24.0")  # 5.5 < 5.10
HISTORY_ARCHITECTURES = 200
HISTORY_CHECKS = ("renaming", "io_shapes", "residual_identity", "attn_probs", "logits_match", "logit_lens")
EVIL_ARCHITECTURE = "Evil<img src=x onerror=alert(1)>#ForCausalLM"  # the last architecture's name
ATTN_FAILURE = "probabilities sum to 0.93, not 1"


def history_architecture(index: int) -> str:
    return EVIL_ARCHITECTURE if index == HISTORY_ARCHITECTURES - 1 else f"Arch{index:03d}ForCausalLM"


def history_checks(index: int, column: int) -> dict | None:
    """Architecture `index` in version set `column` (0 = transformers 5.0.0); None where not tested.

    index % 10 == 0: attn_probs fails from 5.24.0 (a regression in the last column);
    index % 25 == 1: io_shapes fails before 5.15.0 (a fix in column 3);
    index % 50 == 2: first tested in 5.10.0 (column 2);
    index % 50 == 3: does not load from 5.20.0 (a regression in column 4);
    index % 7 == 4: residual_identity is n/a. Everything else passes.
    """
    if index % 50 == 2 and column < 2:
        return None
    if index % 50 == 3 and column >= 4:
        return {check: _check("load error", "ImportError: no module named 'arch'") for check in HISTORY_CHECKS}
    checks = {check: _check("passed") for check in HISTORY_CHECKS}
    if index % 10 == 0 and column == len(HISTORY_TRANSFORMERS) - 1:
        checks["attn_probs"] = _check("failed", ATTN_FAILURE, 0.07)
    if index % 25 == 1 and column < 3:
        checks["io_shapes"] = _check("failed", "layers_output[0] has shape (1, 4) not (1, 4, 8)")
    if index % 7 == 4:
        checks["residual_identity"] = _check("n/a", "parallel attention and MLP")
    return checks


def history_report(column: int) -> dict:
    """The report of version set `column`, updated in an order unrelated to the versions."""
    versions = {"nnterp": "0.1.0", "transformers": HISTORY_TRANSFORMERS[column], "nnsight": "0.8.1",
                "torch": "2.13.0+cpu"}
    updated = f"2026-11-{10 + (column * 3) % len(HISTORY_TRANSFORMERS):02d}T00:00:00+00:00"
    architectures = {}
    for index in range(HISTORY_ARCHITECTURES):
        checks = history_checks(index, column)
        if checks is not None:
            architectures[history_architecture(index)] = {f"toy:arch{index}": _model("toy", **checks)}
    return _report(versions, updated, architectures)


def write_history(folder: Path) -> list[Path]:
    """Write the 7 version sets of the history in `folder`; return their paths, oldest first."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for column in range(len(HISTORY_TRANSFORMERS)):
        data = history_report(column)
        path = folder / report_filename(data["versions"])
        path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        paths.append(path)
    return paths
