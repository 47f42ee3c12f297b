"""``dcim check``: a pre-quantized (QDQ) model on the core's exact integer path against
onnxruntime running the same model.

The model's scales, zero points and integer weights are used as they are
(:func:`~dcim.golden.quant.qdq.load_qdq`); its input is quantized as its QuantizeLinear does
(:func:`~dcim.golden.quant.qdq.quantize_linear`, float32) and every layer runs through the
golden integer path (``mvm_tiled`` on the configured array, the DPU, the host ops) with the
configuration's rounding. onnxruntime runs the same model twice:

``reference``
    Graph optimizations off: every DequantizeLinear, float op and QuantizeLinear as the ONNX
    graph says (float32 between the codes). Every quantized tensor's codes are fetched (the
    QuantizeLinear outputs added as graph outputs, which changes nothing in this mode).
``optimized``
    The default session, as deployed: Q-op-DQ groups become integer kernels (QLinearConv,
    QGemm, QLinearAdd, ...). Only its output is compared: fetching inner tensors changes
    which groups it fuses, so they would not be the tensors of the deployed session.

Per quantized tensor against the reference: codes that differ end to end (a difference
propagates), and *local* differences, of the layer run on onnxruntime's own input codes. Each
local difference is put down to a cause from the exact value ``v`` of the output before
rounding (in LSB, from the same input codes, float64; :func:`real_codes`), its single correct
rounding ``r = rne(v)``, and the fake-quant twin ``f`` (the core's scheme with real scales,
without its fixed-point multipliers):

``tie``
    ``v`` is a rounding tie and the two take its two sides: the core's rounding mode against
    ONNX's round half to even;
``float bias``
    the model's bias is float (PyTorch exports): the core gives ``r``, onnxruntime the
    rounding of the value with the float bias, which the core rounds to int32 at ``s_x s_w``;
``ort float``
    the core gives ``r``, onnxruntime does not, and ``v`` lies within :data:`NEAR` LSB of a
    tie: onnxruntime's float32 arithmetic (float32 products, sums and scale) moved it across;
``requantization``
    onnxruntime gives ``r``; the core's scheme does not even with real scales (``f`` = the
    core's code): the op's integer arithmetic differs, e.g. an Add fused into the DPU's
    residual stage, which rounds the layer's sum and the rescaled residual separately where
    ONNX rounds their sum once;
``core multiplier``
    onnxruntime gives ``r`` (or ``f``), the core does not, its scheme with real scales does:
    the 31-bit fixed-point multiplier moved the value across a tie;
``other``
    anything else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CoreConfig
from ..errors import InputError
from ..table import table
from .evaluate import BATCH, check_labels, load_data
from .matmul import Matmul, to_rows
from .qdq import QdqModel, load_qdq, quantize_linear
from .qmodel import QLayer, QModel
from .scheme import dequantize

__all__ = ["CAUSES", "NEAR", "OrtRunner", "check_report", "classify", "core_codes",
           "float_bias", "format_check", "input_codes", "ort_codes", "real_codes"]

#: Distance (in LSB) from a rounding tie within which a one-LSB difference is put down to
#: float32 arithmetic.
NEAR = 0.01
#: Relative distance from a tie below which a value is a tie (float64 noise).
TIE = 1e-9
#: Causes of a local difference, in report order.
CAUSES = ("tie", "float bias", "ort float", "requantization", "core multiplier", "other")


def _with_outputs(model, names: list[str]):
    """A copy of ``model`` whose graph also outputs the tensors ``names`` (codes)."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    types = {t.name: t.data_type for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
    for n in m.graph.node:
        if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in types:
            types[n.output[0]] = types[n.input[2]]
    for name in names:
        if name not in have:
            m.graph.output.append(helper.make_tensor_value_info(
                name, types.get(name, onnx.TensorProto.UINT8), None))
    return m


def _session(model, optimized: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


class OrtRunner:
    """onnxruntime (CPU) on a QDQ model: the ``reference`` session (graph optimizations off,
    every quantized tensor fetched) or the ``optimized`` one (the model unchanged, its output
    only).

    Raises
    ------
    ValueError
        onnxruntime cannot load the model (on construction) or run it (:meth:`run`).
    """

    def __init__(self, model, q: QdqModel, optimized: bool = False):
        self.q = q
        self.names = [] if optimized else sorted(q.acts)
        m = _with_outputs(model, [q.acts[t].q_output for t in self.names])
        self.fetch = [model.graph.output[0].name] + [q.acts[t].q_output for t in self.names]
        with _quiet():
            try:
                self.sess = _session(m, optimized)
            except Exception as exc:  # onnxruntime's own exception types
                raise InputError(f"onnxruntime cannot load the QDQ model: {_line(exc)}") from None
        self.input = self.sess.get_inputs()[0].name

    def run(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The model output for the float batch ``x``, and the codes of every quantized
        activation tensor (by the float tensor's name; int8 as on the core: uint8 minus 128)
        for the reference session (none for the optimized one)."""
        outs = []
        with _quiet():
            for i in range(0, len(x), BATCH):
                try:
                    outs.append(self.sess.run(self.fetch,
                                              {self.input: x[i:i + BATCH].astype(np.float32)}))
                except Exception as exc:  # onnxruntime's own exception types
                    raise InputError(f"onnxruntime cannot run the QDQ model: {_line(exc)}"
                                     ) from None
        output = np.concatenate([o[0] for o in outs])
        codes = {t: np.concatenate([o[j + 1] for o in outs]).astype(np.int64)
                 - self.q.acts[t].offset for j, t in enumerate(self.names)}
        return output, codes


class _quiet:
    """onnxruntime's Python logger at ERROR for the duration."""

    def __enter__(self):
        self.logger = logging.getLogger("onnxruntime")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def ort_codes(model, x: np.ndarray, q: QdqModel, optimized: bool = False
              ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:meth:`OrtRunner.run` of a new session on ``x``."""
    return OrtRunner(model, q, optimized).run(x)


def input_codes(q: QdqModel, x: np.ndarray) -> np.ndarray:
    """The model input's int8 codes, as its QuantizeLinear computes them."""
    a = q.input
    lo, hi = (-128, 127) if a.offset == 0 else (0, 255)
    return quantize_linear(x, a.scale, a.zero_point, lo, hi) - a.offset


def _layer(qm: QModel, layer: QLayer, args: list[np.ndarray], fake: bool = False
           ) -> np.ndarray:
    op = layer.op
    if op.int_output:
        return (op.run_fake if fake else op.run_int)(qm, layer, args)
    return op.run_float([dequantize(a, qm.qparams[t]) for a, t in zip(args, layer.inputs)])


def core_codes(qm: QModel, xq: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run the integer path from the input codes ``xq``: the model output (the final float
    op's, or the last tensor dequantized) and every integer tensor's codes."""
    env = {qm.graph.input_name: xq}
    result = None
    for layer in qm.layers:
        y = _layer(qm, layer, [env[t] for t in layer.inputs])
        if layer.op.int_output:
            env[layer.output] = y
        else:
            result = y
    if result is None:
        result = dequantize(env[qm.graph.output_name], qm.qparams[qm.graph.output_name])
    return result, env


def float_bias(layer: QLayer) -> bool:
    """Whether ``layer`` is a weighted layer whose model gives a float bias (the core rounds it
    to int32 at ``s_x s_w``)."""
    pre = getattr(layer.op, "prequantized", None)
    return pre is not None and pre.bias is None and bool(np.any(layer.op.bias != 0))


def real_codes(qm: QModel, layer: QLayer, args: list[np.ndarray], model_bias: bool = False
               ) -> np.ndarray:
    """The exact value of ``layer``'s output in LSB of its output (zero point added, before
    rounding and clamping), from its input codes ``args``: float64.

    A weighted layer: the exact int64 accumulator with its int32 bias (``model_bias``: with
    the model's float bias instead) times ``s_x s_w / s_y`` (plus a fused residual rescaled);
    any other: its float op on the dequantized inputs over ``s_y``.
    """
    op = layer.op
    qout = qm.qparams[layer.output]
    if isinstance(op, Matmul):
        qin = qm.qparams[layer.inputs[0]]
        X = op.columns(args[0], qin.zero_point).astype(np.int64) - qin.zero_point
        bias = op.bias / (qin.scale * layer.w_scale) if model_bias else layer.bias
        acc = X @ layer.weights + bias
        v = acc * (qin.scale * layer.w_scale / qout.scale) + qout.zero_point
        if layer.residual is not None:
            qr = qm.qparams[layer.residual]
            v = v + (to_rows(args[1]) - qr.zero_point) * (qr.scale / qout.scale)
        return op.from_rows(v, args[0])
    y = op.run_float([dequantize(a, qm.qparams[t]) for a, t in zip(args, layer.inputs)])
    return y / qout.scale + qout.zero_point


def classify(v: np.ndarray, core: np.ndarray, fake: np.ndarray, other: np.ndarray, lo: int,
             hi: int, v_model: np.ndarray | None = None) -> dict[str, int]:
    """Counts of :data:`CAUSES` over the elements where ``core != other``.

    Parameters
    ----------
    v : numpy.ndarray
        Exact output values (:func:`real_codes`), clamped to ``[lo, hi]`` here.
    core, fake, other : numpy.ndarray of int
        The core's codes, its fake-quant twin's, the other implementation's.
    v_model : numpy.ndarray, optional
        Exact values with the model's float bias (``real_codes(..., model_bias=True)``), for a
        layer whose model bias is float.
    """
    counts = dict.fromkeys(CAUSES, 0)
    diff = core != other
    if not diff.any():
        return counts
    v, c, f, o = np.clip(v[diff], lo, hi), core[diff], fake[diff], other[diff]
    r = np.rint(v)
    one = np.abs(c - o) == 1
    dist = np.abs(v - (np.minimum(c, o) + 0.5))
    tie = one & (dist <= TIE * np.maximum(1.0, np.abs(v)))
    bias = np.zeros_like(tie)
    if v_model is not None:
        bias = ~tie & (c == r) & (o == np.rint(np.clip(v_model[diff], lo, hi)))
    rest = ~tie & ~bias
    ort_float = rest & one & (c == r) & (dist < NEAR)
    rest &= ~ort_float
    requant = rest & (o == r) & (c == f)
    rest &= ~requant
    mult = rest & (c != f) & ((o == r) | (o == f))
    counts["tie"] = int(tie.sum())
    counts["float bias"] = int(bias.sum())
    counts["ort float"] = int(ort_float.sum())
    counts["requantization"] = int(requant.sum())
    counts["core multiplier"] = int(mult.sum())
    counts["other"] = int(diff.sum()) - sum(counts.values())
    return counts


def _top1(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Argmax per row (the first of equal maxima) and whether the maximum is shared."""
    v = np.asarray(v).reshape(len(v), -1)
    ties = (v == v.max(axis=1, keepdims=True)).sum(axis=1) > 1
    return v.argmax(axis=1), ties


def check_report(model_path: str | Path, eval_path: str | Path, cfg: CoreConfig
                 ) -> dict[str, Any]:
    """Check a QDQ model on the core against onnxruntime; the report (JSON-serializable).

    ``eval_path``: ``.npz`` with ``x`` and optionally ``y`` (labels: accuracies reported).

    Raises
    ------
    FileNotFoundError, ValueError
        Bad model or data, an unsupported QDQ pattern, or onnxruntime failing.
    """
    import onnx

    qm, q = load_qdq(model_path, cfg)
    model = onnx.load(str(model_path))
    x, _ = load_data(eval_path, qm.graph, "evaluation", labels=False)
    with np.load(eval_path) as data:
        y = data["y"] if "y" in data.files else None
    if y is not None and (y.dtype.kind not in "iu" or y.shape != (len(x),)):
        raise InputError(f"evaluation data {eval_path}: y must be {len(x)} integer labels, got "
                         f"{y.dtype} {y.shape}")
    if y is not None:
        check_labels(qm.graph, x, y, f"evaluation data {eval_path}")
    ref_run, opt_run = OrtRunner(model, q), OrtRunner(model, q, optimized=True)
    int_layers = [lay for lay in qm.layers if lay.op.int_output]
    logits = int_layers[-1].output
    stats = {lay.output: dict(elements=0, differ=0, max_lsb_diff=0, local_differ=0,
                              local_max_lsb_diff=0, causes=dict.fromkeys(CAUSES, 0))
             for lay in int_layers}
    keep: dict[str, list] = {k: [] for k in ("core", "ref", "ref_out", "opt_out")}
    input_diff = 0
    for i in range(0, len(x), BATCH):
        xb = x[i:i + BATCH]
        xq = input_codes(q, xb)
        _, core = core_codes(qm, xq)
        ref_out, ref = ref_run.run(xb)
        opt_out, _ = opt_run.run(xb)
        if qm.graph.input_name in ref:
            input_diff += int(np.count_nonzero(ref[qm.graph.input_name] != xq))
        forced = {qm.graph.input_name: xq}
        for layer in int_layers:
            args = [forced[t] for t in layer.inputs]
            local = _layer(qm, layer, args)
            forced[layer.output] = ref.get(layer.output, local)
            if layer.output not in ref:
                continue
            o, c, st = ref[layer.output], core[layer.output], stats[layer.output]
            if layer.op.requantizes:
                causes = classify(real_codes(qm, layer, args), local,
                                  _layer(qm, layer, args, True), o, layer.act_min,
                                  layer.act_max,
                                  real_codes(qm, layer, args, True) if float_bias(layer)
                                  else None)
            else:
                causes = {"other": int(np.count_nonzero(local != o))}
            st["elements"] += int(c.size)
            st["differ"] += int(np.count_nonzero(c != o))
            st["max_lsb_diff"] = max(st["max_lsb_diff"], int(np.abs(c - o).max(initial=0)))
            st["local_differ"] += int(np.count_nonzero(local != o))
            st["local_max_lsb_diff"] = max(st["local_max_lsb_diff"],
                                           int(np.abs(local - o).max(initial=0)))
            for k, n in causes.items():
                st["causes"][k] += n
        keep["core"].append(core[logits])
        keep["ref"].append(ref.get(logits, ref_out))
        keep["ref_out"].append(ref_out)
        keep["opt_out"].append(opt_out)
    layers = [{"name": lay.name, "kind": lay.kind, "tensor": lay.output, **stats[lay.output]}
              for lay in int_layers if lay.output in q.acts]
    core_logits, ref_logits, ref_out, opt_out = (np.concatenate(keep[k]) for k in
                                                 ("core", "ref", "ref_out", "opt_out"))
    core_best, core_ties = _top1(core_logits)
    ref_best, ref_ties = _top1(ref_logits)
    ref_out_best, ref_out_ties = _top1(ref_out)
    opt_best, opt_ties = _top1(opt_out)
    report: dict[str, Any] = {
        "model": str(model_path), "eval": str(eval_path), "eval_samples": len(x),
        "config": cfg.fields(), "rounding": cfg.rounding, "warnings": list(qm.warnings),
        "logits": logits, "layers": layers,
        "input_code_differences": input_diff if qm.graph.input_name in q.acts else None,
        "bit_exact": all(lay["differ"] == 0 for lay in layers),
        "locally_exact_layers": [lay["name"] for lay in layers if lay["local_differ"] == 0],
        "reference": {
            "top1_agreement": float((ref_best == core_best).mean()),
            "output_top1_agreement": float((ref_out_best == core_best).mean()),
            "logits_identical_samples": (int((ref_logits == core_logits).reshape(
                len(x), -1).all(axis=1).sum()) if logits in q.acts else None),
            "ties": {"core_logits": int(core_ties.sum()), "logits": int(ref_ties.sum()),
                     "output": int(ref_out_ties.sum())}},
        "optimized": {
            "output_top1_agreement": float((opt_best == core_best).mean()),
            "output_top1_agreement_with_reference": float((opt_best == ref_out_best).mean()),
            "output_max_abs_diff_vs_reference": float(np.abs(opt_out - ref_out).max()),
            "ties": {"output": int(opt_ties.sum())}},
    }
    if y is not None:
        report["accuracy"] = {"core": float((core_best == y).mean()),
                              "reference": float((ref_out_best == y).mean()),
                              "optimized": float((opt_best == y).mean())}
    return report


def _causes(c: dict[str, int]) -> str:
    return ", ".join(f"{k} {n}" for k, n in c.items() if n) or "-"


def format_check(r: dict[str, Any]) -> str:
    """The human-readable report of :func:`check_report`."""
    cfg = r["config"]
    ref, opt = r["reference"], r["optimized"]
    n = r["eval_samples"]
    out = [f"QDQ model {r['model']}: {n} samples of {r['eval']}; the core {cfg['rows']}x"
           f"{cfg['cols']}, rounding {r['rounding']}", ""]
    if "accuracy" in r:
        a = r["accuracy"]
        pct = {k: f"{100 * v:.2f} %" for k, v in a.items()}
        out += table([["core integer path (the model scales and codes)", pct["core"]],
                      ["onnxruntime reference (no graph optimization)", pct["reference"]],
                      ["onnxruntime optimized (integer kernels, as deployed)", pct["optimized"]]],
                     ["flow", "top-1 accuracy"], "lr")
    same = ref["logits_identical_samples"]
    out += [f"  top-1 agreement with the reference: {100 * ref['top1_agreement']:.2f} % on the "
            f"{r['logits']!r} codes ({same}/{n} samples with identical codes; ties: core "
            f"{ref['ties']['core_logits']}, onnxruntime {ref['ties']['logits']})",
            f"  top-1 agreement with the optimized session: "
            f"{100 * opt['output_top1_agreement']:.2f} % on its output (ties "
            f"{opt['ties']['output']}); with the reference's: "
            f"{100 * opt['output_top1_agreement_with_reference']:.2f} % (outputs up to "
            f"{opt['output_max_abs_diff_vs_reference']:.3g} apart)"]
    if r["input_code_differences"]:
        out.append(f"  input codes: {r['input_code_differences']} differ from onnxruntime's")
    out += ["", "Per quantized tensor vs the reference: differing codes end to end (max LSB) and "
                "on onnxruntime's own input codes (local), by cause"]
    out += table([[lay["name"], lay["kind"], lay["elements"], lay["differ"], lay["max_lsb_diff"],
                   lay["local_differ"], lay["local_max_lsb_diff"], _causes(lay["causes"])]
                  for lay in r["layers"]],
                 ["layer", "kind", "elements", "differ", "max", "local", "max",
                  "causes of the local differences"], "llrrrrrl")
    if r["bit_exact"]:
        out.append("  bit-exact with onnxruntime's reference in every quantized tensor")
    else:
        out.append(f"  locally bit-exact: {', '.join(r['locally_exact_layers']) or 'none'}")
    out += ["  causes: tie = a rounding tie, the core's rounding mode vs ONNX's half to even; "
            "float bias = the model's float bias, rounded to int32 by the core; "
            f"ort float = within {NEAR} LSB of a tie, onnxruntime's float32 arithmetic crossed "
            "it; requantization = the op's integer scheme differs (e.g. the DPU's residual add "
            "rounds each term before the sum); core multiplier = the 31-bit fixed-point multiplier "
            "crossed a tie"]
    return "\n".join(out)
