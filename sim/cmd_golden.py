"""Compute what the core must output for given weights and activation vectors.

Without --dpu the output is the int32 partial sums (layers deeper than `rows` run as several
K-tiled passes); with --dpu P.npz it is the int8 DPU output. P.npz holds the DpuParams keys:
bias, multiplier, shift (per column) and optionally out_zp, act_min, act_max, res_multiplier,
res_shift, res_zp.

Example: dcim golden --config core.json --weights W.npy --inputs X.npy -o Y.npy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..golden.errors import InputError
from ..golden.fileio import check_output_file, write_atomic
from ..golden.npyfile import load_npy, load_npz
from ..golden.model import DpuParams, dpu, mvm_tiled
from .cli import add_config_args, config_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``dcim golden``."""
    add_config_args(parser)
    parser.add_argument("--weights", type=Path, required=True, metavar="W.npy",
                        help="integer weights, shape (K, cols); K > rows runs K-tiled passes")
    parser.add_argument("--inputs", type=Path, required=True, metavar="X.npy",
                        help="integer activations, shape (K,) or (batch, K)")
    parser.add_argument("--dpu", type=Path, metavar="P.npz", help="DPU tables (see above)")
    parser.add_argument("--residual", type=Path, metavar="R.npy",
                        help="int8 residual, shape (batch, cols); needs --dpu")
    parser.add_argument("--act-bits-run", dest="run_bits", type=int, metavar="B",
                        help="runtime activation precision of the passes (default: act_bits)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="Y.npy",
                        help="where to write the int32 sums or int8 outputs (this exact path; "
                             "an .npy file)")


def _load_dpu(path: Path) -> DpuParams:
    return DpuParams.from_npz(load_npz("DPU", path))


def run(args: argparse.Namespace) -> int:
    """Compute the expected outputs and save them."""
    cfg = config_from_args(args)
    check_output_file("-o", args.output)
    W = load_npy("weights", args.weights)
    X = load_npy("inputs", args.inputs)
    if X.size == 0:
        raise InputError(f"inputs file {args.inputs} is empty (shape {X.shape}); it must hold at "
                         "least one activation vector")
    sums = mvm_tiled(cfg, W, X, args.run_bits)
    if np.asarray(X).ndim == 1:
        sums = sums[0]
    if args.dpu is None:
        if args.residual is not None:
            raise InputError("--residual needs --dpu")
        out = sums.astype(np.int32)
    else:
        residual = None if args.residual is None else load_npy("residual", args.residual)
        out = dpu(cfg, sums, _load_dpu(args.dpu), residual).astype(np.int8)
    # to the path given (np.save to a path would append .npy to a name without it)
    write_atomic(args.output, lambda fh: np.save(fh, out))
    print(f"wrote {args.output}: {out.dtype} {list(out.shape)}")
    return 0
