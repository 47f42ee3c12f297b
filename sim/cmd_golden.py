"""Compute what the core must output for given weights and activation vectors.

Without --dpu the output is the int32 partial sums (layers deeper than `rows` run as several
K-tiled passes); with --dpu P.npz it is the int8 DPU output. P.npz holds the DpuParams keys:
bias, multiplier, shift (per column) and optionally out_zp, act_min, act_max, res_multiplier,
res_shift, res_zp.

Example: dcim golden --config core.json --weights W.npy --inputs X.npy -o Y.npy
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np

from ..golden.errors import InputError
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
                        help="where to write the int32 sums or int8 outputs")


def _load_npy(what: str, path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except ValueError:  # numpy's guess for a file without its magic is "pickled data"
        raise InputError(f"{what} file {path} is not a readable .npy array (not a NumPy file)"
                         ) from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{what} file {path} is not a readable .npy array ({exc})") from None
    if not isinstance(data, np.ndarray):
        data.close()
        raise InputError(f"{what} file {path} is not a readable .npy array (it is an .npz archive)")
    return data


def _load_npz(path: Path) -> DpuParams:
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"DPU file not found: {path}") from None
    except ValueError:  # numpy's guess for a file without its magic is "pickled data"
        raise InputError(f"DPU file {path} is not a readable .npz archive (not a NumPy file)"
                         ) from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"DPU file {path} is not a readable .npz archive ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(f"DPU file {path} is not a readable .npz archive (it holds one array)")
    with data:
        try:
            return DpuParams.from_npz(data)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"DPU file {path} is not a readable .npz archive ({exc})") from None


def run(args: argparse.Namespace) -> int:
    """Compute the expected outputs and save them."""
    cfg = config_from_args(args)
    W = _load_npy("weights", args.weights)
    X = _load_npy("inputs", args.inputs)
    sums = mvm_tiled(cfg, W, X, args.run_bits)
    if np.asarray(X).ndim == 1:
        sums = sums[0]
    if args.dpu is None:
        if args.residual is not None:
            raise InputError("--residual needs --dpu")
        out = sums.astype(np.int32)
    else:
        residual = None if args.residual is None else _load_npy("residual", args.residual)
        out = dpu(cfg, sums, _load_npz(args.dpu), residual).astype(np.int8)
    np.save(args.output, out)
    print(f"wrote {args.output}: {out.dtype} {list(out.shape)}")
    return 0
