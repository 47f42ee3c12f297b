"""Reading OpenSTA's output: worst slack, critical path and Fmax (``sta.tcl``), and the power
per workload (``power.tcl``)."""

from __future__ import annotations

import math
import re
from typing import Any

from .tools import FlowError

__all__ = ["parse_instance_power", "parse_power", "parse_timing"]

_WNS = re.compile(r"DCIM_WNS\s+(\S+)")
_START = re.compile(r"^Startpoint:\s*(\S+)", re.M)
_END = re.compile(r"^Endpoint:\s*(\S+)", re.M)
_ARRIVAL = re.compile(r"^\s*(-?[0-9.]+)\s+data arrival time", re.M)


def parse_timing(text: str, period_ns: float) -> dict[str, Any]:
    """Worst slack, critical path and Fmax from the output of ``sta.tcl``.

    Raises
    ------
    FlowError
        The output has no worst-slack line, or no constrained path was found.
    """
    m = _WNS.search(text)
    if not m:
        raise FlowError("OpenSTA printed no worst slack")
    try:
        wns = float(m.group(1))
    except ValueError:
        wns = math.inf
    if not math.isfinite(wns) or abs(wns) > 1e20:
        raise FlowError("OpenSTA found no constrained path (is the clock port named clk?)")
    min_period = period_ns - wns
    start, end, arr = _START.search(text), _END.search(text), _ARRIVAL.search(text)
    blocks = {}
    for b in re.finditer(r"DCIM_BLOCK (\S+) (\d+)(.*?)(?=DCIM_BLOCK|DCIM_BLOCKS_END|\Z)", text,
                         re.S):
        ep = re.search(r"^(\S+)\s+\(\S+\)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+(-?[0-9.]+)", b.group(3),
                       re.M)
        entry: dict[str, Any] = {"register_inputs": int(b.group(2))}
        if ep:
            slack = float(ep.group(4))
            entry.update(endpoint=ep.group(1), worst_slack_ns=slack,
                         fmax_mhz=1000.0 / (period_ns - slack))
        blocks[b.group(1)] = entry
    return {
        "clock_ns": period_ns,
        "worst_slack_ns": wns,
        "min_period_ns": min_period,
        "fmax_mhz": 1000.0 / min_period,
        "critical_path": {
            "start": start.group(1) if start else None,
            "end": end.group(1) if end else None,
            "arrival_ns": float(arr.group(1)) if arr else None,
        },
        "by_endpoint_block": blocks,
    }


_POWER_TOTAL = re.compile(r"^Total\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", re.M)


def parse_power(text: str) -> dict[str, dict[str, float]]:
    """Per workload ``{internal_w, switching_w, leakage_w, total_w}`` from ``power.tcl`` output."""
    out = {}
    for m in re.finditer(r"DCIM_POWER_BEGIN (\S+)(.*?)DCIM_POWER_END", text, re.S):
        t = _POWER_TOTAL.search(m.group(2))
        if t:
            vals = [float(x) for x in t.groups()]
            out[m.group(1)] = dict(zip(("internal_w", "switching_w", "leakage_w", "total_w"),
                                       vals))
    return out


def parse_instance_power(text: str) -> dict[str, float]:
    """Total power (W) per leaf cell from ``report_power -instances`` output
    (``internal switching leakage total name`` rows; the header lines are skipped)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        try:
            out[parts[4]] = float(parts[3])
        except ValueError:
            continue
    return out
