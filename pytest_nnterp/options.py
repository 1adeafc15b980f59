"""The plugin's command-line / ini options, and what they select."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ALL = "all"
PROPERTY = "nnterp"  # the user_properties key results travel under (worker -> controller)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("nnterp", "nnterp compatibility suite")
    group.addoption("--nnterp-models", nargs="+", default=None, metavar="NAME",
                    help="real models to check: hub ids, local paths or .gguf files, optionally LABEL=PATH to "
                         "record the model under LABEL")
    group.addoption("--nnterp-classes", nargs="+", default=None, metavar="NAME",
                    help="toy models to check, by class name or model type (LlamaForCausalLM, llama; "
                         "LlavaForConditionalGeneration builds a vision-language toy; vlm:gemma3 the one of a type "
                         "the causal-LM mapping also holds), or 'all'")
    group.addoption("--nnterp-checks", nargs="+", default=None, metavar="CHECK",
                    help="run only these checks (default: all of them; see `python -m nnterp run_tests --help`)")
    group.addoption("--nnterp-report", default=None, metavar="DIR",
                    help="write or update the compatibility report of the installed version set in DIR "
                         "(default: the first folder of $NNTERP_REPORT_DIR, else ~/.cache/nnterp/compat_reports)")
    group.addoption("--nnterp-no-report", action="store_true", default=False,
                    help="do not write any compatibility report")
    parser.addini("nnterp_models", "default for --nnterp-models", type="args", default=[])
    parser.addini("nnterp_classes", "default for --nnterp-classes", type="args", default=[])
    parser.addini("nnterp_checks", "default for --nnterp-checks", type="args", default=[])
    parser.addini("nnterp_report", "default for --nnterp-report", default="")


@dataclass(frozen=True)
class Selection:
    """What the options ask for: models, toy classes, checks, and where the report goes (None: nowhere)."""

    models: tuple[str, ...]
    classes: tuple[str, ...]
    checks: tuple[str, ...]
    report_dir: Path | None

    @property
    def active(self) -> bool:
        return bool(self.models or self.classes)


def default_report_dir() -> Path:
    """Where reports go when no folder is given: ``nnterp.compat.lookup.report_write_directory()``, the user's
    own (the first folder of ``$NNTERP_REPORT_DIR``, else ``~/.cache/nnterp/compat_reports``), never the package."""
    from nnterp.compat.lookup import report_write_directory
    from nnterp.errors import NNterpError

    try:
        return report_write_directory()
    except NNterpError as error:
        raise pytest.UsageError(f"--nnterp-report: {error}; or give a folder with --nnterp-report DIR") from None


def read_selection(config: pytest.Config) -> Selection:
    """The selection from options, falling back to ini values; validates check names."""
    models = config.getoption("nnterp_models") or config.getini("nnterp_models")
    classes = config.getoption("nnterp_classes") or config.getini("nnterp_classes")
    checks = config.getoption("nnterp_checks") or config.getini("nnterp_checks")
    if checks:
        from nnterp.checks import CHECK_NAMES

        unknown = sorted(set(checks) - set(CHECK_NAMES))
        if unknown:
            raise pytest.UsageError(f"--nnterp-checks: unknown check(s) {unknown}; choose from {list(CHECK_NAMES)}")
    report = config.getoption("nnterp_report") or config.getini("nnterp_report")
    no_report = config.getoption("nnterp_no_report")
    active = bool(models or classes)  # the default folder is resolved (importing nnterp.compat) only when used
    report_dir = None if no_report or not active else Path(report) if report else default_report_dir()
    return Selection(tuple(models), tuple(classes), tuple(checks), report_dir)


def check_report_dir(directory: Path) -> None:
    """Fail at the start, with a ``pytest.UsageError``, if the report cannot be written to ``directory``:
    better than running every check and losing the results at the end. Creates the folder (as the report
    would) and a temp file in it, removed at once."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory, prefix=".nnterp-probe-"):
            pass
    except OSError as error:
        raise pytest.UsageError(
            f"--nnterp-report: cannot write the compatibility report to {directory} ({error.strerror or error}); "
            "give a writable folder with --nnterp-report DIR (or the nnterp_report ini value, or "
            "$NNTERP_REPORT_DIR), or pass --nnterp-no-report") from None
