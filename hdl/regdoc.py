"""The register map's documents: Markdown (also embedded into docs/core.md) and a C header.

Both are rendered from :class:`dcim.hdl.regmap.RegMap`, the one description of the map; the
JSON form is :meth:`~dcim.hdl.regmap.RegMap.to_json`. No amaranth here.
"""

from __future__ import annotations

from .regmap import ACCESS, MAGIC, VERSION, RegMap

__all__ = ["c_header", "embed_markdown", "markdown"]


def markdown(regmap: RegMap) -> str:
    """The register map as a Markdown document."""
    cfg = regmap.cfg
    out = [f"# Register map of `{cfg.name}` (version {VERSION[0]}.{VERSION[1]})", "",
           f"AXI4-Lite, 32-bit data, {regmap.addr_bits}-bit byte addresses. Generated from "
           "`hdl/regmap.py`; do not edit.", "",
           "Access types: " + "; ".join(f"`{k}` {v}" for k, v in ACCESS.items()) + ".", "",
           "Every write is a full 32-bit write (`wstrb` is ignored); unused bits read 0; "
           "signed register fields read back zero-extended, signed table entries (BIAS, SHIFT) "
           "sign-extended to 32 bits. An unmapped address answers `SLVERR` "
           "(write ignored, read 0).", "",
           "## Registers", "",
           "| offset | register | reset | field | bits | access | field reset | "
           "description |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in regmap.registers:
        first = True
        for f in r.fields:
            bits = (f"[{f.lsb}]" if f.width == 1
                    else f"[{f.lsb + f.width - 1}:{f.lsb}]")
            sign = " (signed)" if f.signed else ""
            head = (f"| 0x{r.offset:04X} | {r.name} | 0x{r.reset:08X} " if first
                    else "| | | ")
            out.append(f"{head}| {f.name} | {bits} | {f.access} | 0x{f.reset:X} | "
                       f"{f.desc}{sign} |")
            first = False
    out += ["", "Register descriptions:", ""]
    out += [f"- **{r.name}**: {r.desc}" for r in regmap.registers]
    out += ["", "## Per-column tables", "",
            f"Entry `c` (0..{cfg.cols - 1}) at `base + {regmap.table_stride}*c`; read/write; "
            "memories, not cleared by reset (power-up 0).", "",
            "| base | table | bits | description |", "| --- | --- | --- | --- |"]
    for t in regmap.tables:
        sign = " (signed)" if t.signed else ""
        out.append(f"| 0x{t.base:04X} | {t.name} | [{t.width - 1}:0] | {t.desc}{sign} |")
    return "\n".join(out) + "\n"

def c_header(regmap: RegMap) -> str:
    """The register map as a C header of ``#define`` constants."""
    p = regmap.cfg.name.upper()
    guard = f"{p}_REGS_H"
    out = [f"/* Register map of {regmap.cfg.name}, generated from hdl/regmap.py; do not edit. */",
           f"#ifndef {guard}", f"#define {guard}", "",
           f"#define {p}_REGMAP_VERSION_MAJOR {VERSION[0]}u",
           f"#define {p}_REGMAP_VERSION_MINOR {VERSION[1]}u",
           f"#define {p}_MAGIC_VALUE 0x{MAGIC:08X}u", ""]
    for r in regmap.registers:
        out.append(f"#define {p}_{r.name} 0x{r.offset:04X}u")
        out.append(f"#define {p}_{r.name}_RESET 0x{r.reset:08X}u")
        for f in r.fields:
            out.append(f"#define {p}_{r.name}_{f.name}_SHIFT {f.lsb}u")
            out.append(f"#define {p}_{r.name}_{f.name}_MASK 0x{f.mask:08X}u")
        out.append("")
    for t in regmap.tables:
        out.append(f"#define {p}_{t.name}_BASE 0x{t.base:04X}u")
        out.append(f"#define {p}_{t.name}(c) ({p}_{t.name}_BASE + {regmap.table_stride}u * "
                   "(unsigned)(c))")
    out += [f"#define {p}_TABLE_ENTRIES {regmap.cfg.cols}u", "", f"#endif /* {guard} */"]
    return "\n".join(out) + "\n"


_DOC_BEGIN = "<!-- regmap:begin -->"
_DOC_END = "<!-- regmap:end -->"


def embed_markdown(doc: str, regmap: RegMap) -> str:
    """Return ``doc`` with the text between the ``<!-- regmap:begin -->`` and
    ``<!-- regmap:end -->`` markers replaced by ``regmap``'s markdown (headings demoted two
    levels).

    Raises
    ------
    ValueError
        ``doc`` lacks the markers.
    """
    head, sep, rest = doc.partition(_DOC_BEGIN)
    _, sep2, tail = rest.partition(_DOC_END)
    if not sep or not sep2:
        raise ValueError(f"document must contain {_DOC_BEGIN} ... {_DOC_END}")
    md = "\n".join("##" + line if line.startswith("#") else line
                   for line in markdown(regmap).splitlines())
    return f"{head}{_DOC_BEGIN}\n{md}\n{_DOC_END}{tail}"
