"""One quantized layer's tiles as files, for replay on the simulators (`dcim regress --vectors`).

:func:`export_vectors` writes, for one weighted layer of a :class:`~dcim.golden.quant.qmodel.QModel`
and the first vectors of a batch, a directory::

    manifest.json           format, CoreConfig fields, layer, schedule, tiles
    tile<T>/W.npy           int64 (passes, rows, cols): K-pass p's weight rows (zero-padded)
    tile<T>/X.npy           int64 (vectors, passes * rows): the tile's activation vectors
                            (zero-padded; a grouped convolution's tile: its groups' patches)
    tile<T>/P.npz           the tile's DPU tables and scalars (DpuParams.to_npz_dict)
    tile<T>/R.npy           int64 (vectors, cols): residual input (layers with one; padding
                            columns hold res_zp)
    tile<T>/Y.npy           int64 (vectors, col1 - col0): expected output codes

Every number comes from the model's integer path (:func:`dcim.golden.quant.qmodel.run` with
``keep=True``): weights and DPU tables are the layer's :class:`~dcim.golden.quant.matmul.Tile`\\ s,
activations the ``im2col`` of its integer input (padded with the input zero point), expected
outputs its output codes. The schedule (``stationary``, ``k-reload`` or ``k-raw``) is the one
:func:`dcim.golden.quant.mapping.map_layers` picks. :func:`load_vectors` reads a directory back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CoreConfig
from ..errors import InputError
from ..fileio import write_atomic, write_dir_atomic
from ..model import DpuParams
from ..npyfile import load_npy, load_npz
from .mapping import map_layers
from .matmul import to_rows
from .qmodel import QLayer, QModel, run

__all__ = ["FORMAT", "MANIFEST", "ReplayTile", "export_vectors", "load_vectors",
           "weighted_layers"]

#: ``format`` of the manifest.
FORMAT = "dcim-vectors-1"
#: Name of the manifest file in an export directory.
MANIFEST = "manifest.json"


def weighted_layers(qm: QModel) -> list[QLayer]:
    """The layers of ``qm`` that run on the array, in execution order."""
    return [lay for lay in qm.layers if lay.op.on_array]


def _pick(qm: QModel, name: str | None) -> QLayer:
    layers = weighted_layers(qm)
    if not layers:
        raise InputError("the model has no weighted layer to export")
    if name is None:
        return layers[0]
    for lay in layers:
        if lay.name == name:
            return lay
    raise InputError(f"layer must name a weighted layer of the model "
                     f"({', '.join(lay.name for lay in layers)}), got {name!r}")


def export_vectors(qm: QModel, x: np.ndarray, out_dir: str | Path, layer: str | None = None,
                   count: int = 8) -> dict[str, Any]:
    """Write one layer's tiles for the first ``count`` activation vectors of ``x``.

    Parameters
    ----------
    qm : QModel
    x : numpy.ndarray
        Float input batch of the model (the first ``count`` samples are run; a convolution
        gives several vectors per sample).
    out_dir : path
        Created if needed, written whole or not at all
        (:func:`dcim.golden.fileio.write_dir_atomic`); the manifest records every tile file's
        SHA-256, which :func:`load_vectors` checks.
    layer : str, optional
        Name of a weighted layer (default: the first).
    count : int
        Activation vectors to export, ``>= 1`` (fewer if ``x`` yields fewer).

    Returns
    -------
    dict
        The manifest written to ``out_dir/manifest.json``.

    Raises
    ------
    ValueError
        ``layer`` is not a weighted layer of the model, or ``count`` is not an int >= 1.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"count must be an int >= 1, got {count!r}")
    cfg = qm.cfg
    lay = _pick(qm, layer)
    _, codes = run(qm, x[:count], keep=True)
    X = lay.op.columns(codes[lay.inputs[0]], qm.qparams[lay.inputs[0]].zero_point)
    X = X[:count].astype(np.int64)
    Y = to_rows(codes[lay.output])[:count].astype(np.int64)
    R = None if lay.residual is None else to_rows(codes[lay.residual])[:count].astype(np.int64)
    N = lay.weights.shape[1]
    # The deepest tile: a dense layer's K; a grouped convolution's packed groups' rows.
    K = max(tile.weights.shape[0] for tile in lay.tiles)
    passes = cfg.k_passes(K)
    shape1 = (1,) + codes[lay.output].shape[1:]
    schedule = map_layers(cfg, [lay], {lay.output: shape1})[0].schedule
    # every file is made in a new directory that then replaces out_dir (the manifest, with the
    # digest of every tile file, last): an interrupted export leaves out_dir as it was
    with write_dir_atomic(out_dir, last=(MANIFEST,)) as out:
        tiles = []
        for t, tile in enumerate(lay.tiles):
            d = out / f"tile{t}"
            d.mkdir()
            k_t = tile.weights.shape[0]
            W = np.zeros((passes * cfg.rows, cfg.cols), dtype=np.int64)
            W[:k_t] = tile.weights
            arrays = {"W.npy": W.reshape(passes, cfg.rows, cfg.cols)}
            Xp = np.zeros((len(X), passes * cfg.rows), dtype=np.int64)
            Xp[:, :k_t] = tile.inputs(X)
            arrays["X.npy"] = Xp
            if R is not None:
                rt = np.full((len(X), cfg.cols), tile.dpu.res_zp, dtype=np.int64)
                rt[:, :tile.col1 - tile.col0] = R[:, tile.col0:tile.col1]
                arrays["R.npy"] = rt
            arrays["Y.npy"] = Y[:, tile.col0:tile.col1]
            for name, arr in arrays.items():
                write_atomic(d / name, lambda fh, a=arr: np.save(fh, a))
            write_atomic(d / "P.npz", lambda fh: np.savez(fh, **tile.dpu.to_npz_dict()))
            digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
                       for f in sorted(d.iterdir())}
            tiles.append({"id": t, "dir": d.name, "col0": tile.col0, "col1": tile.col1,
                          "sha256": digests})
        manifest = {"format": FORMAT, "config": cfg.fields(), "layer": lay.name,
                    "kind": lay.op.kind, "K": K, "N": N, "vectors": len(X), "passes": passes,
                    "schedule": schedule, "residual": R is not None, "tiles": tiles}
        write_atomic(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


@dataclasses.dataclass
class ReplayTile:
    """One exported column tile (see the module docstring for the arrays)."""

    id: int
    col0: int
    col1: int
    W: np.ndarray
    X: np.ndarray
    params: DpuParams
    R: np.ndarray | None
    Y: np.ndarray


def load_vectors(path: str | Path) -> tuple[CoreConfig, dict[str, Any], list[ReplayTile]]:
    """Read an export directory: ``(config, manifest, tiles)``.

    Raises
    ------
    FileNotFoundError
        No manifest or a tile file missing.
    ValueError
        Not a manifest of this format, no tiles, a file that is not a readable array (or not
        the one the manifest's digest names), or arrays of the wrong shape.
    """
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise FileNotFoundError(f"{path}: no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{mpath}: not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{mpath}: not a {FORMAT} manifest")
    specs = manifest.get("tiles", [])
    if not isinstance(specs, list) or not all(isinstance(t, dict) for t in specs):
        raise InputError(f"{mpath}: tiles must be a list of objects")
    missing = [k for k in ("config", "vectors", "passes", "tiles", "residual", "layer",
                           "schedule") if k not in manifest]
    missing += [f"tiles[{i}].{k}" for i, t in enumerate(specs)
                for k in ("dir", "id", "col0", "col1") if k not in t]
    if missing:
        raise InputError(f"{mpath}: incomplete manifest (missing {', '.join(missing)})")
    if not specs:
        raise InputError(f"{mpath}: the manifest lists no tiles (nothing to replay)")
    if not isinstance(manifest["config"], dict):
        raise InputError(f"{mpath}: config must be an object of fields")
    cfg = CoreConfig.from_dict(manifest["config"])
    v, p = manifest["vectors"], manifest["passes"]
    tiles = []
    for t in specs:
        d = path / str(t["dir"])
        for name, want in (t.get("sha256") or {}).items():
            f = d / str(name)
            if f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() != want:
                raise InputError(f"{f} does not match {mpath} (files of different exports: "
                                 "an interrupted or mixed one); export again")
        params = DpuParams.from_npz(load_npz("DPU", d / "P.npz"))
        tile = ReplayTile(t["id"], t["col0"], t["col1"], load_npy("weights", d / "W.npy"),
                          load_npy("activations", d / "X.npy"), params,
                          load_npy("residual", d / "R.npy") if manifest["residual"] else None,
                          load_npy("expected outputs", d / "Y.npy"))
        want = {"W": (p, cfg.rows, cfg.cols), "X": (v, p * cfg.rows),
                "Y": (v, t["col1"] - t["col0"]), "R": (v, cfg.cols)}
        for name, shape in want.items():
            arr = getattr(tile, name)
            if arr is not None and arr.shape != shape:
                raise InputError(f"{d / (name + '.npy')}: shape {arr.shape}, expected {shape}")
        tiles.append(tile)
    return cfg, manifest, tiles
