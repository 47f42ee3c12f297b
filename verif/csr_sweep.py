"""The CSR sweep of the contract (docs/core.md, Registers), on any testbench.

:func:`csr_sweep` needs only ``cfg``, ``regs`` (a :class:`~dcim.verif.csr.RegMapView`) and the
AXI4-Lite accesses ``read(addr) -> (data, resp)``, ``write(addr, word) -> resp`` and
``read_reg(name)`` of its bench, so the same sweep (values from :mod:`dcim.verif.sequences`)
runs on the cocotb :class:`~dcim.verif.tb.TB` (``test_csr``) and on the Amaranth adapter
(``tests/amaranth_tb.py``). Writes go straight to the bus, not through the model: run it
before any vector, or reset after it. Imports neither cocotb nor amaranth.
"""

from __future__ import annotations

import numpy as np

from ..hdl.regmap import Access
from .coverage import Coverage
from .sequences import csr_rw_word, illegal_values, illegal_w_rows, table_entries

__all__ = ["VOLATILE_SPAN", "csr_sweep"]

#: Cycles within which the sweep's reads of a volatile (free-running) counter lie: below it
#: right after the reset, and apart by less between two reads around a write.
VOLATILE_SPAN = 1 << 16


async def csr_sweep(bench, rng: np.random.Generator, cov: Coverage | None = None) -> int:
    """Reset values, read-only ID block, read/write of every rw field, illegal RUN_BITS and
    W_ROW values, table entries (sign extension, SLVERR past the last), SLVERR on unmapped
    addresses. Call right after a reset. A volatile register (``CYCLES``) reads below
    :data:`VOLATILE_SPAN` after the reset, and a write to it leaves it counting on: the read
    after the write is above the read before it, by less than :data:`VOLATILE_SPAN`.

    Returns
    -------
    int
        The number of checks made (at least one per register).

    Raises
    ------
    AssertionError
        The first access that broke the contract.
    """
    cfg, regs = bench.cfg, bench.regs
    checks = 0

    def hit(key: str) -> None:
        if cov is not None:
            cov.hit(key)

    for reg in regs.registers.values():
        got = await bench.read_reg(reg.name)
        if reg.volatile:
            assert got - reg.reset < VOLATILE_SPAN, f"{reg.name} reads 0x{got:08X} after " \
                f"reset, more than {VOLATILE_SPAN} cycles past its reset value 0x{reg.reset:08X}"
        else:
            assert got == reg.reset, f"{reg.name} reads 0x{got:08X} after reset, reset " \
                                     f"value 0x{reg.reset:08X}"
        checks += 1
    hit("csr.reset_values")
    for reg in regs.registers.values():
        if reg.read_only:
            before = await bench.read_reg(reg.name) if reg.volatile else reg.reset
            await bench.write(reg.offset, ~reg.reset)
            got = await bench.read_reg(reg.name)
            if reg.volatile:
                ok = 0 < (got - before) % (1 << 32) < VOLATILE_SPAN
            else:
                ok = got == reg.reset
            assert ok, f"read-only {reg.name} changed to 0x{got:08X} by a write"
            checks += 1
    hit("csr.read_only")
    for reg in regs.registers.values():
        if not any(f.access is Access.RW for f in reg.fields):
            continue
        for _ in range(2):
            word = csr_rw_word(cfg, reg, rng)
            await bench.write(reg.offset, word)
            got = await bench.read_reg(reg.name)
            assert got == word, f"{reg.name}: wrote 0x{word:08X}, read 0x{got:08X}"
            checks += 1
    hit("csr.read_write")
    # Illegal values leave the field unchanged.
    ctrl, row = regs["CTRL"], regs["W_ROW"]
    await bench.write(ctrl.offset, ctrl.encode(RUN_BITS=1))
    for bad in illegal_values(ctrl.field("RUN_BITS")):
        await bench.write(ctrl.offset, ctrl.encode(RUN_BITS=bad))
        got = ctrl.field("RUN_BITS").decode(await bench.read_reg("CTRL"))
        assert got == 1, f"CTRL.RUN_BITS = {bad} was accepted (reads {got})"
        checks += 1
    await bench.write(row.offset, row.encode(ROW=0))
    for bad in illegal_w_rows(cfg):
        assert await bench.write(row.offset, bad) == 0, f"W_ROW write of {bad} not OKAY"
        got = await bench.read_reg("W_ROW")
        assert got == 0, f"W_ROW = {bad} (rows {cfg.rows}) was accepted (reads {got})"
        checks += 1
    hit("csr.illegal_value")
    for t in regs.tables.values():
        vals = table_entries(cfg, t, rng)
        for c, v in vals.items():
            assert await bench.write(t.addr(c), v) == 0
        for c, v in vals.items():
            data, resp = await bench.read(t.addr(c))
            mask = (1 << t.width) - 1
            assert resp == 0 and data & mask == v, \
                f"{t.name}[{c}]: wrote 0x{v:X}, read 0x{data:X} (resp {resp})"
            # docs/core.md: signed table entries read back sign-extended to 32 bits.
            upper = data >> t.width
            ext = (1 << (32 - t.width)) - 1 if t.signed and v >> (t.width - 1) else 0
            assert upper == ext, f"{t.name}[{c}]: read 0x{data:X}, expected bits above " \
                f"{t.width} to be 0x{ext:X}"
            checks += 1
        beyond = t.base + t.stride * t.entries
        if beyond < (1 << regs.addr_bits) and beyond not in {x.base for x in regs.tables.values()}:
            data, resp = await bench.read(beyond)
            assert resp == 2 and data == 0, f"{t.name}[cols] answered {resp} with 0x{data:X}"
            checks += 1
    hit("csr.tables")
    for addr in regs.unmapped_addresses():
        data, resp = await bench.read(addr)
        assert resp == 2 and data == 0, f"unmapped 0x{addr:04X} read answered {resp}, 0x{data:X}"
        assert await bench.write(addr, 0xFFFFFFFF) == 2, f"unmapped 0x{addr:04X} write not SLVERR"
        checks += 2
    hit("csr.slverr")
    return checks
