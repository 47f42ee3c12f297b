"""Bit-accurate golden model of the DPU: bias add, requantization, zero point, residual add,
clamp and the LUT activation, with its per-layer parameters (:class:`DpuParams`) and its
intermediates (:func:`dpu_stages`, what coverage samples).

Exact integers (numpy int64) throughout; the rounding modes are :mod:`dcim.golden.arith`'s.
Imported through :mod:`dcim.golden.model`, the model of the whole core.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from .arith import (INT32_MAX, INT32_MIN, MULTIPLIER_RANGE, SHIFT_RANGE, check_range,
                    check_values, int_array, requantize)
from .config import CoreConfig
from .errors import InputError, InputTypeError

__all__ = ["DpuParams", "DpuStages", "dpu", "dpu_stages"]

_I32_LO, _I32_HI = np.int64(INT32_MIN), np.int64(INT32_MAX)


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
            arr = int_array(name, getattr(self, name))
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
            lut = int_array("lut", self.lut)
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
    psum = int_array("partial sums", psum)
    if psum.shape[-1:] != (cfg.cols,) or psum.ndim > 2:
        raise InputError(f"partial sums must have shape ({cfg.cols},) or (batch, {cfg.cols}), "
                         f"got {psum.shape}")
    check_range("partial sums", psum, *cfg.psum_range)
    if params.cols != cfg.cols:
        raise InputError(f"DPU tables must have cols ({cfg.cols}) entries, got {params.cols}")
    if residual is not None:
        if not cfg.dpu_residual:
            raise InputError("residual given, but the configuration has dpu_residual = false")
        residual = int_array("residual", residual)
        if residual.shape != psum.shape:
            raise InputError(f"residual must have the shape of the partial sums {psum.shape}, "
                             f"got {residual.shape}")
        check_values("residual (int8)", residual, -128, 127)
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
