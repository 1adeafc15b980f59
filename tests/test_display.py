"""Display helpers: the top-k heatmap, its files, prompts as a DataFrame, the missing-extra error."""

import importlib.util
import shutil
import subprocess
import sys

import pytest
import torch

pytest.importorskip("plotly", reason='the display extra is not installed: pip install "nnterp[display]"')
pytest.importorskip("pandas", reason='the display extra is not installed: pip install "nnterp[display]"')

from nnterp.errors import ExportDependencyMissing  # noqa: E402
from nnterp.toolkit.display import plot_topk_tokens, prompts_to_df, readable_token  # noqa: E402
from nnterp.toolkit.prompts import Prompt  # noqa: E402
from nnterp.toy import toy_tokenizer  # noqa: E402

NUM_LAYERS, K = 4, 3


@pytest.fixture(scope="module")
def tokenizer():
    return toy_tokenizer()


def token_id(text, tokenizer):
    (only,) = tokenizer(text, add_special_tokens=False)["input_ids"]
    return only


@pytest.fixture(scope="module")
def probs(tokenizer):
    """Per-layer probabilities whose top token is a space at every layer, then a newline, a tab."""
    logits = torch.zeros(NUM_LAYERS, len(tokenizer))
    for bonus, text in zip([3.0, 2.0, 1.0], [" ", "\n", "\t"]):
        logits[:, token_id(text, tokenizer)] = bonus
    return logits.softmax(dim=-1)


def test_readable_token_shows_whitespace(tokenizer):
    assert [readable_token(token_id(text, tokenizer), tokenizer) for text in [" ", "\n", "\t", "a"]] == \
        ["␣", "\\n", "\\t", "a"]
    spaced = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    assert readable_token(spaced[0], tokenizer) + tokenizer.decode(spaced[1:]) == "␣Paris"


def test_heatmap_has_layers_as_rows_and_ranks_as_columns(probs, tokenizer):
    fig = plot_topk_tokens(probs, tokenizer, k=K, title="top tokens")
    (heatmap,) = fig.data
    assert heatmap.type == "heatmap"
    assert heatmap.z.shape == (NUM_LAYERS, K)
    assert list(heatmap.y) == [str(layer) for layer in range(NUM_LAYERS)]
    assert list(heatmap.x) == ["1", "2", "3"]
    assert [list(row) for row in heatmap.text] == [["␣", "\\n", "\\t"]] * NUM_LAYERS
    assert heatmap.z[0, 0] == pytest.approx(probs[0].max().item())
    assert "%{z" in heatmap.hovertemplate
    assert fig.layout.title.text == "top tokens"


def test_a_batch_of_one_is_accepted_larger_batches_are_not(probs, tokenizer):
    assert plot_topk_tokens(probs[None], tokenizer, k=K).data[0].z.shape == (NUM_LAYERS, K)
    with pytest.raises(ValueError, match=r"\(2, 4, 320\).*probs\[i\]"):
        plot_topk_tokens(torch.stack([probs, probs]), tokenizer)


def test_saves_html(probs, tokenizer, tmp_path, monkeypatch):
    # The HTML is written before the image, so it exists whatever the image exporter does.
    monkeypatch.setattr("plotly.graph_objects.Figure.write_image", lambda self, path: None)
    plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "lens.png")
    html = (tmp_path / "lens.html").read_text(encoding="utf-8")
    assert "\\u2423" in html or "␣" in html  # the figure's JSON may escape the label
    plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "no_html.png", save_html=False)
    assert not (tmp_path / "no_html.html").exists()


def chromium_available():
    return any(shutil.which(name) for name in ["chromium", "chromium-browser", "google-chrome", "chrome"])


@pytest.mark.skipif(importlib.util.find_spec("kaleido") is None, reason="kaleido is not installed: pip install kaleido")
@pytest.mark.skipif(not chromium_available(), reason="kaleido needs Chrome or Chromium to export PNG, none found")
def test_saves_png(probs, tokenizer, tmp_path):
    plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "lens.png")
    assert (tmp_path / "lens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "lens.html").exists()


@pytest.mark.parametrize("failures", [1, 2])
def test_an_export_script_the_page_had_not_loaded_is_tried_once_more(probs, tokenizer, tmp_path, monkeypatch,
                                                                      failures):
    """kaleido's race (its script evaluated before the page loaded it): one more try saves the image; the same error
    twice is raised, not hidden."""
    from plotly.graph_objects import Figure

    real_write_image, calls = Figure.write_image, []

    def flaky(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) <= failures:
            raise RuntimeError("ReferenceError: kaleido_scopes is not defined\n    at <anonymous>:1:26")
        return real_write_image(self, path, *args, **kwargs)
    monkeypatch.setattr(Figure, "write_image", flaky)
    if failures == 1:
        plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "lens.png")
        assert (tmp_path / "lens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        with pytest.raises(RuntimeError, match="kaleido_scopes is not defined"):
            plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "lens.png")
    assert len(calls) == 2


def test_a_missing_exporter_says_what_to_install(probs, tokenizer, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "kaleido"
                        else real_find_spec(name, *args))
    with pytest.raises(ExportDependencyMissing, match="pip install kaleido"):
        plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "lens.png")
    assert (tmp_path / "lens.html").exists()


@pytest.mark.skipif(importlib.util.find_spec("kaleido") is None, reason="kaleido is not installed: pip install kaleido")
def test_a_missing_browser_says_what_to_install(probs, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))  # choreographer looks here first
    with pytest.raises(ExportDependencyMissing, match="Chrome or Chromium.*BROWSER_PATH"):
        plot_topk_tokens(probs, tokenizer, k=K, file=tmp_path / "lens.png")
    assert (tmp_path / "lens.html").exists()


def test_prompts_to_df(tokenizer):
    prompts = [Prompt.from_strings("The capital of France is", {"target": "Paris", "traps": ["London", "Madrid"]},
                                   tokenizer),
               Prompt.from_strings("Hello", {"target": "world", "traps": "moon"}, tokenizer)]
    df = prompts_to_df(prompts, tokenizer)
    assert list(df.columns) == ["prompt", "target_strings", "target_tokens", "traps_strings", "traps_tokens"]
    assert df["prompt"].tolist() == ["The capital of France is", "Hello"]
    assert df.loc[0, "traps_strings"] == ["London", "Madrid"]
    assert df.loc[0, "target_tokens"] == ["P", " "]  # the toy tokenizer splits into bytes


def test_import_without_the_extra_says_how_to_install():
    code = "import sys; sys.modules['plotly'] = None; import nnterp.toolkit.display"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert 'pip install "nnterp[display]"' in result.stderr


def test_plot_patching_refuses_a_grid_holding_nan_or_infinity():
    from nnterp.errors import NonFiniteValue
    from nnterp.toolkit.analysis import PatchingResult
    from nnterp.toolkit.display import plot_patching

    values = torch.tensor([[0.5, float("nan")], [float("inf"), 1.0]])
    result = PatchingResult(values, "layers_output", (0, 1), (0, 1), ("a", "b"), 1.0, 0.0)
    with pytest.raises(NonFiniteValue, match=r"the values hold 2 NaN or infinite cells \(the first at index \(0, 1\)"):
        plot_patching(result, normalized=False)
    with pytest.raises(NonFiniteValue, match="the normalized values hold 2"):
        plot_patching(result)
