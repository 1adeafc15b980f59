"""pytest_nnterp, run for real with pytester: options, items and ids, reports, xdist parity, load errors.

Every run is a subprocess: torch and numpy cannot be re-imported inside one process.
"""

import json
import os
import subprocess
import sys

import pytest

CHECKS = ["--nnterp-checks", "renaming", "io_shapes", "attn_probs"]


def report_of(directory):
    files = list(directory.glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def statuses(report):
    """Report content without timings and provenance: architecture -> model -> check -> (status, message)."""
    return {arch: {model: {check: (record["status"], record["message"]) for check, record in entry["checks"].items()}
                   for model, entry in body["models"].items()}
            for arch, body in report["architectures"].items()}


def test_options_show_in_help(pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--nnterp-models*", "*--nnterp-classes*", "*--nnterp-checks*",
                                 "*--nnterp-report*", "*--nnterp-no-report*"])


def test_plugin_import_does_not_load_torch():
    code = "import sys, pytest_nnterp.plugin; print('torch' in sys.modules, 'transformers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_items_have_readable_ids_without_a_test_path(pytester):
    result = pytester.runpytest_subprocess("--nnterp-classes", "llama", "gpt2", *CHECKS, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_nnterp_check[[]LlamaForCausalLM-toy-renaming[]]*",
                                 "*test_nnterp_check[[]GPT2LMHeadModel-toy-attn_probs[]]*", "6 tests collected*"])


def test_unknown_check_is_a_usage_error(pytester):
    result = pytester.runpytest_subprocess("--nnterp-classes", "llama", "--nnterp-checks", "vibes")
    result.stderr.fnmatch_lines(["*unknown check(s) [[]'vibes'[]]*choose from*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_run_writes_the_report_and_prints_the_table(pytester):
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess("--nnterp-classes", "llama", "mamba", *CHECKS,
                                           "--nnterp-report", str(report_dir))
    result.assert_outcomes(passed=5, skipped=1)  # Mamba has no softmax attention: n/a is a skip with its reason
    result.stdout.fnmatch_lines(["*nnterp compatibility*", "*LlamaForCausalLM*toy:llama*pass*pass*pass*",
                                 "*MambaForCausalLM*toy:mamba*pass*pass*n/a*", "report written:*"])
    found = statuses(report_of(report_dir))
    assert found["MambaForCausalLM"]["toy:mamba"]["attn_probs"][0] == "n/a"
    assert found["LlamaForCausalLM"]["toy:llama"]["renaming"] == ("passed", "2 layers at model.layers")


def test_a_partial_run_keeps_the_other_entries(pytester):
    report_dir = pytester.path / "reports"
    for name in ("llama", "gpt2"):
        pytester.runpytest_subprocess("--nnterp-classes", name, "--nnterp-checks", "renaming",
                                      "--nnterp-report", str(report_dir))
    assert set(statuses(report_of(report_dir))) == {"LlamaForCausalLM", "GPT2LMHeadModel"}


def test_xdist_gives_the_same_report(pytester):
    serial, parallel = pytester.path / "serial", pytester.path / "parallel"
    args = ["--nnterp-classes", "llama", "gpt2", "bloom", *CHECKS, "-p", "no:cacheprovider"]
    pytester.runpytest_subprocess(*args, "--nnterp-report", str(serial), "-n", "0")
    result = pytester.runpytest_subprocess(*args, "--nnterp-report", str(parallel), "-n", "2")
    result.stdout.fnmatch_lines(["*report written:*"])
    assert statuses(report_of(serial)) == statuses(report_of(parallel))
    assert len(statuses(report_of(parallel))) == 3


def test_a_model_that_fails_to_load_gives_one_load_error_per_check(pytester):
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess("--nnterp-models", str(pytester.path / "no-such-model"), *CHECKS,
                                "--nnterp-report", str(report_dir))
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(["*load error:*"])
    checks = statuses(report_of(report_dir))["unknown"][str(pytester.path / "no-such-model")]
    assert {status for status, _ in checks.values()} == {"load error"}


def test_user_checks_run_on_every_selected_model_and_land_in_their_category(pytester):
    pytester.makepyfile(test_mine="""
        import pytest

        @pytest.mark.nnterp_category("finite_layers")
        def test_finite(nnterp_model):
            with nnterp_model.trace("Hello"):
                hidden = nnterp_model.layers_output[0].save()
            assert hidden.isfinite().all()
    """)
    report_dir = pytester.path / "reports"
    result = pytester.runpytest_subprocess("test_mine.py", "--nnterp-classes", "llama", "gpt2",
                                           "--nnterp-checks", "renaming", "--nnterp-report", str(report_dir), "-v")
    result.stdout.fnmatch_lines(["*test_finite[[]LlamaForCausalLM-toy[]] PASSED*"])
    found = statuses(report_of(report_dir))
    assert found["GPT2LMHeadModel"]["toy:gpt2"]["finite_layers"][0] == "passed"
    assert found["GPT2LMHeadModel"]["toy:gpt2"]["renaming"][0] == "passed"


def test_no_report_option_writes_nothing(pytester, monkeypatch):
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(pytester.path / "default"))
    pytester.runpytest_subprocess("--nnterp-classes", "llama", "--nnterp-checks", "renaming", "--nnterp-no-report")
    assert not (pytester.path / "default").exists()


def test_without_a_folder_the_report_goes_to_the_first_one_of_the_env_variable(pytester, monkeypatch):
    """NNTERP_REPORT_DIR=A:B: the plugin writes to A (the folder whose entries win when the lookup reads both)."""
    first, second = pytester.path / "first", pytester.path / "second"
    monkeypatch.setenv("NNTERP_REPORT_DIR", os.pathsep.join([str(first), str(second)]))
    pytester.runpytest_subprocess("--nnterp-classes", "llama", "--nnterp-checks", "renaming")
    assert statuses(report_of(first))["LlamaForCausalLM"]["toy:llama"]["renaming"][0] == "passed"
    assert not second.exists() and not list(pytester.path.glob(f"*{os.pathsep}*"))  # no folder named "A:B"


def test_a_crashed_workers_item_is_recorded_as_crashed(pytestconfig):
    """xdist calls pytest_handlecrashitem for a dead worker's item; the controller records it as crashed."""
    from pytest_nnterp.options import Selection
    from pytest_nnterp.session import NnterpSession

    session = NnterpSession(pytestconfig, Selection((), ("llama",), ("renaming",), None))
    report = pytest.TestReport(
        nodeid="pytest_nnterp/suite.py::test_nnterp_check[LlamaForCausalLM-toy-renaming]", location=("", 0, ""),
        keywords={}, outcome="failed", longrepr="worker 'gw0' crashed while running 'test_nnterp_check'",
        when="???", user_properties=[])
    session.pytest_handlecrashitem(crashitem=report.nodeid, report=report, sched=None)
    row = session.rows[("LlamaForCausalLM", "toy:llama", "renaming")]
    assert row["status"] == "crashed" and "crashed while running" in row["message"]
