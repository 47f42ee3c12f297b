"""The quantized model: fusion plan, integer tables, the exact integer path and its fake-quant twin.

:func:`plan` groups the float graph into core layers: every Conv/Gemm absorbs a following
residual Add (into the DPU's residual stage, when the configuration has one) and a following
Relu/Clip (as the DPU clamp). :func:`quantize_model` turns a plan and calibrated ranges into
integer tables (weights, folded int32 bias, per-channel multiplier and shift, clamps), and
:func:`run` evaluates it:

* ``fake=False``: the integer path. Every MVM goes through :func:`dcim.golden.model.mvm_tiled`
  on the configured ``rows x cols`` array (column tiles of ``cols``, zero-padded), and every
  requantization through :func:`dcim.golden.model.dpu` or :func:`dcim.golden.arith.requantize`
  with ``cfg.rounding``;
* ``fake=True``: a float64 simulation of the same quantization (real scales, float products,
  rounding with the same tie rule, and for ``double`` gemmlowp's first rounding too); it is the
  reference the integer path is compared with.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .arith import INT32_MAX, INT32_MIN, quantize_multiplier, requantize, saturate
from .config import CoreConfig
from .model import DpuParams, dpu, fold_input_zero_point, mvm_tiled
from .onnx_import import FloatGraph, Node, conv_out_hw, flatten, float_op
from .quant import (QParams, act_qparams, dequantize, quantize, quantize_bias, quantize_weights,
                    round_like)
from .tensor_ops import im2col, pool_windows

__all__ = ["QLayer", "QModel", "Tile", "calibration_tensors", "plan", "quantize_model", "run"]

#: Layer kinds that produce a tensor with its own (calibrated) quantization parameters.
REQUANT_KINDS = ("matmul", "add", "avgpool")


@dataclasses.dataclass
class Tile:
    """One column tile of a weighted layer, as the core runs it.

    Attributes
    ----------
    col0, col1 : int
        Output channels ``[col0, col1)`` of the layer this tile computes (the rest of the
        ``cols`` columns are zero-weight padding).
    weights : numpy.ndarray of int64, shape (K, cols)
        Rows ``p*rows .. (p+1)*rows - 1`` are K-pass ``p`` (the last pass is zero-padded by
        :func:`dcim.golden.model.mvm_tiled`).
    dpu : DpuParams
        DPU tables for the ``cols`` columns (padding columns: bias, multiplier and shift 0).
    """

    col0: int
    col1: int
    weights: np.ndarray
    dpu: DpuParams


@dataclasses.dataclass
class QLayer:
    """One layer of the quantized model.

    Attributes
    ----------
    name : str
        Name of the float node that starts the layer.
    kind : str
        ``matmul`` (Conv/Gemm on the array, DPU after), ``add`` (residual add off the array),
        ``avgpool`` (AveragePool and GlobalAveragePool), ``maxpool``, ``clamp`` (a Relu/Clip
        not fused), ``flatten`` or ``softmax`` (float, on the dequantized input).
    node : Node
        The float node (geometry, float weights).
    inputs : tuple of str
        Tensor inputs (for ``matmul`` with a residual: the data input, then the residual).
    output : str
        Name of the output tensor (the float graph's name after the last fused node).
    fused : tuple of str
        Names of the float nodes folded into this layer.
    clip : tuple of float
        Real-valued clamp of a fused Relu/Clip.
    """

    name: str
    kind: str
    node: Node
    inputs: tuple[str, ...]
    output: str
    fused: tuple[str, ...] = ()
    clip: tuple[float, float] = (-math.inf, math.inf)
    # Filled by quantize_model.
    weights: np.ndarray | None = None      # (K, N) int64
    w_scale: np.ndarray | None = None      # (N,)
    bias: np.ndarray | None = None         # (N,) int32 bias before zero-point folding
    dpu: DpuParams | None = None           # over the N channels (zero point folded)
    tiles: list[Tile] = dataclasses.field(default_factory=list)
    mults: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    act_min: int = -128
    act_max: int = 127

    @property
    def residual(self) -> str | None:
        """The residual input tensor of a ``matmul`` layer, if any."""
        return self.inputs[1] if self.kind == "matmul" and len(self.inputs) > 1 else None


@dataclasses.dataclass
class QModel:
    """A quantized model for one configuration.

    Attributes
    ----------
    cfg : CoreConfig
    graph : FloatGraph
    layers : list of QLayer
    qparams : dict of str to QParams
        Quantization of every integer tensor (input, and every layer output but the last
        float one).
    warnings : list of str
        Fallbacks and overflow risks found while quantizing, one line each.
    """

    cfg: CoreConfig
    graph: FloatGraph
    layers: list[QLayer]
    qparams: dict[str, QParams]
    warnings: list[str]


# ----------------------------------------------------------------------------------------------
def plan(graph: FloatGraph, residual_in_dpu: bool = True) -> list[QLayer]:
    """Group the float nodes into core layers (no quantization yet).

    A Conv/Gemm absorbs an Add that is the only consumer of its output when the Add's other
    input is computed earlier (and ``residual_in_dpu``), then a Relu/Clip that is the only
    consumer; an Add or an average pool absorbs a following Relu/Clip the same way.
    """
    consumers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for t in node.inputs:
            consumers.setdefault(t, []).append(node)
    for t in (graph.output_name,):
        consumers.setdefault(t, []).append(None)

    def only_consumer(tensor: str, kinds: tuple[str, ...]) -> Node | None:
        users = consumers.get(tensor, [])
        if len(users) == 1 and users[0] is not None and users[0].kind in kinds:
            return users[0]
        return None

    produced = {graph.input_name}
    done: set[str] = set()
    layers: list[QLayer] = []
    for node in graph.nodes:
        if node.name in done:
            continue
        kind = {"conv": "matmul", "gemm": "matmul", "gap": "avgpool", "relu": "clamp",
                "clip": "clamp"}.get(node.kind, node.kind)
        layer = QLayer(node.name, kind, node, tuple(node.inputs), node.output,
                       clip=node.clip if kind == "clamp" else (-math.inf, math.inf))
        if kind == "matmul" and residual_in_dpu:
            add = only_consumer(layer.output, ("add",))
            if add is not None:
                other = add.inputs[1] if add.inputs[0] == layer.output else add.inputs[0]
                if other in produced and other != layer.output:
                    layer.inputs += (other,)
                    layer.fused += (add.name,)
                    layer.output = add.output
                    done.add(add.name)
        if kind in REQUANT_KINDS:
            act = only_consumer(layer.output, ("relu", "clip"))
            if act is not None:
                layer.clip = act.clip
                layer.fused += (act.name,)
                layer.output = act.output
                done.add(act.name)
        produced.add(layer.output)
        layers.append(layer)
    return layers


def calibration_tensors(graph: FloatGraph, layers: list[QLayer]) -> list[str]:
    """Names of the tensors whose ranges must be calibrated: the input and every output of a
    layer that requantizes (its scale is free), in execution order."""
    return [graph.input_name] + [lay.output for lay in layers if lay.kind in REQUANT_KINDS]


def _mult(real: float) -> tuple[int, int]:
    return quantize_multiplier(float(real))


def _clamp_codes(cfg: CoreConfig, qp: QParams, clip: tuple[float, float]) -> tuple[int, int]:
    qmin, qmax = cfg.act_range
    lo = qmin if clip[0] == -math.inf else int(quantize(np.array(clip[0]), qp, cfg))
    hi = qmax if clip[1] == math.inf else int(quantize(np.array(clip[1]), qp, cfg))
    return lo, hi


def quantize_model(graph: FloatGraph, layers: list[QLayer], ranges: dict[str, tuple[float, float]],
                   cfg: CoreConfig) -> QModel:
    """Quantize a plan with calibrated ranges for :func:`calibration_tensors`.

    Raises
    ------
    ValueError
        A range is missing or invalid, or the configuration cannot run the scheme (unsigned
        operands).
    """
    warnings: list[str] = []
    qparams: dict[str, QParams] = {}

    def set_q(tensor: str) -> QParams:
        if tensor not in ranges:
            raise ValueError(f"no calibrated range for tensor {tensor!r}")
        qp = act_qparams(cfg, *ranges[tensor])
        if qp.fallback:
            warnings.append(f"tensor {tensor!r} is constant zero on the calibration data "
                            f"(scale 0): fallback scale {qp.scale}, zero point {qp.zero_point}")
        qparams[tensor] = qp
        return qp

    set_q(graph.input_name)
    out: list[QLayer] = []
    for src in layers:
        layer = dataclasses.replace(src, tiles=[], mults=[])
        if layer.kind == "softmax":
            out.append(layer)
            continue
        qin = qparams[layer.inputs[0]]
        if layer.kind in REQUANT_KINDS:
            qout = set_q(layer.output)
        else:
            qout = qin
            qparams[layer.output] = qin
        layer.act_min, layer.act_max = _clamp_codes(cfg, qout, layer.clip)
        if layer.kind == "matmul":
            _quantize_matmul(cfg, layer, qin, qout, qparams, warnings)
        elif layer.kind == "add":
            layer.mults = [_mult(qparams[t].scale / qout.scale) for t in layer.inputs]
        elif layer.kind == "avgpool":
            n = layer.node.kernel[0] * layer.node.kernel[1] if layer.node.kind == "avgpool" \
                else None  # global: known at run time
            layer.mults = [] if n is None else [_mult(qin.scale / (n * qout.scale))]
        out.append(layer)
    return QModel(cfg, graph, out, qparams, warnings)


def _quantize_matmul(cfg: CoreConfig, layer: QLayer, qin: QParams, qout: QParams,
                     qparams: dict[str, QParams], warnings: list[str]) -> None:
    node = layer.node
    wq, w_scale, zero = quantize_weights(cfg, node.weight)
    if zero.any():
        warnings.append(f"layer {layer.name!r}: {int(zero.sum())} output channel(s) with all-zero "
                        f"weights: fallback weight scale 1.0")
    n_out = wq.shape[0]
    W = wq.reshape(n_out, -1).T.copy()  # (K, N)
    bias, sat = quantize_bias(node.bias, qin.scale, w_scale)
    if sat:
        warnings.append(f"layer {layer.name!r}: {sat} bias value(s) do not fit int32 at scale "
                        "s_x*s_w and were saturated")
    folded = fold_input_zero_point(W, bias, qin.zero_point)
    over = int(((folded < INT32_MIN) | (folded > INT32_MAX)).sum())
    if over:
        warnings.append(f"layer {layer.name!r}: {over} folded bias value(s) exceed int32 and "
                        "were saturated")
        folded = saturate(folded, INT32_MIN, INT32_MAX)
    xmax = max(abs(v) for v in cfg.act_range)
    worst = int((np.abs(W).sum(axis=0) * xmax).max())
    psum_hi = cfg.psum_range[1]
    if worst > psum_hi:
        warnings.append(f"layer {layer.name!r}: worst-case accumulator {worst} (2**"
                        f"{math.log2(worst):.1f}) exceeds the {cfg.psum_bits}-bit partial sum "
                        "(the core saturates it)")
    pairs = [_mult(qin.scale * s / qout.scale) for s in w_scale]
    res = {}
    if layer.residual is not None:
        qr = qparams[layer.residual]
        m, s = _mult(qr.scale / qout.scale)
        res = {"res_multiplier": m, "res_shift": s, "res_zp": qr.zero_point}
    params = DpuParams(bias=folded, multiplier=np.array([p[0] for p in pairs], dtype=np.int64),
                       shift=np.array([p[1] for p in pairs], dtype=np.int64),
                       out_zp=qout.zero_point, act_min=layer.act_min, act_max=layer.act_max,
                       **res)
    layer.weights, layer.w_scale, layer.bias, layer.dpu = W, w_scale, bias, params
    for c0 in range(0, n_out, cfg.cols):
        c1 = min(c0 + cfg.cols, n_out)
        pad = cfg.cols - (c1 - c0)
        wt = np.pad(W[:, c0:c1], ((0, 0), (0, pad)))
        arrays = {k: np.pad(getattr(params, k)[c0:c1], (0, pad)) for k in DpuParams._ARRAYS}
        scalars = {k: getattr(params, k) for k in DpuParams._SCALARS}
        layer.tiles.append(Tile(c0, c1, wt, DpuParams(**arrays, **scalars)))


# ----------------------------------------------------------------------------------------------
# Execution
def _rows(t: np.ndarray) -> np.ndarray:
    """NCHW or (N, C) to (vectors, C)."""
    return t.transpose(0, 2, 3, 1).reshape(-1, t.shape[1]) if t.ndim == 4 else t


def _unrows(y: np.ndarray, node: Node, x: np.ndarray) -> np.ndarray:
    """(vectors, C) back to NCHW for a convolution's output."""
    if node.kind != "conv":
        return y
    h, w = conv_out_hw(x, node)
    return y.reshape(x.shape[0], h, w, -1).transpose(0, 3, 1, 2)


def _matmul_int(m: QModel, layer: QLayer, x: np.ndarray, r: np.ndarray | None) -> np.ndarray:
    cfg, node = m.cfg, layer.node
    zp = m.qparams[layer.inputs[0]].zero_point
    X = im2col(x, node.kernel, node.strides, node.pads, zp) if node.kind == "conv" else x
    R = None if r is None else _rows(r)
    if R is not None and R.shape != (X.shape[0], layer.weights.shape[1]):
        raise ValueError(f"layer {layer.name!r}: the residual add needs operands of the same "
                         "shape (broadcasting is not supported)")
    y = np.empty((X.shape[0], layer.weights.shape[1]), dtype=np.int64)
    for tile in layer.tiles:
        psum = mvm_tiled(cfg, tile.weights, X)
        rt = None
        if R is not None:
            rt = np.full((X.shape[0], cfg.cols), tile.dpu.res_zp, dtype=np.int64)
            rt[:, :tile.col1 - tile.col0] = R[:, tile.col0:tile.col1]
        y[:, tile.col0:tile.col1] = dpu(cfg, psum, tile.dpu, rt)[:, :tile.col1 - tile.col0]
    return _unrows(y, node, x)


def _fround(v: np.ndarray, shift, rounding: str) -> np.ndarray:
    """Float rounding with the tie rule of ``rounding``; for ``double`` also gemmlowp's first
    rounding, to ``2**-right`` with ``right = max(-shift, 0)``, before the final one."""
    if rounding != "double":
        return round_like(v, rounding)
    scale = 2.0 ** np.maximum(-np.asarray(shift, dtype=np.float64), 0.0)
    return round_like(round_like(v * scale, rounding) / scale, rounding)


def _matmul_fake(m: QModel, layer: QLayer, x: np.ndarray, r: np.ndarray | None) -> np.ndarray:
    cfg, node = m.cfg, layer.node
    qin, qout = m.qparams[layer.inputs[0]], m.qparams[layer.output]
    xr = dequantize(x, qin)
    X = im2col(xr, node.kernel, node.strides, node.pads, 0.0) if node.kind == "conv" else xr
    w_real = layer.weights * layer.w_scale  # (K, N)
    acc = X @ w_real + layer.bias * (qin.scale * layer.w_scale)
    y = _fround(acc / qout.scale, layer.dpu.shift, cfg.rounding) + qout.zero_point
    if r is not None:
        qr = m.qparams[layer.residual]
        y = y + _fround((_rows(r) - qr.zero_point) * (qr.scale / qout.scale),
                        layer.dpu.res_shift, cfg.rounding)
    y = np.clip(y, layer.act_min, layer.act_max).astype(np.int64)
    return _unrows(y, node, x)


def _avgpool(m: QModel, layer: QLayer, x: np.ndarray, fake: bool) -> np.ndarray:
    node = layer.node
    qin, qout = m.qparams[layer.inputs[0]], m.qparams[layer.output]
    if node.kind == "gap":
        win = x.reshape(x.shape[0], x.shape[1], 1, 1, -1)
    else:
        win = pool_windows(x, node.kernel, node.strides)
        win = win.reshape(win.shape[:4] + (-1,))
    n = win.shape[-1]
    mult, shift = layer.mults[0] if layer.mults else _mult(qin.scale / (n * qout.scale))
    if fake:
        y = _fround((win - qin.zero_point).mean(axis=-1) * (qin.scale / qout.scale), shift,
                    m.cfg.rounding)
    else:
        total = win.sum(axis=-1, dtype=np.int64) - n * qin.zero_point
        y = requantize(total, mult, shift, m.cfg.rounding)
    return np.clip(y + qout.zero_point, layer.act_min, layer.act_max).astype(np.int64)


def _add(m: QModel, layer: QLayer, a: np.ndarray, b: np.ndarray, fake: bool) -> np.ndarray:
    qout = m.qparams[layer.output]
    y = np.full(np.broadcast_shapes(a.shape, b.shape), qout.zero_point, dtype=np.int64)
    for t, v, (mult, shift) in zip(layer.inputs, (a, b), layer.mults):
        qp = m.qparams[t]
        if fake:
            y = y + _fround((v - qp.zero_point) * (qp.scale / qout.scale), shift,
                            m.cfg.rounding).astype(np.int64)
        else:
            y = y + requantize(v.astype(np.int64) - qp.zero_point, mult, shift, m.cfg.rounding)
    return saturate(y, layer.act_min, layer.act_max)


def run(m: QModel, x: np.ndarray, fake: bool = False, keep: bool = False
        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the quantized model on a float batch.

    Parameters
    ----------
    x : numpy.ndarray
        Float input batch (quantized with the input's parameters first).
    fake : bool
        Float fake-quant simulation instead of the integer path.
    keep : bool
        Return every integer tensor, not only the output.

    Returns
    -------
    output : numpy.ndarray of float64
        The model output: Softmax of the dequantized logits, or the dequantized last tensor.
    codes : dict of str to numpy.ndarray of int64
        Integer codes by tensor name (all of them if ``keep``, else empty).
    """
    m.graph.check_input(x)
    env = {m.graph.input_name: quantize(x, m.qparams[m.graph.input_name], m.cfg)}
    result = None
    for layer in m.layers:
        args = [env[t] for t in layer.inputs]
        kind = layer.kind
        if kind == "matmul":
            r = args[1] if len(args) > 1 else None
            y = (_matmul_fake if fake else _matmul_int)(m, layer, args[0], r)
        elif kind == "avgpool":
            y = _avgpool(m, layer, args[0], fake)
        elif kind == "add":
            y = _add(m, layer, args[0], args[1], fake)
        elif kind == "maxpool":
            node = layer.node
            y = pool_windows(args[0], node.kernel, node.strides, node.pads,
                             m.cfg.act_range[0]).max(axis=(-2, -1))
        elif kind == "clamp":
            y = saturate(args[0], layer.act_min, layer.act_max)
        elif kind == "flatten":
            y = flatten(layer.node, args[0])
        elif kind == "softmax":
            result = float_op(layer.node, [dequantize(args[0], m.qparams[layer.inputs[0]])])
            continue
        else:  # pragma: no cover
            raise AssertionError(kind)
        env[layer.output] = y
    if result is None:
        result = dequantize(env[m.graph.output_name], m.qparams[m.graph.output_name])
    if not keep:
        env = {}
    return result, env

