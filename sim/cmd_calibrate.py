"""INT8 accuracy of an ONNX model on the core, calibrated, with its mapping onto the array.

Imports a float ONNX model, calibrates per-tensor activation ranges on --calib, quantizes
(weights symmetric per channel, activations asymmetric int8, int32 bias, fixed-point
multipliers with the core's rounding mode) and evaluates on --eval: FP32 under onnxruntime,
INT8 through the golden model's exact integer path for each calibrator, and onnxruntime's
static INT8 (QDQ, per channel, MinMax/Percentile/Entropy on the same calibration data) as the
peer; per flow top-1 (a tie between logits counts as wrong), ties, top-1 agreement with FP32
and logit SQNR. Prints per-layer SQNR (all values, values inside the range, share clipped), the
fake-quant check and the mapping of every layer onto the configured array (tiles, passes,
cycles, utilization, effective vs peak TOPS at --clock-mhz). --save-logits writes every
sample's logits and predictions (docs/calibration.md lists the keys).

Data files are .npz with x (float samples, batch first, the model's input shape) and y (int
labels in 0..classes-1; --eval only).

Example: dcim calibrate examples/digits_cnn.onnx --calib examples/digits_calib.npz
         --eval examples/digits_eval.npz --method all --json out/calibrate.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..golden.errors import InputError
from ..golden.fileio import check_output_dir, check_output_file, write_atomic
from ..golden.quant.calibrate import METHODS
from ..golden.quant.evaluate import calibrate_report, load_data
from ..golden.quant.export import export_vectors, weighted_layers
from ..golden.table import table
from .cli import add_config_args, config_from_args
from .noise_report import add_noise_args, check_noise_args, format_noise, write_plot


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim calibrate``."""
    parser.add_argument("model", type=Path, metavar="MODEL.onnx", help="float ONNX model")
    parser.add_argument("--calib", type=Path, required=True, metavar="DATA.npz",
                        help="calibration data (x)")
    parser.add_argument("--eval", type=Path, required=True, metavar="DATA.npz",
                        help="evaluation data (x, y)")
    parser.add_argument("--method", choices=METHODS + ("all",), default="all",
                        help="activation calibrator, or all of them (default)")
    parser.add_argument("--clock-mhz", type=float, default=200.0, metavar="F",
                        help="clock for the TOPS figures (default 200)")
    parser.add_argument("--batch", type=int, default=1, metavar="B",
                        help="inferences per weight load in the mapping figures (default 1)")
    parser.add_argument("--json", type=Path, metavar="REPORT.json", help="write the full report")
    parser.add_argument("--save-logits", type=Path, metavar="LOGITS.npz",
                        help="write every evaluation sample's logits and predictions (FP32, "
                             "each INT8 calibrator, each ORT INT8 peer) as an .npz archive")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip onnxruntime's INT8 quantization (faster)")
    parser.add_argument("--no-peer-preprocess", action="store_true",
                        help="quantize the ORT peer without onnxruntime's quant_pre_process "
                             "(BatchNormalization then stays unfused)")
    parser.add_argument("--max-drop", type=float, metavar="PCT",
                        help="exit 1 if the best calibrator loses more than PCT %% top-1 "
                             "accuracy against FP32")
    parser.add_argument("--export-vectors", type=Path, metavar="DIR",
                        help="write one layer's tiles (weights, activations, DPU tables, "
                             "expected outputs) of the best calibrator for dcim regress --vectors")
    parser.add_argument("--export-layer", metavar="NAME",
                        help="weighted layer to export (default: the first)")
    parser.add_argument("--export-count", type=int, default=8, metavar="N",
                        help="activation vectors to export (default 8)")
    add_noise_args(parser)
    add_config_args(parser)


class _Bar:
    """``progress(stage, done, total)`` (:data:`dcim.golden.quant.evaluate.Progress`) as one
    tqdm bar per stage on stderr, none when stderr is not a terminal; a context manager that
    closes the open bar on the way out (also on Ctrl-C)."""

    def __init__(self):
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or self.stage != stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=stage, file=sys.stderr, disable=None,
                            dynamic_ncols=True)
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def _db(v: float) -> str:
    return "exact" if v == math.inf else f"{v:.2f}"


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 1e3


def _clip(v: float) -> str:
    return "0" if v == 0 else f"{100 * v:.3f}"


def format_report(r: dict[str, Any]) -> str:
    """The human-readable report (accuracy, ties, agreement and logit SQNR per flow; per-layer
    SQNR, clipping and fake-quant check; mapping)."""
    cfg = r["config"]
    methods = list(r["methods"])
    fp = r["accuracy_fp32"]
    out = [f"Model {r['model']}: {r['calib_samples']} calibration, {r['eval_samples']} "
           f"evaluation samples, {r['classes']} classes; rounding {r['rounding']}", ""]

    def row(label: str, res: dict[str, Any]) -> list[str]:
        a = res["accuracy"]
        sqnr = _db(res["logit_sqnr_db"])
        return [label, _pct(a), f"{100 * (a - fp):+.2f}", res["ties"],
                _pct(res["top1_agreement_with_fp32"]), sqnr + " dB" * (sqnr != "exact")]

    bits = ("INT8" if cfg["act_bits"] == cfg["weight_bits"] == 8
            else f"A{cfg['act_bits']}/W{cfg['weight_bits']}")
    rows = [["FP32 (onnxruntime)", _pct(fp), "", r["fp32"]["ties"], "", ""]]
    rows += [row(f"ORT INT8 QDQ per-channel, {res['calibration']}", res)
             for res in r.get("ort_int8", {}).values()]
    rows += [row(f"{bits} golden integer path, {m}", r["methods"][m]) for m in methods]
    out += table(rows, ["flow", "top-1", "vs FP32", "ties", "agree", "logit SQNR"], "lrrrrr")
    for reason in r.get("ort_int8_missing", []):
        out.append("  ORT INT8 peer not run: "
                   + ("--no-peer" if reason == "not requested" else reason))
    flows = [r["fp32"], *r.get("ort_int8", {}).values(), *r["methods"].values()]
    ties = sum(f["ties"] for f in flows)
    with_label = sum(f["ties_with_label"] for f in flows)
    out.append("  ties: samples whose highest logit several classes share; counted as wrong"
               + (f" (of the {ties} above, {with_label} had the label among the tied classes)"
                  if ties else ""))
    out.append("  agree: same top-1 class as FP32 (a tie agrees with none); logit SQNR: "
               "logits vs FP32's")
    changed = [res for res in r.get("ort_int8", {}).values()
               if res["unoptimized"]["accuracy"] != res["accuracy"]
               or abs(_finite(res["unoptimized"]["logit_sqnr_db"])
                      - _finite(res["logit_sqnr_db"])) > 1.0]
    if changed:
        out.append("  ORT INT8 with graph optimizations off (its QDQ arithmetic in float, no "
                   "fused integer kernels): " + "; ".join(
                       f"{res['calibration']} {_pct(res['unoptimized']['accuracy'])}, "
                       f"{_db(res['unoptimized']['logit_sqnr_db'])} dB"
                       for res in changed))
    if r.get("ort_int8_notes"):
        out.append(f"  ORT peer: {'; '.join(r['ort_int8_notes'])}")
    out.append(f"  best calibrator: {r['best_method']} ({100 * r['best_drop_vs_fp32']:.2f} % "
               "below FP32; ties broken by agreement with FP32, then logit SQNR)")
    out.append("  golden integer path on this machine: " + ", ".join(
        f"{m} {r['methods'][m]['images_per_s']:,.1f} images/s" for m in methods)
        + " (the fast exact path, bit-identical to the array's tiles and K-passes)")
    if r.get("ort_log"):
        out.append(f"  onnxruntime printed {len(r['ort_log'])} line(s) (warnings, calibration "
                   "progress): kept in the report's ort_log (--json), not shown")
    out += ["", "Per layer, INT8 output vs FP32: SQNR (dB) over all values / over the values "
                "inside the quantization range, % of values clipped by the range; fake-quant "
                "vs integer path (differing codes, one per method, /-separated)"]
    rows = []
    for i, lay in enumerate(r["methods"][methods[0]]["layers"]):
        per = [r["methods"][m]["layers"][i] for m in methods]
        rows.append([lay["name"], lay["kind"]]
                    + [c for ly in per for c in (_db(ly["sqnr_db"]), _db(ly["inrange_sqnr_db"]),
                                                 _clip(ly["clipped_fraction"]))]
                    + ["/".join(str(ly["fakequant_mismatches"]) for ly in per)])
    heads = [h for m in methods for h in (f"{m}\nSQNR", "\nin-rng", "\nclip%")]
    out += table(rows, ["layer", "kind", *heads, "fake-quant"], "ll" + "r" * len(heads) + "r")
    total_mism = sum(lay["fakequant_mismatches"] for m in methods
                     for lay in r["methods"][m]["layers"])
    if total_mism == 0:
        out.append("  fake-quant float simulation: bit-exact with the integer path in every "
                   "layer and method")
    else:
        worst = max(lay["max_lsb_diff"] for m in methods for lay in r["methods"][m]["layers"])
        out.append(f"  fake-quant float simulation: {total_mism} code(s) differ (max {worst}"
                   " LSB): the integer path uses 31-bit fixed-point multipliers, the float "
                   "simulation real scales and float products; codes within that error of a "
                   "rounding tie differ, and a difference propagates to later layers")
    out += format_raised_scales(r)
    t = r["mapping"]["totals"]
    dbuf = cfg.get("weight_sets", 1) == 2
    out += ["", f"Mapping onto the {cfg['rows']}x{cfg['cols']} array (serial_bits "
                f"{cfg['serial_bits']}, dpu_lanes {cfg['dpu_lanes']}"
                + (", two weight sets" if dbuf else "") + "), "
                + ("per inference" if t["batch"] == 1 else f"per batch of {t['batch']} "
                   "inferences (one weight load each)")]
    # With two weight sets a column of the load cycles hidden under compute, after "cycles".
    hid = (lambda d: [d.get("overlapped_cycles", 0)]) if dbuf else (lambda d: [])
    rows = [[m["name"], m["kind"], *[""] * (9 + dbuf), "(off the array)"] if m["passes"] == 0
            else [m["name"], m["kind"], m["K"], m["N"], m["vectors"], m["row_tiles"],
                  m["col_tiles"], m["passes"], m["macs"], m["cycles"], *hid(m),
                  f"{100 * m['utilization']:.1f}%", m["schedule"], m["bound"]]
            for m in r["mapping"]["layers"]]
    rows.append(["total", "", "", "", "", "", "", t["passes"], t["macs"], t["cycles"], *hid(t),
                 f"{100 * t['utilization']:.1f}%"])
    out += table(rows, ["layer", "kind", "K", "N", "vec", "rowT", "colT", "passes", "MACs",
                        "cycles", *(["overlap"] if dbuf else []), "util", "schedule", "bound"],
                 "llrrrrrrrr" + "r" * dbuf + "rll")
    overlap = (f" ({t.get('overlapped_cycles', 0)} of them overlapped with compute)"
               if dbuf else "")
    out.append(f"  {t['compute_cycles']} compute + {t['load_cycles']} weight-load cycles"
               f"{overlap} of {t['cycles']}; at {t['clock_mhz']:g} MHz: "
               f"{t['inferences_per_s']:,.0f} "
               f"inferences/s, effective {t['effective_tops']:.4f} TOPS vs peak "
               f"{t['peak_tops']:.4f} TOPS ({100 * t['effective_tops'] / t['peak_tops']:.1f} %)")
    return "\n".join(out)


def format_raised_scales(r: dict[str, Any]) -> list[str]:
    """Report lines for the channels whose weight scale was raised so that the int32 bias fits
    (none if no method raised any)."""
    rows = [(m, layer, ch) for m, res in r["methods"].items()
            for layer, chans in res.get("raised_weight_scales", {}).items() for ch in chans]
    if not rows:
        return []
    out = ["", "Weight scales raised so that the int32 bias fits (s_x * s_w >= 1.0001 |b| / "
               "(2**31 - 1), as onnxruntime's quantizer does)",
           *table([[m, layer, ch["channel"], f"{ch['old_scale']:.4g}", f"{ch['new_scale']:.4g}"]
                   for m, layer, ch in rows],
                  ["method", "layer", "channel", "max|w|/127", "used"], "llrrr")]
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _check_export_layer(args: argparse.Namespace, cfg) -> None:
    """Fail before the long work if --export-layer names no weighted layer of the model."""
    from ..golden.quant.onnx_import import load_model
    from ..golden.quant.qmodel import plan

    if args.export_layer is None or not args.model.is_file():
        return  # calibrate_report names the missing model
    layers = plan(load_model(args.model), residual_in_dpu=cfg.dpu_residual)
    names = [lay.name for lay in layers if lay.op.on_array]
    if args.export_layer not in names:
        raise InputError(f"--export-layer must name a weighted layer ({', '.join(names)}), "
                         f"got {args.export_layer!r}")


def _refuse_qdq(model: Path) -> None:
    """A pre-quantized model has nothing to calibrate: say which command checks it."""
    if not model.is_file():
        return  # calibrate_report names the missing file
    import onnx

    from ..golden.quant.qdq import is_qdq

    try:
        qdq = is_qdq(onnx.load(str(model)))
    except Exception:  # not an ONNX file: calibrate_report says so
        return
    if qdq:
        raise InputError(f"{model} is already quantized (QuantizeLinear/DequantizeLinear nodes): "
                         f"dcim check {model} --eval DATA.npz runs it on the core with its own "
                         "scales and compares with onnxruntime")


def _whatif(args: argparse.Namespace, report: dict[str, Any], qm, sigmas: list[float],
            fp32_logits: np.ndarray) -> dict[str, Any]:
    """Run, print and plot the analog what-if on the best calibrator's model."""
    from ..golden.quant.noise import noise_sweep

    x, y = load_data(args.eval, qm.graph, "evaluation")
    with _Bar() as bar:
        r = noise_sweep(qm, x, y, fp32_logits, sigmas, args.noise_seed, args.adc_bits,
                        args.noise_offset_cal, progress=bar)
    print()
    print(format_noise(r, report["best_method"]))
    if args.plot is not None:
        write_plot(r, args.plot, f"{args.model.name}: {report['best_method']}, seed "
                                 f"{args.noise_seed}, {qm.cfg.rows}x{qm.cfg.cols}")
        print(f"wrote {args.plot}")
    return r


def run(args: argparse.Namespace) -> int:
    """Calibrate, evaluate and print the report."""
    cfg = config_from_args(args)
    if not (math.isfinite(args.clock_mhz) and args.clock_mhz > 0):
        raise InputError(f"--clock-mhz must be a positive frequency, got {args.clock_mhz}")
    if args.export_count < 1:
        raise InputError(f"--export-count must be an int >= 1, got {args.export_count}")
    if args.batch < 1:
        raise InputError(f"--batch must be an int >= 1, got {args.batch}")
    if args.max_drop is not None and not (math.isfinite(args.max_drop) and args.max_drop >= 0):
        raise InputError(f"--max-drop must be a finite percentage >= 0, got {args.max_drop}")
    if args.export_layer is not None and args.export_vectors is None:
        raise InputError("--export-layer needs --export-vectors DIR")
    check_output_file("--json", args.json)
    check_output_file("--save-logits", args.save_logits)
    check_output_file("--plot", args.plot)
    check_output_dir("--export-vectors", args.export_vectors)
    sigmas = check_noise_args(args)
    methods = METHODS if args.method == "all" else (args.method,)
    _refuse_qdq(args.model)
    _check_export_layer(args, cfg)
    models: dict = {}
    logits: dict | None = {} if args.save_logits is not None or sigmas is not None else None
    with _Bar() as bar:
        report = calibrate_report(args.model, args.calib, args.eval, cfg, methods,
                                  clock_mhz=args.clock_mhz, batch=args.batch,
                                  peer=not args.no_peer, progress=bar, models=models,
                                  logits=logits, peer_preprocess=not args.no_peer_preprocess)
    for w in report["warnings"]:
        print(f"dcim: warning: {w}", file=sys.stderr)
    print(format_report(report))
    if sigmas is not None:
        report["analog_whatif"] = _whatif(args, report, models[report["best_method"]], sigmas,
                                          logits["fp32_logits"])
    if args.json is not None:
        text = json.dumps(_jsonable(report), indent=2) + "\n"
        write_atomic(args.json, lambda fh: fh.write(text.encode()))
        print(f"wrote {args.json}")
    if args.save_logits is not None:
        write_atomic(args.save_logits, lambda fh: np.savez(fh, **logits))
        n = len(logits["labels"])
        print(f"wrote {args.save_logits} ({len(logits)} arrays: {n} samples, "
              f"{logits['fp32_logits'].shape[1]} classes)")
    if args.export_vectors is not None:
        qm = models[report["best_method"]]
        names = [lay.name for lay in weighted_layers(qm)]
        if args.export_layer is not None and args.export_layer not in names:
            raise InputError(f"--export-layer must name a weighted layer ({', '.join(names)}), "
                             f"got {args.export_layer!r}")
        x, _ = load_data(args.eval, qm.graph, "evaluation", labels=False)
        m = export_vectors(qm, x, args.export_vectors, args.export_layer, args.export_count)
        print(f"wrote layer {m['layer']} ({m['kind']}, K {m['K']}, N {m['N']}, "
              f"{len(m['tiles'])} tile(s), {m['passes']} pass(es) each, {m['vectors']} vectors, "
              f"{m['schedule']}, {report['best_method']}) to {args.export_vectors}; replay: "
              f"dcim regress --vectors {args.export_vectors}")
    if args.max_drop is not None and 100 * report["best_drop_vs_fp32"] > args.max_drop:
        print(f"dcim: best INT8 accuracy is {100 * report['best_drop_vs_fp32']:.2f} % below FP32 "
              f"(limit {args.max_drop} %)", file=sys.stderr)
        return 1
    return 0
