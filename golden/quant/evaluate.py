"""The ``dcim calibrate`` flow: load data, calibrate, quantize, evaluate, map; one report dict.

Per flow (the float model under onnxruntime, FP32; the golden integer path per calibration
method; onnxruntime's own static INT8, QDQ with per-channel weights, per calibrator it has, on
the same calibration data, as the peer: :mod:`dcim.golden.quant.ort_peer`): top-1 accuracy
with ties counted as wrong, the number of ties, top-1 agreement with FP32 and the SQNR of the
logits against FP32's (:mod:`dcim.golden.quant.metrics`). Per layer of each method: SQNR of the
INT8 output against the float tensor over all values and over the values inside the
quantization range, the fraction clipped, and how many integer codes the fake-quant float
simulation gets differently from the integer path; and the images/s of the integer path (its
fast, bit-identical form: :mod:`dcim.golden.quant.fastpath`) on this machine. Labels are checked
against the model's classes before any long work.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .calibrate import METHODS, calibrate_range
from ..config import CoreConfig
from .mapping import map_layers, totals
from .metrics import LayerStats, flow_metrics, top1
from .onnx_import import FloatGraph, load_model
from .ort_peer import (ORT_METHODS, PeerUnavailable, ort_fp32, ort_int8, prepare_peer_model,
                       quantize_peer, run_logits)
from .qmodel import QModel, calibration_tensors, plan, quantize_model, run
from .scheme import dequantize

__all__ = ["BATCH", "BATCH_BYTES", "Progress", "batch_size", "calibrate_report", "check_labels",
           "load_data", "ort_fp32", "ort_int8", "raised_weight_scales"]

#: Images per batch of every evaluation (bounds memory).
BATCH = 256
#: Bytes one sample's float64 tensors (all of them, as the float reference keeps them) may take
#: in a batch: a model with larger activations runs fewer than :data:`BATCH` images at once.
BATCH_BYTES = 256 << 20
#: ``progress(stage, done, total)``.
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


def load_data(path: str | Path, graph: FloatGraph, what: str, labels: bool = True
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a data split: an ``.npz`` with ``x`` (float samples, batch first) and ``y`` (int
    labels, needed if ``labels``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not an ``.npz`` archive, ``x`` missing, empty, not matching the model's input shape, NaN
        or infinite values, or labels missing or of the wrong shape (one line each, naming
        the split).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} data file not found: {path}")
    try:
        with open(path, "rb") as fh:
            data = np.load(fh, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an archive of x and y")
            with data:
                arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InputError(f"{what} data {path} is not a readable .npz archive ({exc})") from None
    if not isinstance(arrays, dict) or "x" not in arrays:
        raise InputError(f"{what} data {path} has no array 'x' (keys: "
                         f"{', '.join(sorted(arrays)) or 'none'})")
    x = arrays["x"]
    if x.dtype.kind not in "fiu":
        raise InputError(f"{what} data {path}: x must be numeric, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise InputError(f"{what} data {path} is empty (0 samples)")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0, 0])
        raise InputError(f"{what} data {path}: x has {int(bad.sum())} NaN/Inf value(s) "
                         f"(first in sample {first})")
    graph.check_input(x, f"{what} data {path}")
    y = None
    if labels:
        if "y" not in arrays:
            raise InputError(f"{what} data {path} has no labels 'y'")
        y = arrays["y"]
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise InputError(f"{what} data {path}: y must be {len(x)} integer labels, got "
                             f"{y.dtype} {y.shape}")
    return x, y


def _batches(n: int, size: int = BATCH):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def batch_size(graph: FloatGraph, x: np.ndarray) -> int:
    """Images per batch for ``graph``: :data:`BATCH`, or as many as keep one batch's float64
    tensors within :data:`BATCH_BYTES` (at least 1), measured on ``x[:1]``."""
    per = sum(v.nbytes for v in graph.forward(x[:1], keep_all=True).values())
    return max(1, min(BATCH, BATCH_BYTES // max(per, 1)))


def check_labels(graph: FloatGraph, x: np.ndarray, y: np.ndarray, what: str) -> int:
    """Check that the model gives one score per class and that every label names one of its
    classes; return the number of classes.

    Raises
    ------
    ValueError
        The model's output is not one vector per sample, or a label is outside
        ``0 .. classes - 1`` (one line: the labels, the allowed range, the first bad value).
    """
    shape = graph.shapes.get(graph.output_name)
    if shape is None or not all(isinstance(d, int) and d > 0 for d in shape):
        shape = graph.forward(x[:1])[graph.output_name].shape[1:]
    if len(shape) != 1:
        raise InputError(f"model output {graph.output_name!r} has samples of shape "
                         f"{tuple(shape)}; top-1 accuracy needs one score per class, "
                         "shape (classes,)")
    classes = int(shape[0])
    bad = np.flatnonzero((y < 0) | (y >= classes))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{what}: labels y must be in 0..{classes - 1} (the model has "
                         f"{classes} classes), got {int(y[i])} (sample {i}; {bad.size} "
                         f"label(s) out of range)")
    return classes


def _logit_tensor(qm: QModel) -> str:
    """The last integer tensor: the logits (the input of a final float Softmax, or the
    output)."""
    return [lay.output for lay in qm.layers if lay.op.int_output][-1]


def _evaluate(qm: QModel, x: np.ndarray, progress: Progress, stage: str,
              timing: dict[str, float] | None = None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Per-layer statistics (:class:`~dcim.golden.quant.metrics.LayerStats`) of the integer
    path over ``x``, and the integer codes of the logits, ``(N, classes)``; ``timing``, if
    given, gets the wall seconds of the integer path (``seconds``)."""
    names = [lay.output for lay in qm.layers if lay.op.int_output]
    stats = {t: LayerStats() for t in names}
    logit = _logit_tensor(qm)
    codes_out = []
    for s in _batches(len(x), batch_size(qm.graph, x)):
        ref = qm.graph.forward(x[s], keep_all=True)
        t0 = time.perf_counter()
        _, codes = run(qm, x[s], keep=True, fast=True)
        if timing is not None:
            timing["seconds"] = timing.get("seconds", 0.0) + time.perf_counter() - t0
        _, fake = run(qm, x[s], fake=True, keep=True)
        codes_out.append(codes[logit].reshape(s.stop - s.start, -1))
        for t in names:
            stats[t].add(ref[t], codes[t], fake[t], qm.qparams[t], qm.cfg.act_range)
        progress(stage, s.stop, len(x))
    layers = [{"name": lay.name, "kind": lay.kind, "tensor": lay.output,
               **stats[lay.output].as_dict()} for lay in qm.layers if lay.op.int_output]
    return layers, np.concatenate(codes_out)


def _peer(report: dict[str, Any], model_path, calib_x, eval_x, eval_y, fp32, methods,
          preprocess: bool, progress: Progress, logits: dict[str, np.ndarray] | None) -> None:
    """Run onnxruntime's INT8 peer for the calibrators of ``methods`` that it has (MinMax for
    none) into ``report["ort_int8"]``: the metrics of onnxruntime's default session, and under
    ``unoptimized`` those of the same QDQ model with graph optimizations off (its QDQ
    arithmetic in float, without the fused integer kernels). Why a peer is missing goes, one
    line each, to ``report["ort_int8_missing"]`` and the warnings."""
    log = report["ort_log"]
    wanted = [m for m in methods if m in ORT_METHODS] or ["minmax"]
    missing = report["ort_int8_missing"]
    stage = "onnxruntime int8 (QDQ)"
    progress(stage, 0, len(wanted))
    with tempfile.TemporaryDirectory(prefix="dcim-ort-") as tmp:
        try:
            path, notes = prepare_peer_model(model_path, Path(tmp), log, preprocess)
        except PeerUnavailable as exc:
            missing.append(str(exc))
            notes = None
        report["ort_int8_notes"] = notes or []
        for j, m in enumerate(wanted if notes is not None else []):
            try:
                qdq = quantize_peer(path, calib_x, m, Path(tmp), log)
                out = run_logits(qdq, eval_x, log)
                res = flow_metrics(out, eval_y, fp32)
                plain = flow_metrics(run_logits(qdq, eval_x, log, optimize=False), eval_y, fp32)
            except ValueError as exc:  # the peer is a comparison; its failure is not ours
                missing.append(f"{ORT_METHODS[m]}: {exc}")
                continue
            finally:
                progress(stage, j + 1, len(wanted))
            report["ort_int8"][m] = {"calibration": ORT_METHODS[m], **res,
                                     "unoptimized": plain}
            if logits is not None:
                logits[f"ort_int8_{m}_logits"] = out.reshape(len(out), -1).astype(np.float32)
                logits[f"ort_int8_{m}_pred"] = top1(out)
    if notes is None:
        progress(stage, len(wanted), len(wanted))
    for reason in missing:
        report["warnings"].append(f"no ORT INT8 peer: {reason}")
    if report["ort_int8"]:
        report["accuracy_ort_int8"] = max(r["accuracy"] for r in report["ort_int8"].values())


def raised_weight_scales(qm: QModel) -> dict[str, list[dict[str, Any]]]:
    """Per weighted layer, the output channels whose weight scale was raised so that the int32
    bias fits: ``{layer: [{"channel", "old_scale", "new_scale"}, ...]}`` (layers with none
    left out)."""
    return {lay.name: [{"channel": c, "old_scale": old, "new_scale": new}
                       for c, old, new in lay.raised_scales]
            for lay in qm.layers if lay.raised_scales}


def calibrate_report(model_path: str | Path, calib_path: str | Path, eval_path: str | Path,
                     cfg: CoreConfig, methods: tuple[str, ...] = METHODS,
                     clock_mhz: float = 200.0, batch: int = 1, peer: bool = True,
                     progress: Progress = _no_progress, models: dict[str, QModel] | None = None,
                     logits: dict[str, np.ndarray] | None = None, peer_preprocess: bool = True
                     ) -> dict[str, Any]:
    """Run the whole flow and return the report (JSON-serializable apart from ``inf``).

    ``models``, if given, receives the quantized model of every method, by method name;
    ``logits``, if given, the per-sample arrays of docs/calibration.md (``labels``,
    ``fp32_logits``, ``fp32_pred``, ``int8_<method>_codes`` ...), by name. ``peer_preprocess``
    runs onnxruntime's ``quant_pre_process`` before the peer's quantization.

    Raises
    ------
    FileNotFoundError, ValueError
        Bad model or data (see :func:`dcim.golden.quant.onnx_import.load_model`,
        :func:`load_data`, :func:`check_labels`), unknown method, or a configuration the
        scheme cannot use.
    """
    for m in methods:
        if m not in METHODS:
            raise InputError(f"calibration method must be one of {', '.join(METHODS)} or all, "
                             f"got {m!r}")
    graph = load_model(model_path)
    calib_x, _ = load_data(calib_path, graph, "calibration", labels=False)
    eval_x, eval_y = load_data(eval_path, graph, "evaluation")
    classes = check_labels(graph, eval_x, eval_y, f"evaluation data {eval_path}")
    layers = plan(graph, residual_in_dpu=cfg.dpu_residual)
    tensors = calibration_tensors(graph, layers)
    progress("float reference", 0, len(calib_x))
    chunks: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for s in _batches(len(calib_x), batch_size(graph, calib_x)):
        env = graph.forward(calib_x[s], keep_all=True)
        for t in tensors:
            chunks[t].append(env[t].reshape(-1).astype(np.float32))
        progress("float reference", s.stop, len(calib_x))
    values = {t: np.concatenate(v) for t, v in chunks.items()}
    del chunks
    report: dict[str, Any] = {
        "model": str(model_path), "calib": str(calib_path), "eval": str(eval_path),
        "calib_samples": len(calib_x), "eval_samples": len(eval_x), "classes": classes,
        "config": cfg.fields(), "rounding": cfg.rounding, "methods": {}, "ort_int8": {},
        "ort_int8_missing": [], "ort_int8_notes": [], "warnings": [], "ort_log": []}
    progress("onnxruntime fp32", 0, 1)
    fp32 = run_logits(model_path, eval_x, report["ort_log"])
    fp32 = fp32.reshape(len(fp32), -1)
    if fp32.shape[1] != classes:
        raise InputError(f"onnxruntime gives {fp32.shape[1]} logits per sample for "
                         f"{model_path}, the imported model {classes}")
    report["fp32"] = flow_metrics(fp32, eval_y)
    report["accuracy_fp32"] = report["fp32"]["accuracy"]
    progress("onnxruntime fp32", 1, 1)
    if logits is not None:
        logits.update(labels=eval_y.astype(np.int64), fp32_logits=fp32.astype(np.float32),
                      fp32_pred=top1(fp32))
    if peer:
        _peer(report, model_path, calib_x, eval_x, eval_y, fp32, methods, peer_preprocess,
              progress, logits)
    else:
        report["ort_int8_missing"].append("not requested")
    for method in methods:
        ranges = {}
        for j, t in enumerate(tensors):
            ranges[t] = calibrate_range(method, values[t], cfg)
            progress(f"calibrate {method}", j + 1, len(tensors))
        qm = quantize_model(graph, layers, ranges, cfg)
        if models is not None:
            models[method] = qm
        timing: dict[str, float] = {}
        lay_stats, codes = _evaluate(qm, eval_x, progress, f"int8 {method}", timing)
        qp = qm.qparams[_logit_tensor(qm)]
        deq = dequantize(codes, qp)
        result = flow_metrics(deq, eval_y, fp32)
        result["layers"] = lay_stats
        result["images_per_s"] = len(eval_x) / timing["seconds"]
        result["ranges"] = {t: list(r) for t, r in ranges.items()}
        result["qparams"] = {t: {"scale": q.scale, "zero_point": q.zero_point}
                             for t, q in qm.qparams.items()}
        result["warnings"] = qm.warnings
        result["raised_weight_scales"] = raised_weight_scales(qm)
        for w in qm.warnings:
            if w not in report["warnings"]:
                report["warnings"].append(w)
        report["methods"][method] = result
        if logits is not None:
            logits[f"int8_{method}_codes"] = codes.astype(np.int8)
            logits[f"int8_{method}_logits"] = deq.astype(np.float32)
            logits[f"int8_{method}_pred"] = top1(codes)
            logits[f"int8_{method}_scale"] = np.float64(qp.scale)
            logits[f"int8_{method}_zero_point"] = np.int64(qp.zero_point)
    # Best: highest accuracy (ties count as wrong); then the higher top-1 agreement with FP32;
    # then the higher logit SQNR.
    best = max(methods, key=lambda m: (report["methods"][m]["accuracy"],
                                       report["methods"][m]["top1_agreement_with_fp32"],
                                       report["methods"][m]["logit_sqnr_db"]))
    report["best_method"] = best
    report["best_drop_vs_fp32"] = report["accuracy_fp32"] - report["methods"][best]["accuracy"]
    shapes = {k: v.shape for k, v in graph.forward(eval_x[:1], keep_all=True).items()}
    maps = map_layers(cfg, layers, shapes, batch)
    report["mapping"] = {"layers": [dataclasses.asdict(m) for m in maps],
                         "totals": dataclasses.asdict(totals(cfg, maps, clock_mhz, batch))}
    return report
