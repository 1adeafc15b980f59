"""benchmarks/run.py end to end on the toy llama: every row, and a JSON file with provenance.

Nothing here asserts a timing: benchmarks are not timed tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
ROWS = ["logit_lens", "patchscope_lens", "collect_batched", "trace", "activation_patching", "run_with_cache",
        "construct[llama]", "tokenizer_copy[toy]", "collect_memory"]


def test_quick_run_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    assert {"machine_info", "commit_info", "versions", "datetime", "options", "benchmarks"} <= set(data)
    assert {"nnterp", "nnsight", "transformers", "torch"} <= set(data["versions"])
    assert data["machine_info"]["device"] == "cpu"
    assert [row["name"] for row in data["benchmarks"]] == ROWS
    for row in data["benchmarks"][:-1]:
        assert row["ratio"] > 0 and len(row["ours_s"]) == len(row["floor_s"]) >= 2
        assert row["name"] in done.stdout
    assert "collect_memory" in done.stdout
    # the TransformerLens rows need SmolLM2: --quick names why they did not run, in the table and the JSON
    assert "tl[*]: skipped (" in done.stdout and data["transformerlens_skipped"]
