"""Quantization maths of ``dcim calibrate``: scales, zero points and integer tables.

The scheme (see docs/calibration.md):

* weights: symmetric per output channel, ``q = rne(w / s_w)`` in ``[-wmax, wmax]`` with
  ``wmax`` the top of ``cfg.weight_range`` (127 for int8) and ``s_w = max|w| / wmax``;
* activations: per tensor, asymmetric over the calibrated range ``[lo, hi]`` widened to
  contain 0, ``s = (hi - lo) / (qmax - qmin)``, ``zp = qmin - rne(lo / s)``, with ``(qmin,
  qmax) = cfg.act_range``; quantization ``q = clamp(rne(x / s) + zp)`` (ONNX QuantizeLinear);
* bias: int32 at ``s_x * s_w``, ``rne(b / (s_x s_w))``; a channel whose bias would not fit
  int32 (tiny weights, normal bias) gets a larger weight scale (:func:`bias_weight_scale`, as
  onnxruntime's quantizer does);
* requantization: ``quantize_multiplier(s_x s_w / s_y)`` per channel.

Fallbacks (each reported as a warning by the caller): an all-zero calibrated range gets
``s = 1``, ``zp = 0`` (:data:`FALLBACK_SCALE`); an all-zero weight channel gets ``s_w = 1``.
Floats appear only here, offline, in turning real scales into integers; the integer path uses
exact integer arithmetic only.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..arith import INT32_MAX, INT32_MIN, TIE_RULE, Rounding, Tie
from ..config import ROUNDING_MODES, CoreConfig
from ..errors import InputError

__all__ = [
    "BIAS_SCALE_MARGIN",
    "FALLBACK_SCALE",
    "QParams",
    "act_qparams",
    "bias_weight_scale",
    "dequantize",
    "fake_round",
    "quantize",
    "quantize_bias",
    "quantize_weights",
    "round_like",
    "sqnr_db",
    "sqnr_from_sums",
]

#: Scale used for a tensor whose calibrated range is all zeros, and for an all-zero weight
#: channel.
FALLBACK_SCALE = 1.0


@dataclasses.dataclass(frozen=True)
class QParams:
    """Per-tensor affine quantization: ``real = scale * (q - zero_point)``.

    Attributes
    ----------
    scale : float
        Positive.
    zero_point : int
        In the activation range of the configuration.
    fallback : bool
        True when the calibrated range was all zeros and :data:`FALLBACK_SCALE` was used.
    """

    scale: float
    zero_point: int
    fallback: bool = False


def act_qparams(cfg: CoreConfig, lo: float, hi: float) -> QParams:
    """Asymmetric per-tensor parameters for the calibrated range ``[lo, hi]``.

    The range is widened to contain 0 so that real zero (padding, ReLU) is exact.

    Raises
    ------
    ValueError
        ``lo`` or ``hi`` is not finite, or ``lo > hi``; the activations are unsigned (the DPU
        emits signed values).
    """
    if not cfg.act_signed:
        raise InputError("calibration needs signed activations (act_signed = true): the DPU "
                         "emits signed int8")
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise InputError(f"calibrated range must be finite with lo <= hi, got [{lo}, {hi}]")
    qmin, qmax = cfg.act_range
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0.0:
        return QParams(FALLBACK_SCALE, 0, fallback=True)
    scale = (hi - lo) / (qmax - qmin)
    zp = int(np.clip(qmin - np.rint(lo / scale), qmin, qmax))
    return QParams(scale, zp)


def quantize(x: np.ndarray, qp: QParams, cfg: CoreConfig) -> np.ndarray:
    """Float to int64 codes: ``clamp(rne(x / scale) + zero_point, *cfg.act_range)``."""
    qmin, qmax = cfg.act_range
    q = np.rint(np.asarray(x, dtype=np.float64) / qp.scale) + qp.zero_point
    return np.clip(q, qmin, qmax).astype(np.int64)


def dequantize(q: np.ndarray, qp: QParams) -> np.ndarray:
    """Int codes to float64: ``scale * (q - zero_point)``."""
    return qp.scale * (np.asarray(q, dtype=np.float64) - qp.zero_point)


def quantize_weights(cfg: CoreConfig, w: np.ndarray, min_scale: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric per-output-channel weight quantization.

    Parameters
    ----------
    w : numpy.ndarray, shape (N, ...)
        Float weights, output channel first.
    min_scale : numpy.ndarray of float, shape (N,), optional
        Lower bounds of the scales (:func:`bias_weight_scale`): a channel's scale is
        ``max(max|w_c| / wmax, min_scale[c])``.

    Returns
    -------
    q : numpy.ndarray of int64, shape of ``w``
        In ``[-wmax, wmax]``, ``wmax = cfg.weight_range[1]``.
    scale : numpy.ndarray of float64, shape (N,)
    zero_channels : numpy.ndarray of bool, shape (N,)
        Channels whose weights are all zero (scale :data:`FALLBACK_SCALE`).

    Raises
    ------
    ValueError
        The configuration's weights are unsigned.
    """
    if not cfg.weight_signed:
        raise InputError("calibration needs signed weights (weight_signed = true) for "
                         "symmetric quantization")
    wmax = cfg.weight_range[1]
    flat = np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)
    amax = np.abs(flat).max(axis=1)
    zero = amax == 0.0
    scale = np.where(zero, FALLBACK_SCALE, amax / wmax)
    if min_scale is not None:
        scale = np.maximum(scale, np.asarray(min_scale, dtype=np.float64))
    q = np.clip(np.rint(flat / scale[:, None]), -wmax, wmax).astype(np.int64)
    return q.reshape(w.shape), scale, zero


#: onnxruntime's margin on the smallest bias scale (``multiplicative_epsilon``).
BIAS_SCALE_MARGIN = 1.0001


def bias_weight_scale(b: np.ndarray, in_scale: float, fold: np.ndarray | None = None
                      ) -> np.ndarray:
    """The smallest weight scale per channel at which the int32 bias fits:
    ``1.0001 * |b| / ((2**31 - 1 - fold) * s_x)``.

    With ``fold = 0`` (default) this is onnxruntime's rule
    (``QDQQuantizer._adjust_weight_scale_for_int32_bias``, per channel: the smallest valid bias
    scale ``1.0001 * 2|b| / (INT32_MAX - (INT32_MIN + 1))``, divided by ``s_x``). ``fold[c] >=
    0`` reserves room for the input zero point the core folds into the bias, ``|zp_x| sum_k
    |W[k, c]|`` (in codes, at a scale no larger than the result: the codes only shrink as the
    scale grows, so the folded bias then fits too).

    Returns
    -------
    numpy.ndarray of float64, shape of ``b``
        0 where the bias is 0.
    """
    room = INT32_MAX - (0.0 if fold is None else np.asarray(fold, dtype=np.float64))
    room = np.maximum(room, 1.0)  # a fold beyond int32 alone: the caller reports the overflow
    return BIAS_SCALE_MARGIN * np.abs(np.asarray(b, dtype=np.float64)) / (room * in_scale)


def quantize_bias(b: np.ndarray, in_scale: float, w_scale: np.ndarray) -> tuple[np.ndarray, int]:
    """Int32 bias at scale ``in_scale * w_scale``: ``rne(b / (s_x s_w))``, saturated.

    Returns
    -------
    q : numpy.ndarray of int64
    saturated : int
        How many entries did not fit int32 (and were saturated).
    """
    q = np.rint(np.asarray(b, dtype=np.float64) / (in_scale * w_scale))
    saturated = int(((q < INT32_MIN) | (q > INT32_MAX)).sum())
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int64), saturated


def round_like(v: np.ndarray, rounding: str) -> np.ndarray:
    """Round floats to integers with the tie rule of a requantization rounding mode.

    ``single``: ties toward +infinity; ``double``: ties away from zero; ``rne``: ties to even.
    The float counterpart of :func:`dcim.golden.arith.requantize` for fake-quant simulation.
    """
    v = np.asarray(v, dtype=np.float64)
    if rounding not in TIE_RULE:
        raise InputError(f"rounding must be one of {', '.join(ROUNDING_MODES)}, "
                         f"got {rounding!r}")
    tie = TIE_RULE[rounding]
    if tie is Tie.UP:
        return np.floor(v + 0.5)
    if tie is Tie.AWAY:
        return np.sign(v) * np.floor(np.abs(v) + 0.5)
    return np.rint(v)


def fake_round(v: np.ndarray, shift, rounding: str) -> np.ndarray:
    """The float counterpart of one requantization: :func:`round_like`, and for ``double``
    gemmlowp's first rounding too, to ``2**-right`` with ``right = max(-shift, 0)``, before the
    final one (``shift`` broadcastable against ``v``)."""
    if rounding != Rounding.DOUBLE:
        return round_like(v, rounding)
    scale = 2.0 ** np.maximum(-np.asarray(shift, dtype=np.float64), 0.0)
    return round_like(round_like(v * scale, rounding) / scale, rounding)


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum(ref^2) / sum((ref - approx)^2))``.

    ``inf`` when identical; ``-inf`` for an all-zero reference with non-zero error.
    """
    ref = np.asarray(reference, dtype=np.float64)
    return sqnr_from_sums(float(np.sum(ref ** 2)),
                          float(np.sum((ref - np.asarray(approx, dtype=np.float64)) ** 2)))


def sqnr_from_sums(signal: float, error: float) -> float:
    """:func:`sqnr_db` from the sums of squares of the reference and of the error."""
    if error == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / error)
