"""nnterp 1.x import path of the interventions; they live in :mod:`nnterp.toolkit.interventions`."""

from .toolkit.interventions import (
                                    TargetPrompt,
                                    it_repeat_prompt,
                                    last_token_latents,
                                    logit_lens,
                                    patchscope_generate,
                                    patchscope_lens,
                                    repeat_prompt,
                                    steer,
)

__all__ = ["TargetPrompt", "it_repeat_prompt", "last_token_latents", "logit_lens", "patchscope_generate",
           "patchscope_lens", "repeat_prompt", "steer"]
