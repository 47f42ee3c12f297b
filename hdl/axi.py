"""AXI4-Stream and AXI4-Lite interface signatures (master view), named so that Verilog ports
come out as ``<member>__tdata``, ``<member>__awaddr``, ... for cocotbext-axi's ``from_prefix``.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LANE_BITS", "OKAY", "SLVERR", "axi_lite_signature", "axi_stream_signature"]

#: Bits of a stream byte lane (the element unit of every stream of docs/core.md).
LANE_BITS = 8
#: AXI4-Lite ``bresp``/``rresp`` codes.
OKAY, SLVERR = 0, 2


def axi_stream_signature(data_bits: int, user_bits: int = 0) -> wiring.Signature:
    """AXI4-Stream with ``tdata``, ``tvalid``, ``tready``, ``tlast`` and, if ``user_bits``,
    ``tuser`` (master view: use ``In(...)`` for a slave)."""
    members = {"tdata": Out(data_bits), "tvalid": Out(1), "tready": In(1), "tlast": Out(1)}
    if user_bits:
        members["tuser"] = Out(user_bits)
    return wiring.Signature(members)


def axi_lite_signature(addr_bits: int, data_bits: int = 32) -> wiring.Signature:
    """AXI4-Lite without ``awprot``/``arprot`` (master view)."""
    return wiring.Signature({
        "awaddr": Out(addr_bits), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1),
        "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_bits), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })
