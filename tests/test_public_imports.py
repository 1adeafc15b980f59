"""Every ``from nnterp... import ...`` (and ``from pytest_nnterp...``) the README and the 1.x migration section
show still imports, whatever folder the code moved to (the 1.x paths are thin re-exports: nnterp.interventions,
nnterp.display, nnterp.prompt_utils, nnterp.nnsight_utils, nnterp.standardized_transformer,
nnterp.module_accessor)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
IMPORT = re.compile(r"^from ((?:pytest_)?nnterp[\w.]*) import (\([^)]*\)|[^\n]+)", re.M)


def _readme_imports() -> list[tuple[str, str]]:
    found = []
    for module, names in IMPORT.findall(README.read_text(encoding="utf-8")):
        for name in names.replace("\n", " ").split(","):
            name = name.split(" as ")[0].strip().strip("()")
            if name:
                found.append((module, name))
    return sorted(set(found))


# the paths README's "Coming from nnterp 1.x" names, with a name each
MIGRATION = [("nnterp.standardized_transformer", "StandardizedTransformer"), ("nnterp.prompt_utils", "Prompt"),
             ("nnterp.prompt_utils", "run_prompts"), ("nnterp.prompt_utils", "get_first_tokens"),
             ("nnterp.interventions", "logit_lens"), ("nnterp.interventions", "steer"),
             ("nnterp.interventions", "patchscope_lens"), ("nnterp.interventions", "TargetPrompt"),
             ("nnterp.display", "plot_topk_tokens"), ("nnterp.display", "prompts_to_df"),
             ("nnterp.module_accessor", "ModuleAccessor"), ("nnterp.nnsight_utils", "get_token_activations"),
             ("nnterp.nnsight_utils", "get_layer_output"), ("nnterp.nnsight_utils", "get_num_layers"),
             ("nnterp.nnsight_utils", "project_on_vocab")]


def test_the_readme_shows_imports_to_check():
    assert len(_readme_imports()) >= 20


@pytest.mark.parametrize("module, name", _readme_imports() + MIGRATION)
def test_a_documented_import_still_works(module, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # nnterp.nnsight_utils warns that it will go
        namespace: dict = {}
        exec(f"from {module} import {name}", namespace)
    assert namespace[name] is not None
    if module != "nnterp" and hasattr(__import__("nnterp"), name):  # a re-export is the same object
        import nnterp

        assert namespace[name] is getattr(nnterp, name)
