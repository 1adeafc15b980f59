"""nnterp 1.x import path of the plots; they live in :mod:`nnterp.toolkit.display`."""

from .toolkit.display import plot_patching, plot_topk_tokens, prompts_to_df, readable_token

__all__ = ["plot_patching", "plot_topk_tokens", "prompts_to_df", "readable_token"]
