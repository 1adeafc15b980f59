"""nnterp 1.x's documented code runs as written on this nnterp (the migration promise, README "Coming from nnterp 1.x").

The seed documents (1.x README and docs, kept outside the repo in ``shared/seeds``) are read at test
time; every Python block that uses nnterp or nnsight runs in document order in one namespace per
document, as in a notebook. Only model identifiers change: each hub id becomes the local SmolLM2,
loaded once per module. A block that cannot run as written is skipped with a one-line reason.
"""

from __future__ import annotations

import ast
import builtins
import re
from functools import lru_cache
from pathlib import Path

import pytest

from .conftest import SMOLLM2_FILE, smollm2_folder

pytestmark = pytest.mark.real_model

_HERE = Path(__file__).resolve()
SEED_FOLDERS = [_HERE.parents[2] / "shared" / "seeds", (_HERE.parents[1] / ".." / "shared" / "seeds").resolve()]
SEEDS = next((folder for folder in SEED_FOLDERS if folder.is_dir()), None)
NO_SEEDS = f"seed documents not found ({SEED_FOLDERS[0]}): they live outside the repo, next to it"

FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
# A line of plain-text docs that is code: indented, a statement keyword, a comment, a closing bracket,
# or a name (possibly indexed) followed by an assignment or a call.
CODE_LINE = re.compile(r"^(\s+\S|from \w|import \w|with |for |if |assert |print\(|#|[)\]}]|"
                       r"[A-Za-z_][\w.]*(\[[^\]]*\])*\s*([-+*/]?=[^=]|\())")
USAGE = re.compile(r"nnterp|nnsight|model")

# Names a reader of the docs has in their notebook: the 1.x README calls the loaded model `nn_model`
# and its tokenizer `tokenizer`; `display` is IPython's.
NOTEBOOK_NAMES = {"model", "nn_model", "tokenizer", "display"}

# Hub identifiers become the shared local model (same keyword arguments).
MODEL_SWAPS = [
    (re.compile(r'StandardizedTransformer\(\s*"[^"]*"\s*,?\s*'), "_smollm2("),
    (re.compile(r'LanguageModel\(\s*"[^"]*"'), "LanguageModel(_hf_model, tokenizer=_hf_tokenizer"),
    (re.compile(r'AutoModelForCausalLM\.from_pretrained\(\s*"[^"]*"\s*\)'), "_hf_model"),
]
SHORTENED = [("range(1000)", "range(40)")]  # the 1000-prompt loop runs with 40 prompts: same code path

# Blocks that cannot run as written, found by a snippet of their code.
CANNOT_RUN = {
    "model.layers_output[10] = layer_5_output":
        "reads layer 10 then steers layers 1 and 3 in one trace: nnsight 0.8 follows module execution order "
        "and refuses to go back to an earlier layer (it also uses `vector`, never defined)",
    "# Access attention probabilities during forward pass":
        "reads attention probabilities from the README's model, which it loads without enable_attention_probs=True",
    "layer_probs = logit_lens(model, prompts)  # (batch, layers, vocab_size)\n\n# Combine with target tracking":
        "passes plain strings to run_prompts, which takes Prompt objects (in nnterp 1.x as well)",
    "renamed_model = LanguageModel(hf_model, rename=rename_dict)":
        "LanguageModel(hf_model) loads the tokenizer of the hub id the model came from; the local GGUF model has none",
}


def _text_blocks(text: str) -> list[str]:
    """Maximal runs of code lines (blank lines allowed inside) of a document rendered as plain text."""
    blocks, current = [], []
    for line in text.splitlines():
        if not line.strip() or CODE_LINE.match(line):
            current.append(line)
            continue
        blocks.append("\n".join(current).strip("\n"))
        current = []
    blocks.append("\n".join(current).strip("\n"))
    return blocks


def _is_usage_code(code: str) -> bool:
    """Python that parses, does something (not only comments) and uses nnterp, nnsight or a model."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return bool(tree.body) and USAGE.search(code) is not None


@lru_cache(maxsize=None)
def seed_blocks(name: str) -> tuple[str, ...]:
    """The usage-code blocks of one seed document: its ```python fences, or code runs of plain text."""
    text = (SEEDS / name).read_text(encoding="utf-8")
    fenced = FENCE.findall(text)
    raw = [code for lang, code in fenced if lang == "python"] if fenced else _text_blocks(text)
    return tuple(code for code in raw if _is_usage_code(code))


NO_BLOCKS = ("no Python block can be extracted (no fences or separate lines: nnsight's API reference flattened onto "
             "one line), and its examples use GPT-2's native module paths, which the local Llama does not have")


def _block_ids() -> list:
    if SEEDS is None:
        return []
    params: list = []
    for path in sorted(SEEDS.glob("*.txt")):
        count = len(seed_blocks(path.name))
        params += [(path.name, index) for index in range(count)]
        if not count:
            params.append(pytest.param(path.name, -1, marks=pytest.mark.skip(f"{path.name}: {NO_BLOCKS}")))
    return params


def _bound_and_loaded(code: str) -> tuple[set[str], list[str]]:
    """Names a block binds, and names it reads before binding them (in source order)."""
    bound, free = set(), []
    for node in sorted(ast.walk(ast.parse(code)), key=lambda n: (getattr(n, "lineno", 0), getattr(n, "col_offset", 0))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.Name) and node.id not in bound and node.id not in free:
            free.append(node.id)
    return bound, free


def undefined_names(name: str, index: int) -> list[str]:
    """Names block ``index`` reads that neither the document before it, the block, nor a notebook defines."""
    known = set(dir(builtins)) | NOTEBOOK_NAMES
    for earlier, code in enumerate(seed_blocks(name)[:index]):  # a skipped block still brings its imports
        known |= _bound_and_loaded(_imports_of(code) if skip_reason(name, earlier) else code)[0]
    bound, free = _bound_and_loaded(seed_blocks(name)[index])
    comprehension_vars = {n.id for n in ast.walk(ast.parse(seed_blocks(name)[index]))
                          if isinstance(n, ast.comprehension) for n in ast.walk(n.target) if isinstance(n, ast.Name)}
    return [free_name for free_name in free if free_name not in known | bound | comprehension_vars]


def _imports_of(code: str) -> str:
    """The import statements of a block: what a reader who skips it still runs."""
    imports = [node for node in ast.parse(code).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(ast.unparse(node) for node in imports)


@lru_cache(maxsize=None)
def skip_reason(name: str, index: int) -> str | None:
    code = seed_blocks(name)[index]
    reason = next((why for snippet, why in CANNOT_RUN.items() if snippet in code), None)
    if reason is None and (missing := undefined_names(name, index)):
        reason = f"uses {', '.join(f'`{n}`' for n in missing)}, which the document never defines or imports"
    return reason


def runnable_source(code: str) -> str:
    for pattern, replacement in MODEL_SWAPS:
        code = pattern.sub(replacement, code)
    for old, new in SHORTENED:
        code = code.replace(old, new)
    return code


class SeedSession:
    """One notebook-like namespace per seed document, and the shared SmolLM2 models."""

    def __init__(self, folder: Path, hf_model, hf_tokenizer, workdir: Path):
        self.path = str(folder / SMOLLM2_FILE)
        self.models: dict[tuple, object] = {}
        self.hf_model, self.hf_tokenizer, self.workdir = hf_model, hf_tokenizer, workdir
        self.namespaces: dict[str, dict] = {}
        self.done: dict[str, set[int]] = {}

    def smollm2(self, **kwargs):
        key = tuple(sorted(kwargs.items()))
        if key not in self.models:
            from nnterp import StandardizedTransformer

            self.models[key] = StandardizedTransformer(self.path, **kwargs)
        return self.models[key]

    def namespace(self, name: str) -> dict:
        if name not in self.namespaces:
            model = self.smollm2()
            self.namespaces[name] = {"__name__": "__seed__", "_smollm2": self.smollm2, "_hf_model": self.hf_model,
                                     "_hf_tokenizer": self.hf_tokenizer, "nn_model": model, "model": model,
                                     "tokenizer": model.tokenizer, "display": print}
            self.done[name] = set()
        return self.namespaces[name]

    def run(self, name: str, index: int) -> None:
        """Run block ``index`` of document ``name``, after the earlier runnable blocks not yet run."""
        for earlier in range(index + 1):
            if earlier in self.done.setdefault(name, set()):
                continue
            self.done[name].add(earlier)
            code = seed_blocks(name)[earlier]
            if earlier < index and skip_reason(name, earlier):
                code = _imports_of(code)
            script = self.workdir / f"{Path(name).stem}_block{earlier}.py"  # nnsight reads trace source from a file
            script.write_text(runnable_source(code), encoding="utf-8")
            exec(compile(script.read_text(encoding="utf-8"), str(script), "exec"), self.namespace(name))


@pytest.fixture(scope="module")
def seed_session(smollm2_hf, tmp_path_factory):
    pytest.importorskip("plotly", reason='the 1.x docs plot with plotly: pip install "nnterp[display]"')

    from plotly.basedatatypes import BaseFigure

    show = BaseFigure.show
    BaseFigure.show = BaseFigure.to_json  # fig.show() renders to JSON: no browser, no IPython
    model, tokenizer = smollm2_hf
    workdir = tmp_path_factory.mktemp("seed_docs")
    # A hub model names its tokenizer in its config, and LanguageModel(hf_model) loads it from there:
    # give the GGUF-loaded model the same, a folder holding its own tokenizer.
    tokenizer.save_pretrained(workdir / "tokenizer")
    name_or_path, model.name_or_path = model.name_or_path, str(workdir / "tokenizer")
    yield SeedSession(smollm2_folder(), model, tokenizer, workdir)
    model.name_or_path = name_or_path
    BaseFigure.show = show


def test_the_seed_documents_have_code():
    if SEEDS is None:
        pytest.skip(NO_SEEDS)
    assert sum(isinstance(param, tuple) for param in _block_ids()) >= 19


@pytest.mark.parametrize(("name", "index"), _block_ids() or [pytest.param("", 0, marks=pytest.mark.skip(NO_SEEDS))])
def test_seed_block_runs_as_written(seed_session, name, index, monkeypatch):
    if (reason := skip_reason(name, index)) is not None:
        pytest.skip(reason)
    monkeypatch.chdir(seed_session.workdir)  # plots the docs save land here
    seed_session.run(name, index)
