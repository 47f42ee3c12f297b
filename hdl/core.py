"""The top-level D-IMC core component (docs/core.md is its contract)."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import CoreConfig
from ._cfg import check_cfg
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
        Instantiate the blocks ``weights`` and ``compute`` by name (modules ``<cfg.name>_weights``
        and ``<cfg.name>_compute``, for Verilog generation; see :func:`dcim.sim.build.generate`)
        instead of elaborating them (for simulation).
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
        self.cfg = check_cfg(cfg, self)
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
        if hier:  # only the ports: the blocks are instantiated by name
            self.weights = wiring.Signature(Weights.members(cfg)).create()
            self.compute = wiring.Signature(Compute.members(cfg)).create()
        else:
            self.weights = Weights(cfg)
            self.compute = Compute(cfg)
        self.accum = Accum(cfg)
        self.dpu = dpu_factory(cfg)

    def elaborate(self, platform):
        m = Module()
        cfg, weights, compute = self.cfg, self.weights, self.compute
        if self.hier:
            # The blocks by name (dcim.hdl.array.array_verilog); the per-column buses
            # weights.q_<c> -> compute.w_<c> are connected in the Verilog text (dcim.sim.build).
            m.submodules.weights = Instance(
                f"{cfg.name}_weights", i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_we=weights.we, i_row=weights.row, i_wdata=weights.wdata)
            m.submodules.compute = Instance(
                f"{cfg.name}_compute", i_clk=ClockSignal(), i_rst=ResetSignal(),
                i_x=compute.x, i_neg=compute.neg, i_en=compute.en)
            # One placeholder instance per column result (an Amaranth instance carries fewer
            # than 2**16 output bits): dcim.sim.build moves each connection to compute.y_<c>.
            for c, y in enumerate(compute.y):
                m.submodules[f"ywire{c}"] = Instance(f"{cfg.name}_ywire", o_y=y)
        else:
            m.submodules.weights = weights
            m.submodules.compute = compute
            for q, w in zip(weights.q, compute.w):
                m.d.comb += w.eq(q)
        m.submodules.accum = self.accum
        m.d.comb += [t.eq(y) for t, y in zip(self.accum.t, compute.y)]
        m.submodules.dpu = self.dpu
        m.submodules.ctrl = Ctrl(cfg, self)
        return m
