"""The check catalogue: one list of checks, run the same way by the loader, the plugin and the tests."""

import dataclasses

import pytest

import nnterp.checks.behaviour as behaviour
from nnterp.checks import (
    CATALOGUE,
    CHECK_NAMES,
    CHECKS,
    CheckName,
    ReportStatus,
    check_skip_layers,
    run_checks,
    run_load_checks,
)
from nnterp.toy.standardized import standardized_toy


def test_the_catalogue_names_each_check_once_in_report_order():
    assert CHECK_NAMES == tuple(check.name.value for check in CATALOGUE) == tuple(CHECKS)
    assert set(CheckName) == {check.name for check in CATALOGUE}
    loaded = [check.at_load for check in CATALOGUE]
    assert loaded == sorted(loaded, reverse=True), "load-time checks come first: they share one probe"


def test_every_behaviour_check_names_a_function_that_exists():
    import importlib

    for check in CATALOGUE:
        if not check.at_load:
            module, _, name = check.function.partition(":")
            assert callable(getattr(importlib.import_module(f"nnterp.checks.{module}"), name)), check


def test_importing_the_catalogue_loads_no_torch():
    import subprocess
    import sys

    code = "import sys, nnterp.checks; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_statuses_order_by_severity_in_one_place():
    order = [ReportStatus.PASSED, ReportStatus.NOT_APPLICABLE, ReportStatus.SKIPPED, ReportStatus.FAILED,
             ReportStatus.LOAD_ERROR, ReportStatus.CRASHED]
    assert sorted(ReportStatus, key=lambda status: status.severity) == order
    assert ReportStatus.worst([ReportStatus.PASSED, ReportStatus.FAILED, ReportStatus.NOT_APPLICABLE]) \
        is ReportStatus.FAILED
    assert {status for status in ReportStatus if status.is_failure} == \
        {ReportStatus.FAILED, ReportStatus.LOAD_ERROR, ReportStatus.CRASHED}


@pytest.fixture(scope="module")
def llama():
    return standardized_toy("llama")


def test_load_checks_give_one_result_per_load_time_check_in_catalogue_order(llama):
    results = run_load_checks(llama)
    assert [result.name for result in results] == [check.name for check in CATALOGUE if check.at_load]
    assert all(result.passed for result in results), [result.message for result in results]


def test_run_checks_runs_the_whole_catalogue_or_the_named_checks(llama):
    everything = run_checks(llama)
    assert [result.name.value for result in everything] == list(CHECK_NAMES)
    assert all(result.passed for result in everything), [(r.name, r.message) for r in everything if not r.passed]
    assert [result.name for result in run_checks(llama, ["skip_layers", CheckName.RENAMING])] == \
        [CheckName.RENAMING, CheckName.SKIP]


def test_checks_after_a_failed_renaming_say_they_were_not_reached(llama, monkeypatch):
    broken = dataclasses.replace(llama.architecture, attention=(None,) * llama.num_layers)
    monkeypatch.setattr(llama, "architecture", broken)
    renaming, *rest = run_load_checks(llama)
    assert renaming.failed and "have no attention module" in renaming.message
    assert [result.name for result in rest] == [CheckName.IO_SHAPES, CheckName.RESIDUAL, CheckName.ATTN_PROBS]
    assert all(result.failed and result.message == "not reached: renaming failed first" for result in rest)


def test_a_check_that_raises_is_that_check_failing_with_the_error(llama, monkeypatch):
    def broken(model):
        raise RuntimeError("boom")

    monkeypatch.setattr(behaviour, "check_steering", broken)
    result = CHECKS["steering"].run(llama)
    assert result.name is CheckName.STEERING and result.failed and result.message == "RuntimeError: boom"


@pytest.mark.parametrize("model_type", ["bloom", "falcon", "xlstm"])
def test_skip_layers_holds_without_load_time_validation(model_type):
    """These blocks return tuples; skip_layers must hand the model that structure back even when the
    load-time probe never ran (it used to learn the arity from the probe: IndexError / ValueError)."""
    model = standardized_toy(model_type, check_renaming=False, enable_attention_probs=False)
    assert model.check_results == [] and model.layer_output_arity >= 2
    result = check_skip_layers(model)
    assert result.passed, result.message


def test_the_behaviour_checks_of_one_model_share_one_traced_forward(llama, monkeypatch):
    traced = []
    original = behaviour._traced_run

    def counting(model, prompt, project):
        traced.append((prompt, project))
        return original(model, prompt, project)

    monkeypatch.setattr(behaviour, "_traced_run", counting)
    results = run_checks(llama, ["logits_match", "logit_lens", "steering"])
    assert all(result.passed for result in results), [result.message for result in results]
    assert traced == [(behaviour.INTERVENTION_PROMPT, True)]


def test_a_failing_projection_fails_the_logit_lens_and_nothing_else(llama, monkeypatch):
    def broken(self, hidden_state):
        raise RuntimeError("no head here")

    monkeypatch.setattr(type(llama), "project_on_vocab", broken)
    results = {result.name: result for result in run_checks(llama, ["logits_match", "logit_lens", "steering"])}
    lens = results[CheckName.LOGIT_LENS]
    assert lens.failed and lens.message == "RuntimeError: no head here"
    assert results[CheckName.LOGITS_MATCH].passed and results[CheckName.STEERING].passed


def test_the_layer_output_structure_is_learned_where_one_token_takes_a_generation_path(monkeypatch):
    """transformers 5.5-5.15's Git fails on a one-token input without a cache position (it adds the cache length
    to position ids that are None there); the arity forward must not depend on such a path."""
    from nnterp.toy import build_toy_model

    toy = build_toy_model("llama")
    plain_forward = type(toy.model).forward

    def generation_path_fails(self, input_ids=None, **kwargs):
        if input_ids is not None and input_ids.shape[1] == 1:
            raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")
        return plain_forward(self, input_ids=input_ids, **kwargs)

    monkeypatch.setattr(type(toy.model), "forward", generation_path_fails)
    from nnterp import StandardizedTransformer

    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer, check_renaming=False)
    assert model.layer_output_arity == 0
    assert check_skip_layers(model).passed


@pytest.mark.parametrize("model_type", ["llama", "bloom"])
def test_validation_forward_teaches_the_layer_output_structure(model_type, monkeypatch):
    """With validation on, the arity comes from validation's own forward: no forward of its own at load."""
    from nnterp import StandardizedTransformer
    from nnterp.toy import build_toy_model

    toy = build_toy_model(model_type)
    measured = []
    original = StandardizedTransformer._measure_layer_output_arity
    monkeypatch.setattr(StandardizedTransformer, "_measure_layer_output_arity",
                        lambda self: measured.append(self) or original(self))
    model = StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)
    assert measured == []
    assert model.layer_output_arity == original(model) == {"llama": 0, "bloom": 2}[model_type]
