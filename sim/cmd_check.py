"""Check a pre-quantized (QDQ) ONNX model on the core against onnxruntime running it.

Reads the model's QuantizeLinear/DequantizeLinear pairs (onnxruntime's quantize_static with
QuantFormat.QDQ, or a PyTorch export: int8/uint8 activations per tensor, int8 weights per
channel or per tensor, int32 or float bias), runs it through the golden model's exact integer
path with the model's own scales, zero points and codes (no calibration), and compares with
onnxruntime on the same model: top-1 agreement and accuracy, and per quantized tensor the codes
that differ end to end and on onnxruntime's own input codes, with their cause (rounding ties,
onnxruntime's float32 arithmetic, the op's requantization scheme, the fixed-point multiplier).

Data: an .npz with x (float samples, batch first) and optionally y (int labels).

Example: dcim check examples/digits_cnn_qdq.onnx --eval examples/digits_eval.npz --rounding rne
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from ..golden.errors import InputError
from ..golden.fileio import check_output_file, write_atomic
from ..golden.quant.check import check_report, format_check
from .cli import add_config_args, config_from_args
from .cmd_calibrate import _jsonable


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim check``."""
    parser.add_argument("model", type=Path, metavar="MODEL.onnx",
                        help="quantized (QDQ) ONNX model")
    parser.add_argument("--eval", type=Path, required=True, metavar="DATA.npz",
                        help="evaluation data (x, optionally y)")
    parser.add_argument("--json", type=Path, metavar="REPORT.json", help="write the full report")
    parser.add_argument("--min-agreement", type=float, metavar="PCT",
                        help="exit 1 if the top-1 agreement with onnxruntime's reference is "
                             "below PCT %%")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    """Check and print the report."""
    cfg = config_from_args(args)
    if args.min_agreement is not None and not math.isfinite(args.min_agreement):
        raise InputError(f"--min-agreement must be a finite percentage, got "
                         f"{args.min_agreement}")
    check_output_file("--json", args.json)
    report = check_report(args.model, args.eval, cfg)
    for w in report["warnings"]:
        print(f"dcim: warning: {w}", file=sys.stderr)
    print(format_check(report))
    if args.json is not None:
        write_atomic(args.json, json.dumps(_jsonable(report), indent=2) + "\n")
        print(f"wrote {args.json}")
    agree = 100 * report["reference"]["top1_agreement"]
    if args.min_agreement is not None and agree < args.min_agreement:
        print(f"dcim: top-1 agreement with onnxruntime is {agree:.2f} % (limit "
              f"{args.min_agreement} %)", file=sys.stderr)
        return 1
    return 0
