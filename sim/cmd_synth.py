"""Synthesize the core with open tools and report area, Fmax, TOPS, TOPS/mm2 and energy per MAC.

Yosys maps the generated Verilog on the OSU 0.18 um cells (areas corrected from the LEF),
OpenSTA gives the critical path and Fmax, and a gate-level simulation of the netlist on a random
INT8 and a sparse (ReLU-like) workload gives the switching activity for OpenSTA's power report.
Figures are reported per block (weights, compute, accum, dpu, ctrl, glue), with the weight store
also modelled as 8T SRAM bit-cells, and scaled to 22 nm and 12 nm as labelled estimates.
Arrays above --flat-limit MACs are estimated from two smaller flat runs (docs/synth.md).

Writes DIR/synth.json (every figure), DIR/synth.md and DIR/utilization.png (the TOPS/W curve);
with --sweep, one subdirectory per size
and DIR/sweep.json, DIR/sweep.md and DIR/sweep.png.

Examples:
  dcim synth --rows 64 --cols 32 -o out
  dcim synth --sweep rows=32,64 cols=16,32 -o sweep
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
import time
from pathlib import Path

from ..golden.config import CoreConfig
from ..golden.errors import InputError
from ..golden.fileio import check_output_dir, lock_dir, write_atomic
from .cli import add_config_args, config_from_args

__all__ = ["configure", "parse_sweep", "run"]


#: The result files of a run in its directory (and in each sweep point's).
RESULTS = ("synth.json", "synth.md", "utilization.png", "sweep.json", "sweep.md", "sweep.png")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim synth``."""
    add_config_args(parser)
    g = parser.add_argument_group("synthesis")
    g.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="output directory (created)")
    g.add_argument("--liberty", default="osu018", metavar="osu018|PATH",
                   help="standard cells: osu018 (default) or a liberty file (a .lef and .v with "
                        "the same stem are used when present)")
    g.add_argument("--clock-ns", type=float, default=10.0, metavar="T",
                   help="your clock period for timing and the 'at clock' figures (default 10)")
    g.add_argument("--verilog", type=Path, metavar="FILE",
                   help="synthesize this Verilog (top module = --name) instead of generating it")
    g.add_argument("--method", choices=("auto", "flat", "estimate"), default="auto",
                   help="flat synthesis, or the hierarchical estimate from two smaller flat runs;"
                        " auto: flat up to --flat-limit MACs (default)")
    g.add_argument("--flat-limit", type=int, default=4096, metavar="N",
                   help="largest rows*cols synthesized flat by --method auto (default 4096)")
    g.add_argument("-j", "--jobs", type=int, choices=(1, 2), default=2,
                   help="flat runs of the estimate that go at once (default 2)")
    g.add_argument("--workloads", default="random,sparse", metavar="LIST",
                   help="activity workloads for power: random, sparse, or none "
                        "(default random,sparse)")
    g.add_argument("--vectors", type=int, default=16, metavar="N",
                   help="activation vectors per workload (default 16)")
    g.add_argument("--utilization", default="100,50,25,10", metavar="LIST",
                   help="target array utilizations (percent) of the TOPS/W curve, or none "
                        "(default 100,50,25,10; 100 stands for the highest the configuration "
                        "reaches with back-to-back vectors)")
    g.add_argument("--emit-every", type=int, default=1, metavar="K",
                   help="the curve's passes emit a result every K vectors and accumulate "
                        "otherwise, a K-tiled layer (default 1; must divide --vectors)")
    g.add_argument("--activity-sim", choices=("auto", "cycle", "icarus"), default="auto",
                   help="gate-level simulator of the switching activity: cycle (zero-delay, "
                        "cycle-based, in Python), icarus (event-driven, through a VCD), or auto: "
                        "cycle unless the netlist has cells it does not model (default)")
    g.add_argument("--sweep", nargs="+", metavar="FIELD=V1,V2",
                   help="synthesize every combination, e.g. rows=32,64 cols=16,32")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress messages")


#: Configuration fields a sweep may vary by name rather than by integer.
_NAMED_SWEEP = ("tree_style",)


def parse_sweep(items: list[str]) -> list[dict[str, int | str]]:
    """Turn ``["rows=32,64", "cols=16", "tree_style=ripple,csa"]`` into the list of field
    combinations.

    Raises
    ------
    InputError
        An item is not ``FIELD=V1,V2,...`` with integer values of a known integer field or
        names of a field of :data:`_NAMED_SWEEP` (checked by :class:`CoreConfig` later).
    """
    ints = {f.name for f in dataclasses.fields(CoreConfig)
            if f.type in ("int", int, "int | None")}  # automatic fields too
    axes: dict[str, list[int]] = {}
    for item in items:
        field, sep, values = item.partition("=")
        field = field.strip().replace("-", "_")
        if not sep or not values:
            raise InputError(f"--sweep item must be FIELD=V1,V2,..., got {item!r}")
        if field in _NAMED_SWEEP:
            axes[field] = [v.strip() for v in values.split(",")]
            continue
        if field not in ints:
            raise InputError(f"--sweep field must be one of "
                             f"{', '.join(sorted(ints | set(_NAMED_SWEEP)))}, got {field!r}")
        try:
            axes[field] = [int(v) for v in values.split(",")]
        except ValueError:
            raise InputError(f"--sweep values of {field} must be integers, got {values!r}"
                             ) from None
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*axes.values())]


def _utilization(text: str) -> tuple[int, ...]:
    """``--utilization`` as percents (``none``: no curve).

    Raises
    ------
    InputError
        An item is not an integer in [1, 100].
    """
    if text.strip().lower() == "none":
        return ()
    out = []
    for item in text.split(","):
        try:
            v = int(item)
        except ValueError:
            v = None
        if v is None or not 1 <= v <= 100:
            raise InputError(f"--utilization must list integers in [1, 100] (percent) or be "
                             f"none, got {item.strip()!r}")
        out.append(v)
    return tuple(out)


def _generator():
    """The core generator: ``generate(cfg, directory) -> Path`` of ``<name>.v``."""
    def generate(cfg: CoreConfig, directory: Path) -> Path:
        try:
            from .build import verilog_text
        except ImportError as exc:  # pragma: no cover - the generator is part of the package
            raise InputError(f"the core generator is not available ({exc}); pass --verilog FILE"
                             ) from None
        path = Path(directory) / f"{cfg.name}.v"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, verilog_text(cfg, array_model="rtl"))
        return path
    return generate


def _method(cfg: CoreConfig, args: argparse.Namespace) -> str:
    if args.method != "auto":
        return args.method
    return "flat" if cfg.rows * cfg.cols <= args.flat_limit or args.verilog else "estimate"


def _check_memory(cfg: CoreConfig, args: argparse.Namespace) -> None:
    """One line before any work when a flat run (the whole core, or the estimate's larger part)
    would not fit this machine's memory (:mod:`dcim.sim.resources`)."""
    from ..synth import flow
    from .resources import check_memory

    try:
        if _method(cfg, args) == "flat":
            check_memory("synth", "rtl", cfg, hint="use --method estimate")
        else:
            c2 = flow.small_cols(cfg)[1]
            check_memory("synth", "rtl", flow.part_config(cfg, c2),
                         hint=f"the estimate synthesizes {cfg.rows}x{c2} flat; use fewer rows")
    except MemoryError as exc:
        raise InputError(str(exc)) from None
    except ValueError:
        pass  # no smaller column counts: flow.estimate reports it


def _one(cfg: CoreConfig, args: argparse.Namespace, outdir: Path, generate, workloads,
         progress) -> dict:
    from ..synth import flow, report

    method = _method(cfg, args)
    kw = dict(liberty=args.liberty, clock_ns=args.clock_ns, workloads=workloads,
              vectors=args.vectors, progress=progress, activity_sim=args.activity_sim,
              utilization=args.utilization_points, emit_every=args.emit_every)
    if method == "flat":
        outdir.mkdir(parents=True, exist_ok=True)
        if args.verilog is not None:
            verilog = args.verilog
            if not verilog.is_file():
                raise InputError(f"Verilog file not found: {verilog}")
        else:
            verilog = generate(cfg, outdir)
        result = flow.synthesize(cfg, verilog, outdir, **kw)
    else:
        if args.verilog is not None:
            raise InputError("--method estimate generates smaller arrays and cannot use --verilog")
        result = flow.estimate(cfg, generate, outdir, jobs=args.jobs, **kw)
    write_atomic(outdir / "synth.md", report.markdown(result))
    if report.plot_curve(result["derived"], outdir / "utilization.png"):
        progress(f"wrote {outdir / 'utilization.png'}")
    return result


def run(args: argparse.Namespace) -> int:
    """Synthesize one configuration or a sweep; print the summary; write JSON/markdown/PNG."""
    from ..synth.tech import tech_files
    from ..synth.tools import FlowError

    base = config_from_args(args)
    if args.workloads.strip().lower() == "none":
        workloads: tuple[str, ...] = ()
    else:
        workloads = tuple(w.strip() for w in args.workloads.split(",") if w.strip())
        for w in workloads:
            if w not in ("random", "sparse"):
                raise InputError(f"--workloads must list random, sparse or be none, got {w!r}")
    if not 1 <= args.vectors <= 10000:
        raise InputError(f"--vectors must be in [1, 10000], got {args.vectors}")
    args.utilization_points = _utilization(args.utilization)
    if args.emit_every < 1 or args.vectors % args.emit_every:
        raise InputError(f"--emit-every must be >= 1 and divide --vectors ({args.vectors}), "
                         f"got {args.emit_every}")
    if args.flat_limit < 1:
        raise InputError(f"--flat-limit must be >= 1, got {args.flat_limit}")
    if not (math.isfinite(args.clock_ns) and 0.1 <= args.clock_ns <= 1e6):
        raise InputError(f"--clock-ns must be in [0.1, 1e6] ns, got {args.clock_ns}")
    if args.sweep and args.verilog is not None:
        raise InputError("--sweep generates every size and cannot use --verilog")
    tech_files(args.liberty)  # found, and a liberty file
    check_output_dir("-o", args.output)
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.monotonic() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    generate = _generator()
    out: Path = args.output
    points = parse_sweep(args.sweep) if args.sweep else []
    for cfg in [_sweep_config(base, p) for p in points] or [base]:
        _check_memory(cfg, args)
    with lock_dir(out, "-o"):
        try:
            return _run(args, base, points, out, generate, workloads, progress, t0)
        except FlowError as exc:  # a tool failed on a valid input: a failed run, not bad input
            print(f"dcim: synthesis failed: {exc}", file=sys.stderr)
            return 1


def _sweep_config(base: CoreConfig, point: dict[str, int]) -> CoreConfig:
    """The configuration of one sweep point; an invalid one names the point."""
    try:
        return base.replace(**point)
    except InputError as exc:
        tag = " ".join(f"{k}={v}" for k, v in point.items())
        raise InputError(f"--sweep point {tag}: {exc}") from None


def _run(args, base: CoreConfig, points: list[dict[str, int]], out: Path, generate, workloads,
         progress, t0: float) -> int:
    from ..synth import report

    # the tools work in the directory (their logs stay there on a failure): a result of an
    # earlier run goes first, so that none is ever left beside this run's files
    for stale in [out / n for n in RESULTS] + [out / "_".join(f"{k}{v}" for k, v in p.items())
                                                / n for p in points for n in RESULTS]:
        stale.unlink(missing_ok=True)
    if not args.sweep:
        result = _one(base, args, out, generate, workloads, progress)
        print("\n".join(report.summary_lines(result)))
        print(f"wrote {out / 'synth.json'} and {out / 'synth.md'} "
              f"({time.monotonic() - t0:.1f} s)")
        return 0
    rows = []
    for i, point in enumerate(points, 1):
        cfg = _sweep_config(base, point)
        tag = "_".join(f"{k}{v}" for k, v in point.items())
        progress(f"sweep {i}/{len(points)}: {tag}")
        result = _one(cfg, args, out / tag, generate, workloads, progress)
        rows.append(report.sweep_row(result))
        write_atomic(out / "sweep.json", json.dumps(rows, indent=2) + "\n")
    table = report.sweep_markdown(rows)
    write_atomic(out / "sweep.md", table)
    report.plot_sweep(rows, out / "sweep.png")
    print(table, end="")
    print(f"wrote {out / 'sweep.json'}, {out / 'sweep.md'}, {out / 'sweep.png'} "
          f"({time.monotonic() - t0:.1f} s)")
    return 0
