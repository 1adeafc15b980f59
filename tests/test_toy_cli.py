"""``python -m nnterp toy``: builds toy models, runs a forward on each, and says which run here and why not."""

import pytest

from nnterp.__main__ import main
from nnterp.toy import causal_lm_classes, toy_fix
from nnterp.toy import survey as survey_module


def _unsupported_type() -> str:
    """A model type whose toy-fix row says no toy can run here (gemma3n: its vision tower needs timm)."""
    return next(model_type for model_type in causal_lm_classes() if toy_fix(model_type).unsupported)


def _rows(output: str) -> dict[str, list[str]]:
    """The table's rows by model type, as whitespace-split cells (the reason cell split too): the lines after the
    header and its rule, up to the blank line before the summary."""
    table = output.split("\n\n")[0].splitlines()[2:]
    return {line.split()[0]: line.split() for line in table}


def test_the_list_shows_a_toy_that_runs_and_why_another_cannot(capsys):
    unsupported = _unsupported_type()
    assert main(["toy", "--list", "llama", unsupported]) == 0
    output = capsys.readouterr().out
    assert output.split()[:7] == ["model", "type", "class", "task", "status", "parameters", "seconds"]
    rows = _rows(output)
    assert rows["llama"][1:4] == ["LlamaForCausalLM", "text-generation", "ok"]
    assert int(rows["llama"][4].replace(",", "")) > 10_000
    assert rows[unsupported][1:4] == [causal_lm_classes()[unsupported], "text-generation", "FAIL"]
    reason = f"ToyModelUnsupported: no toy model of {unsupported!r} can run here: {toy_fix(unsupported).unsupported}"
    assert reason[:120] in output
    assert output.rstrip().endswith("1 of 2 toy models build and run on this machine")


def test_strict_exits_1_when_a_toy_fails_and_class_names_are_accepted(capsys):
    assert main(["toy", "--strict", "GPT2LMHeadModel"]) == 0
    assert _rows(capsys.readouterr().out)["gpt2"][1:4] == ["GPT2LMHeadModel", "text-generation", "ok"]
    assert main(["toy", "--strict", "gpt2", _unsupported_type()]) == 1
    assert "1 of 2 toy models build and run" in capsys.readouterr().out


def test_a_toy_that_fails_to_run_shows_the_error_and_its_first_line(monkeypatch, capsys):
    def broken(name):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\n(traceback detail)")

    monkeypatch.setattr(survey_module, "build_toy_model", broken)
    assert main(["toy", "llama"]) == 0
    output = capsys.readouterr().out
    assert _rows(output)["llama"][1:4] == ["LlamaForCausalLM", "text-generation", "FAIL"]
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in output and "traceback" not in output


def test_without_names_every_causal_lm_and_vision_language_type_is_listed(monkeypatch, capsys):
    from nnterp.toy.vision import image_text_to_text_classes

    monkeypatch.setattr(survey_module, "toy_status", lambda model_type, task="text-generation": survey_module.ToyStatus(
        model_type, model_type, True, parameters=1, task=task))
    assert main(["toy"]) == 0
    output = capsys.readouterr().out
    table = output.split("\n\n")[0].splitlines()[2:]
    listed = {(line.split()[0], line.split()[2]) for line in table}
    assert listed == {(t, "text-generation") for t in causal_lm_classes()} | \
        {(t, "image-text-to-text") for t in image_text_to_text_classes()}
    total = len(causal_lm_classes()) + len(image_text_to_text_classes())
    assert f"{total} of {total} toy models build" in output


def test_vlm_names_the_vision_language_toy_of_a_type_both_mappings_hold(monkeypatch, capsys):
    monkeypatch.setattr(survey_module, "toy_status", lambda model_type, task="text-generation": survey_module.ToyStatus(
        model_type, model_type, True, parameters=1, task=task))
    assert main(["toy", "gemma3", "vlm:gemma3", "llava"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()[2:]
    assert [(line.split()[0], line.split()[2]) for line in table] == [
        ("gemma3", "text-generation"), ("gemma3", "image-text-to-text"), ("llava", "image-text-to-text")]


def test_an_unknown_name_is_one_line_that_says_how_to_list_the_toys(capsys):
    assert main(["toy", "NotAModelForCausalLM"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("python -m nnterp toy: error: 'NotAModelForCausalLM' is neither a model type nor a class "
                            "name of transformers' causal-LM or image-text-to-text mappings; run `python -m nnterp "
                            "toy --list` to see the toy models on offer.\n")


def test_help_names_the_arguments(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["toy", "--help"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: python -m nnterp toy [-h] [--list] [--strict] [names ...]")
    assert "model types or class names" in usage


def test_validate_is_the_plugin_run_on_toys_without_a_report(tmp_path):
    """`python -m nnterp validate NAME` runs every catalogue check through the pytest plugin and prints its table."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "nnterp", "validate", "llama"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    header = next(line for line in done.stdout.splitlines() if line.startswith("architecture"))
    from nnterp.checks import CHECK_NAMES

    assert header.split()[2:] == ["task", *CHECK_NAMES]
    assert "LlamaForCausalLM  toy:llama" in done.stdout and "8 passed" in done.stdout
    assert not list(tmp_path.iterdir()), "validate writes no report"
