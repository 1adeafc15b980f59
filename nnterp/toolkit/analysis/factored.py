"""A low-rank product ``left @ right`` kept as its two factors: per-head OV and QK circuits (hidden x hidden, rank
head_dim) without the hidden x hidden product. The SVD, norms and products are computed through the factors."""

from __future__ import annotations

from typing import Union

import torch


class FactoredMatrix:
    """``left @ right``: ``left`` (..., m, r), ``right`` (..., r, n), leading dims batched (one per head).

    Row-vector convention, as TransformerLens: a residual row ``x`` (m,) maps to ``x @ matrix`` (n,)."""

    def __init__(self, left: torch.Tensor, right: torch.Tensor):
        if left.shape[-1] != right.shape[-2]:
            raise ValueError(f"factors do not chain: left {tuple(left.shape)}, right {tuple(right.shape)}")
        self.left, self.right = left, right

    @property
    def shape(self) -> torch.Size:
        return torch.Size((*torch.broadcast_shapes(self.left.shape[:-2], self.right.shape[:-2]),
                           self.left.shape[-2], self.right.shape[-1]))

    def full(self) -> torch.Tensor:
        """The product as one tensor (..., m, n)."""
        return self.left @ self.right

    @property
    def T(self) -> FactoredMatrix:  # noqa: N802 - the transpose, as a tensor's .T
        return FactoredMatrix(self.right.transpose(-1, -2), self.left.transpose(-1, -2))

    def __matmul__(self, other: Union[FactoredMatrix, torch.Tensor]) -> FactoredMatrix:
        """``self @ other``, kept factored: the smaller inner product is formed."""
        if isinstance(other, FactoredMatrix):
            return FactoredMatrix(self.left, (self.right @ other.left) @ other.right) \
                if self.right.shape[-2] <= other.left.shape[-1] else \
                FactoredMatrix(self.left @ (self.right @ other.left), other.right)
        return FactoredMatrix(self.left, self.right @ other)

    def __rmatmul__(self, other: torch.Tensor) -> FactoredMatrix:
        return FactoredMatrix(other @ self.left, self.right)

    def svd(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U (..., m, r), S (..., r), V (..., n, r)) with ``U @ diag(S) @ V.mT`` the product, from QR of each factor
        and the SVD of an r x r core; S descending."""
        left_q, left_r = torch.linalg.qr(self.left)
        right_q, right_r = torch.linalg.qr(self.right.transpose(-1, -2))
        core_u, values, core_vh = torch.linalg.svd(left_r @ right_r.transpose(-1, -2))
        return left_q @ core_u, values, right_q @ core_vh.transpose(-1, -2)

    def singular_values(self) -> torch.Tensor:
        return self.svd()[1]

    def norm(self) -> torch.Tensor:
        """The Frobenius norm, (...): ``sqrt(sum(G * H))`` with ``G = left.T @ left`` and ``H = right @ right.T``."""
        gram_left = self.left.transpose(-1, -2) @ self.left
        gram_right = self.right @ self.right.transpose(-1, -2)
        return (gram_left * gram_right).sum((-1, -2)).clamp_min(0).sqrt()

    def __repr__(self) -> str:
        return f"FactoredMatrix(shape={tuple(self.shape)}, rank<={self.left.shape[-1]})"
