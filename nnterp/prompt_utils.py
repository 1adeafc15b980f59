"""nnterp 1.x import path of the prompt helpers, kept: they live in :mod:`nnterp.toolkit.prompts`.

``from nnterp.prompt_utils import Prompt, run_prompts`` (the 1.x docs' "Prompt Utilities") keeps
working without a warning; new code imports them from ``nnterp``. See README, "Coming from nnterp 1.x".
"""

from .toolkit.prompts import Prompt, get_first_tokens, run_prompts

__all__ = ["Prompt", "get_first_tokens", "run_prompts"]
