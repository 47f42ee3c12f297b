"""Bit-accurate golden model of the D-IMC core: matrix-vector products and the DPU.

All results are exact integers (numpy int64). Operands are validated against the configuration:
a value outside its precision, a wrong shape or a non-integer dtype raises ``ValueError`` or
``TypeError`` naming the operand.

The core computes, per pass, ``y[b, c] = sum_k W[k, c] * X[b, k]`` over ``rows`` terms
(:func:`mvm`, or cycle by cycle in :func:`mvm_bitserial`); several passes accumulate into a
saturating ``psum_bits`` partial sum (:func:`accumulate`, :func:`mvm_tiled`); the DPU then adds
bias, requantizes, adds the output zero point and an optional rescaled residual, and clamps to
the activation range (:func:`dpu`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from .arith import (INT32_MAX, INT32_MIN, MULTIPLIER_RANGE, SHIFT_RANGE, check_range, requantize,
                    saturate)
from .config import CoreConfig, signed_bits_for
from .errors import InputError, InputTypeError

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
_I32_LO, _I32_HI = np.int64(INT32_MIN), np.int64(INT32_MAX)


def _int_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise InputTypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    return arr


@functools.lru_cache(maxsize=64)
def _dtype_within(dtype: np.dtype, lo: int, hi: int) -> bool:
    info = np.iinfo(dtype)
    return lo <= info.min and info.max <= hi


def _check_values(name: str, arr: np.ndarray, lo: int, hi: int) -> None:
    if not _dtype_within(arr.dtype, lo, hi):
        check_range(name, arr, lo, hi)


def check_weights(cfg: CoreConfig, W: Any, rows: int | None = None) -> np.ndarray:
    """Validate a weight matrix of shape ``(rows, cols)`` and return it as an integer array.

    ``rows`` overrides ``cfg.rows`` (for K-tiled layers of any depth).
    """
    W = _int_array("weights", W)
    rows = cfg.rows if rows is None else rows
    if W.ndim != 2 or W.shape != (rows, cfg.cols):
        raise InputError(f"weights must have shape ({rows}, {cfg.cols}) (rows, cols), "
                         f"got {W.shape}")
    _check_values(f"weights ({cfg.weight_bits}-bit "
                  f"{'signed' if cfg.weight_signed else 'unsigned'})", W, *cfg.weight_range)
    return W


def check_activations(cfg: CoreConfig, X: Any, bits: int | None = None,
                      rows: int | None = None) -> np.ndarray:
    """Validate activations of shape ``(rows,)`` or ``(batch, rows)``; return them 2-D.

    ``bits`` is the runtime precision (default ``cfg.act_bits``).
    """
    X = _int_array("activations", X)
    rows = cfg.rows if rows is None else rows
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != rows:
        raise InputError(f"activations must have shape ({rows},) or (batch, {rows}), "
                         f"got {X.shape}")
    bits = cfg.act_bits if bits is None else bits
    sign = "signed" if cfg.act_signed else "unsigned"
    _check_values(f"activations ({bits}-bit {sign})", X, *cfg.act_range_at(bits))
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
    W = _int_array("weights", W)
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


@dataclasses.dataclass(frozen=True)
class DpuParams:
    """Per-layer DPU settings, validated on construction.

    Attributes
    ----------
    bias, multiplier, shift : numpy.ndarray of int64, shape (cols,)
        Per-channel int32 bias, requantization multiplier in [0, 2**31 - 1] and shift in
        [-31, 30] (positive: left).
    out_zp : int
        Output zero point, in [-128, 127].
    act_min, act_max : int
        Output clamp, ``-128 <= act_min <= act_max <= 127`` (identity: -128..127; ReLU:
        out_zp..127; ReLU6: out_zp..q(6)).
    res_multiplier, res_shift, res_zp : int
        Per-tensor rescale of the residual input: ``requantize(r - res_zp, res_multiplier,
        res_shift)`` is added before the clamp. Used only when a residual is passed to
        :func:`dpu`.
    lut : numpy.ndarray of int64, shape (256,), or None
        The LUT activation mode (:mod:`dcim.golden.activation`): the clamped code ``y`` is
        replaced by ``lut[y + 128]`` (int8 entries). None (default): off, the clamp is the
        output.
    """

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    out_zp: int = 0
    act_min: int = -128
    act_max: int = 127
    res_multiplier: int = 0
    res_shift: int = 0
    res_zp: int = 0
    lut: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name, lo, hi in (("bias", INT32_MIN, INT32_MAX),
                             ("multiplier", *MULTIPLIER_RANGE), ("shift", *SHIFT_RANGE)):
            arr = _int_array(name, getattr(self, name))
            if arr.ndim != 1:
                raise InputError(f"{name} must be a 1-D per-channel array, got shape {arr.shape}")
            check_range(name, arr, lo, hi)
            object.__setattr__(self, name, arr.astype(np.int64))
        if not self.bias.shape == self.multiplier.shape == self.shift.shape:
            raise InputError("bias, multiplier and shift must have the same length, got "
                             f"{self.bias.shape[0]}, {self.multiplier.shape[0]}, "
                             f"{self.shift.shape[0]}")
        for name, lo, hi in (("out_zp", -128, 127), ("act_min", -128, 127),
                             ("act_max", -128, 127), ("res_multiplier", *MULTIPLIER_RANGE),
                             ("res_shift", *SHIFT_RANGE), ("res_zp", -128, 127)):
            value = getattr(self, name)
            if isinstance(value, np.integer):
                value = int(value)
                object.__setattr__(self, name, value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputTypeError(f"{name} must be an int in [{lo}, {hi}], "
                                     f"got {type(value).__name__} {value!r}")
            if not lo <= value <= hi:
                raise InputError(f"{name} must be in [{lo}, {hi}], got {value}")
        if self.act_min > self.act_max:
            raise InputError(f"act_min must be <= act_max ({self.act_max}), got {self.act_min}")
        if self.lut is not None:
            lut = _int_array("lut", self.lut)
            if lut.shape != (256,):
                raise InputError(f"lut must have shape (256,) (one entry per int8 code), got "
                                 f"{lut.shape}")
            check_range("lut", lut, -128, 127)
            object.__setattr__(self, "lut", lut.astype(np.int64))

    @property
    def cols(self) -> int:
        """Number of channels."""
        return self.bias.shape[0]

    _ARRAYS = ("bias", "multiplier", "shift")
    _SCALARS = ("out_zp", "act_min", "act_max", "res_multiplier", "res_shift", "res_zp")

    @classmethod
    def from_npz(cls, data: Any) -> DpuParams:
        """Build from a mapping such as ``numpy.load("P.npz")``; keys are the attribute names
        (``bias``, ``multiplier``, ``shift`` required; the scalars optional).

        Raises
        ------
        ValueError
            A required key is missing or an unknown key is present.
        """
        keys = set(data.keys())
        missing = sorted(set(cls._ARRAYS) - keys)
        if missing:
            raise InputError(f"DPU parameters are missing key(s) {', '.join(missing)}")
        unknown = sorted(keys - set(cls._ARRAYS) - set(cls._SCALARS) - {"lut"})
        if unknown:
            raise InputError(f"unknown DPU parameter key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(cls._ARRAYS + cls._SCALARS)}")
        kwargs: dict[str, Any] = {k: np.asarray(data[k]) for k in cls._ARRAYS}
        for k in cls._SCALARS:
            if k in keys:
                v = np.asarray(data[k])
                if v.ndim != 0 or v.dtype.kind not in "iu":
                    raise InputError(f"{k} must be an integer scalar, got {v.dtype} {v.shape}")
                kwargs[k] = int(v)
        if "lut" in keys:
            kwargs["lut"] = np.asarray(data["lut"])
        return cls(**kwargs)

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        """The mapping :meth:`from_npz` reads (for ``numpy.savez``)."""
        out = {k: getattr(self, k) for k in self._ARRAYS}
        out.update({k: np.int64(getattr(self, k)) for k in self._SCALARS})
        if self.lut is not None:
            out["lut"] = self.lut
        return out


def dpu(cfg: CoreConfig, psum: Any, params: DpuParams, residual: Any = None,
        check: bool = True) -> np.ndarray:
    """The DPU: bias add, requantization, zero point, residual add, clamp.

    For each channel ``c``::

        a   = sat32(psum + bias[c])
        y   = requantize(a, multiplier[c], shift[c], cfg.rounding) + out_zp
        y  += requantize(residual - res_zp, res_multiplier, res_shift, cfg.rounding)  # optional
        out = clamp(y, act_min, act_max)
        out = lut[out + 128]                                                      # LUT mode

    Intermediates after the bias add are exact (no wrap, no saturation). Without a residual,
    saturating ``y`` at any width of 32 bits or more gives the same output, because the clamp lies
    inside int8; with one, the two requantized terms may cancel, so an implementation must keep
    enough bits of each to add them exactly where the sum can land inside int8.

    Parameters
    ----------
    psum : array_like of int, shape (batch, cols) or (cols,)
        Partial sums in ``cfg.psum_range``.
    params : DpuParams
        Tables for ``cfg.cols`` channels.
    residual : array_like of int, optional
        Int8 residual of the same shape as ``psum``; requires ``cfg.dpu_residual``.
    check : bool
        Validate the operands (False: the caller guarantees int64 operands of matching shapes
        and ranges, and ``params`` may cover any number of channels, as in the fast integer
        path; the arithmetic, and so the result, is the same).

    Returns
    -------
    numpy.ndarray of int64, the shape of ``psum``, values in [act_min, act_max].
    """
    return dpu_stages(cfg, psum, params, residual, check).out


def _dpu_operands(cfg: CoreConfig, psum: Any, params: DpuParams, residual: Any
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The operands of :func:`dpu` validated and as int64."""
    psum = _int_array("partial sums", psum)
    if psum.shape[-1:] != (cfg.cols,) or psum.ndim > 2:
        raise InputError(f"partial sums must have shape ({cfg.cols},) or (batch, {cfg.cols}), "
                         f"got {psum.shape}")
    check_range("partial sums", psum, *cfg.psum_range)
    if params.cols != cfg.cols:
        raise InputError(f"DPU tables must have cols ({cfg.cols}) entries, got {params.cols}")
    if residual is not None:
        if not cfg.dpu_residual:
            raise InputError("residual given, but the configuration has dpu_residual = false")
        residual = _int_array("residual", residual)
        if residual.shape != psum.shape:
            raise InputError(f"residual must have the shape of the partial sums {psum.shape}, "
                             f"got {residual.shape}")
        _check_values("residual (int8)", residual, -128, 127)
        residual = residual.astype(np.int64)
    return psum.astype(np.int64), residual


@dataclasses.dataclass(frozen=True)
class DpuStages:
    """The intermediates of one :func:`dpu` evaluation (what :func:`dpu_stages` returns); every
    array has the shape of the partial sums, int64.

    Attributes
    ----------
    biased : numpy.ndarray
        ``psum + bias``, exact (before the int32 saturation).
    acc : numpy.ndarray
        ``sat32(biased)``, the requantization input.
    main : numpy.ndarray
        ``requantize(acc, multiplier, shift) + out_zp``.
    total : numpy.ndarray
        ``main`` plus the requantized residual term (``main`` itself without a residual): the
        value the clamp sees.
    out : numpy.ndarray
        The result: ``total`` clamped to ``[act_min, act_max]`` (and through the LUT if any).
    multiplier, shift : numpy.ndarray
        The requantization operands of ``acc`` (the parameters' tables, broadcast by numpy).
    """

    biased: np.ndarray
    acc: np.ndarray
    main: np.ndarray
    total: np.ndarray
    out: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray

    @functools.cached_property
    def product(self) -> np.ndarray:
        """``acc * multiplier``, exact (|product| < 2**62)."""
        return self.acc * self.multiplier

    @functools.cached_property
    def tie(self) -> np.ndarray:
        """Where the exact quotient ``product / 2**(31 - shift)`` lies halfway between two
        integers (a rounding tie)."""
        t = 31 - self.shift
        rem = self.product & ((np.int64(1) << t) - 1)
        return rem == (np.int64(1) << (t - 1))


def dpu_stages(cfg: CoreConfig, psum: Any, params: DpuParams, residual: Any = None,
               check: bool = True) -> DpuStages:
    """:func:`dpu` with its intermediates: the operands, the validation (``check``) and the
    arithmetic are :func:`dpu`'s, which returns the ``out`` of this, so the intermediates a
    coverage model samples are the ones the result came from.

    Returns
    -------
    DpuStages
    """
    if check:
        psum, residual = _dpu_operands(cfg, psum, params, residual)
    biased = psum + params.bias
    acc = np.clip(biased, _I32_LO, _I32_HI)
    main = requantize(acc, params.multiplier, params.shift, cfg.rounding, check=False)
    main += params.out_zp
    total = main
    if residual is not None:
        total = main + requantize(residual - params.res_zp, params.res_multiplier,
                                  params.res_shift, cfg.rounding, check=False)
    # numpy scalar bounds: np.clip checks Python ints against the dtype on every call
    out = np.clip(total, np.int64(params.act_min), np.int64(params.act_max))
    if params.lut is not None:
        out = params.lut[out + 128]
    return DpuStages(biased, acc, main, total, out, params.multiplier, params.shift)



def fold_input_zero_point(W: Any, bias: Any, zp_x: int) -> np.ndarray:
    """Fold an input zero point into the bias, offline: ``B_c = bias_c - zp_x * sum_k W_kc``.

    With it the core multiplies raw (zero-point-carrying) activations and the DPU's bias
    removes the offset. Returns int64; the caller checks that it fits int32.
    """
    W = _int_array("weights", W).astype(np.int64)
    b = _int_array("bias", bias).astype(np.int64)
    return b - int(zp_x) * W.sum(axis=0)
