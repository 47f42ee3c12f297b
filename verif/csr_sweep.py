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

from ..golden.arith import SHIFT_RANGE
from ..hdl.regmap import Access
from .coverage import Coverage
from .sequences import csr_rw_word, illegal_values, illegal_w_rows, table_entries

__all__ = ["VOLATILE_SPAN", "csr_sweep"]

#: Cycles within which the sweep's reads of a volatile (free-running) counter lie: below it
#: right after the reset, and apart by less between two reads around a write.
VOLATILE_SPAN = 1 << 16


async def _read_entry(bench, t, c: int, want: int) -> None:
    """Read entry ``c`` of table ``t``: OKAY, ``want`` in its ``t.width`` bits, the bits above
    sign-extended for a signed table (docs/core.md), zero otherwise."""
    data, resp = await bench.read(t.addr(c))
    assert resp == 0 and data & ((1 << t.width) - 1) == want, \
        f"{t.name}[{c}]: expected 0x{want:X}, read 0x{data:X} (resp {resp})"
    upper = data >> t.width
    ext = (1 << (32 - t.width)) - 1 if t.signed and want >> (t.width - 1) else 0
    assert upper == ext, f"{t.name}[{c}]: read 0x{data:X}, expected bits above " \
        f"{t.width} to be 0x{ext:X}"


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
    last: dict[tuple[str, int], tuple[object, int]] = {}
    for t in regs.tables.values():
        mask = (1 << t.width) - 1
        first = table_entries(cfg, t, rng)
        # then every bit of those entries the other way (SHIFT: its complement may be
        # illegal, so new random values): a stuck read-back bit cannot hide behind a value
        rounds = [{c: (v, v) for c, v in first.items()}]
        if t.name == "SHIFT":
            rounds.append({c: (v, v) for c, v in table_entries(cfg, t, rng).items()})
            # the ends of the legal range and beyond (docs: stored saturated to it)
            lo, hi = SHIFT_RANGE
            edges = [lo - 1, lo, lo + 1, hi - 2, hi - 1, hi, hi + 1]
            for i in range(0, len(edges), cfg.cols):
                rounds.append({c: (v & mask, min(max(v, lo), hi) & mask)
                               for c, v in enumerate(edges[i:i + cfg.cols])})
        else:
            rounds.append({c: (v ^ mask, v ^ mask) for c, v in first.items()})
        for vals in rounds:
            for c, (v, _) in vals.items():
                assert await bench.write(t.addr(c), v) == 0
            for c, (v, want) in vals.items():
                await _read_entry(bench, t, c, want)
                last[(t.name, c)] = (t, want)
                checks += 1
        beyond = t.base + t.stride * t.entries
        if beyond < (1 << regs.addr_bits) and beyond not in {x.base for x in regs.tables.values()}:
            data, resp = await bench.read(beyond)
            assert resp == 2 and data == 0, f"{t.name}[cols] answered {resp} with 0x{data:X}"
            checks += 1
    # every table entry written last, written again in the reverse order of the tables, then
    # read again: a write to one table that also changes another's entry shows here
    for (_, c), (t, want) in reversed(list(last.items())):
        assert await bench.write(t.addr(c), want) == 0
    for (_, c), (t, want) in last.items():
        await _read_entry(bench, t, c, want)
        checks += 1
    hit("csr.tables")
    for addr in regs.unmapped_addresses():
        data, resp = await bench.read(addr)
        assert resp == 2 and data == 0, f"unmapped 0x{addr:04X} read answered {resp}, 0x{data:X}"
        assert await bench.write(addr, 0xFFFFFFFF) == 2, f"unmapped 0x{addr:04X} write not SLVERR"
        checks += 2
    hit("csr.slverr")
    return checks
