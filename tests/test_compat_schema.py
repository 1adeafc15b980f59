"""The report schema: golden round trip, validation messages, worst status per check, provenance."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nnterp.checks import CheckName
from nnterp.compat import (
    SCHEMA_VERSION,
    CheckRecord,
    ModelRecord,
    Report,
    ReportSchemaError,
    ReportStatus,
    ResultRow,
    current_environment,
    current_versions,
    load_report,
    report_filename,
    write_report,
)
from nnterp.errors import NNterpError

GOLDEN = Path(__file__).parent / "fixtures" / "report_v1.json"


def golden() -> dict:
    return json.loads(GOLDEN.read_text())


def test_golden_round_trip_is_byte_identical(tmp_path):
    report = load_report(GOLDEN)
    assert report.schema_version == SCHEMA_VERSION == 1
    assert report.to_dict() == golden()
    assert Report.from_dict(report.to_dict()) == report
    write_report(tmp_path / "report.json", report)
    assert (tmp_path / "report.json").read_text() == GOLDEN.read_text()


def test_golden_is_read_into_typed_records():
    report = load_report(GOLDEN)
    llama = report.architectures["LlamaForCausalLM"]
    assert llama["toy:llama"] == ModelRecord("toy", {
        "attn_probs_effect": CheckRecord(ReportStatus.NOT_APPLICABLE, None,
                                         "attention probabilities not enabled (enable_attention_probs=False)", 0.03),
        "io_shapes": CheckRecord(ReportStatus.PASSED, 0.0, "17 tensors have the expected shapes", 0.04),
        "renaming": CheckRecord(ReportStatus.PASSED, None, "2 layers at model.layers", 0.01)})
    assert llama["HuggingFaceTB/SmolLM2-135M-Instruct"].kind == "real"
    assert report.environment["git_commit"] is None


def test_statuses_are_the_worst_per_check_over_models():
    report = load_report(GOLDEN)
    assert report.statuses("LlamaForCausalLM") == {"attn_probs_effect": ReportStatus.NOT_APPLICABLE,
                                                   "io_shapes": ReportStatus.PASSED,
                                                   "renaming": ReportStatus.PASSED,
                                                   "logits_match": ReportStatus.SKIPPED}
    assert report.statuses("BloomForCausalLM")["attn_probs_sum"] is ReportStatus.FAILED
    assert report.statuses("NotThere") == {}
    two = report.merged([ResultRow("LlamaForCausalLM", "toy:llama-2", "toy", "renaming", ReportStatus.CRASHED,
                                   None, "died", 1.0)])
    assert two.statuses("LlamaForCausalLM")["renaming"] is ReportStatus.CRASHED


def test_failure_statuses():
    assert {s for s in ReportStatus if s.is_failure} == {ReportStatus.FAILED, ReportStatus.LOAD_ERROR,
                                                         ReportStatus.CRASHED}


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


_DELETE = object()
LLAMA_RENAMING = ("architectures", "LlamaForCausalLM", "models", "toy:llama", "checks", "renaming")


@pytest.mark.parametrize(("path", "value", "expected"), [
    (LLAMA_RENAMING + ("status",), "ok",
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming.status: 'ok' is not one of 'passed', "
     "'failed', 'n/a', 'load error', 'crashed' or 'skipped'"),
    (LLAMA_RENAMING + ("value",), "big",
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming.value: expected a number, found a string 'big'"),
    (LLAMA_RENAMING + ("value",), True,
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming.value: expected a number, found a boolean True"),
    (LLAMA_RENAMING + ("duration",), float("inf"),
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming.duration: input should be a finite number"),
    (LLAMA_RENAMING + ("duration",), -1.0,
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming.duration: input should be greater than or "
     "equal to 0, found -1.0"),
    (LLAMA_RENAMING + ("message",), None,
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming.message: expected a string, found null"),
    (LLAMA_RENAMING + ("message",), _DELETE,
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming: missing key 'message'"),
    (LLAMA_RENAMING + ("extra",), 1,
     "architectures.LlamaForCausalLM.models.toy:llama.checks.renaming: unknown key 'extra'"),
    (("architectures", "LlamaForCausalLM", "models", "toy:llama", "kind"), "fake",
     "architectures.LlamaForCausalLM.models.toy:llama.kind: 'fake' is not one of 'toy' or 'real'"),
    (("architectures", "LlamaForCausalLM", "models"), [],
     "architectures.LlamaForCausalLM.models: expected an object, found an array"),
    (("versions", "torch"), 2, "versions.torch: expected a string, found a number"),
    (("versions", "nnsight"), _DELETE, "versions: missing nnsight"),
    (("environment",), "linux", "environment: expected an object"),
    (("schema_version",), 2, "schema_version: 2 is not 1"),
    (("schema_version",), True, "schema_version: True is not 1"),
    (("architectures",), _DELETE, "report: missing key 'architectures'"),
])
def test_validation_errors_name_the_bad_field(path, value, expected):
    with pytest.raises(ReportSchemaError, match=re.escape(expected)):
        Report.from_dict(_set(golden(), path, value))


def test_validation_rejects_a_non_object():
    with pytest.raises(ReportSchemaError, match=re.escape("report: expected an object, found an array")):
        Report.from_dict([])


def test_schema_error_is_an_nnterp_error():
    assert issubclass(ReportSchemaError, NNterpError)


def test_rows_accept_the_check_enums_and_strings():
    row = ResultRow("LlamaForCausalLM", "toy:llama", "toy", CheckName.RESIDUAL, "passed", 1e-7, "ok", 0.1)
    assert row.check == "residual_identity" and type(row.check) is str
    assert row.status is ReportStatus.PASSED
    assert ResultRow.from_dict(json.loads(json.dumps(row.to_dict()))) == row
    with pytest.raises(ReportSchemaError, match="'ok' is not one of"):
        ResultRow("A", "toy:a", "toy", "renaming", "ok", None, "", 0.0)


def test_merged_replaces_one_entry_and_keeps_the_rest():
    report = load_report(GOLDEN)
    new = report.merged([ResultRow("LlamaForCausalLM", "toy:llama", "toy", "renaming", ReportStatus.FAILED,
                                   None, "no layers", 0.5)])
    assert new.architectures["LlamaForCausalLM"]["toy:llama"].checks["renaming"].status is ReportStatus.FAILED
    assert report.architectures["LlamaForCausalLM"]["toy:llama"].checks["renaming"].status is ReportStatus.PASSED
    assert new.to_dict()["architectures"]["BloomForCausalLM"] == golden()["architectures"]["BloomForCausalLM"]
    assert set(new.architectures["LlamaForCausalLM"]["toy:llama"].checks) == {"attn_probs_effect", "io_shapes",
                                                                              "renaming"}


def test_report_filename_follows_the_doc():
    versions = {"nnterp": "0.1.0", "transformers": "5.23.0", "nnsight": "0.8.1", "torch": "2.13.0+cpu"}
    assert report_filename(versions) == "nnterp-0.1.0_transformers-5.23.0_nnsight-0.8.1_torch-2.13.0-cpu.json"


def test_current_versions_and_environment():
    versions = current_versions()
    assert set(versions) == {"nnterp", "transformers", "nnsight", "torch"}
    assert all(isinstance(v, str) and v for v in versions.values())
    environment = current_environment()
    assert set(environment) == {"python", "platform", "updated", "git_commit"}
    assert environment["updated"].endswith("+00:00")
    assert environment["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", environment["git_commit"])
    Report.from_dict(Report(versions, environment, {}).to_dict())  # what we write, we read


COMMITTED = sorted((Path(__file__).parent.parent / "compat_reports").glob("*.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=[path.name for path in COMMITTED])
def test_every_committed_report_loads_and_is_written_back_byte_for_byte(path, tmp_path):
    report = load_report(path)
    write_report(tmp_path / path.name, report)
    assert (tmp_path / path.name).read_bytes() == path.read_bytes()


def test_committed_reports_exist():
    assert len(COMMITTED) >= 8


def test_whole_numbers_stay_whole_numbers():
    """A file's ``"value": 0`` is read as 0 and written back as 0, not 0.0 (the bytes must not change)."""
    data = _set(_set(golden(), LLAMA_RENAMING + ("value",), 0), LLAMA_RENAMING + ("duration",), 2)
    checks = Report.from_dict(data).to_dict()["architectures"]["LlamaForCausalLM"]["models"]["toy:llama"]["checks"]
    assert json.dumps(checks["renaming"], sort_keys=True) == (
        '{"duration": 2, "message": "2 layers at model.layers", "status": "passed", "value": 0}')


def test_validation_errors_say_what_to_do_and_count_the_rest():
    data = _set(_set(golden(), LLAMA_RENAMING + ("status",), "ok"), ("versions", "torch"), 2)
    with pytest.raises(ReportSchemaError) as raised:
        Report.from_dict(data)
    message = str(raised.value)
    assert message.startswith("versions.torch: expected a string, found a number 2 (and 1 more problems)")
    assert "fix that field, or delete the file" in message and "python -m nnterp run_tests" in message


def test_a_report_of_another_schema_says_so_first():
    data = _set(_set(golden(), ("schema_version",), 2), ("architectures",), [])
    with pytest.raises(ReportSchemaError, match=r"^schema_version: 2 is not 1, the schema this nnterp reads"):
        Report.from_dict(data)


def test_rows_are_what_merged_takes():
    report = load_report(GOLDEN)
    assert Report(report.versions, report.environment, {}).merged(report.rows()) == report
    assert {row.model_id for row in report.rows("LlamaForCausalLM")} == {"toy:llama",
                                                                       "HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert list(report.rows("NotThere")) == []


def test_statuses_are_the_checks_report_status():
    from nnterp.checks import ReportStatus as CheckStatus

    assert ReportStatus is CheckStatus  # one enum, one severity order, from the check catalogue
    assert ReportStatus.worst([ReportStatus.SKIPPED, ReportStatus.NOT_APPLICABLE]) is ReportStatus.SKIPPED


@pytest.mark.parametrize("code", ["import nnterp", "import nnterp.compat", "import pytest_nnterp.plugin",
                                  "import nnterp.compat as c; c.Report({}, {}, {}).to_dict()"])
def test_pydantic_and_filelock_load_only_to_read_or_write_a_report(code):
    probe = f"{code}; import sys; print(sorted(m for m in ('pydantic', 'filelock') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout.strip() == "[]"


def test_the_documented_example_is_a_valid_report():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "compat_reports.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", docs, re.S).group(1))
    report = Report.from_dict(example)
    assert report.baseline is not None and report.baseline.new_models == ()
    assert Report.from_dict(report.to_dict()) == report


def test_a_baseline_naming_a_model_the_report_lacks_or_twice_is_refused():
    data = {"schema_version": 1, "versions": dict.fromkeys(("nnterp", "transformers", "nnsight", "torch"), "1"),
            "environment": {}, "architectures": {"A": {"models": {"toy:a": {"kind": "toy", "checks": {}}}}},
            "baseline": {"versions": {}, "new_models": ["toy:a", "toy:a"]}}
    with pytest.raises(ReportSchemaError, match="baseline.new_models: lists"):
        Report.from_dict(data)
    data["baseline"]["new_models"] = ["toy:b"]
    with pytest.raises(ReportSchemaError, match="names models the report does not hold"):
        Report.from_dict(data)
