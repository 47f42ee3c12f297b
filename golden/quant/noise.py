"""Analog in-memory-compute what-if: weight variation and ADC quantization of the column sums.

The digital core computes every column sum exactly. An analog array (seed 001: Cosemans et al.,
IEDM 2019, asks for a weight variation ``sigma / range < 10 %``) stores each weight as a
conductance or charge with a random deviation and digitizes each summation line with an ADC.
This module runs a quantized model (:class:`~dcim.golden.quant.qmodel.QModel`) with that
model of the array, on the same integer tables; only the matrix-vector products change:

* **weight variation** (``sigma``): every cell of every column tile (padding cells included)
  holds ``w + sigma * R * z`` instead of the integer code ``w``, ``z`` a standard normal drawn
  once per cell (one programmed chip: the same deviation for every inference) and ``R =
  wmax - wmin`` the span of the weight codes (255 for int8). The standard normals come from
  ``numpy.random.default_rng(seed)`` drawn layer by layer, tile by tile, so every ``sigma`` of
  a sweep scales the same draws (common random numbers: the curve is smooth in ``sigma``);
* **ADC** (``adc_bits = B``, optional): in every bit-serial compute cycle of a pass, each
  column's analog sum ``sum_k w~[k, c] * x_j[k]`` (``x_j`` the cycle's activation slice, the top
  slice of a signed activation signed, as :func:`dcim.golden.model.mvm_bitserial` defines them)
  is quantized to ``2**B`` uniform levels over its full range ``[lo, hi] =
  cfg.slice_psum_range`` (step ``(hi - lo) / (2**B - 1)``, round to the nearest level, clamped
  to the range); the levels are shifted and added as the accumulator does (``2**(j s)``);
* without an ADC the column sums are read with infinite resolution (the exact real sum);
* **offset calibration** (``calibrated_offsets``, optional): the core multiplies the raw
  activation codes, zero point included, and removes ``zp_x sum_k w[k, c]`` with the folded
  bias (:func:`dcim.golden.model.fold_input_zero_point`); with deviating weights the column
  keeps ``zp_x sum_k (w~ - w)[k, c]``, a fixed offset per column that grows with ``|zp_x|``
  (128 after a ReLU in int8). A chip that measures its column offsets once after programming
  subtracts that term exactly (in real arithmetic, before the rounding below); without it
  the offset stays.

The K-passes add up in real arithmetic; the sum is then rounded to the nearest integer (half
to even) and saturated to ``psum_bits``: the DPU input. The DPU (bias, requantization, zero
point, residual, clamp) and every op off the array stay exact integer arithmetic. With
``sigma = 0`` and no ADC the analog sums are the integers themselves, so the codes equal the
digital path's; without a :class:`NoiseSpec` the digital path is not touched at all.
Pure numpy: no amaranth, no cocotb.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..arith import saturate
from ..config import CoreConfig
from ..errors import InputError
from .matmul import Tile
from .metrics import flow_metrics, top1
from .qmodel import run
from .scheme import dequantize

__all__ = ["AnalogTile", "NoiseSpec", "adc_quantize", "analog_model", "analog_mvm", "noise_sweep"]


@dataclasses.dataclass(frozen=True)
class NoiseSpec:
    """One analog what-if.

    Attributes
    ----------
    sigma : float
        Standard deviation of the weight deviation relative to the weight range, in [0, 1].
    seed : int
        Seed of the standard normal draws (>= 0).
    adc_bits : int or None
        Resolution of the column-sum ADC in [1, 24]; None: exact column sums.
    calibrated_offsets : bool
        Subtract each column's zero-point offset of the weight deviations (module docstring).
    """

    sigma: float = 0.0
    seed: int = 0
    adc_bits: int | None = None
    calibrated_offsets: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float)) and math.isfinite(self.sigma)
                and 0.0 <= self.sigma <= 1.0):
            raise InputError(f"weight noise sigma must be in [0, 1], got {self.sigma!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"noise seed must be an int >= 0, got {self.seed!r}")
        if self.adc_bits is not None and (isinstance(self.adc_bits, bool) or not isinstance(
                self.adc_bits, int) or not 1 <= self.adc_bits <= 24):
            raise InputError(f"ADC bits must be an int in [1, 24], got {self.adc_bits!r}")


def adc_quantize(v: np.ndarray, lo: int, hi: int, bits: int) -> np.ndarray:
    """``v`` quantized to ``2**bits`` uniform levels over ``[lo, hi]``: the nearest level
    ``lo + round((v - lo) / step) * step``, ``step = (hi - lo) / (2**bits - 1)``, clamped to
    the range (float64)."""
    step = (hi - lo) / ((1 << bits) - 1)
    code = np.clip(np.rint((np.asarray(v, dtype=np.float64) - lo) / step), 0, (1 << bits) - 1)
    return lo + code * step


def _slices(cfg: CoreConfig, X: np.ndarray) -> np.ndarray:
    """The bit-serial activation slices of ``X``, shape (cycles, vectors, K), as
    :func:`dcim.golden.model.mvm_bitserial` takes them (LSB first, top slice signed)."""
    s, n = cfg.serial_bits, cfg.cycles_per_pass()
    mask = (1 << s) - 1
    X = X.astype(np.int64)
    out = np.empty((n,) + X.shape, dtype=np.float64)
    for j in range(n - 1):
        out[j] = (X >> (j * s)) & mask
    top = X >> ((n - 1) * s)
    out[n - 1] = top if cfg.act_signed else top & mask
    return out


def analog_mvm(cfg: CoreConfig, W: np.ndarray, X: np.ndarray, adc_bits: int | None,
               offset: np.ndarray | None = None) -> np.ndarray:
    """The partial sums a tile's analog array gives the DPU.

    Parameters
    ----------
    W : numpy.ndarray of float, shape (K, cols)
        The cells' (noisy) weights.
    X : numpy.ndarray of int, shape (vectors, K)
        Activation codes.
    adc_bits : int or None
        Column-sum ADC resolution (module docstring); None: exact sums.
    offset : numpy.ndarray of float, shape (cols,), optional
        Subtracted from the real sum before it is rounded (the calibrated column offsets).

    Returns
    -------
    numpy.ndarray of int64, shape (vectors, cols)
        The real sum over the K-passes rounded half to even, saturated to ``psum_bits``.
    """
    W = np.asarray(W, dtype=np.float64)
    if adc_bits is None:
        total = X.astype(np.float64) @ W
    else:
        lo, hi = cfg.slice_psum_range
        sl = _slices(cfg, X)
        total = np.zeros((X.shape[0], W.shape[1]))
        for k0 in range(0, W.shape[0], cfg.rows):
            k = slice(k0, k0 + cfg.rows)
            for j in range(sl.shape[0]):
                total += adc_quantize(sl[j][:, k] @ W[k], lo, hi, adc_bits) * float(
                    1 << (j * cfg.serial_bits))
    if offset is not None:
        total = total - offset
    return saturate(np.rint(total).astype(np.int64), *cfg.psum_range)


@dataclasses.dataclass
class AnalogTile(Tile):
    """A column tile as the analog array holds it.

    Attributes
    ----------
    weights : numpy.ndarray of float64, shape (K_t, cols)
        The cells' deviating weights.
    offset : numpy.ndarray of float64, shape (cols,), or None
        The calibrated column offsets subtracted by :func:`analog_mvm`, or None.
    """

    offset: np.ndarray | None = None


class _AnalogOp:
    """A weighted op whose tiles (:class:`AnalogTile`) run on the analog array: the wrapped op
    for everything, its :meth:`run_int` with :func:`analog_mvm` as the array."""

    def __init__(self, op: Any, adc_bits: int | None):
        self._op, self._adc_bits = op, adc_bits

    def __getattr__(self, name: str) -> Any:
        return getattr(self._op, name)

    def run_int(self, m, layer, args):
        """:meth:`~dcim.golden.quant.matmul.Matmul.run_int` with the analog column sums."""
        def array(tile, X):
            return analog_mvm(m.cfg, tile.weights, X, self._adc_bits, tile.offset)

        return self._op.run_int(m, layer, args, array=array)

    run_fast = run_int


def analog_model(qm, spec: NoiseSpec):
    """A copy of the quantized model ``qm`` whose weighted layers run on the analog array of
    ``spec`` (module docstring); ``qm`` is not changed.

    Returns
    -------
    QModel
        Same tables and quantization parameters; :func:`dcim.golden.quant.qmodel.run` runs it.
    """
    rng = np.random.default_rng(spec.seed)
    wl, wh = qm.cfg.weight_range
    span = spec.sigma * (wh - wl)
    layers = []
    for layer in qm.layers:
        if layer.op.on_array and layer.tiles:
            zp = qm.qparams[layer.inputs[0]].zero_point
            tiles = []
            for t in layer.tiles:
                dev = span * rng.standard_normal(t.weights.shape)
                off = zp * dev.sum(axis=0) if spec.calibrated_offsets else None
                tiles.append(AnalogTile(t.col0, t.col1, t.weights + dev, t.dpu, t.rows, off))
            layer = dataclasses.replace(layer, op=_AnalogOp(layer.op, spec.adc_bits),
                                        tiles=tiles)
        layers.append(layer)
    return dataclasses.replace(qm, layers=layers)

def _logits(qm, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The integer logit codes of ``qm`` on ``x``, (samples, classes), batch by batch."""
    logit = [lay.output for lay in qm.layers if lay.op.int_output][-1]
    out = []
    for i in range(0, len(x), batch):
        _, env = run(qm, x[i:i + batch], keep=True)
        out.append(env[logit].reshape(len(env[logit]), -1))
    return np.concatenate(out)


def noise_sweep(qm, x: np.ndarray, y: np.ndarray, fp32_logits: np.ndarray,
                sigmas: list[float], seed: int = 0, adc_bits: int | None = None,
                calibrated_offsets: bool = False, progress=None) -> dict[str, Any]:
    """Top-1 and agreement of ``qm`` on the analog array against ``sigma``, beside the exact
    digital result.

    Runs the digital path once and :func:`analog_model` for every ``sigma`` (without an ADC,
    and with ``adc_bits`` too if given; ``sigma = 0`` first in each series).

    Parameters
    ----------
    qm : QModel
    x, y : numpy.ndarray
        Evaluation samples and labels.
    fp32_logits : numpy.ndarray, shape (samples, classes)
    sigmas : list of float
        Each in [0, 1] (relative to the weight range).
    seed, adc_bits, calibrated_offsets
        As :class:`NoiseSpec`.
    progress : callable or None
        ``progress(stage, done, total)``.

    Returns
    -------
    dict
        ``digital``: :func:`~dcim.golden.quant.metrics.flow_metrics` of the exact path;
        ``rows``: one dict per run with ``sigma``, ``adc_bits``, ``accuracy``, ``ties``,
        ``top1_agreement_with_fp32``, ``top1_agreement_with_int8`` (same top-1 class as the
        exact digital path, neither a tie), ``logit_sqnr_db`` (vs FP32) and
        ``logit_codes_changed`` (fraction of logit codes that differ from the digital path);
        ``seed``, ``calibrated_offsets``, ``weight_range``.
    """
    qp = qm.qparams[[lay.output for lay in qm.layers if lay.op.int_output][-1]]
    digital = _logits(qm, x)
    dig_pred = top1(digital)
    runs = [(0.0, None)] + [(s, None) for s in sigmas if s > 0]
    if adc_bits is not None:
        runs += [(0.0, adc_bits)] + [(s, adc_bits) for s in sigmas if s > 0]
    rows = []
    for i, (sigma, bits) in enumerate(runs):
        spec = NoiseSpec(float(sigma), seed, bits, calibrated_offsets)
        codes = _logits(analog_model(qm, spec), x)
        res = flow_metrics(dequantize(codes, qp), y, fp32_logits)
        pred = top1(codes)
        rows.append({"sigma": spec.sigma, "adc_bits": bits, **res,
                     "top1_agreement_with_int8": float(np.mean((pred == dig_pred)
                                                               & (pred >= 0))),
                     "logit_codes_changed": float(np.mean(codes != digital))})
        if progress is not None:
            progress("analog what-if", i + 1, len(runs))
    wl, wh = qm.cfg.weight_range
    return {"digital": flow_metrics(dequantize(digital, qp), y, fp32_logits), "rows": rows,
            "seed": seed, "calibrated_offsets": calibrated_offsets, "weight_range": wh - wl}
