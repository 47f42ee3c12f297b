"""onnxruntime beside the golden integer path: the FP32 reference and the INT8 peer.

The peer is onnxruntime's own static INT8 flow, run the way its documentation recommends:
``quant_pre_process`` (onnxruntime's graph optimizer fuses BatchNormalization into the Conv
before it, folds constants; onnx shape inference; no symbolic shape inference, which needs
sympy), then ``quantize_static`` (QDQ, per-channel int8 weights, int8 activations) with one of
its calibrators, :data:`ORT_METHODS`, at their defaults, on the same calibration data as the
golden path.

Everything onnxruntime writes goes to a temporary directory of its own: a model in a read-only
folder is quantized from a copy (onnxruntime's shape inference writes ``<model>-inferred.onnx``
next to the model it is given). A model older than :data:`MIN_OPSET` is upgraded with
``onnx.version_converter`` first (per-channel DequantizeLinear needs opset 13); if that fails,
:class:`PeerUnavailable` says so.

Logits are read from every model the same way (:func:`logits_name`): the input of a final
Softmax (through QuantizeLinear/DequantizeLinear pairs and Identity nodes), else the output; in a
QDQ model that is the DequantizeLinear output the Softmax reads.

What onnxruntime prints (C++ log lines on file descriptors 1 and 2, Python ``logging``,
``warnings``, ``print``) is kept in a list by :func:`capture`, never shown on the terminal.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["MIN_OPSET", "ORT_METHODS", "PeerUnavailable", "calibration_reader", "capture",
           "logits_name",
           "ort_fp32", "ort_int8", "prepare_peer_model", "quantize_peer", "run_logits"]

#: The calibration methods of the peer: ``dcim calibrate`` name -> onnxruntime's
#: ``CalibrationMethod`` name.
ORT_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}
#: Lowest opset onnxruntime's per-channel QDQ output is valid in.
MIN_OPSET = 13
#: Images per onnxruntime batch (a model with a fixed batch dimension uses that instead).
BATCH = 256

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class PeerUnavailable(Exception):
    """The INT8 peer cannot run; the message (one line) says why."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]):
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.levelname}: {record.getMessage()}")
        except Exception:  # a record that cannot format itself: keep going
            pass


def _flush_c() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # no libc (not on this platform): C buffers are flushed at exit
        pass


@contextlib.contextmanager
def capture(log: list[str]):
    """Run a block with onnxruntime's output appended to ``log`` (one entry per non-empty
    line, colour codes removed) instead of the terminal: file descriptors 1 and 2 (its C++
    logger), ``sys.stdout``/``sys.stderr`` (``print``), the root logger (WARNING and up) and
    Python warnings."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _flush_c()
    records: list[str] = []
    handler = _ListHandler(records)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    py_out, py_err = io.StringIO(), io.StringIO()
    sink = tempfile.TemporaryFile()
    saved_fds: list[tuple[int, int]] = []
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved_fds.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        root.handlers = [handler]
        root.setLevel(logging.WARNING)
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(py_out), contextlib.redirect_stderr(py_err):
            warnings.simplefilter("always")
            try:
                yield
            finally:
                records.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        _flush_c()
        for fd, saved in saved_fds:
            os.dup2(saved, fd)
            os.close(saved)
        root.handlers = saved_handlers
        root.setLevel(saved_level)
        sink.seek(0)
        text = sink.read().decode("utf-8", errors="replace")
        sink.close()
        for chunk in (text, py_out.getvalue(), py_err.getvalue(), "\n".join(records)):
            log.extend(ln for ln in (_ANSI.sub("", raw).rstrip() for raw in chunk.splitlines())
                       if ln.strip())


# ----------------------------------------------------------------------------------------------
def logits_name(model) -> str:
    """The logit tensor of an ONNX model: the input of a final Softmax, found from the graph
    output back through Identity and QuantizeLinear/DequantizeLinear nodes; else the output."""
    producer = {o: n for n in model.graph.node for o in n.output}
    out = model.graph.output[0].name
    name = out
    for _ in range(len(model.graph.node) + 1):
        node = producer.get(name)
        if node is None:
            break
        if node.op_type == "Softmax" and node.domain in ("", "ai.onnx"):
            return node.input[0]
        if node.op_type not in ("Identity", "QuantizeLinear", "DequantizeLinear"):
            break
        name = node.input[0]
    return out


def _with_logits(model) -> tuple[bytes, str]:
    """The serialized model with its logit tensor as an extra output (if it is not the output),
    and the logit tensor's name."""
    from onnx import TensorProto, helper

    name = logits_name(model)
    if name not in [o.name for o in model.graph.output]:
        model = type(model).FromString(model.SerializeToString())
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return model.SerializeToString(), name


def _session(model, what: str, optimize: bool = True):
    """An onnxruntime CPU session (``model``: a path or serialized bytes; graph optimizations
    off unless ``optimize``), its input name and the batch size it accepts (the model's fixed
    batch dimension, or :data:`BATCH`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise InputError(f"onnxruntime cannot load {what}: {_first_line(exc)}") from None
    inp = sess.get_inputs()[0]
    dim = inp.shape[0] if inp.shape else None
    return sess, inp.name, dim if isinstance(dim, int) and dim > 0 else BATCH


def _batches(x: np.ndarray, size: int, what) -> list[np.ndarray]:
    if size != BATCH and len(x) % size:
        raise InputError(f"{what} has a fixed batch dimension of {size}; the data has "
                         f"{len(x)} samples, not a multiple of it")
    return [x[i:i + size] for i in range(0, len(x), size)]


def _run(model, what, x: np.ndarray, output: str | None = None, optimize: bool = True
         ) -> np.ndarray:
    sess, name, size = _session(model, what, optimize)
    want = [output] if output is not None else None
    try:
        return np.concatenate([sess.run(want, {name: b})[0] for b in _batches(x, size, what)])
    except ValueError:
        raise
    except Exception as exc:
        raise InputError(f"onnxruntime cannot run {what}: {_first_line(exc)}") from None


def run_logits(model_path: str | Path, x: np.ndarray, log: list[str], optimize: bool = True
               ) -> np.ndarray:
    """The logits (:func:`logits_name`) of a model under onnxruntime (CPU) on ``x``, in
    batches the model accepts; onnxruntime's output goes to ``log``. With ``optimize`` false,
    graph optimizations are off: a QDQ model then runs as written, every DequantizeLinear ->
    float op -> QuantizeLinear in float, instead of onnxruntime's fused integer kernels.

    Raises
    ------
    ValueError
        onnx or onnxruntime cannot load or run the model, or the data does not fit its fixed
        batch dimension.
    """
    import onnx

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:
        raise InputError(f"onnx cannot read {model_path}: {_first_line(exc)}") from None
    data, name = _with_logits(model)
    with capture(log):
        return _run(data, model_path, x, name, optimize)


def ort_fp32(model_path: str | Path, x: np.ndarray, log: list[str] | None = None) -> np.ndarray:
    """The model's output under onnxruntime (CPU) on ``x``, in batches the model accepts.

    Raises
    ------
    ValueError
        onnxruntime cannot load or run the model.
    """
    with capture([] if log is None else log):
        return _run(model_path, model_path, x)


# ----------------------------------------------------------------------------------------------
def _upgrade(model, version: int):
    import onnx

    return onnx.version_converter.convert_version(model, version)


def prepare_peer_model(model_path: str | Path, tmp: Path, log: list[str], preprocess: bool = True
                       ) -> tuple[Path, list[str]]:
    """Copy the model into ``tmp`` at opset :data:`MIN_OPSET` or newer, pre-processed with
    ``quant_pre_process`` if ``preprocess``; return its path and what was done (one note per
    step).

    Raises
    ------
    PeerUnavailable
        The model cannot be read, or is older than opset 13 and onnx's version converter
        cannot upgrade it.
    """
    import onnx

    from .onnx_prep import opset

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:
        raise PeerUnavailable(f"onnx cannot read {model_path}: {_first_line(exc)}") from None
    notes = []
    version = opset(model)
    if version < MIN_OPSET:
        try:
            with capture(log):
                model = _upgrade(model, MIN_OPSET)
        except Exception as exc:  # the converter's own errors
            raise PeerUnavailable(
                f"the model is opset {version}, onnxruntime's per-channel QDQ needs opset "
                f"{MIN_OPSET}, and onnx's version converter cannot upgrade it "
                f"({_first_line(exc)})") from None
        notes.append(f"upgraded from opset {version} to {MIN_OPSET} by onnx.version_converter")
    path = tmp / "model.onnx"
    onnx.save(model, str(path))
    if preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        pre = tmp / "preprocessed.onnx"
        try:
            with capture(log):
                quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
            onnx.load(str(pre))
        except Exception as exc:
            notes.append(f"quant_pre_process failed ({_first_line(exc)}); quantized without it")
        else:
            path = pre
            notes.append("pre-processed by quant_pre_process")
    return path, notes


def calibration_reader(name: str, batches):
    """An onnxruntime ``CalibrationDataReader`` that feeds the arrays of ``batches`` (float32,
    one per call) to the input ``name``, then None."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            batch = next(self.it, None)
            return None if batch is None else {name: batch}

    return Reader()


def quantize_peer(path: Path, calib_x: np.ndarray, method: str, tmp: Path, log: list[str]
                  ) -> Path:
    """``quantize_static`` of the model at ``path`` (QDQ, per-channel int8 weights, int8
    activations, ``method`` of :data:`ORT_METHODS` on ``calib_x``) into ``tmp``.

    Raises
    ------
    ValueError
        Unknown method, or onnxruntime cannot quantize the model.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if method not in ORT_METHODS:
        raise InputError(f"onnxruntime calibration method must be one of "
                         f"{', '.join(ORT_METHODS)}, got {method!r}")
    with capture(log):
        _, name, size = _session(path, "the model")
    batches = _batches(calib_x, size, "the model")

    out = tmp / f"int8_{method}.onnx"
    try:
        with capture(log):
            quantize_static(str(path), str(out), calibration_reader(name, batches),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, ORT_METHODS[method]))
    except Exception as exc:
        raise InputError(f"onnxruntime cannot quantize the model: {_first_line(exc)}") from None
    return out


def ort_int8(model_path: str | Path, calib_x: np.ndarray, x: np.ndarray, method: str = "minmax",
             log: list[str] | None = None, preprocess: bool = True) -> np.ndarray:
    """The peer's logits on ``x``: :func:`prepare_peer_model`, :func:`quantize_peer` and
    :func:`run_logits`, in a temporary directory.

    Raises
    ------
    PeerUnavailable
        See :func:`prepare_peer_model`.
    ValueError
        onnxruntime cannot quantize or run the model.
    """
    log = [] if log is None else log
    with tempfile.TemporaryDirectory(prefix="dcim-ort-") as tmp:
        path, _ = prepare_peer_model(model_path, Path(tmp), log, preprocess)
        return run_logits(quantize_peer(path, calib_x, method, Path(tmp), log), x, log)
