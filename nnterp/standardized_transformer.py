"""nnterp 1.x import path of :class:`StandardizedTransformer`, kept: the class lives in
:mod:`nnterp.models.standardized`.

``from nnterp.standardized_transformer import StandardizedTransformer`` keeps working without a
warning; new code writes ``from nnterp import StandardizedTransformer``. See README, "Coming from nnterp 1.x".
"""

from .models.standardized import StandardizedTransformer

__all__ = ["StandardizedTransformer"]
