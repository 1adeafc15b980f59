"""Plots and tables for research results: top-k tokens per layer, prompts as a DataFrame.

Needs the ``display`` extra (plotly, pandas): ``pip install "nnterp[display]"``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

try:
    import pandas as pd
    import plotly.graph_objects as go
except ImportError as error:
    raise ImportError(f'nnterp.toolkit.display needs plotly and pandas ({error.name} is missing): '
                      'pip install "nnterp[display]"') from error

from ..errors import ExportDependencyMissing, NonFiniteValue, ToolkitInputError, ToolkitTypeError

if TYPE_CHECKING:
    from .prompts import Prompt

_VISIBLE = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def readable_token(token_id: int, tokenizer: Any) -> str:
    """A token as text with its whitespace visible: ``' Paris'`` reads ``'␣Paris'``, a newline ``'\\n'``."""
    text = tokenizer.decode([int(token_id)])
    return "".join(_VISIBLE.get(char, char) for char in text)


def _layer_probs(probs: torch.Tensor) -> torch.Tensor:
    """``probs`` as (num_layers, vocab) on CPU; (1, num_layers, vocab) is accepted, larger batches are not."""
    if probs.dim() == 3 and probs.shape[0] == 1:
        probs = probs[0]
    if probs.dim() != 2:
        raise ToolkitInputError("plot_topk_tokens expects probabilities (num_layers, vocab) or (1, num_layers, vocab), "
                         f"got shape {tuple(probs.shape)}; for a batch, plot one prompt at a time: probs[i]")
    return probs.detach().float().cpu()


def _check_k(k: Any, vocab: int) -> None:
    """``k`` an int in 1..vocab: topk past the vocabulary fails deep inside torch."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise ToolkitTypeError(f"k is {type(k).__name__} ({k!r}), expected an int number of tokens")
    if not 1 <= k <= vocab:
        raise ToolkitInputError(f"k is {k}, expected 1..{vocab} (the vocabulary size): pass a smaller k")


# kaleido 1.x sometimes evaluates its export script in a browser page that has not loaded it yet and answers with
# this JavaScript error (measured once in a CI run of the seed docs on 2 busy cores; 30 exports in parallel here did
# not reproduce it). The page is loaded afresh for each export, so one more try is a fresh start.
KALEIDO_PAGE_NOT_READY = "kaleido_scopes is not defined"


def _write_image(fig: go.Figure, path: Path) -> None:
    """``fig.write_image(path)``, once more where kaleido's page was not ready (`KALEIDO_PAGE_NOT_READY`); any other
    error, or the same one twice, is raised."""
    try:
        fig.write_image(path)
    except Exception as error:  # kaleido's JavascriptError, whose module is private
        if KALEIDO_PAGE_NOT_READY not in str(error):
            raise
        fig.write_image(path)


def _save(fig: go.Figure, file: str | Path, save_html: bool) -> None:
    """Write ``file`` (PNG unless its suffix names another image format) and, if asked, the HTML beside it."""
    path = Path(file)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    if save_html:
        fig.write_html(path.with_suffix(".html"))
    if importlib.util.find_spec("kaleido") is None:
        raise ExportDependencyMissing(f"saving {path} needs plotly's static image exporter: pip install kaleido "
                                      "(it also needs Chrome or Chromium; see plotly_get_chrome), "
                                      "or pass file=None and save the figure yourself")
    from choreographer.errors import ChromeNotFoundError  # kaleido>=1 drives Chrome through choreographer

    try:
        _write_image(fig, path)
    except (ChromeNotFoundError, RuntimeError) as error:  # plotly re-raises it as a RuntimeError
        if not isinstance(error, ChromeNotFoundError) and not isinstance(error.__context__, ChromeNotFoundError):
            raise
        raise ExportDependencyMissing(
            f"saving {path} needs Chrome or Chromium, none found: install one (apt install chromium, or run "
            "plotly_get_chrome), or point BROWSER_PATH at its executable") from error


def plot_topk_tokens(probs: torch.Tensor, tokenizer: Any, k: int = 5, title: str | None = None,
                     file: str | Path | None = None, save_html: bool = True, width: int = 900,
                     height: int | None = None) -> go.Figure:
    """A heatmap of the ``k`` most probable tokens at every layer: rows are layers, columns ranks.

    Each cell shows the token (whitespace made visible: ``␣``, ``\\n``, ``\\t``) coloured by its
    probability, which the hover shows. With ``file``, the figure is saved as an image (PNG unless
    the suffix says otherwise) and, if ``save_html``, as HTML next to it.

    >>> fig = plot_topk_tokens(logit_lens(model, "The capital of France is")[0], model.tokenizer)  # doctest: +SKIP
    """
    if not isinstance(probs, torch.Tensor):
        raise ToolkitTypeError(f"probs is {type(probs).__name__}, expected a torch.Tensor (num_layers, vocab)")
    probs = _layer_probs(probs)
    _check_k(k, probs.shape[-1])
    top = probs.topk(k, dim=-1)
    labels = [[readable_token(token, tokenizer) for token in row] for row in top.indices.tolist()]
    ranks = [str(rank) for rank in range(1, k + 1)]
    layers = [str(layer) for layer in range(probs.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=top.values.numpy(), x=ranks, y=layers, text=labels, texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "probability"},
        hovertemplate="layer %{y}, rank %{x}<br>token %{text}<br>probability %{z:.4f}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="rank", yaxis_title="layer", width=width,
                      height=height or max(300, 40 + 22 * len(layers)))
    if file is not None:
        _save(fig, file, save_html)
    return fig


def prompts_to_df(prompts: list[Prompt], tokenizer: Any) -> pd.DataFrame:
    """One row per prompt: the prompt, then per category its target strings and its tracked tokens, decoded."""
    rows = []
    for prompt in prompts:
        row: dict[str, Any] = {"prompt": prompt.prompt}
        for category, strings in prompt.target_strings.items():
            row[f"{category}_strings"] = list(strings)
            row[f"{category}_tokens"] = [tokenizer.decode([token]) for token in prompt.target_tokens[category]]
        rows.append(row)
    return pd.DataFrame(rows)


def _check_finite(values: torch.Tensor, what: str) -> None:
    """A NonFiniteValue where a grid to plot holds NaN or infinities (a heatmap would show them as blank cells)."""
    bad = (~torch.isfinite(values.detach())).nonzero()
    if len(bad):
        raise NonFiniteValue(f"plot_patching: the {what} hold {len(bad)} NaN or infinite cells (the first at index "
                             f"{tuple(bad[0].tolist())}: {values[tuple(bad[0].tolist())].item()}); expected finite "
                             "numbers: find where they came from (the metric, the activations) before plotting")


def plot_patching(result: Any, normalized: bool = True, title: str | None = None, file: str | Path | None = None,
                  save_html: bool = True, width: int = 700, height: int | None = None) -> go.Figure:
    """A heatmap of a patching grid (`nnterp.toolkit.analysis.patching.PatchingResult`): rows are layers, columns the
    patched positions labelled by their tokens. ``normalized`` plots 0 (corrupted) .. 1 (clean) instead of the
    metric; a per-head grid (layers, heads, positions) is plotted with one row per (layer, head).

    >>> plot_patching(activation_patching(model, clean, corrupted, metric))  # doctest: +SKIP
    """
    values = result.normalized() if normalized else result.values
    if not isinstance(values, torch.Tensor) or values.dim() not in (2, 3):
        raise ToolkitTypeError(f"plot_patching expects a PatchingResult with a (layers, positions) or (layers, heads, "
                               f"positions) grid, got {type(result).__name__}")
    _check_finite(values, "normalized values" if normalized else "values")
    rows = [str(layer) for layer in result.layers]
    if values.dim() == 3:
        rows = [f"L{layer}.H{head}" for layer in result.layers for head in range(values.shape[1])]
        values = values.flatten(0, 1)
    columns = [f"{position}: {''.join(_VISIBLE.get(char, char) for char in token)}"
               for position, token in zip(result.positions, result.tokens)]
    fig = go.Figure(go.Heatmap(
        z=values.detach().float().cpu().numpy(), x=columns, y=rows, colorscale="RdBu", zmid=0,
        colorbar={"title": "restored" if normalized else "metric"},
        hovertemplate="layer %{y}, position %{x}<br>value %{z:.3f}<extra></extra>",
    ))
    fig.update_layout(title=title or f"patching {result.accessor}", xaxis_title="position",
                      yaxis_title="layer", yaxis_autorange="reversed", width=width,
                      height=height or max(300, 80 + 18 * len(rows)))
    if file is not None:
        _save(fig, file, save_html)
    return fig
