"""One version, written once (``nnterp.__version__``, which pyproject.toml reads), installed and in the changelog."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.version import Version

import nnterp

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"


def test_the_installed_metadata_carries_the_package_version():
    """Reports are filed under the metadata's version: stale editable metadata would misfile them
    (`pip install --no-deps -e .` refreshes it)."""
    assert importlib.metadata.version("nnterp") == nnterp.__version__


def test_the_version_follows_the_1x_line_it_replaces():
    assert Version(nnterp.__version__) >= Version("2.0.0")  # the nnterp on PyPI it succeeds is 1.3.0


def test_the_changelog_s_newest_release_is_this_version():
    releases = re.findall(r"^## \[(\d[^\]]*)\] - \d{4}-\d{2}-\d{2}$", CHANGELOG.read_text(), re.M)
    assert releases and releases[0] == nnterp.__version__
