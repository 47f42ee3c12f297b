"""Pre-quantized (QDQ) ONNX models on the core: their own scales, zero points and integer weights.

A QDQ model carries its quantization as ``QuantizeLinear``/``DequantizeLinear`` pairs
(onnxruntime's ``quantize_static(..., quant_format=QuantFormat.QDQ)``, PyTorch's ONNX export of
a quantized model). :func:`read_qdq` takes them out:

* an activation tensor ``t`` followed by ``Q(t) -> DQ`` gets the pair's per-tensor scale and
  zero point (int8, or uint8 moved to int8 exactly: codes and zero point minus 128); the DQ's
  consumers read ``t``;
* a constant behind a ``DQ`` (int8/uint8 weights, int32 bias: onnxruntime) or behind ``Q -> DQ``
  (float weights quantized by the graph: PyTorch; the codes are computed here as
  ``QuantizeLinear`` computes them, in float32) is a quantized constant: its codes, scales
  (per tensor or per axis) and zero points; the float graph sees its dequantized values.

What remains is a float model imported as usual (:func:`~dcim.golden.quant.onnx_import.
import_model`). :func:`load_qdq` plans it into core layers without fusing across a quantized
tensor (each keeps its own codes), attaches each weighted op's codes
(:class:`~dcim.golden.quant.matmul.Prequantized`: weights symmetric, zero point 0, scales per
output channel; the int32 bias as it is when its scale is ``s_x * s_w`` up to float32
rounding, else rescaled) and quantizes with the model's parameters instead of calibrated ranges
(:func:`~dcim.golden.quant.qmodel.quantize_model` with ``given``): the result runs through the
same exact integer path as ``dcim calibrate``'s models.

Anything the core cannot run as the model specifies is one ``ValueError`` line naming the node,
its op and the reason (per-axis activations, 16-bit codes, weight zero points, a requantizing
``Q -> DQ`` pair, a float tensor between layers, ...).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..config import CoreConfig
from ..errors import InputError
from .matmul import Matmul, Prequantized
from .ops import OpKind
from .onnx_import import FloatGraph, import_model, read_onnx
from .qmodel import QModel, plan, quantize_model
from .scheme import QParams

__all__ = ["QDQ_OPS", "ActQuant", "QdqModel", "QuantConst", "is_qdq", "load_qdq",
           "quantize_linear", "read_qdq"]

#: The ops that carry a QDQ model's quantization (default domain or com.microsoft).
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
_DOMAINS = ("", "ai.onnx", "com.microsoft")
#: Relative difference between a bias's scale and ``s_x * s_w`` that float32 rounding of the
#: product explains (a few float32 ulps).
BIAS_SCALE_RTOL = 2.0 ** -21


@dataclasses.dataclass(frozen=True)
class ActQuant:
    """The quantization of an activation tensor in the model.

    Attributes
    ----------
    scale : float
        The model's float32 scale (exactly).
    zero_point : int
        In the model's code type.
    offset : int
        What is subtracted from the model's codes to get int8 codes (128 for uint8, else 0).
    q_node : str
        The QuantizeLinear node.
    q_output : str
        Its output tensor (the model's codes of the tensor).
    """

    scale: float
    zero_point: int
    offset: int
    q_node: str
    q_output: str

    def qparams(self) -> QParams:
        """The int8 :class:`~dcim.golden.quant.scheme.QParams` of the core."""
        return QParams(self.scale, self.zero_point - self.offset)


@dataclasses.dataclass
class QuantConst:
    """A quantized constant: ``real = scale * (codes - zero_point)`` along ``axis``.

    Attributes
    ----------
    codes : numpy.ndarray of int64
    scale : numpy.ndarray of float64
        Scalar or 1-D (per ``axis``).
    zero_point : numpy.ndarray of int64
        Like ``scale``.
    axis : int or None
        The quantization axis (None: per tensor).
    kind : str
        ``int8``, ``uint8`` or ``int32``.
    node : str
        The DequantizeLinear node.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    kind: str
    node: str

    def dequantized(self) -> np.ndarray:
        """The float32 values ``DequantizeLinear`` computes."""
        shape = [1] * self.codes.ndim
        if self.axis is not None:
            shape[self.axis] = -1
        s = self.scale.astype(np.float32).reshape(shape if self.scale.ndim else ())
        z = self.zero_point.reshape(shape if self.zero_point.ndim else ())
        return ((self.codes - z).astype(np.float32) * s).astype(np.float32)


@dataclasses.dataclass
class QdqModel:
    """A QDQ model read by :func:`read_qdq`.

    Attributes
    ----------
    float_model : onnx.ModelProto
        The model without its QuantizeLinear/DequantizeLinear nodes.
    acts : dict of str to ActQuant
        Quantized activation tensors (names of the float model).
    consts : dict of str to QuantConst
        Quantized constants, by the name of the float initializer that replaces them.
    output : str
        The float model's output (the tensor the original output dequantizes, if it does).
    input : ActQuant or None
        The quantization of the model input, set by :func:`load_qdq`: its own, or that of
        the flatten it goes through first (ONNX quantizers often quantize after it; a flatten
        commutes with quantization).
    """

    float_model: object
    acts: dict[str, ActQuant]
    consts: dict[str, QuantConst]
    output: str
    input: ActQuant | None = None


def _qdq(node) -> bool:
    return node.domain in _DOMAINS and node.op_type in QDQ_OPS


def is_qdq(model) -> bool:
    """Whether an ``onnx.ModelProto`` has QuantizeLinear or DequantizeLinear nodes."""
    return any(_qdq(n) for n in model.graph.node)


def _node_name(n, index: int) -> str:
    return n.name or f"{n.op_type}_{index}"


_KINDS = {2: "uint8", 3: "int8", 6: "int32"}  # onnx.TensorProto data types


def _constant_value(n) -> np.ndarray:
    from onnx import helper, numpy_helper

    a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in a:
            return np.asarray(a[key], dtype=dtype)
    raise InputError(f"Constant node {n.name!r}: only value, value_float(s) and value_int(s) "
                     "attributes are supported")


def quantize_linear(x: np.ndarray, scale: float, zero_point: int, lo: int, hi: int
                    ) -> np.ndarray:
    """ONNX ``QuantizeLinear`` as onnxruntime computes it: ``clamp(rne(float32(x) /
    float32(scale)) + zero_point, lo, hi)``, the division in float32. int64."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.int64)
    return np.clip(q + int(zero_point), lo, hi)


def read_qdq(model) -> QdqModel:
    """Take the quantization out of a QDQ ``onnx.ModelProto`` (see the module docstring).

    Raises
    ------
    ValueError
        A QDQ pattern the core cannot run (one line naming the node, its op and the reason).
    """
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    codes_of: dict[str, tuple[str, str]] = {}   # Q output -> (float tensor, Q node)
    alias: dict[str, str] = {}                  # DQ output -> float tensor it stands for
    acts: dict[str, ActQuant] = {}
    qconsts: dict[str, QuantConst] = {}         # DQ output -> quantized constant
    qcodes: dict[str, tuple[np.ndarray, str, int]] = {}  # Q output of a constant -> codes
    kept = []

    def bad(n, name, why):
        raise InputError(f"{n.op_type} node {name!r}: {why} is not supported")

    def scalar_or_axis(n, name, what, v, allow_axis):
        if v.ndim == 0 or v.size == 1 and not allow_axis:
            return v.reshape(())
        if not allow_axis:
            bad(n, name, f"a per-axis {what} of shape {v.shape} on an activation (the core "
                         "quantizes activations per tensor)")
        if v.ndim != 1:
            bad(n, name, f"a {what} of shape {v.shape}")
        return v

    for index, n in enumerate(g.node):
        name = _node_name(n, index)
        if n.domain in _DOMAINS and n.op_type == "Constant":
            consts[n.output[0]] = _constant_value(n)
            continue
        if n.domain in _DOMAINS and n.op_type == "Identity":
            src = n.input[0]
            for table in (alias, codes_of, qcodes, qconsts, consts):
                if src in table:
                    table[n.output[0]] = table[src]
            if not any(src in t for t in (alias, codes_of, qcodes, qconsts, consts)):
                kept.append(n)
            continue
        if not _qdq(n):
            kept.append(n)
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if "block_size" in a and a["block_size"]:
            bad(n, name, f"block quantization (block_size={a['block_size']})")
        src = n.input[0]
        if len(n.input) < 2 or n.input[1] not in consts:
            bad(n, name, "a scale that is not a constant")
        scale = np.asarray(consts[n.input[1]])
        zp_given = len(n.input) > 2 and n.input[2]
        if zp_given and n.input[2] not in consts:
            bad(n, name, "a zero point that is not a constant")
        if n.op_type == "QuantizeLinear":
            if zp_given:
                zp = np.asarray(consts[n.input[2]])
            else:
                out_type = a.get("output_dtype", onnx.TensorProto.UINT8) or onnx.TensorProto.UINT8
                zp = np.zeros((), dtype=helper.tensor_dtype_to_np_dtype(out_type))
            kind = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8"}.get(zp.dtype)
            if kind is None:
                bad(n, name, f"{zp.dtype} codes (the core computes 8-bit codes: int8 or uint8)")
            lo, hi = (-128, 127) if kind == "int8" else (0, 255)
            if src in consts:  # a float constant quantized by the graph (PyTorch weights)
                w = np.asarray(consts[src])
                axis = int(a.get("axis", 1)) if scale.ndim == 1 and scale.size > 1 else None
                if axis is not None:
                    axis %= w.ndim
                    shape = [1] * w.ndim
                    shape[axis] = -1
                    q = np.clip(np.rint(w.astype(np.float32) / scale.astype(np.float32)
                                        .reshape(shape)).astype(np.int64)
                                + zp.astype(np.int64).reshape(shape), lo, hi)
                else:
                    q = quantize_linear(w, float(scale.reshape(())), int(zp.reshape(())), lo,
                                        hi)
                qcodes[n.output[0]] = (q, kind, axis if axis is not None else -1)
                continue
            scale = scalar_or_axis(n, name, "scale", scale, False)
            zp = scalar_or_axis(n, name, "zero point", zp, False)
            if float(scale) <= 0 or not np.isfinite(scale):
                bad(n, name, f"scale {float(scale)}")
            real = alias.get(src, src)
            act = ActQuant(float(np.float32(scale)), int(zp), 128 if kind == "uint8" else 0,
                           name, n.output[0])
            if real in acts and (acts[real].scale, acts[real].zero_point) != (
                    act.scale, act.zero_point):
                bad(n, name, f"a second quantization of {real!r} (scale {act.scale:.6g}, zero "
                             f"point {act.zero_point}; {acts[real].q_node!r} has scale "
                             f"{acts[real].scale:.6g}, zero point {acts[real].zero_point})")
            acts.setdefault(real, act)
            codes_of[n.output[0]] = (real, name)
            continue
        # DequantizeLinear
        zp = np.asarray(consts[n.input[2]]) if zp_given else None
        if src in codes_of:  # an activation's Q -> DQ pair
            real, qname = codes_of[src]
            q = acts[real]
            s = scalar_or_axis(n, name, "scale", scale, False)
            z = 0 if zp is None else int(scalar_or_axis(n, name, "zero point", zp, False))
            if float(np.float32(s)) != q.scale or z != q.zero_point:
                bad(n, name, f"scale {float(s):.6g} and zero point {z} that differ from those "
                             f"of QuantizeLinear {qname!r} ({q.scale:.6g}, {q.zero_point}): a "
                             "requantization between two ops")
            alias[n.output[0]] = real
            continue
        if src in qcodes or src in consts:
            if src in qcodes:
                codes, kind, _ = qcodes[src]
            else:
                raw = np.asarray(consts[src])
                kind = {np.dtype(np.int8): "int8", np.dtype(np.uint8): "uint8",
                        np.dtype(np.int32): "int32"}.get(raw.dtype)
                if kind is None:
                    bad(n, name, f"a {raw.dtype} constant (int8, uint8 weights or int32 bias)")
                codes = raw.astype(np.int64)
            axis = None
            if scale.ndim == 1 and scale.size > 1:
                axis = int(a.get("axis", 1)) % codes.ndim
                if scale.size != codes.shape[axis]:
                    bad(n, name, f"{scale.size} scales along axis {axis} of a {codes.shape} "
                                 "constant")
            elif scale.size != 1:
                bad(n, name, f"a scale of shape {scale.shape}")
            s = scale.astype(np.float64).reshape(-1 if axis is not None else ())
            z = (np.zeros_like(s, dtype=np.int64) if zp is None
                 else np.asarray(zp, dtype=np.int64).reshape(s.shape))
            qconsts[n.output[0]] = QuantConst(codes, s, z, axis, kind, name)
            continue
        bad(n, name, f"dequantizing {src!r}, which is neither a QuantizeLinear output nor a "
                     "constant (integer model inputs)")

    # The float model: the kept nodes reading through the pairs, the dequantized constants.
    nodes = []
    for index, n in enumerate(kept):
        ins = [alias.get(i, i) for i in n.input]
        if n.op_type == "BatchNormalization" and ins and ins[0] in acts:
            bad(n, n.name or f"BatchNormalization_{index}",
                f"a BatchNormalization of the quantized tensor {ins[0]!r} (quantized apart from "
                "the Conv before it; fold it first, e.g. with onnxruntime's quant_pre_process)")
        for i in ins:
            if i in codes_of:
                bad(n, n.name or f"{n.op_type}_{index}", f"input {i!r}, codes (a QuantizeLinear "
                                                         "output not dequantized)")
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        del copy.input[:]
        copy.input.extend(ins)
        nodes.append(copy)
    used = {i for n in nodes for i in n.input}
    inits = [t for t in g.initializer if t.name in used and t.name not in qconsts]
    inits += [numpy_helper.from_array(c.dequantized(), name) for name, c in qconsts.items()
              if name in used]
    inits += [numpy_helper.from_array(np.asarray(v), name) for name, v in consts.items()
              if name in used and name not in qconsts
              and name not in {t.name for t in g.initializer}]
    if len(g.output) != 1:
        raise InputError(f"model must have exactly one output, got {len(g.output)}")
    out = g.output[0].name
    real_out = alias.get(out, out)
    if out in codes_of:
        raise InputError(f"model output {out!r} is int8 codes (not dequantized) is not "
                         "supported")
    outputs = [helper.make_tensor_value_info(real_out, onnx.TensorProto.FLOAT, None)]
    fg = helper.make_graph(nodes, g.name or "qdq", list(g.input), outputs, inits)
    fm = helper.make_model(fg, opset_imports=[o for o in model.opset_import
                                              if o.domain in ("", "ai.onnx")])
    fm.ir_version = model.ir_version
    return QdqModel(fm, acts, qconsts, real_out)


# ----------------------------------------------------------------------------------------------
def _op_types(q: QdqModel) -> dict[str, str]:
    """ONNX op type by node name in the float model (names as the importer gives them)."""
    return {_node_name(n, i): n.op_type for i, n in enumerate(q.float_model.graph.node)}


def _attach(graph: FloatGraph, q: QdqModel, acts: dict[str, QParams], warnings: list[str]
            ) -> None:
    """Give each weighted op of ``graph`` its codes (:class:`Prequantized`)."""
    types = _op_types(q)
    deq = {name: c.dequantized().astype(np.float64) for name, c in q.consts.items()}
    for op in graph.nodes:
        if not isinstance(op, Matmul):
            continue
        what = f"{types.get(op.name, op.kind)} node {op.name!r}"
        match = None
        for name, c in q.consts.items():
            if c.kind == "int32" or deq[name].size != op.weight.size:
                continue
            d = deq[name]
            if d.shape == op.weight.shape and np.array_equal(d, op.weight):
                match = (c, c.codes, c.axis)
            elif d.ndim == 2 and d.T.shape == op.weight.shape and np.array_equal(d.T, op.weight):
                match = (c, c.codes.T, None if c.axis is None else 1 - c.axis)
            if match:
                break
        if match is None:
            raise InputError(f"{what}: float weights (not the dequantized int8 weights of the "
                             "model: unquantized, or changed by a folded BatchNormalization, "
                             "Mul or alpha) are not supported")
        c, codes, axis = match
        if axis not in (None, 0):
            raise InputError(f"{what}: weights quantized along axis {c.axis} (not per output "
                             "channel) are not supported")
        zp = c.zero_point
        if c.kind == "uint8":
            codes, zp = codes - 128, zp - 128
        if np.any(zp != 0):
            raise InputError(f"DequantizeLinear node {c.node!r}: weight zero point "
                             f"{int(zp.reshape(-1)[np.flatnonzero(zp)[0]])} != 0 (the "
                             "core's weights are symmetric) is not supported")
        n_out = op.weight.shape[0]
        scale = np.broadcast_to(c.scale, (n_out,)).astype(np.float64).copy()
        pre = Prequantized(codes.astype(np.int64), scale)
        x = acts.get(op.inputs[0])
        if x is None:
            raise InputError(f"{what}: input {op.inputs[0]!r} is not quantized (no "
                             "QuantizeLinear before it; the core multiplies int8 codes) is "
                             "not supported")
        want = x.scale * scale
        # The int32 constant whose dequantized values are the op's bias (of equal ones, e.g.
        # all zero, the one at the scale closest to s_x*s_w).
        found = [b for name, b in q.consts.items() if b.kind == "int32"
                 and b.codes.size == n_out and np.array_equal(deq[name].reshape(-1), op.bias)]
        bias_c = min(found, key=lambda b: float(np.max(np.abs(b.scale / want - 1.0))),
                     default=None)
        if bias_c is not None:
            bscale = np.broadcast_to(bias_c.scale, (n_out,)).astype(np.float64)
            bcodes = bias_c.codes.reshape(-1) - np.broadcast_to(bias_c.zero_point, (n_out,))
            off = np.abs(bscale / want - 1.0)
            if np.all(off <= BIAS_SCALE_RTOL):
                pre.bias = bcodes
            else:
                pre.bias = np.rint(bcodes * (bscale / want)).astype(np.int64)
                warnings.append(f"layer {op.name!r}: the int32 bias scale differs from s_x*s_w "
                                f"by up to {off.max():.3g} (relative): codes rescaled to "
                                "s_x*s_w")
        elif np.any(op.bias != 0):
            warnings.append(f"layer {op.name!r}: float bias (not int32 in the model): "
                            "quantized at s_x*s_w")
        op.prequantized = pre


def load_qdq(model, cfg: CoreConfig, name: str = "model") -> tuple[QModel, QdqModel]:
    """Read a QDQ model (an ``onnx.ModelProto`` or a path) into a quantized model for ``cfg``
    that uses the model's own parameters (see the module docstring).

    Returns
    -------
    qmodel : QModel
        Ready for :func:`~dcim.golden.quant.qmodel.run` (its input quantized as the model's
        QuantizeLinear does: :func:`quantize_linear`).
    qdq : QdqModel

    Raises
    ------
    FileNotFoundError, ValueError
        Missing or invalid file, no QDQ nodes, or an unsupported pattern (one line).
    """
    if isinstance(model, (str, Path)):
        name = Path(model).stem
        model = read_onnx(model)
    if not is_qdq(model):
        raise InputError(f"model {name!r} has no QuantizeLinear/DequantizeLinear nodes (a float "
                         "model: calibrate it instead)")
    if cfg.act_bits != 8 or not cfg.act_signed or cfg.weight_bits != 8 or not cfg.weight_signed:
        raise InputError("a QDQ model's int8 codes need signed 8-bit activations and weights "
                         f"(the configuration has A{cfg.act_bits}/W{cfg.weight_bits}, "
                         f"act_signed {cfg.act_signed}, weight_signed {cfg.weight_signed})")
    q = read_qdq(model)
    graph = import_model(q.float_model, name)
    acts = {t: a.qparams() for t, a in q.acts.items()}
    warnings: list[str] = []
    layers = plan(graph, residual_in_dpu=cfg.dpu_residual, boundaries=frozenset(q.acts))
    q.input = q.acts.get(graph.input_name)
    first = layers[0] if layers else None
    if q.input is None and first is not None and first.kind is OpKind.FLATTEN \
            and first.output in q.acts:
        q.input = q.acts[first.output]
    if q.input is None:
        raise InputError(f"model input {graph.input_name!r} is not quantized (no "
                         "QuantizeLinear on it or on its flatten) is not supported")
    given = {graph.input_name: q.input.qparams()}
    types = _op_types(q)
    for lay in layers:
        op = lay.op
        what = f"{types.get(lay.name, op.kind)} node {lay.name!r}"
        for t in lay.inputs:
            if t not in given:
                raise InputError(f"{what}: input {t!r} is not quantized (a float tensor between "
                                 "two layers; the core passes int8 codes) is not supported")
        if not op.int_output:
            continue
        if op.requantizes:
            if lay.output not in acts:
                raise InputError(f"{what}: output {lay.output!r} is not quantized (no "
                                 "QuantizeLinear after it; the core's layers emit int8) is not "
                                 "supported")
            given[lay.output] = acts[lay.output]
            continue
        qin = given[lay.inputs[0]]
        if lay.output in acts and acts[lay.output] != qin:
            qo = acts[lay.output]
            raise InputError(f"{what}: output scale {qo.scale:.6g} and zero point "
                             f"{qo.zero_point} differ from its input's ({qin.scale:.6g}, "
                             f"{qin.zero_point}; the op does not requantize) is not supported")
        given[lay.output] = qin
    _attach(graph, q, given, warnings)
    qm = quantize_model(graph, layers, {}, cfg, given=given)
    qm.warnings[:0] = warnings
    return qm, q
