"""Bit-accurate golden model of the D-IMC core: matrix-vector products and the DPU.

All results are exact integers (numpy int64). Operands are validated against the configuration:
a value outside its precision, a wrong shape or a non-integer dtype raises ``ValueError`` or
``TypeError`` naming the operand.

The core computes, per pass, ``y[b, c] = sum_k W[k, c] * X[b, k]`` over ``rows`` terms
(:func:`mvm`, or cycle by cycle in :func:`mvm_bitserial`); several passes accumulate into a
saturating ``psum_bits`` partial sum (:func:`accumulate`, :func:`mvm_tiled`); the DPU then adds
bias, requantizes, adds the output zero point and an optional rescaled residual, and clamps to
the activation range (:func:`dpu`, defined in :mod:`dcim.golden.dpu` and part of this module's
interface: the model of the whole core is imported from here).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from .arith import check_values, int_array, saturate
from .config import CoreConfig, signed_bits_for
from .dpu import DpuParams, DpuStages, dpu, dpu_stages
from .errors import InputError

__all__ = [
    "BitSerialResult",
    "DpuParams",
    "DpuStages",
    "accumulate",
    "check_activations",
    "check_weights",
    "dpu",
    "dpu_stages",
    "fold_input_zero_point",
    "mvm",
    "mvm_bitserial",
    "mvm_tiled",
]

# A float32 GEMM is exact while every partial sum stays below 2**24 in magnitude; float64 while
# below 2**53 (always true for the configuration ranges).
_F32_EXACT = 1 << 24


def check_weights(cfg: CoreConfig, W: Any, rows: int | None = None) -> np.ndarray:
    """Validate a weight matrix of shape ``(rows, cols)`` and return it as an integer array.

    ``rows`` overrides ``cfg.rows`` (for K-tiled layers of any depth).
    """
    W = int_array("weights", W)
    rows = cfg.rows if rows is None else rows
    if W.ndim != 2 or W.shape != (rows, cfg.cols):
        raise InputError(f"weights must have shape ({rows}, {cfg.cols}) (rows, cols), "
                         f"got {W.shape}")
    check_values(f"weights ({cfg.weight_bits}-bit "
                  f"{'signed' if cfg.weight_signed else 'unsigned'})", W, *cfg.weight_range)
    return W


def check_activations(cfg: CoreConfig, X: Any, bits: int | None = None,
                      rows: int | None = None) -> np.ndarray:
    """Validate activations of shape ``(rows,)`` or ``(batch, rows)``; return them 2-D.

    ``bits`` is the runtime precision (default ``cfg.act_bits``).
    """
    X = int_array("activations", X)
    rows = cfg.rows if rows is None else rows
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != rows:
        raise InputError(f"activations must have shape ({rows},) or (batch, {rows}), "
                         f"got {X.shape}")
    bits = cfg.act_bits if bits is None else bits
    sign = "signed" if cfg.act_signed else "unsigned"
    check_values(f"activations ({bits}-bit {sign})", X, *cfg.act_range_at(bits))
    return X


def _exact_matmul(X: np.ndarray, W: np.ndarray, bound: int) -> np.ndarray:
    """``X @ W`` as int64, through a float GEMM that is exact for partial sums below ``bound``."""
    ftype = np.float32 if bound < _F32_EXACT else np.float64
    return (X.astype(ftype) @ W.astype(ftype)).astype(np.int64)


def mvm(cfg: CoreConfig, W: Any, X: Any, act_bits: int | None = None) -> np.ndarray:
    """One pass of the core: the exact dot products of every activation vector with every column.

    Parameters
    ----------
    cfg : CoreConfig
    W : array_like of int, shape (rows, cols)
    X : array_like of int, shape (rows,) or (batch, rows)
    act_bits : int, optional
        Runtime precision of the pass; ``X`` must fit it.

    Returns
    -------
    numpy.ndarray of int64, shape (batch, cols)
    """
    W = check_weights(cfg, W)
    X = check_activations(cfg, X, act_bits)
    lo, hi = cfg.acc_range
    return _exact_matmul(X, W, max(-lo, hi) + 1)


@dataclasses.dataclass(frozen=True)
class BitSerialResult:
    """What :func:`mvm_bitserial` returns.

    Attributes
    ----------
    sums : numpy.ndarray of int64, shape (batch, cols)
        Final pass results (equal to :func:`mvm`).
    partial : numpy.ndarray of int64, shape (cycles, batch, cols)
        Adder-tree output of every column in each compute cycle, LSB slice first; the top slice
        of a signed activation is signed.
    serial_bits : int
        Activation bits per cycle (the shift between consecutive cycles).
    acc_bits : int
        Width of the shift-and-add accumulator, checked when :attr:`acc` is read.
    """

    sums: np.ndarray
    partial: np.ndarray
    serial_bits: int
    acc_bits: int

    @property
    def cycles(self) -> int:
        """Compute cycles of the pass."""
        return self.partial.shape[0]

    @functools.cached_property
    def acc(self) -> np.ndarray:
        """Shift-and-add accumulator after each compute cycle, shape (cycles, batch, cols).

        Computed on first access and checked against ``acc_bits`` (OverflowError if it does not
        fit).
        """
        acc = np.empty_like(self.partial)
        np.copyto(acc[0], self.partial[0])
        for j in range(1, self.cycles):
            np.add(acc[j - 1], self.partial[j] << (j * self.serial_bits), out=acc[j])
        _check_width("accumulator", acc, self.acc_bits)
        return acc


def mvm_bitserial(cfg: CoreConfig, W: Any, X: Any, act_bits: int | None = None
                  ) -> BitSerialResult:
    """One pass on the hardware's schedule: ``serial_bits`` activation bits per cycle.

    Each cycle ``j`` takes slice ``j`` (bits ``j*s .. j*s+s-1``, LSB first, ``s =
    serial_bits``) of every activation, sign-extended to ``cycles*s`` bits; every cell ANDs its
    weight with the slice bits, a column adder tree sums the products, and the accumulator adds
    the sum shifted left by ``j*s``. The top slice of a signed activation is weighted
    negatively (two's complement). Every intermediate is checked against the width the
    configuration gives it: the adder-tree outputs and the final sums here, the accumulator
    trace when :attr:`BitSerialResult.acc` is read.

    Parameters are as for :func:`mvm`; ``act_bits`` sets the pass to
    ``cfg.cycles_per_pass(act_bits)`` cycles.

    Raises
    ------
    OverflowError
        An intermediate does not fit its configured width (a configuration bug).
    """
    W = check_weights(cfg, W)
    bits = cfg.act_bits if act_bits is None else cfg.check_runtime_bits(act_bits)
    X = check_activations(cfg, X, bits)
    s = cfg.serial_bits
    n = cfg.cycles_per_pass(bits)
    mask = (1 << s) - 1
    lo, hi = cfg.slice_psum_range
    ftype = np.float32 if max(-lo, hi) < _F32_EXACT else np.float64
    # Slices j < n-1 are unsigned; the top slice keeps the sign (arithmetic shift). Values
    # have at most 9 bits, so int16 shifts and masks are exact.
    X16 = X.astype(np.int16)
    batch = X.shape[0]
    slices = np.empty((n, batch, cfg.rows), dtype=ftype)
    for j in range(n - 1):
        slices[j] = (X16 >> (j * s)) & mask
    top = X16 >> ((n - 1) * s)
    slices[n - 1] = top if cfg.act_signed else top & mask
    # One GEMM over the stacked slices: (n*batch, rows) @ (rows, cols), exact in ftype.
    pf = (slices.reshape(n * batch, cfg.rows) @ W.astype(ftype)).reshape(n, batch, cfg.cols)
    _check_width("adder-tree output", pf, cfg.slice_psum_bits)
    partial = pf.astype(np.int64)
    sums = partial[n - 1].copy()
    for j in range(n - 2, -1, -1):  # Horner: ((p[n-1] << s) + p[n-2]) << s ...
        sums <<= s
        sums += partial[j]
    _check_width("pass result", sums, cfg.acc_width)
    return BitSerialResult(sums=sums, partial=partial, serial_bits=s, acc_bits=cfg.acc_width)


def _check_width(what: str, values: np.ndarray, bits: int) -> None:
    lo, hi = int(values.min()), int(values.max())
    if signed_bits_for(lo, hi) > bits:
        raise OverflowError(f"{what} needs {signed_bits_for(lo, hi)} bits, the configuration "
                            f"gives it {bits}")


def accumulate(cfg: CoreConfig, psum: Any, pass_result: Any) -> np.ndarray:
    """Add a pass result into the K-tiled partial sum, saturating at ``psum_bits``.

    Returns
    -------
    numpy.ndarray of int64
    """
    lo, hi = cfg.psum_range
    return saturate(np.asarray(psum, dtype=np.int64) + np.asarray(pass_result, dtype=np.int64),
                    lo, hi)


def mvm_tiled(cfg: CoreConfig, W: Any, X: Any, act_bits: int | None = None) -> np.ndarray:
    """A layer of any depth K as ``ceil(K / rows)`` passes accumulated by :func:`accumulate`.

    Parameters
    ----------
    W : array_like of int, shape (K, cols)
        The last pass is padded with zero weights.
    X : array_like of int, shape (K,) or (batch, K)

    Returns
    -------
    numpy.ndarray of int64, shape (batch, cols)
        The saturated ``psum_bits`` partial sums after the last pass.
    """
    W = int_array("weights", W)
    if W.ndim != 2 or W.shape[1] != cfg.cols or W.shape[0] < 1:
        raise InputError(f"weights must have shape (K, {cfg.cols}) with K >= 1, got {W.shape}")
    K = W.shape[0]
    W = check_weights(cfg, W, rows=K)
    X = check_activations(cfg, X, act_bits, rows=K)
    passes = cfg.k_passes(K)
    pad = passes * cfg.rows - K
    if pad:
        W = np.concatenate([W, np.zeros((pad, cfg.cols), dtype=W.dtype)])
        X = np.concatenate([X, np.zeros((X.shape[0], pad), dtype=X.dtype)], axis=1)
    psum = np.zeros((X.shape[0], cfg.cols), dtype=np.int64)
    for p in range(passes):
        k = slice(p * cfg.rows, (p + 1) * cfg.rows)
        psum = accumulate(cfg, psum, mvm(cfg, W[k], X[:, k], act_bits))
    return psum


def fold_input_zero_point(W: Any, bias: Any, zp_x: int) -> np.ndarray:
    """Fold an input zero point into the bias, offline: ``B_c = bias_c - zp_x * sum_k W_kc``.

    With it the core multiplies raw (zero-point-carrying) activations and the DPU's bias
    removes the offset. Returns int64; the caller checks that it fits int32.
    """
    W = int_array("weights", W).astype(np.int64)
    b = int_array("bias", bias).astype(np.int64)
    return b - int(zp_x) * W.sum(axis=0)
