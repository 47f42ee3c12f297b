"""The quantized model: fusion plan, integer tables, the exact integer path and its fake-quant twin.

:func:`plan` groups the float graph into core layers: every Conv/Gemm absorbs a following
residual Add (into the DPU's residual stage, when the configuration has one) and a following
Relu/Clip (as the DPU clamp). :func:`quantize_model` turns a plan and calibrated ranges into
integer tables (weights, folded int32 bias, per-channel multiplier and shift, clamps), and
:func:`run` evaluates it:

Each layer's computation is its first op's (:mod:`dcim.golden.quant.ops`,
:mod:`dcim.golden.quant.matmul`):

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

from ..config import CoreConfig
from ..model import DpuParams
from .matmul import Tile
from .onnx_import import FloatGraph
from .host import HostFloat
from .ops import Add, Clamp, Op
from .scheme import QParams, act_qparams, dequantize, quantize

__all__ = ["QLayer", "QModel", "Tile", "calibration_tensors", "plan", "quantize_model", "run"]


@dataclasses.dataclass
class QLayer:
    """One layer of the quantized model.

    Attributes
    ----------
    name : str
        Name of the float node that starts the layer.
    op : Op
        That float node (geometry, float weights); it computes the layer.
    inputs : tuple of str
        Tensor inputs (for a weighted layer with a residual: the data input, then the residual).
    output : str
        Name of the output tensor (the float graph's name after the last fused node).
    fused : tuple of str
        Names of the float nodes folded into this layer.
    clip : tuple of float
        Real-valued clamp of a fused Relu/Clip (or of the layer's own, for a clamp layer).
    weights, w_scale, bias, dpu, tiles
        Filled for a weighted layer by :func:`quantize_model`: int64 ``(K, N)`` weights,
        ``(N,)`` weight scales, ``(N,)`` int32 bias before zero-point folding, the DPU tables
        over the ``N`` channels (zero point folded), the column tiles.
    raised_scales : list of (int, float, float)
        A weighted layer's output channels whose weight scale was raised so that the int32
        bias fits: ``(channel, scale from max|w|, scale used)``.
    mults : list of (int, int)
        Requantization ``(multiplier, shift)`` pairs of a Concat or Mul (one per input) or an
        average pool (empty for a global one: its window is known at run time).
    table : numpy.ndarray of int64 or None
        A host Add/Sub's output code for every pair of input codes
        (:func:`~dcim.golden.quant.ops.sum_table`).
    lut, lut_input : Op or None, str or None
        A weighted layer's activation run as the DPU's lookup table (a host float op with a
        ``lut_mode``, fused), and the tensor it reads (the layer's output before it: the
        DPU requantizes to that tensor's calibrated parameters, the table maps them to the
        layer output's).
    act_min, act_max : int
        The output clamp in codes.
    """

    name: str
    op: Op
    inputs: tuple[str, ...]
    output: str
    fused: tuple[str, ...] = ()
    clip: tuple[float, float] = (-math.inf, math.inf)
    # Filled by quantize_model.
    weights: np.ndarray | None = None
    w_scale: np.ndarray | None = None
    bias: np.ndarray | None = None
    dpu: DpuParams | None = None
    tiles: list[Tile] = dataclasses.field(default_factory=list)
    raised_scales: list[tuple[int, float, float]] = dataclasses.field(default_factory=list)
    mults: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    table: np.ndarray | None = None
    lut: Op | None = None
    lut_input: str | None = None
    act_min: int = -128
    act_max: int = 127
    #: The fast path's exact GEMM of a weighted layer (filled with the tables, or on its
    #: first fast run; :class:`~dcim.golden.quant.fastpath.ExactGemm`; False: saturation
    #: possible).
    fast: object = None

    @property
    def kind(self) -> str:
        """``matmul`` (Conv/Gemm on the array, DPU after), ``add`` (residual add off the
        array), ``avgpool`` (AveragePool and GlobalAveragePool), ``maxpool``, ``clamp`` (a
        Relu/Clip not fused), ``flatten`` or ``softmax`` (float, on the dequantized input)."""
        return self.op.layer_kind

    @property
    def residual(self) -> str | None:
        """The residual input tensor of a weighted layer, if any."""
        return self.inputs[1] if self.op.on_array and len(self.inputs) > 1 else None


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
def plan(graph: FloatGraph, residual_in_dpu: bool = True,
         boundaries: frozenset[str] = frozenset(), lut_in_dpu: bool = True) -> list[QLayer]:
    """Group the float nodes into core layers (no quantization yet).

    A Conv/Gemm absorbs an Add that is the only consumer of its output when the Add's other
    input is computed earlier and has the same shape (where inference knows both; the DPU adds
    one residual value per output), if ``residual_in_dpu``; then an activation with a DPU
    lookup-table mode (Sigmoid, Tanh, HardSigmoid, HardSwish, SiLU, GELU) that is the only
    consumer, as the DPU's LUT (no clamp is fused after it), if ``lut_in_dpu``; else a
    Relu/Clip that is the only consumer. Every other layer with its own output scale absorbs a following Relu/Clip the
    same way. Nothing is absorbed across a tensor of ``boundaries`` (the tensors a
    pre-quantized model quantizes: each stays a layer output with its own codes).
    """
    consumers: dict[str, list[Op | None]] = {}
    for node in graph.nodes:
        for t in node.inputs:
            consumers.setdefault(t, []).append(node)
    consumers.setdefault(graph.output_name, []).append(None)

    def only_consumer(tensor: str, cls: type) -> Op | None:
        users = consumers.get(tensor, [])
        if len(users) == 1 and isinstance(users[0], cls):
            return users[0]
        return None

    produced = {graph.input_name}
    done: set[str] = set()
    layers: list[QLayer] = []
    for node in graph.nodes:
        if node.name in done:
            continue
        layer = QLayer(node.name, node, tuple(node.inputs), node.output,
                       clip=node.clip if isinstance(node, Clamp) else (-math.inf, math.inf))
        if node.on_array and residual_in_dpu and layer.output not in boundaries:
            add = only_consumer(layer.output, Add)
            if add is not None:
                other = add.inputs[1] if add.inputs[0] == layer.output else add.inputs[0]
                shapes = [graph.shapes.get(t) for t in (other, layer.output)]
                if other in produced and other != layer.output and (
                        None in shapes or shapes[0] == shapes[1]):
                    layer.inputs += (other,)
                    layer.fused += (add.name,)
                    layer.output = add.output
                    done.add(add.name)
        if node.on_array and lut_in_dpu and layer.output not in boundaries:
            lut = only_consumer(layer.output, HostFloat)
            if lut is not None and lut.lut_mode is not None:
                layer.lut, layer.lut_input = lut, layer.output
                layer.fused += (lut.name,)
                layer.output = lut.output
                done.add(lut.name)
        if node.requantizes and layer.output not in boundaries and layer.lut is None:
            act = only_consumer(layer.output, Clamp)
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
    out = [graph.input_name]
    for lay in layers:
        if lay.lut_input is not None:
            out.append(lay.lut_input)
        if lay.op.requantizes:
            out.append(lay.output)
    return out


def _clamp_codes(cfg: CoreConfig, qp: QParams, clip: tuple[float, float]) -> tuple[int, int]:
    qmin, qmax = cfg.act_range
    lo = qmin if clip[0] == -math.inf else int(quantize(np.array(clip[0]), qp, cfg))
    hi = qmax if clip[1] == math.inf else int(quantize(np.array(clip[1]), qp, cfg))
    return lo, hi


def quantize_model(graph: FloatGraph, layers: list[QLayer], ranges: dict[str, tuple[float, float]],
                   cfg: CoreConfig, given: dict[str, QParams] | None = None) -> QModel:
    """Quantize a plan with calibrated ranges for :func:`calibration_tensors`, or with the
    parameters ``given`` for them (a pre-quantized model; ``ranges`` is then not used).

    Raises
    ------
    ValueError
        A range is missing or invalid, or the configuration cannot run the scheme (unsigned
        operands).
    """
    warnings: list[str] = []
    qparams: dict[str, QParams] = {}

    def set_q(tensor: str) -> QParams:
        if given is not None:
            if tensor not in given:
                raise ValueError(f"no quantization parameters for tensor {tensor!r}")
            qparams[tensor] = given[tensor]
            return given[tensor]
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
        layer = dataclasses.replace(src, tiles=[], mults=[], raised_scales=[], fast=None,
                                    table=None)
        out.append(layer)
        if not layer.op.int_output:
            continue
        if layer.lut_input is not None:
            set_q(layer.lut_input)
        if layer.op.requantizes:
            qout = set_q(layer.output)
        else:
            qout = qparams[layer.output] = qparams[layer.inputs[0]]
        layer.act_min, layer.act_max = _clamp_codes(cfg, qout, layer.clip)
        layer.op.quantize(cfg, layer, qparams, warnings)
    return QModel(cfg, graph, out, qparams, warnings)


# ----------------------------------------------------------------------------------------------
def run(m: QModel, x: np.ndarray, fake: bool = False, keep: bool = False, fast: bool = False
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
    fast : bool
        The integer path's codes, bit for bit, from one exact GEMM and one DPU call per
        weighted layer (:mod:`dcim.golden.quant.fastpath`) instead of the core's column tiles
        and K-passes; ignored with ``fake``.

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
        op = layer.op
        if not op.int_output:
            result = op.run_float([dequantize(a, m.qparams[t])
                                   for a, t in zip(args, layer.inputs)])
            continue
        step = op.run_fake if fake else op.run_fast if fast else op.run_int
        env[layer.output] = step(m, layer, args)
    if result is None:
        result = dequantize(env[m.graph.output_name], m.qparams[m.graph.output_name])
    if not keep:
        env = {}
    return result, env
