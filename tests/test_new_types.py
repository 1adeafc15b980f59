"""An upstream release that adds a failing type is a finding; a type that passed in the committed report and now
fails is a regression. Both simulated for real: pytest runs the project's own tests and the plugin in a
subprocess, with a plugin module that changes what transformers and the registry hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnterp.compat import lookup_architecture, render_site
from nnterp.compat.baseline import last_committed_report, new_model_lines, previous_report
from nnterp.compat.lookup import shipped_report_directory
from nnterp.compat.schema import Baseline, Report, ReportStatus, ResultRow, current_versions
from nnterp.compat.store import find_reports, load_report

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURES_TESTS = str(REPO / "tests" / "test_architectures.py")

# A type transformers "adds": Llama's code under a new model type and class, with a registry row whose facts are
# wrong (a norm's output counted as a residual term), so its residual identity fails as a new upstream type's can.
SIMULATED_ADDITION = '''
import sys

import transformers
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from nnterp.core.registry import register_architecture, spec_for


class SimulatedConfig(LlamaConfig):
    model_type = "simulated"


class SimulatedForCausalLM(LlamaForCausalLM):
    config_class = SimulatedConfig


CONFIG_MAPPING.register("simulated", SimulatedConfig)
transformers.AutoModelForCausalLM.register(SimulatedConfig, SimulatedForCausalLM)
MODEL_FOR_CAUSAL_LM_MAPPING_NAMES["simulated"] = "SimulatedForCausalLM"
# the module object that `import transformers` binds is not the lazy one it leaves in sys.modules (5.25)
setattr(sys.modules["transformers"], "SimulatedForCausalLM", SimulatedForCausalLM)
WRONG_FACT = {"residual_extra": ("post_attention_layernorm",)}
register_architecture("SimulatedForCausalLM", spec_for(LlamaForCausalLM).like(**WRONG_FACT))
'''

# Llama, which every committed report records as passing, given the same wrong fact.
SIMULATED_REGRESSION = '''
from transformers import LlamaForCausalLM

from nnterp.core.registry import register_architecture, spec_for

WRONG_FACT = {"residual_extra": ("post_attention_layernorm",)}
register_architecture("LlamaForCausalLM", spec_for(LlamaForCausalLM).like(**WRONG_FACT), override=True)
'''


@pytest.fixture
def isolated(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.Pytester:
    """A pytester whose runs read no user report folder but an empty one of their own."""
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(tmp_path / "user-reports"))
    return pytester


def run_architecture_tests(pytester: pytest.Pytester, plugin: str, selected: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(ARCHITECTURES_TESTS, "-p", plugin, "-p", "no:xdist", "-p", "no:cacheprovider",
                                         "-k", selected, "-rA")


def committed() -> Report | None:
    folder = shipped_report_directory()
    return last_committed_report(current_versions(), find_reports([folder] if folder else []))


def test_the_committed_reports_hold_the_types_the_regression_simulation_breaks():
    baseline = committed()
    assert baseline is not None and "toy:llama" in baseline.model_ids()
    assert all(check.status is not ReportStatus.FAILED
               for check in baseline.architectures["LlamaForCausalLM"]["toy:llama"].checks.values())


def test_a_new_failing_type_leaves_the_tests_green_and_is_named_with_its_reason(isolated):
    isolated.makepyfile(simulated_upstream=SIMULATED_ADDITION)
    result = run_architecture_tests(isolated, "simulated_upstream", "SimulatedForCausalLM or LlamaForCausalLM-llama]")
    result.assert_outcomes(passed=1, xfailed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*= new model types =*",
                                 "new *: 1 of 1 not yet verified",
                                 "  simulated (SimulatedForCausalLM): test_toy_architecture_validates: *residual*"])


def test_a_type_that_passed_in_the_committed_report_and_fails_now_turns_the_tests_red(isolated):
    isolated.makepyfile(simulated_regression=SIMULATED_REGRESSION)
    result = run_architecture_tests(isolated, "simulated_regression", "LlamaForCausalLM-llama]")
    result.assert_outcomes(failed=1)
    assert result.ret == 1
    assert "new model types" not in result.stdout.str()


def test_the_main_job_reports_a_new_type_as_new_in_its_table_report_pages_and_warning(isolated, tmp_path):
    isolated.makepyfile(simulated_upstream=SIMULATED_ADDITION)
    reports = tmp_path / "reports"
    result = isolated.runpytest_subprocess("-p", "simulated_upstream", "-p", "no:cacheprovider", "--nnterp-classes",
                                           "simulated", "llama", "--nnterp-checks", "renaming", "residual_identity",
                                           "--nnterp-report", str(reports))
    assert result.ret == 1  # a check failed: the main job still says so
    result.stdout.fnmatch_lines(["*toy:simulated (new)*FAIL*", "new in transformers *: 1 of 1 not yet verified",
                                 "  toy:simulated (SimulatedForCausalLM): failed on residual_identity: *"])
    assert "toy:llama (new)" not in result.stdout.str()

    [path] = reports.glob("*.json")
    report = load_report(path)
    previous = previous_report(report.versions, find_reports([shipped_report_directory()]))
    assert previous is not None
    assert report.baseline == Baseline(previous.versions, ("toy:simulated",))
    assert json.loads(path.read_text())["baseline"]["new_models"] == ["toy:simulated"]

    warning = lookup_architecture("SimulatedForCausalLM", [reports], report.versions).message
    assert warning.startswith("SimulatedForCausalLM is new in transformers")
    assert "not yet verified: it failed nnterp checks" in warning

    render_site([reports], tmp_path / "site")
    page = (tmp_path / "site" / path.name.replace(".json", ".html")).read_text()
    assert 'toy:simulated <span class="new"' in page and 'toy:llama <span class="new"' not in page
    assert "1 of 1 not yet verified" in page


def row(model_id: str, check: str, status: ReportStatus, message: str = "") -> ResultRow:
    return ResultRow("LlamaForCausalLM", model_id, "toy", check, status, None, message, 0.0)


VERSIONS = {"nnterp": "2.0.0", "transformers": "5.25.0", "nnsight": "0.8.1", "torch": "2.13.0"}
OLDER = dict(VERSIONS, transformers="5.24.0")


def test_new_model_lines_count_the_unverified_and_give_each_reason():
    report = Report(VERSIONS, {}, {}).merged([
        row("toy:a", "renaming", ReportStatus.PASSED), row("toy:a", "attn_probs", ReportStatus.NOT_APPLICABLE),
        row("toy:b", "renaming", ReportStatus.PASSED), row("toy:b", "residual_identity", ReportStatus.FAILED, "2.7"),
        row("toy:c", "renaming", ReportStatus.SKIPPED, "needs torchvision"),
        row("toy:d", "renaming", ReportStatus.NOT_APPLICABLE), row("toy:old", "renaming", ReportStatus.FAILED)])
    baseline = Report(OLDER, {}, {}).merged([row("toy:old", "renaming", ReportStatus.PASSED)])
    from nnterp.compat.baseline import compared

    lines = new_model_lines(compared(report, baseline))
    assert lines == [
        "new in transformers 5.25.0 (absent from the report for transformers 5.24.0): 3 of 4 not yet verified",
        "  toy:b (LlamaForCausalLM): failed on residual_identity: 2.7",
        "  toy:c (LlamaForCausalLM): skipped on every check: needs torchvision",
        "  toy:d (LlamaForCausalLM): no check passed (every check is n/a)"]
    assert new_model_lines(compared(report, None)) == []


def test_the_previous_report_is_the_newest_older_set_and_the_last_committed_prefers_the_same_set(tmp_path):
    sets = [dict(VERSIONS, transformers=version) for version in ("5.9.0", "5.10.4", "5.25.0", "5.26.0")]
    found = [(tmp_path / f"{index}.json", Report(versions, {}, {})) for index, versions in enumerate(sets)]
    assert previous_report(VERSIONS, found).versions["transformers"] == "5.10.4"  # 5.10 > 5.9: versions, not text
    assert last_committed_report(VERSIONS, found).versions["transformers"] == "5.25.0"
    assert last_committed_report(dict(VERSIONS, transformers="5.24.0"), found).versions["transformers"] == "5.10.4"
    assert previous_report(dict(VERSIONS, transformers="5.0.0"), found) is None
    other_nnsight = dict(VERSIONS, nnsight="0.8.0")
    found.append((tmp_path / "n.json", Report(other_nnsight, {}, {})))  # same transformers, older nnsight
    assert previous_report(VERSIONS, found).versions == dict(VERSIONS, transformers="5.10.4")  # same line first
    assert previous_report(other_nnsight, found).versions["transformers"] == "5.10.4"  # no older on its line


def test_diff_committed_names_new_models_and_regressions_and_fails_on_a_regression(tmp_path, capsys):
    """`nox -s newest` ends with this command: a run on newer releases against the last committed report."""
    from dataclasses import replace

    from nnterp.__main__ import main
    from nnterp.compat.store import write_report

    baseline = committed()
    newer = dict(baseline.versions, transformers="99.0.0")
    llama = baseline.architectures["LlamaForCausalLM"]["toy:llama"]
    broken = ResultRow("LlamaForCausalLM", "toy:llama", "toy", "residual_identity", ReportStatus.FAILED, 2.7,
                       "layer 2 differs", 0.0)
    added = ResultRow("SimulatedForCausalLM", "toy:simulated", "toy", "renaming", ReportStatus.LOAD_ERROR, None,
                      "ValueError: a validator refused the config", 0.0)
    report = replace(baseline, versions=newer).merged([broken, added])
    write_report(tmp_path / "newer.json", report)
    assert main(["report", "--diff-committed", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "new in transformers 99.0.0 (absent from the report for transformers" in out
    assert "1 of 1 not yet verified" in out
    assert "  toy:simulated (SimulatedForCausalLM): load error on every check: ValueError: a validator" in out
    assert "regressed (1):\n  LlamaForCausalLM / toy:llama / residual_identity: passed -> failed" in out
    assert llama.checks["residual_identity"].status is ReportStatus.PASSED

    write_report(tmp_path / "newer.json", replace(baseline, versions=newer).merged([added]))
    assert main(["report", "--diff-committed", str(tmp_path / "newer.json")]) == 0
    assert "regressed" not in capsys.readouterr().out
