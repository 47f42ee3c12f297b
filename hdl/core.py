"""The top-level D-IMC core component (docs/core.md is its contract)."""

from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import connect, flipped

from ..golden.config import CoreConfig
from ._cfg import CfgChecked, check_cfg
from .accum import Accum
from .array import Array
from .ctrl import Ctrl

__all__ = ["Core"]


class Core(CfgChecked, wiring.Component):
    """The D-IMC core configured by ``cfg``: the array (weight cells, AND, adder trees),
    accumulators, DPU and control, behind AXI4-Stream and AXI4-Lite ports.

    The four blocks are the submodules ``array``, ``accum``, ``dpu`` and ``ctrl`` (instance
    names the synthesis report relies on), joined by ``wiring.connect``.

    Parameters
    ----------
    cfg : CoreConfig
    column : str, optional
        Instantiate the Verilog module of this name for every column of the array (for Verilog
        generation, see :func:`dcim.sim.build.verilog_text`) instead of elaborating the
        columns (for Amaranth's simulator); see :class:`dcim.hdl.array.Array`.
    dpu_factory : callable, optional
        ``dpu_factory(cfg)`` builds the DPU component (default :class:`dcim.hdl.dpu.Dpu`); it
        must have the DPU's members ``i``, ``o``, ``tables`` and ``params``.

    Members
    -------
    s_axis_w : In(AXI4-Stream, w_stream_bits)
    s_axis_x : In(AXI4-Stream, x_stream_bits, tuser x_user_bits)
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
        self.cfg = check_cfg(cfg)
        if dpu_factory is None:
            from .dpu import Dpu as dpu_factory
        super().__init__(Ctrl.port_members(cfg))
        self.array = Array(cfg, column=column)
        self.accum = Accum(cfg)
        self.dpu = dpu_factory(cfg)
        self.ctrl = Ctrl(cfg)

    def elaborate(self, platform):
        m = Module()
        array, accum, dpu, ctrl = self.array, self.accum, self.dpu, self.ctrl
        m.submodules.array = array
        m.submodules.accum = accum
        m.submodules.dpu = dpu
        m.submodules.ctrl = ctrl
        for name in self.signature.members:
            connect(m, flipped(getattr(self, name)), getattr(ctrl, name))
        connect(m, ctrl.array_write, array.write)
        connect(m, ctrl.array_compute, array.compute)
        connect(m, array.sums, accum.sums)
        connect(m, ctrl.accum_ctl, accum.ctl)
        connect(m, accum.result, ctrl.accum_result)
        connect(m, accum.status, ctrl.accum_status)
        connect(m, ctrl.dpu_i, dpu.i)
        connect(m, dpu.o, ctrl.dpu_o)
        connect(m, ctrl.dpu_tables, dpu.tables)
        connect(m, ctrl.dpu_params, dpu.params)
        return m
