"""The weighted ops the core's array computes: Conv (as im2col) and Gemm/MatMul.

A weighted layer is a ``(K, N)`` integer weight matrix run on the configured array in column
tiles of ``cols`` (:class:`Tile`, each with its own DPU tables), every tile through
:func:`dcim.golden.model.mvm_tiled` (``ceil(K / rows)`` K-passes) and
:func:`dcim.golden.model.dpu`, which adds the folded bias, requantizes, adds the output zero
point and an optional fused residual, and clamps. Quantization: weights symmetric per output
channel, int32 bias at ``s_x * s_w``, the input zero point folded into the bias, one
``quantize_multiplier(s_x s_w[c] / s_y)`` per channel (docs/calibration.md).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..activation import build_lut
from ..arith import INT32_MAX, INT32_MIN, quantize_multiplier, saturate
from ..errors import InputError
from ..model import DpuParams, dpu, fold_input_zero_point, mvm_tiled
from .fastpath import ExactGemm, exact_gemm
from .ops import Op, OpKind, rescale_fake
from .scheme import (bias_weight_scale, dequantize, fake_round, quantize_bias,
                     quantize_weights)
from .tensor_ops import conv_out_size, im2col, im2col_hwc

__all__ = ["Conv", "Gemm", "GroupConv", "Matmul", "Prequantized", "Tile", "to_rows"]


@dataclasses.dataclass
class Prequantized:
    """The integer weights of a weighted op in a pre-quantized (QDQ) model, used as they are.

    Attributes
    ----------
    codes : numpy.ndarray of int64
        Weight codes in the layout of :attr:`Matmul.weight` (output channel first), zero point 0.
    scale : numpy.ndarray of float64, shape (N,)
        Per-channel weight scales (a per-tensor scale repeated).
    bias : numpy.ndarray of int64, shape (N,), or None
        Int32 bias codes at ``s_x * s_w`` (None: the float bias is quantized as usual).
    """

    codes: np.ndarray
    scale: np.ndarray
    bias: np.ndarray | None = None


@dataclasses.dataclass
class Tile:
    """One column tile of a weighted layer, as the core runs it.

    Attributes
    ----------
    col0, col1 : int
        Output channels ``[col0, col1)`` of the layer this tile computes (the rest of the
        ``cols`` columns are zero-weight padding).
    weights : numpy.ndarray of int64, shape (K_t, cols)
        Rows ``p*rows .. (p+1)*rows - 1`` are K-pass ``p`` (the last pass is zero-padded by
        :func:`dcim.golden.model.mvm_tiled`).
    dpu : DpuParams
        DPU tables for the ``cols`` columns (padding columns: bias, multiplier and shift 0).
    rows : numpy.ndarray of int64 or None
        The layer's ``K`` indices (columns of :meth:`Matmul.columns`) that the tile's weight
        rows multiply, in order; None: all ``K`` (a dense layer).
    """

    col0: int
    col1: int
    weights: np.ndarray
    dpu: DpuParams
    rows: np.ndarray | None = None

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """The tile's activation vectors: the columns of ``X`` (vectors, K) it multiplies."""
        return X if self.rows is None else X[:, self.rows]


def to_rows(t: np.ndarray) -> np.ndarray:
    """NCHW or (N, C) to (vectors, C)."""
    return t.transpose(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.ndim == 4 else t


@dataclasses.dataclass
class Matmul(Op):
    """A weighted layer on the array (abstract: :class:`Conv` or :class:`Gemm`).

    Attributes
    ----------
    weight : numpy.ndarray
        Float64, output channel first: ``(Cout, Cin, kh, kw)`` or ``(N, K)``.
    bias : numpy.ndarray
        Float64 ``(Cout,)``.
    prequantized : Prequantized or None
        The weights' own codes and scales in a pre-quantized model (then :attr:`weight` holds
        their dequantized values).
    """

    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    prequantized: Prequantized | None = None
    layer_kind = OpKind.MATMUL
    requantizes = True
    on_array = True

    @property
    def dims(self) -> tuple[int, int]:
        """``(K, N)``: reduction depth of one output channel and output channels."""
        return int(np.prod(self.weight.shape[1:])), self.weight.shape[0]

    def matrix(self, w: np.ndarray) -> np.ndarray:
        """The layer's ``(N, K)`` matrix from per-channel weights ``w`` of shape ``(N,
        dims[0])`` (the same for a dense layer)."""
        return w

    def tile_plan(self, cfg) -> list[tuple[np.ndarray | None, int, int, int]]:
        """The column tiles on ``cfg``'s array: ``(rows, K_t, col0, col1)`` each, ``rows`` as
        :attr:`Tile.rows`, ``K_t`` the tile's depth (K-passes ``ceil(K_t / cfg.rows)``).
        A dense layer: every ``cols`` output channels, all ``K`` rows."""
        k, n = self.dims
        return [(None, k, c0, min(c0 + cfg.cols, n)) for c0 in range(0, n, cfg.cols)]

    def vectors(self, out_shape: tuple[int, ...]) -> int:
        """Activation vectors per inference for an output of shape ``out_shape`` (batch 1)."""
        raise NotImplementedError

    def columns(self, x: np.ndarray, pad_value) -> np.ndarray:
        """The ``(vectors, K)`` matrix the array multiplies, from the layer input ``x``."""
        raise NotImplementedError

    def from_rows(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The ``(vectors, N)`` result back in the output layout, for the input ``x``."""
        return y

    def fast_columns(self, x: np.ndarray, pad_value) -> np.ndarray:
        """:meth:`columns` with the ``K`` axis in the fast path's order (:meth:`fast_rows`)."""
        return self.columns(x, pad_value)

    def fast_rows(self, W: np.ndarray) -> np.ndarray:
        """The ``(K, N)`` matrix ``W`` with its rows in the order of :meth:`fast_columns`."""
        return W

    def run_float(self, args):
        x = args[0]
        w = self.matrix(self.weight.reshape(self.weight.shape[0], -1))
        y = self.columns(x, 0.0) @ w.T + self.bias
        return self.from_rows(y, x)

    # -- quantized -----------------------------------------------------------------------------
    def quantize(self, cfg, layer, qparams, warnings):
        # With a LUT activation the DPU requantizes to the activation's input tensor.
        qin, qout = qparams[layer.inputs[0]], qparams[layer.lut_input or layer.output]
        wq, w_scale, zero = self.quantize_weights(cfg, layer, qin, warnings)
        if zero.any():
            warnings.append(f"layer {layer.name!r}: {int(zero.sum())} output channel(s) with "
                            "all-zero weights: fallback weight scale 1.0")
        n_out = wq.shape[0]
        W = self.matrix(wq.reshape(n_out, -1)).T.copy()  # (K, N)
        if self.prequantized is not None and self.prequantized.bias is not None:
            bias, sat = self.prequantized.bias.astype(np.int64), 0
        else:
            bias, sat = quantize_bias(self.bias, qin.scale, w_scale)
        if sat:
            warnings.append(f"layer {layer.name!r}: {sat} bias value(s) do not fit int32 at "
                            "scale s_x*s_w and were saturated")
        folded = fold_input_zero_point(W, bias, qin.zero_point)
        over = int(((folded < INT32_MIN) | (folded > INT32_MAX)).sum())
        if over:
            warnings.append(f"layer {layer.name!r}: {over} folded bias value(s) exceed int32 "
                            "and were saturated")
            folded = saturate(folded, INT32_MIN, INT32_MAX)
        xmax = max(abs(v) for v in cfg.act_range)
        worst = int((np.abs(W).sum(axis=0) * xmax).max())
        if worst > cfg.psum_range[1]:
            warnings.append(f"layer {layer.name!r}: worst-case accumulator {worst} (2**"
                            f"{math.log2(worst):.1f}) exceeds the {cfg.psum_bits}-bit partial "
                            "sum (the core saturates it)")
        pairs = [quantize_multiplier(qin.scale * s / qout.scale) for s in w_scale]
        res = {}
        if layer.residual is not None:
            qr = qparams[layer.residual]
            m, s = quantize_multiplier(qr.scale / qout.scale)
            res = {"res_multiplier": m, "res_shift": s, "res_zp": qr.zero_point}
        params = DpuParams(bias=folded,
                           multiplier=np.array([p[0] for p in pairs], dtype=np.int64),
                           shift=np.array([p[1] for p in pairs], dtype=np.int64),
                           out_zp=qout.zero_point, act_min=layer.act_min,
                           act_max=layer.act_max, lut=layer_lut(cfg, layer, qparams), **res)
        layer.weights, layer.w_scale, layer.bias, layer.dpu = W, w_scale, bias, params
        for rows, _, c0, c1 in self.tile_plan(cfg):
            pad = cfg.cols - (c1 - c0)
            wt = np.pad((W if rows is None else W[rows])[:, c0:c1], ((0, 0), (0, pad)))
            arrays = {k: np.pad(getattr(params, k)[c0:c1], (0, pad)) for k in DpuParams._ARRAYS}
            scalars = {k: getattr(params, k) for k in DpuParams._SCALARS}
            layer.tiles.append(Tile(c0, c1, wt, DpuParams(**arrays, **scalars, lut=params.lut),
                                    rows))
        layer.fast = self.plan_fast(cfg, layer)

    def _residual(self, layer, args, vectors: int) -> np.ndarray | None:
        R = None if len(args) < 2 else to_rows(args[1])
        if R is not None and R.shape != (vectors, layer.weights.shape[1]):
            raise InputError(f"layer {layer.name!r}: the residual add needs operands of the "
                             "same shape (broadcasting is not supported)")
        return R

    def quantize_weights(self, cfg, layer, qin, warnings):
        """Per-channel weight codes and scales, each scale raised where needed so that the
        int32 bias fits: first onnxruntime's rule (the bias ``rne(b / (s_x s_w))`` fits), then,
        if the input zero point folded into it (``- zp_x sum_k W[k, c]``) still overflows, room
        for the fold too (:func:`~dcim.golden.quant.scheme.bias_weight_scale`). The raised
        channels go to ``layer.raised_scales`` and one warning line.

        Returns what :func:`~dcim.golden.quant.scheme.quantize_weights` returns. A
        pre-quantized op returns its own codes and scales (nothing is raised).
        """
        pre = self.prequantized
        if pre is not None:
            layer.raised_scales = []
            return pre.codes.astype(np.int64), pre.scale.astype(np.float64), np.zeros(
                len(pre.scale), dtype=bool)
        wq, w_scale, zero = quantize_weights(cfg, self.weight)
        first = w_scale.copy()
        need = bias_weight_scale(self.bias, qin.scale)
        if (need > w_scale).any():
            wq, w_scale, zero = quantize_weights(cfg, self.weight, need)
        flat = wq.reshape(len(wq), -1)
        folded = np.rint(self.bias / (qin.scale * w_scale)) - qin.zero_point * flat.sum(axis=1)
        if (np.abs(folded) > INT32_MAX).any():
            fold = abs(qin.zero_point) * np.abs(flat).sum(axis=1)
            need = np.maximum(need, bias_weight_scale(self.bias, qin.scale, fold))
            wq, w_scale, zero = quantize_weights(cfg, self.weight, need)
        raised = np.flatnonzero(w_scale != first)
        layer.raised_scales = [(int(c), float(first[c]), float(w_scale[c])) for c in raised]
        if len(raised):
            shown = ", ".join(f"{c} ({old:.3g} -> {new:.3g})"
                              for c, old, new in layer.raised_scales[:4])
            more = f", ... ({len(raised) - 4} more)" if len(raised) > 4 else ""
            warnings.append(f"layer {layer.name!r}: weight scale raised so that the int32 bias "
                            f"fits, in {len(raised)} output channel(s): {shown}{more}")
        return wq, w_scale, zero

    def run_int(self, m, layer, args, array=None):
        """The exact integer path; ``array(tile, X_t)``, if given, replaces the digital array
        (:func:`dcim.golden.model.mvm_tiled`) in giving each tile's partial sums (the analog
        what-if, :mod:`dcim.golden.quant.noise`)."""
        cfg = m.cfg
        x = args[0]
        X = self.columns(x, m.qparams[layer.inputs[0]].zero_point)
        R = self._residual(layer, args, X.shape[0])
        y = np.empty((X.shape[0], layer.weights.shape[1]), dtype=np.int64)
        for tile in layer.tiles:
            psum = (mvm_tiled(cfg, tile.weights, tile.inputs(X)) if array is None
                    else array(tile, tile.inputs(X)))
            rt = None
            if R is not None:
                rt = np.full((X.shape[0], cfg.cols), tile.dpu.res_zp, dtype=np.int64)
                rt[:, :tile.col1 - tile.col0] = R[:, tile.col0:tile.col1]
            y[:, tile.col0:tile.col1] = dpu(cfg, psum, tile.dpu, rt)[:, :tile.col1 - tile.col0]
        return self.from_rows(y, x)

    def plan_fast(self, cfg, layer) -> ExactGemm | bool:
        """The exact GEMM of :meth:`run_fast` for ``layer``'s weights, or False if a partial
        sum may saturate (:func:`dcim.golden.quant.fastpath.exact_gemm`)."""
        xmax = max(abs(v) for v in cfg.act_range)
        return exact_gemm(self.fast_rows(layer.weights), xmax, cfg.psum_range[1]) or False

    def run_fast(self, m, layer, args):
        """The codes of :meth:`run_int`, from one exact GEMM over the whole depth and one DPU
        call (:mod:`dcim.golden.quant.fastpath`); :meth:`run_int` where saturation is
        possible."""
        if layer.fast is None:
            layer.fast = self.plan_fast(m.cfg, layer)
        if layer.fast is False:
            return self.run_int(m, layer, args)
        x = args[0]
        zp = m.qparams[layer.inputs[0]].zero_point
        X = self.fast_columns(x.astype(np.float32), np.float32(zp))
        R = self._residual(layer, args, X.shape[0])
        R = None if R is None else np.asarray(R, dtype=np.int64)
        y = dpu(m.cfg, layer.fast(X), layer.dpu, R, check=False)
        return self.from_rows(y, x)

    def run_fake(self, m, layer, args):
        cfg = m.cfg
        x = args[0]
        qin, qout = m.qparams[layer.inputs[0]], m.qparams[layer.lut_input or layer.output]
        X = self.columns(dequantize(x, qin), 0.0)
        w_real = layer.weights * layer.w_scale  # (K, N)
        acc = X @ w_real + layer.bias * (qin.scale * layer.w_scale)
        y = fake_round(acc / qout.scale, layer.dpu.shift, cfg.rounding) + qout.zero_point
        if len(args) > 1:
            y = y + rescale_fake(m, to_rows(args[1]), m.qparams[layer.residual], qout,
                                 layer.dpu.res_shift)
        y = np.clip(y, layer.act_min, layer.act_max).astype(np.int64)
        if layer.dpu.lut is not None:  # the table, as the host float op's twin computes it
            y = layer.dpu.lut[y + 128]
        return self.from_rows(y, x)


def layer_lut(cfg, layer, qparams) -> np.ndarray | None:
    """The DPU table of ``layer``'s fused LUT activation (None without one): from the
    activation's input tensor ``layer.lut_input`` to the layer output
    (:func:`dcim.golden.activation.build_lut`, ``cfg.rounding``)."""
    if layer.lut is None:
        return None
    qa, qy = qparams[layer.lut_input], qparams[layer.output]
    return build_lut(layer.lut.lut_mode, qa.scale, qa.zero_point, qy.scale, qy.zero_point,
                     cfg.rounding, **layer.lut.lut_args())


@dataclasses.dataclass
class Conv(Matmul):
    """A 2-D convolution (group 1), run as im2col: one vector per output pixel.

    Attributes
    ----------
    kernel, strides, dilations : tuple of int
        ``(kh, kw)``, ``(sh, sw)``, ``(dh, dw)``.
    pads : tuple of int
        ``(top, left, bottom, right)``; the integer path pads with the input zero point.
    """

    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    kind = OpKind.CONV

    def out_hw(self, x: np.ndarray) -> tuple[int, int]:
        """Output height and width for an NCHW input."""
        t, l, b, r = self.pads
        return (conv_out_size(x.shape[2], self.kernel[0], self.strides[0], t, b,
                              self.dilations[0]),
                conv_out_size(x.shape[3], self.kernel[1], self.strides[1], l, r,
                              self.dilations[1]))

    def vectors(self, out_shape):
        return int(np.prod(out_shape[2:]))

    def columns(self, x, pad_value):
        return im2col(x, self.kernel, self.strides, self.pads, pad_value, self.dilations)

    def from_rows(self, y, x):
        h, w = self.out_hw(x)
        return y.reshape(x.shape[0], h, w, -1).transpose(0, 3, 1, 2)

    def fast_columns(self, x, pad_value):
        return im2col_hwc(x, self.kernel, self.strides, self.pads, pad_value, self.dilations)

    def fast_rows(self, W):
        kh, kw = self.kernel
        return W.reshape(-1, kh, kw, W.shape[1]).transpose(1, 2, 0, 3).reshape(W.shape)


@dataclasses.dataclass
class GroupConv(Conv):
    """A grouped convolution (depthwise when ``groups`` equals the input channels).

    Its ``(K, N)`` matrix, ``K = Cin*kh*kw``, is block diagonal: group ``g``'s ``Ng = N /
    groups`` output channels see only its ``Kg = Cin/groups*kh*kw`` rows. On the array a column
    tile packs ``p = min(rows // Kg, cols // Ng)`` whole groups (block diagonal inside the tile:
    one pass computes ``p`` groups from one vector of their patches); a group that does not fit
    (``Kg > rows`` or ``Ng > cols``) gets tiles of its own: its ``Kg`` rows in K-passes, its
    ``Ng`` columns in tiles of ``cols``. A depthwise 3x3 channel uses 9 rows of one column.

    Attributes
    ----------
    groups : int
        ONNX ``group``, dividing the input and output channels.
    """

    groups: int = 1
    kind = OpKind.GCONV

    def matrix(self, w):
        kg, n = self.dims
        ng = n // self.groups
        out = np.zeros((n, kg * self.groups), dtype=w.dtype)
        for g in range(self.groups):
            out[g * ng:(g + 1) * ng, g * kg:(g + 1) * kg] = w[g * ng:(g + 1) * ng]
        return out

    def tile_plan(self, cfg):
        kg, n = self.dims
        ng = n // self.groups
        per = max(1, min(cfg.rows // kg, cfg.cols // ng))
        plan = []
        for g0 in range(0, self.groups, per):
            g1 = min(g0 + per, self.groups)
            rows = np.arange(g0 * kg, g1 * kg, dtype=np.int64)
            plan += [(rows, len(rows), c0, min(c0 + cfg.cols, g1 * ng))
                     for c0 in range(g0 * ng, g1 * ng, cfg.cols)]
        return plan


@dataclasses.dataclass
class Gemm(Matmul):
    """Gemm or MatMul with a constant right operand: one vector per sample."""

    kind = OpKind.GEMM

    def vectors(self, out_shape):
        return 1

    def columns(self, x, pad_value):
        if x.ndim != 2 or x.shape[1] != self.weight.shape[1]:
            raise InputError(f"{self.name}: expects a (batch, {self.weight.shape[1]}) input, "
                             f"got {tuple(x.shape)}")
        return x
