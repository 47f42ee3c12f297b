"""Control (``ctrl``): the stream receivers, the pass sequencer, the output packer and the CSR
block of the core, joined by ``wiring.connect``.

``ctrl`` is one instance in the top module (the synthesis report's ``ctrl`` block) holding:

- ``w_rx`` (:class:`~dcim.hdl.rx.StreamReceiver`): weight rows from ``s_axis_w``;
- ``x_rx`` (:class:`~dcim.hdl.rx.ActivationReceiver`): activation vectors from ``s_axis_x``;
- ``r_rx`` (:class:`~dcim.hdl.rx.StreamReceiver`): residual vectors from ``s_axis_r``, only
  with ``dpu_residual``;
- ``seq`` (:class:`~dcim.hdl.sequencer.PassSequencer`): row writes and passes, driving the
  array and the accumulators;
- ``out`` (:class:`~dcim.hdl.packer.OutputPacker`): the result buffer, the DPU feed and
  ``m_axis_y``;
- ``csr`` (:class:`~dcim.hdl.csr.CsrBlock`): the AXI4-Lite registers and the DPU table port.

The behaviour is the one docs/core.md states.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out, connect, flipped

from ..golden.config import CoreConfig
from ._base import CfgComponent
from .accum import AccumStatusSignature, PassControlSignature, PassResultSignature
from .array import RowWriteSignature, SliceSignature
from .axi import axi_lite_signature, axi_stream_signature
from .csr import CsrBlock
from .dpu import DpuParamsSignature, TableBusSignature, input_layout, output_layout
from .packer import OutputPacker
from .regmap import RegMap
from .rx import ActivationReceiver, StreamReceiver
from .sequencer import PassSequencer

__all__ = ["Ctrl"]


class Ctrl(CfgComponent):
    """The control block of the core configured by ``cfg``.

    Parameters
    ----------
    cfg : CoreConfig

    Members
    -------
    s_axis_w, s_axis_x, s_axis_r, m_axis_y, s_axil
        The core's stream and AXI4-Lite ports (:class:`dcim.hdl.core.Core`); ``s_axis_r``
        only if ``cfg.dpu_residual``.
    array_write : Out(RowWriteSignature(cfg))
    array_compute : Out(SliceSignature(cfg))
        To the array.
    accum_ctl : Out(PassControlSignature(cfg))
    accum_result : In(PassResultSignature(cfg))
    accum_status : In(AccumStatusSignature(cfg))
        To and from the accumulators.
    dpu_i : Out(stream.Signature(dpu.input_layout(cfg)))
    dpu_o : In(stream.Signature(dpu.output_layout(cfg)))
    dpu_tables : Out(TableBusSignature(cfg))
    dpu_params : Out(DpuParamsSignature(cfg))
        To and from the DPU.
    """

    def _members(self, cfg: CoreConfig) -> dict:
        return self.port_members(cfg) | {
            "array_write": Out(RowWriteSignature(cfg)),
            "array_compute": Out(SliceSignature(cfg)),
            "accum_ctl": Out(PassControlSignature(cfg)),
            "accum_result": In(PassResultSignature(cfg)),
            "accum_status": In(AccumStatusSignature(cfg)),
            "dpu_i": Out(stream.Signature(input_layout(cfg))),
            "dpu_o": In(stream.Signature(output_layout(cfg))),
            "dpu_tables": Out(TableBusSignature(cfg)),
            "dpu_params": Out(DpuParamsSignature(cfg)),
        }

    @staticmethod
    def port_members(cfg: CoreConfig) -> dict:
        """The core's external ports (docs/core.md, "Ports"), as signature members."""
        members = {
            "s_axis_w": In(axi_stream_signature(cfg.w_stream_bits)),
            "s_axis_x": In(axi_stream_signature(cfg.x_stream_bits, user_bits=cfg.x_user_bits)),
        }
        if cfg.dpu_residual:
            members["s_axis_r"] = In(axi_stream_signature(cfg.x_stream_bits))
        members["m_axis_y"] = Out(axi_stream_signature(cfg.y_stream_bits))
        members["s_axil"] = In(axi_lite_signature(RegMap.addr_bits, RegMap.data_bits))
        return members

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        w_rx = m.submodules.w_rx = StreamReceiver.weights(cfg)
        x_rx = m.submodules.x_rx = ActivationReceiver(cfg)
        seq = m.submodules.seq = PassSequencer(cfg)
        out = m.submodules.out = OutputPacker(cfg)
        csr = m.submodules.csr = CsrBlock(cfg)

        # The streams into the receivers, the packer out, the bus into the CSR block.
        connect(m, flipped(self.s_axis_w), w_rx.s)
        connect(m, flipped(self.s_axis_x), x_rx.s)
        connect(m, out.y, flipped(self.m_axis_y))
        connect(m, flipped(self.s_axil), csr.bus)
        if cfg.dpu_residual:
            r_rx = m.submodules.r_rx = StreamReceiver.residuals(cfg)
            connect(m, flipped(self.s_axis_r), r_rx.s)
            connect(m, r_rx.buf, out.r)
            connect(m, r_rx.status, csr.r_rx)
        # Buffers to their consumers; everything the CSR block sees or drives.
        connect(m, w_rx.buf, seq.w)
        connect(m, x_rx.buf, seq.x)
        connect(m, w_rx.status, csr.w_rx)
        connect(m, x_rx.status, csr.x_rx)
        connect(m, seq.csr, csr.seq)
        connect(m, out.csr, csr.out)
        # The rest of the core.
        connect(m, seq.write, flipped(self.array_write))
        connect(m, seq.compute, flipped(self.array_compute))
        connect(m, seq.accum, flipped(self.accum_ctl))
        connect(m, flipped(self.accum_result), out.result)
        connect(m, flipped(self.accum_status), csr.accum)
        connect(m, out.dpu_i, flipped(self.dpu_i))
        connect(m, flipped(self.dpu_o), out.dpu_o)
        connect(m, csr.tables, flipped(self.dpu_tables))
        connect(m, csr.dpu, flipped(self.dpu_params))
        return m
