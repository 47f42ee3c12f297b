"""INT8 on the core for ``dcim calibrate``: ONNX import, quantization, calibration, the exact
integer inference, the mapping onto the array, vector export and the report.

Modules, in the order of the flow:

``onnx_prep``, ``onnx_import``, ``onnx_builders``
    ONNX model -> (Identity removed, constants folded, shapes inferred, with onnx's tools) ->
    :class:`~dcim.golden.quant.onnx_import.FloatGraph` (ops in execution order,
    BatchNormalization and constant bias adds folded), with a float64 reference.
``ops``, ``pool``, ``host``, ``matmul``
    One class per op kind: float reference, quantization, integer path, fake-quant twin;
    ``pool`` holds pooling, ``host`` the float activations between dequantize and quantize,
    ``matmul`` the weighted ops the array computes (Conv, Gemm, grouped Conv).
``calibrate``, ``scheme``
    Activation-range calibrators; the quantization scheme's maths (scales, zero points,
    weights, bias, fake rounding, SQNR).
``qmodel``
    Fusion plan, quantized model, :func:`~dcim.golden.quant.qmodel.run`.
``mapping``, ``export``, ``evaluate``, ``metrics``, ``ort_peer``
    Tiles, passes, cycles and utilization; one layer's tiles as replay files; the whole flow
    and its report, with its figures (top-1 with ties, agreement, logit SQNR, per-layer
    clipping) and onnxruntime's FP32 reference and INT8 peer.
``qdq``, ``check``
    Pre-quantized (QDQ) ONNX models with their own scales, zero points and integer weights on
    the same integer path; the comparison with onnxruntime running them (``dcim check``).

Built on the arithmetic spec (:mod:`dcim.golden.arith`) and the bit-accurate model
(:mod:`dcim.golden.model`); imports neither amaranth nor cocotb.
"""
