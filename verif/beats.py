"""Packing of integer lanes into AXI4-Stream beats, the layout of every stream of the core
(lane ``i`` of beat ``j`` holds element ``j*lanes + i``, little-endian). Importable without
cocotb, so that other packages (the synthesis activity testbench) write the same beats."""

from __future__ import annotations

import numpy as np

__all__ = ["pack_beats", "pack_rows", "unpack_beats"]


def pack_beats(values, lane_bits: int, lanes: int, beats: int | None = None) -> list[int]:
    """Pack integer ``values`` (two's complement, low ``lane_bits`` bits each) into beats of
    ``lanes`` lanes, lane ``i`` of beat ``j`` holding ``values[j*lanes + i]``; the unused lanes
    of the last beat are 0. ``beats`` (default: as many as needed) pads with zero beats or
    truncates, for deliberately malformed packets."""
    return pack_rows(np.asarray(values, dtype=np.int64).reshape(1, -1), lane_bits, lanes,
                     beats)[0]


def pack_rows(rows, lane_bits: int, lanes: int, beats: int | None = None) -> list[list[int]]:
    """:func:`pack_beats` of every row of the 2-D ``rows`` (one packet per row) in one numpy
    pass: the scoreboard packs a batch of predictions at once."""
    v = np.asarray(rows, dtype=np.int64)
    n, count = v.shape
    nb = -(-count // lanes) if beats is None else beats
    buf = np.zeros((n, max(nb * lanes, count)), dtype=np.int64)
    buf[:, :count] = v
    nbytes = lane_bits // 8
    dtype = {1: "<u1", 2: "<u2", 4: "<u4"}[nbytes]
    raw = (buf & ((1 << lane_bits) - 1)).astype(dtype).tobytes()
    row, step = buf.shape[1] * nbytes, lanes * nbytes
    return [[int.from_bytes(raw[i * row + j * step:i * row + (j + 1) * step], "little")
             for j in range(nb)] for i in range(n)]


def unpack_beats(beats: list[int], lane_bits: int, lanes: int, count: int,
                 signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_beats`: the first ``count`` lanes as int64 (sign-extended if
    ``signed``)."""
    nbytes = lane_bits // 8
    raw = b"".join(b.to_bytes(lanes * nbytes, "little") for b in beats)
    kind = ("<i" if signed else "<u") + str(nbytes)
    return np.frombuffer(raw, dtype=kind)[:count].astype(np.int64)
