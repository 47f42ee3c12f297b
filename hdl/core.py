"""The top-level D-IMC core component (docs/core.md is its contract)."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._cfg import check_cfg
from .accum import Accum
from .array import Array
from .axi import axi_lite_signature, axi_stream_signature
from .ctrl import Ctrl
from .regmap import RegMap

__all__ = ["Core"]


class Core(wiring.Component):
    """The D-IMC core configured by ``cfg``: the array (weight cells, AND, adder trees),
    accumulators, DPU and control, behind AXI4-Stream and AXI4-Lite ports.

    Parameters
    ----------
    cfg : CoreConfig
    column : str, optional
        Instantiate the Verilog module of this name for every column of the array (for Verilog
        generation, see :func:`dcim.sim.build.verilog_text`) instead of elaborating the
        columns (for Amaranth's simulator); see :class:`dcim.hdl.array.Array`.
    dpu_factory : callable, optional
        ``dpu_factory(cfg)`` builds the DPU component (default :class:`dcim.hdl.dpu.Dpu`).

    Members
    -------
    s_axis_w : In(AXI4-Stream, w_stream_bits)
    s_axis_x : In(AXI4-Stream, x_stream_bits, tuser 2 bits)
    s_axis_r : In(AXI4-Stream, x_stream_bits), only if ``cfg.dpu_residual``
    m_axis_y : Out(AXI4-Stream, y_stream_bits)
    s_axil : In(AXI4-Lite, 16-bit addresses, 32-bit data)

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig.
    """

    def __init__(self, cfg: CoreConfig, *, column: str | None = None,
                 dpu_factory: Callable[[CoreConfig], wiring.Component] | None = None) -> None:
        self.cfg = check_cfg(cfg, self)
        if dpu_factory is None:
            from .dpu import Dpu as dpu_factory
        members = {
            "s_axis_w": In(axi_stream_signature(cfg.w_stream_bits)),
            "s_axis_x": In(axi_stream_signature(cfg.x_stream_bits, user_bits=2)),
        }
        if cfg.dpu_residual:
            members["s_axis_r"] = In(axi_stream_signature(cfg.x_stream_bits))
        members["m_axis_y"] = Out(axi_stream_signature(cfg.y_stream_bits))
        members["s_axil"] = In(axi_lite_signature(RegMap.addr_bits))
        super().__init__(members)
        self.array = Array(cfg, column=column)
        self.accum = Accum(cfg)
        self.dpu = dpu_factory(cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = self.array
        m.submodules.accum = self.accum
        wiring.connect(m, self.array.sums, self.accum.sums)
        m.submodules.dpu = self.dpu
        m.submodules.ctrl = Ctrl(self.cfg, self)
        return m
