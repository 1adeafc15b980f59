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
                                                 attn_probs_sum=_check("passed"))},
        "GPT2LMHeadModel": {"toy:gpt2": _model("toy", renaming=_check("passed"), residual_identity=_check("passed"),
                                               attn_probs_sum=_check("n/a", "no attention probabilities"))},
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
                                                 attn_probs_sum=_check("passed"))},
        "GPT2LMHeadModel": {"toy:gpt2": _model("toy", renaming=_check("passed"), residual_identity=_check("passed"),
                                               attn_probs_sum=_check("n/a", "no attention probabilities"))},
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
