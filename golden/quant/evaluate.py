"""The ``dcim calibrate`` flow: load data, calibrate, quantize, evaluate, map; one report dict.

Accuracy is reported for the float model under onnxruntime (FP32), for the golden integer
path per calibration method, and for onnxruntime's own static INT8 quantization (QDQ,
per-channel weights, MinMax calibration on the same calibration data) as the peer. Per layer:
SQNR of the INT8 output against the float tensor, and how many integer codes the fake-quant
float simulation gets differently from the integer path.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .calibrate import METHODS, calibrate_range
from ..config import CoreConfig
from .mapping import map_layers, totals
from .onnx_import import FloatGraph, load_model
from .qmodel import QModel, calibration_tensors, plan, quantize_model, run
from .scheme import dequantize, sqnr_from_sums

__all__ = ["BATCH", "Progress", "calibrate_report", "load_data", "ort_fp32", "ort_int8",
           "raised_weight_scales"]

#: Images per batch of every evaluation (bounds memory).
BATCH = 256
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
        raise ValueError(f"{what} data {path} is not a readable .npz archive ({exc})") from None
    if not isinstance(arrays, dict) or "x" not in arrays:
        raise ValueError(f"{what} data {path} has no array 'x' (keys: "
                         f"{', '.join(sorted(arrays)) or 'none'})")
    x = arrays["x"]
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{what} data {path}: x must be numeric, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{what} data {path} is empty (0 samples)")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0, 0])
        raise ValueError(f"{what} data {path}: x has {int(bad.sum())} NaN/Inf value(s) "
                         f"(first in sample {first})")
    graph.check_input(x, f"{what} data {path}")
    y = None
    if labels:
        if "y" not in arrays:
            raise ValueError(f"{what} data {path} has no labels 'y'")
        y = arrays["y"]
        if y.dtype.kind not in "iu" or y.shape != (len(x),):
            raise ValueError(f"{what} data {path}: y must be {len(x)} integer labels, got "
                             f"{y.dtype} {y.shape}")
    return x, y


def _batches(n: int, size: int = BATCH):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def _session(model_path: str | Path):
    """An onnxruntime CPU session, its input name and the batch size it accepts (the model's
    fixed batch dimension, or :data:`BATCH`)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise ValueError(f"onnxruntime cannot load {model_path}: {_first_line(exc)}") from None
    inp = sess.get_inputs()[0]
    dim = inp.shape[0] if inp.shape else None
    return sess, inp.name, dim if isinstance(dim, int) and dim > 0 else BATCH


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ort_batches(x: np.ndarray, size: int, model_path) -> list[np.ndarray]:
    if size != BATCH and len(x) % size:
        raise ValueError(f"{model_path} has a fixed batch dimension of {size}; the data has "
                         f"{len(x)} samples, not a multiple of it")
    return [x[s] for s in _batches(len(x), size)]


def ort_fp32(model_path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run the float model under onnxruntime (CPU), in batches the model accepts.

    Raises
    ------
    ValueError
        onnxruntime cannot load or run the model.
    """
    sess, name, size = _session(model_path)
    try:
        return np.concatenate([sess.run(None, {name: b})[0]
                               for b in _ort_batches(x, size, model_path)])
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"onnxruntime cannot run {model_path}: {_first_line(exc)}") from None


def ort_int8(model_path: str | Path, calib_x: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Quantize with onnxruntime (static, QDQ, per-channel int8 weights, int8 activations,
    MinMax on ``calib_x``) and run it on ``x``.

    Raises
    ------
    ValueError
        onnxruntime cannot quantize or run the model.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)

    _, name, size = _session(model_path)
    batches = _ort_batches(calib_x, size, model_path)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {name: batch}

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "int8.onnx"
            try:
                quantize_static(str(model_path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QInt8,
                                weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            except Exception as exc:
                raise ValueError(f"onnxruntime cannot quantize {model_path}: "
                                 f"{_first_line(exc)}") from None
            return ort_fp32(out, x)
    finally:
        root.setLevel(level)


def _accuracy(prob: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(prob).argmax(axis=1) == y).mean())


@dataclasses.dataclass
class _LayerStats:
    sig: float = 0.0
    err: float = 0.0
    mismatches: int = 0
    elements: int = 0
    max_diff: int = 0

    def sqnr(self) -> float:
        return sqnr_from_sums(self.sig, self.err)


def _evaluate(qm: QModel, x: np.ndarray, y: np.ndarray, progress: Progress, stage: str
              ) -> dict[str, Any]:
    names = [lay.output for lay in qm.layers if lay.op.int_output]
    stats = {t: _LayerStats() for t in names}
    correct = agree = 0
    for s in _batches(len(x)):
        ref = qm.graph.forward(x[s], keep_all=True)
        prob, codes = run(qm, x[s], keep=True)
        _, fake = run(qm, x[s], fake=True, keep=True)
        correct += int((prob.argmax(1) == y[s]).sum())
        agree += int((prob.argmax(1) == ref[qm.graph.output_name].argmax(1)).sum())
        for t in names:
            st = stats[t]
            deq = dequantize(codes[t], qm.qparams[t])
            st.sig += float(np.sum(ref[t] ** 2))
            st.err += float(np.sum((ref[t] - deq) ** 2))
            diff = np.abs(codes[t] - fake[t])
            st.mismatches += int(np.count_nonzero(diff))
            st.elements += diff.size
            st.max_diff = max(st.max_diff, int(diff.max(initial=0)))
        progress(stage, s.stop, len(x))
    layers = []
    for lay in qm.layers:
        if not lay.op.int_output:
            continue
        st = stats[lay.output]
        layers.append({"name": lay.name, "kind": lay.kind, "tensor": lay.output,
                       "sqnr_db": st.sqnr(), "fakequant_mismatches": st.mismatches,
                       "elements": st.elements, "max_lsb_diff": st.max_diff})
    return {"accuracy": correct / len(x), "top1_agreement_with_float": agree / len(x),
            "layers": layers}


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
                     progress: Progress = _no_progress, models: dict[str, QModel] | None = None
                     ) -> dict[str, Any]:
    """Run the whole flow and return the report (JSON-serializable apart from ``inf``).

    ``models``, if given, receives the quantized model of every method, by method name.

    Raises
    ------
    FileNotFoundError, ValueError
        Bad model or data (see :func:`dcim.golden.quant.onnx_import.load_model`,
        :func:`load_data`), unknown method, or a configuration the scheme cannot use.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"calibration method must be one of {', '.join(METHODS)} or all, "
                             f"got {m!r}")
    graph = load_model(model_path)
    calib_x, _ = load_data(calib_path, graph, "calibration", labels=False)
    eval_x, eval_y = load_data(eval_path, graph, "evaluation")
    layers = plan(graph, residual_in_dpu=cfg.dpu_residual)
    tensors = calibration_tensors(graph, layers)
    progress("float reference", 0, len(calib_x))
    chunks: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    for s in _batches(len(calib_x)):
        env = graph.forward(calib_x[s], keep_all=True)
        for t in tensors:
            chunks[t].append(env[t].reshape(-1).astype(np.float32))
        progress("float reference", s.stop, len(calib_x))
    values = {t: np.concatenate(v) for t, v in chunks.items()}
    del chunks
    report: dict[str, Any] = {
        "model": str(model_path), "calib": str(calib_path), "eval": str(eval_path),
        "calib_samples": len(calib_x), "eval_samples": len(eval_x), "config": cfg.fields(),
        "rounding": cfg.rounding, "methods": {}, "warnings": []}
    progress("onnxruntime fp32", 0, 1)
    fp32 = ort_fp32(model_path, eval_x)
    report["accuracy_fp32"] = _accuracy(fp32, eval_y)
    progress("onnxruntime fp32", 1, 1)
    if peer:
        progress("onnxruntime int8 (QDQ)", 0, 1)
        try:
            prob = ort_int8(model_path, calib_x, eval_x)
            report["accuracy_ort_int8"] = _accuracy(prob, eval_y)
        except ValueError as exc:  # the peer is a comparison; its failure is not ours
            report["warnings"].append(f"no ORT INT8 peer: {exc}")
        progress("onnxruntime int8 (QDQ)", 1, 1)
    for method in methods:
        ranges = {}
        for j, t in enumerate(tensors):
            ranges[t] = calibrate_range(method, values[t], cfg)
            progress(f"calibrate {method}", j + 1, len(tensors))
        qm = quantize_model(graph, layers, ranges, cfg)
        if models is not None:
            models[method] = qm
        result = _evaluate(qm, eval_x, eval_y, progress, f"int8 {method}")
        result["ranges"] = {t: list(r) for t, r in ranges.items()}
        result["qparams"] = {t: {"scale": q.scale, "zero_point": q.zero_point}
                             for t, q in qm.qparams.items()}
        result["warnings"] = qm.warnings
        result["raised_weight_scales"] = raised_weight_scales(qm)
        for w in qm.warnings:
            if w not in report["warnings"]:
                report["warnings"].append(w)
        report["methods"][method] = result
    # Best: highest accuracy; ties go to the higher SQNR of the last integer tensor.
    best = max(methods, key=lambda m: (report["methods"][m]["accuracy"],
                                       report["methods"][m]["layers"][-1]["sqnr_db"]))
    report["best_method"] = best
    report["best_drop_vs_fp32"] = report["accuracy_fp32"] - report["methods"][best]["accuracy"]
    shapes = {k: v.shape for k, v in graph.forward(eval_x[:1], keep_all=True).items()}
    maps = map_layers(cfg, layers, shapes, batch)
    report["mapping"] = {"layers": [dataclasses.asdict(m) for m in maps],
                         "totals": dataclasses.asdict(totals(cfg, maps, clock_mhz, batch))}
    return report
