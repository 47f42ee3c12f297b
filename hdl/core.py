"""The top-level D-IMC core component (docs/core.md is its contract)."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from .accum import Accum
from .array import Compute, Weights
from .axi import axi_lite_signature, axi_stream_signature
from .ctrl import Ctrl
from .regmap import RegMap

__all__ = ["Core"]


class Core(wiring.Component):
    """The D-IMC core configured by ``cfg``: weight storage, compute array, accumulators,
    DPU and control, behind AXI4-Stream and AXI4-Lite ports.

    Parameters
    ----------
    cfg : CoreConfig
    hier : bool
        Instantiate the per-column modules ``<cfg.name>_wcol`` and ``<cfg.name>_ctree`` by name
        (for Verilog generation; see :func:`dcim.sim.build.generate`) instead of elaborating
        every column (for simulation).
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

    def __init__(self, cfg: CoreConfig, *, hier: bool = False,
                 dpu_factory: Callable[[CoreConfig], wiring.Component] | None = None) -> None:
        if not isinstance(cfg, CoreConfig):
            raise TypeError(f"cfg must be a CoreConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.hier = hier
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
        self.weights = Weights(cfg, hier=hier)
        self.compute = Compute(cfg, hier=hier)
        self.accum = Accum(cfg)
        self.dpu = dpu_factory(cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights = self.weights
        m.submodules.compute = self.compute
        m.submodules.accum = self.accum
        m.submodules.dpu = self.dpu
        m.submodules.ctrl = Ctrl(self.cfg, self)
        return m
