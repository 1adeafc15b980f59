"""The load-time lookup: its four states, their messages, once-per-architecture warnings, its speed, and where
the shipped reports live."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

import nnterp.compat.lookup as lookup_module
from nnterp.checks import CHECK_NAMES
from nnterp.compat import (
    LookupState,
    NNterpCompatibilityWarning,
    ReportStatus,
    ReportWarning,
    ResultRow,
    lookup_architecture,
    report_directories,
    report_filename,
    shipped_report_directory,
    update_report,
    warn_for_architecture,
)
from nnterp.compat.lookup import reset_warned_architectures

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0+cpu"}
P, F = ReportStatus.PASSED, ReportStatus.FAILED


def save(directory: Path, versions: dict, *entries: tuple) -> Path:
    """Write a report of ``versions`` with (architecture, check, status[, model id]) entries."""
    rows = [ResultRow(entry[0], entry[3] if len(entry) > 3 else "toy:x", "toy", entry[1], entry[2], None,
                      f"{entry[1]} says so", 0.0) for entry in entries]
    return update_report(directory, rows, versions=versions, environment={"updated": "now", "git_commit": None})


def passing(architecture: str, *but: str) -> list[tuple]:
    """Entries of every catalogue check passed on ``architecture`` (except the checks ``but`` names): a full run."""
    return [(architecture, check, P) for check in CHECK_NAMES if check not in but]


def lookup(directory: Path | list[Path], name: str, **kwargs):
    directories = directory if isinstance(directory, list) else [directory]
    return lookup_architecture(name, directories, versions=INSTALLED, **kwargs)


@pytest.fixture(autouse=True)
def no_user_reports(monkeypatch):
    monkeypatch.delenv("NNTERP_REPORT_DIR", raising=False)


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test starts with no architecture warned about, and leaves none behind for other test files."""
    reset_warned_architectures()
    yield
    reset_warned_architectures()


@pytest.fixture
def installed(monkeypatch):
    """``warn_for_architecture`` sees INSTALLED as the installed versions."""
    monkeypatch.setattr(lookup_module, "_installed_versions", lambda: dict(INSTALLED))


def warned(call) -> list[str]:
    """The NNterpCompatibilityWarning messages ``call()`` emits, with Python's own deduplication off."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, NNterpCompatibilityWarning)]


def test_all_passed(tmp_path):
    save(tmp_path, INSTALLED, *passing("LlamaForCausalLM", "attn_probs"),
         ("LlamaForCausalLM", "attn_probs", ReportStatus.NOT_APPLICABLE))
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.state is LookupState.ALL_PASSED and result.failed_checks == ()
    assert result.message.startswith("LlamaForCausalLM passed every nnterp check with")
    assert result.versions == INSTALLED and result.statuses["renaming"] is P
    assert len(result.reports) == 1


def test_a_run_of_some_checks_passes_only_what_ran_and_warns(tmp_path, installed):
    save(tmp_path, INSTALLED, ("LlamaForCausalLM", "renaming", P), ("LlamaForCausalLM", "io_shapes", P),
         ("LlamaForCausalLM", "attn_probs", ReportStatus.NOT_APPLICABLE))
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.state is LookupState.PARTIAL and "passed every" not in result.message
    assert result.message.startswith(
        "LlamaForCausalLM passed the 3 checks that ran (residual_identity, logits_match, logit_lens, steering and "
        "skip_layers not run) with nnterp 0.1.0")
    assert warned(lambda: warn_for_architecture("LlamaForCausalLM", [tmp_path])) == [result.message]


def test_a_skipped_check_is_not_a_pass(tmp_path):
    save(tmp_path, INSTALLED, *passing("LlamaForCausalLM", "steering"), ("LlamaForCausalLM", "steering",
                                                                          ReportStatus.SKIPPED))
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.state is LookupState.PARTIAL
    assert "passed the 7 checks that ran (steering not run)" in result.message
    assert "; skipped: steering says so." in result.message


def test_a_run_whose_every_check_was_skipped_verified_nothing(tmp_path):
    save(tmp_path, INSTALLED, *[("LlamaForCausalLM", check, ReportStatus.SKIPPED) for check in CHECK_NAMES])
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.state is LookupState.NOT_VERIFIED and "passed" not in result.message
    assert result.message.startswith("LlamaForCausalLM was not verified (every check that was asked for was "
                                     "skipped) with nnterp 0.1.0")


def test_only_n_a_verifies_nothing(tmp_path):
    save(tmp_path, INSTALLED, ("MambaForCausalLM", "attn_probs", ReportStatus.NOT_APPLICABLE))
    assert lookup(tmp_path, "MambaForCausalLM").state is LookupState.NOT_VERIFIED


def test_failures_name_the_checks_models_and_versions(tmp_path):
    save(tmp_path, INSTALLED, *passing("BloomForCausalLM"), ("BloomForCausalLM", "attn_probs", F),
         ("BloomForCausalLM", "residual_identity", ReportStatus.CRASHED, "bigscience/bloom-560m"))
    result = lookup(tmp_path, "BloomForCausalLM")
    assert result.state is LookupState.FAILURES
    assert result.failed_checks == ("attn_probs", "residual_identity")
    versions = "nnterp 0.1.0, transformers 5.23.0, nnsight 0.8.1, torch 2.13.0+cpu"
    assert f"failed nnterp checks with {versions}" in result.message
    assert "attn_probs (failed on toy:x: attn_probs says so)" in result.message
    assert "residual_identity (crashed on bigscience/bloom-560m" in result.message
    assert "python -m nnterp run_tests --class-names BloomForCausalLM" in result.message


def test_never_tested_gives_the_exact_command(tmp_path):
    save(tmp_path, INSTALLED, *passing("LlamaForCausalLM"))
    result = lookup([tmp_path, tmp_path / "absent"], "GPT2LMHeadModel")
    assert result.state is LookupState.NEVER_TESTED
    assert "\n  python -m nnterp run_tests --class-names GPT2LMHeadModel   (add --model-names" in result.message
    real = lookup(tmp_path, "GPT2LMHeadModel", model_id="openai-community/gpt2")
    assert real.message.endswith(
        "\n  python -m nnterp run_tests --class-names GPT2LMHeadModel --model-names openai-community/gpt2")
    assert lookup([], "GPT2LMHeadModel").state is LookupState.NEVER_TESTED


def other(**changes) -> dict:
    return {**INSTALLED, **changes}


def test_an_untested_set_says_so_and_tells_the_nearest_outcome_as_history(tmp_path):
    save(tmp_path, other(transformers="5.22.0"), *passing("LlamaForCausalLM"),
         ("LlamaForCausalLM", "attn_probs", P))
    result = lookup(tmp_path, "LlamaForCausalLM", model_id="org/llama")
    assert result.state is LookupState.OTHER_VERSIONS and result.nearest_state is LookupState.ALL_PASSED
    assert result.nearest_versions == other(transformers="5.22.0") and result.differing_packages == ("transformers",)
    assert result.message.startswith("LlamaForCausalLM is untested with the installed nnterp 0.1.0, transformers "
                                     "5.23.0, nnsight 0.8.1, torch 2.13.0+cpu: no compatibility report records it")
    assert ("The nearest tested set differs in transformers (5.22.0 there, 5.23.0 here) and matches in nnterp, "
            "nnsight and torch: no check failed there; that says nothing about this set.") in result.message
    assert "passed" not in result.message  # no pass is claimed, for this set or the other
    assert result.message.endswith(
        "Verify this set with:\n  python -m nnterp run_tests --class-names LlamaForCausalLM --model-names org/llama")


def test_an_untested_set_claims_no_pass_where_the_nearest_set_only_had_na_or_skipped(tmp_path):
    save(tmp_path, other(transformers="5.22.0"), ("LlamaForCausalLM", "renaming", ReportStatus.NOT_APPLICABLE),
         ("LlamaForCausalLM", "steering", ReportStatus.SKIPPED))
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.nearest_state is LookupState.NOT_VERIFIED  # nothing failed, but nothing passed either
    assert (": nothing was verified there (its checks were skipped or do not apply); that says nothing about this "
            "set.") in result.message
    assert "pass" not in result.message and "every check" not in result.message


def test_an_untested_set_names_the_checks_that_failed_in_the_nearest_set(tmp_path):
    save(tmp_path, other(transformers="5.22.0", torch="2.12.0"), *passing("LlamaForCausalLM"),
         ("LlamaForCausalLM", "attn_probs", F), ("LlamaForCausalLM", "io_shapes", F))
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.state is LookupState.OTHER_VERSIONS and result.nearest_state is LookupState.FAILURES
    assert result.failed_checks == ("attn_probs", "io_shapes")
    assert result.differing_packages == ("transformers", "torch")
    assert ("differs in transformers (5.22.0 there, 5.23.0 here) and torch (2.12.0 there, 2.13.0+cpu here) and "
            "matches in nnterp and nnsight: there it failed attn_probs (failed on toy:x: attn_probs says so); "
            "io_shapes (failed on toy:x: io_shapes says so); that does not say whether this set fails."
            ) in result.message
    assert "LlamaForCausalLM is untested with the installed" in result.message and "passed" not in result.message


def test_checks_that_failed_alike_share_one_detail(tmp_path):
    rows = [ResultRow("BloomForCausalLM", "toy:bloom", "toy", check, ReportStatus.LOAD_ERROR, None, "ValueError: x",
                      0.0) for check in ("renaming", "io_shapes", "logits_match")]
    update_report(tmp_path, rows, versions=INSTALLED, environment={"updated": "now", "git_commit": None})
    result = lookup(tmp_path, "BloomForCausalLM")
    assert "io_shapes, logits_match and renaming (load error on toy:bloom: ValueError: x)." in result.message


def test_other_versions_picks_the_nearest_set_and_its_outcome(tmp_path):
    save(tmp_path, other(transformers="4.57.1"), *passing("LlamaForCausalLM"))
    save(tmp_path, other(transformers="5.22.0"), *passing("LlamaForCausalLM"))
    save(tmp_path, other(nnsight="0.7.0"), ("LlamaForCausalLM", "renaming", F))
    save(tmp_path, INSTALLED, *passing("BloomForCausalLM"))  # the installed set, without Llama
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.state is LookupState.OTHER_VERSIONS
    assert result.nearest_versions == other(nnsight="0.7.0")  # transformers matters most
    assert result.nearest_state is LookupState.FAILURES and result.failed_checks == ("renaming",)
    assert ("nearest tested set differs in nnsight (0.7.0 there, 0.8.1 here) and matches in nnterp, transformers and "
            "torch: there it failed renaming") in result.message
    assert "python -m nnterp run_tests --class-names LlamaForCausalLM" in result.message

    save(tmp_path, other(torch="2.10.0"), *passing("LlamaForCausalLM"))  # then nnsight, then torch
    assert lookup(tmp_path, "LlamaForCausalLM").nearest_versions == other(torch="2.10.0")
    save(tmp_path, other(torch="2.13.0", nnterp="0.0.9"), *passing("LlamaForCausalLM"))
    result = lookup(tmp_path, "LlamaForCausalLM")
    assert result.nearest_versions == other(torch="2.13.0", nnterp="0.0.9")
    assert result.nearest_state is LookupState.ALL_PASSED and "no check failed there;" in result.message
    assert result.differing_packages == ("nnterp", "torch")  # 2.13.0 is not 2.13.0+cpu


def test_nearest_prefers_the_smallest_distance_then_the_newer(tmp_path):
    save(tmp_path, other(transformers="5.21.0"), *passing("LlamaForCausalLM"))
    save(tmp_path, other(transformers="5.22.0"), *passing("LlamaForCausalLM"))
    save(tmp_path, other(transformers="5.24.0"), *passing("LlamaForCausalLM"))
    assert lookup(tmp_path, "LlamaForCausalLM").nearest_versions == other(transformers="5.24.0")


def test_a_later_directory_wins_for_the_same_entry(tmp_path):
    shipped, user = tmp_path / "shipped", tmp_path / "user"
    save(shipped, INSTALLED, *passing("LlamaForCausalLM"), ("LlamaForCausalLM", "io_shapes", P))
    save(user, INSTALLED, ("LlamaForCausalLM", "io_shapes", F))
    result = lookup([shipped, user], "LlamaForCausalLM")
    assert result.state is LookupState.FAILURES and result.failed_checks == ("io_shapes",)
    assert lookup([user, shipped], "LlamaForCausalLM").state is LookupState.ALL_PASSED


def test_warn_only_when_not_all_passed(tmp_path, caplog, installed):
    save(tmp_path, INSTALLED, *passing("LlamaForCausalLM"), ("BloomForCausalLM", "renaming", F))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG, "nnterp.compat"):
        warnings.simplefilter("always")
        assert warn_for_architecture("LlamaForCausalLM", [tmp_path]).state is LookupState.ALL_PASSED
    assert not caught and "LlamaForCausalLM passed every nnterp check" in caplog.text
    with pytest.warns(NNterpCompatibilityWarning, match=r"BloomForCausalLM failed nnterp checks .*: renaming \(failed"):
        warn_for_architecture("BloomForCausalLM", [tmp_path])
    with pytest.warns(NNterpCompatibilityWarning, match="--class-names GPT2LMHeadModel --model-names gpt2"):
        warn_for_architecture("GPT2LMHeadModel", [tmp_path], model_id="gpt2")


def test_each_architecture_warns_once_per_process(tmp_path, caplog, installed):
    save(tmp_path, other(transformers="5.22.0"), *passing("LlamaForCausalLM"))
    save(tmp_path, INSTALLED, ("BloomForCausalLM", "renaming", F), *passing("GPT2LMHeadModel"))
    first = warned(lambda: warn_for_architecture("LlamaForCausalLM", [tmp_path]))
    assert len(first) == 1 and first[0].startswith("LlamaForCausalLM is untested")
    with caplog.at_level(logging.DEBUG, "nnterp.compat"):
        again = warned(lambda: [warn_for_architecture("LlamaForCausalLM", [tmp_path], model_id=model)
                                for model in (None, "org/other-llama")])
    assert again == [] and "already warned about LlamaForCausalLM" in caplog.text
    bloom = warned(lambda: warn_for_architecture("BloomForCausalLM", [tmp_path]))  # others are not swallowed
    assert len(bloom) == 1 and bloom[0].startswith("BloomForCausalLM failed nnterp checks")
    never = warned(lambda: warn_for_architecture("MistralForCausalLM", [tmp_path]))
    assert len(never) == 1 and never[0].startswith("MistralForCausalLM has never been tested")
    assert warned(lambda: warn_for_architecture("GPT2LMHeadModel", [tmp_path])) == []  # passed: nothing to warn
    assert warned(lambda: warn_for_architecture("BloomForCausalLM", [tmp_path])) == []
    reset_warned_architectures()
    assert warned(lambda: warn_for_architecture("LlamaForCausalLM", [tmp_path])) == first


def test_invalid_reports_warn_once_and_are_skipped(tmp_path):
    save(tmp_path, INSTALLED, *passing("LlamaForCausalLM"))
    broken = tmp_path / report_filename(other(torch="9.9.9"))  # a report's name: it claims to be one
    broken.write_text("{")
    with pytest.warns(ReportWarning, match=f"{broken.name}: not valid JSON"):
        assert lookup(tmp_path, "LlamaForCausalLM").state is LookupState.ALL_PASSED
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lookup(tmp_path, "LlamaForCausalLM").state is LookupState.ALL_PASSED


def test_cached_lookups_take_well_under_50_ms_and_see_changes(tmp_path, monkeypatch):
    rows = [(f"Arch{i}ForCausalLM", check, P, model) for i in range(150)
            for check in CHECK_NAMES
            for model in ("toy:a", "org/real-model")]
    path = save(tmp_path, INSTALLED, *rows)
    for torch_version in ("2.10.0", "2.11.0", "2.12.0"):
        save(tmp_path, other(torch=torch_version), *rows)
    parsed, real_read = [], lookup_module.read_or_set_aside

    def counting_read(report_path, stacklevel=2):
        parsed.append(report_path)
        return real_read(report_path, stacklevel)

    monkeypatch.setattr(lookup_module, "read_or_set_aside", counting_read)
    lookup(tmp_path, "Arch7ForCausalLM")  # parses every file once
    calls = 200
    start = time.perf_counter()
    for _ in range(calls):
        result = lookup(tmp_path, "Arch7ForCausalLM")
    per_call = (time.perf_counter() - start) / calls
    assert result.state is LookupState.ALL_PASSED
    assert per_call < 0.05, f"{per_call * 1000:.1f} ms per cached lookup"
    assert len(parsed) == 4  # each file parsed once, not per call

    save(tmp_path, INSTALLED, ("Arch7ForCausalLM", "renaming", F))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on coarse file systems
    assert lookup(tmp_path, "Arch7ForCausalLM").state is LookupState.FAILURES
    assert len(parsed) == 5


def test_report_directories_shipped_then_env_then_parameter(tmp_path, monkeypatch):
    """Later folders win; of $NNTERP_REPORT_DIR's, the first wins (so it comes last) and is the one written to."""
    monkeypatch.setenv("NNTERP_REPORT_DIR", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert report_directories(tmp_path / "c") == [ROOT / "compat_reports", tmp_path / "b", tmp_path / "a",
                                                  tmp_path / "c"]
    assert lookup_module.user_report_directories() == [tmp_path / "a", tmp_path / "b"]
    assert lookup_module.report_write_directory() == tmp_path / "a"


def test_the_first_env_folder_wins_and_is_where_the_plugin_writes(tmp_path, monkeypatch):
    from pytest_nnterp.options import default_report_dir

    monkeypatch.setattr(lookup_module, "shipped_report_directory", lambda: None)
    monkeypatch.setenv("NNTERP_REPORT_DIR", os.pathsep.join([str(tmp_path / "mine"), str(tmp_path / "shared")]))
    save(tmp_path / "shared", INSTALLED, ("LlamaForCausalLM", "renaming", F))
    save(tmp_path / "mine", INSTALLED, *passing("LlamaForCausalLM"))
    assert lookup_architecture("LlamaForCausalLM", versions=INSTALLED).state is LookupState.ALL_PASSED
    assert default_report_dir() == tmp_path / "mine"


def test_without_any_user_folder_writing_is_an_error_naming_the_variable(monkeypatch):
    from nnterp.errors import NNterpError

    monkeypatch.setattr(lookup_module, "user_report_directories", lambda: [])
    with pytest.raises(NNterpError, match="set NNTERP_REPORT_DIR"):
        lookup_module.report_write_directory()


def test_without_the_env_var_the_user_folder_is_the_plugins_default(tmp_path, monkeypatch):
    monkeypatch.setattr(lookup_module, "shipped_report_directory", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert report_directories() == [tmp_path / ".cache" / "nnterp" / "compat_reports"]
    save(tmp_path / ".cache" / "nnterp" / "compat_reports", INSTALLED, *passing("LlamaForCausalLM"))
    assert lookup_architecture("LlamaForCausalLM", versions=INSTALLED).state is LookupState.ALL_PASSED


def test_default_lookup_reads_the_user_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(lookup_module, "shipped_report_directory", lambda: None)
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(tmp_path))
    save(tmp_path, INSTALLED, ("LlamaForCausalLM", "renaming", F))
    result = lookup_architecture("LlamaForCausalLM", versions=INSTALLED)
    assert result.state is LookupState.FAILURES


def test_the_shipped_reports_resolve_in_a_source_checkout():
    assert shipped_report_directory() == ROOT / "compat_reports"
    assert shipped_report_directory().is_dir()


def test_importing_and_looking_up_imports_nothing_heavy():
    code = ("import sys, nnterp.compat as c; c.lookup_architecture('LlamaForCausalLM');"
            "print(sorted(m for m in ('torch', 'transformers', 'nnsight', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_a_wheel_ships_the_reports_where_lookup_finds_them(tmp_path):
    """Build a wheel of a copy of the project holding one report, install it to a prefix, look up from there."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("nnterp", "pytest_nnterp"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    save(source / "compat_reports", INSTALLED, *passing("LlamaForCausalLM"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                          str(source)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("nnterp-*.whl"))
    # --ignore-installed: without it pip uninstalls the nnterp of the running environment first.
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--ignore-installed", "-q", "--prefix",
                          str(tmp_path / "prefix"), str(wheel)], check=True, capture_output=True)
    site = next((tmp_path / "prefix").glob("lib/python*/site-packages"))
    code = ("import json, nnterp.compat as c; print(json.dumps([c.__file__, str(c.shipped_report_directory()), "
            f"c.lookup_architecture('LlamaForCausalLM', versions={INSTALLED!r}).state.name]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(site)})
    module, directory, state = __import__("json").loads(done.stdout)
    assert module.startswith(str(site))
    assert Path(directory) == (tmp_path / "prefix" / "share" / "nnterp" / "compat_reports").resolve()
    assert state == "ALL_PASSED"


def test_loading_a_model_warns_at_the_callers_line(tmp_path, monkeypatch):
    from nnterp import StandardizedTransformer
    from nnterp.toy import build_toy_model

    toy = build_toy_model("llama")
    monkeypatch.setattr(lookup_module, "shipped_report_directory", lambda: None)
    monkeypatch.setenv("NNTERP_REPORT_DIR", str(tmp_path))
    save(tmp_path, lookup_module._installed_versions(), ("LlamaForCausalLM", "residual_identity", F))
    with pytest.warns(NNterpCompatibilityWarning, match="LlamaForCausalLM failed nnterp checks") as caught:
        StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)
    ours = [w for w in caught if issubclass(w.category, NNterpCompatibilityWarning)]
    assert len(ours) == 1 and Path(ours[0].filename).name == "test_compat_lookup.py"  # the line that built the model
    assert warned(lambda: StandardizedTransformer(toy.model, tokenizer=toy.tokenizer)) == []  # once per process
