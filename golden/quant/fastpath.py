"""The fast integer path of a weighted layer: one exact float32 GEMM over the whole depth.

The reference integer path (:meth:`dcim.golden.quant.matmul.Matmul.run_int`) runs a layer as
the core does: every column tile and every K-pass through :func:`dcim.golden.model.mvm_tiled`,
the partial sums saturated at ``psum_bits`` after each pass, one checked DPU call per tile.
When no prefix of a column's dot product can reach the ``psum_bits`` range, that is when

    ``bound = max_c sum_k |W[k, c]| * xmax <= psum_max``  (``xmax = max |act_range|``),

no saturation ever happens and the partial sums are the plain dot products, so the layer's
output is the same integer for every tiling. :class:`ExactGemm` then computes the dot products
of all ``N`` channels with float32 GEMMs over contiguous K-chunks in which every partial sum,
in any summation order, stays below ``2**24`` (so each GEMM is exact), and adds the chunks in
float64 (exact below ``2**53``; ``psum_max < 2**31``). The DPU runs once over all channels with
:func:`dcim.golden.model.dpu` (same arithmetic, operand checks off). A layer whose bound exceeds
the partial-sum range keeps the reference path (:func:`exact_gemm` returns None).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["ExactGemm", "exact_gemm"]

#: Magnitude below which every integer, and so every partial sum of a GEMM, is exact in float32.
F32_EXACT = 1 << 24


@dataclasses.dataclass(frozen=True)
class ExactGemm:
    """``X @ W`` for integer operands, exactly, through float32 GEMMs.

    Attributes
    ----------
    weights : numpy.ndarray of float32, shape (K, N)
    chunks : tuple of (int, int)
        Contiguous ``[k0, k1)`` row ranges covering ``0..K``; within each,
        ``sum_k |W[k, c]| * xmax < 2**24`` for every column ``c``.
    """

    weights: np.ndarray
    chunks: tuple[tuple[int, int], ...]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The exact int64 ``(vectors, N)`` product of float32 codes ``X`` (vectors, K), whose
        magnitudes are at most the ``xmax`` the plan was made for."""
        if len(self.chunks) == 1:
            return (X @ self.weights).astype(np.int64)
        out = np.zeros((X.shape[0], self.weights.shape[1]), dtype=np.float64)
        for k0, k1 in self.chunks:
            out += X[:, k0:k1] @ self.weights[k0:k1]
        return out.astype(np.int64)


def exact_gemm(W: np.ndarray, xmax: int, psum_max: int) -> ExactGemm | None:
    """Plan the exact GEMM of an integer ``(K, N)`` weight matrix for activations of magnitude
    at most ``xmax``; None if a column's bound ``sum_k |W[k, c]| * xmax`` exceeds ``psum_max``
    (the core may saturate a partial sum: only the tiled reference path is exact then).

    Raises
    ------
    ValueError
        A single product ``|W[k, c]| * xmax`` is not below ``2**24`` (not an 8-bit core).
    """
    a = np.abs(W.astype(np.int64)) * int(xmax)
    if a.size and int(a.max()) >= F32_EXACT:
        raise ValueError(f"weight products up to {int(a.max())} are not exact in float32")
    if a.size and int(a.sum(axis=0).max()) > psum_max:
        return None
    cum = np.cumsum(a, axis=0)  # (K, N), non-decreasing down every column
    chunks, k0 = [], 0
    while k0 < W.shape[0]:
        base = cum[k0 - 1] if k0 else 0
        # Rows k0..k1-1 form a chunk while the largest column sum stays below 2**24.
        k1 = k0 + int(np.searchsorted((cum[k0:] - base).max(axis=1), F32_EXACT, side="left"))
        chunks.append((k0, k1))
        k0 = k1
    return ExactGemm(np.ascontiguousarray(W, dtype=np.float32), tuple(chunks))
