"""The report of a ``dcim mutate`` run: counts, score, survivors by source location, as
``mutation.json`` and ``mutation.md`` in the output directory and a table on stdout.

The score is killed / (killed + survived), a ``timeout`` counting as killed; ``equivalent``
mutants (proven identical by Yosys) and ``error`` ones (the flow failed, not the testbench)
are counted apart and left out.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from ..golden.config import CoreConfig
from ..golden.fileio import write_atomic
from ..golden.table import table
from .mutation import STATUSES, MutantResult, Mutation

__all__ = ["counts", "score", "write_report"]


def counts(results: list[MutantResult]) -> dict[str, int]:
    """How many mutants have each status of :data:`STATUSES` (the interrupted left out)."""
    done = [r for r in results if not r.interrupted]
    return {s: sum(r.status == s for r in done) for s in STATUSES}


def score(c: dict[str, int]) -> float | None:
    """killed (timeouts included) / (killed + survived); None when both are 0."""
    killed = c["killed"] + c["timeout"]
    total = killed + c["survived"]
    return killed / total if total else None


def _source_line(root: Path, m: Mutation) -> str:
    where = m.src_line()
    if where is None:
        return ""
    try:
        lines = (root / where[0]).read_text().splitlines()
    except OSError:
        return ""
    return lines[where[1] - 1].strip()[:100] if 0 < where[1] <= len(lines) else ""


def write_report(cfg: CoreConfig, root: Path, mutations: list[Mutation],
                 results: list[MutantResult], info: dict, reproduce: list[str]) -> dict:
    """Write ``root/mutation.json`` and ``root/mutation.md``, print the table; return the
    JSON object.

    Parameters
    ----------
    mutations, results
        The mutants in order and the outcomes of those that ran (matched by index).
    info : dict
        The run's settings and timings (sim, seed, tests, requested, jobs, wall_s: the
        mutants' wall time, setup_s: generation, list and control before it, control_s,
        interrupted), copied into the JSON.
    reproduce : list of str
        The ``dcim regress`` options that rebuild ``cfg`` and select the simulator and seed;
        a survivor's command adds its ``--rtl DIR --rtl-edited``.
    """
    by_index = {r.index: r for r in results}
    c = counts(results)
    s = score(c)
    ran = [r for r in results if not r.interrupted and r.index > 0]
    records = []
    for m in mutations:
        r = by_index.get(m.index)
        rec = {"id": m.index, "command": m.command, "mode": m.mode, "module": m.module,
               "target": m.target, "src": m.src, "line": _source_line(root, m),
               "status": None if r is None or r.interrupted else r.status,
               "detail": r.detail if r else "", "seconds": round(r.seconds, 2) if r else None,
               "equiv_seconds": round(r.equiv_seconds, 2) if r else None,
               "rtl": str(root / "mutants" / f"m{m.index:04d}" / "rtl")}
        if rec["status"] in ("survived", "equivalent"):
            rec["reproduce"] = shlex.join(["dcim", "regress", *reproduce, "--rtl", rec["rtl"],
                                           "--rtl-edited"])
        records.append(rec)
    worker_s = sum(r.seconds for r in ran)
    data = {"config": cfg.to_dict(), **info, "mutants": len(ran), "counts": c,
            "score": s, "seconds_per_mutant": worker_s / len(ran) if ran else None,
            "wall_seconds_per_mutant": info["wall_s"] / len(ran) if ran else None,
            "records": records}
    write_atomic(root / "mutation.json", json.dumps(data, indent=1) + "\n")
    survivors = [r for r in records if r["status"] == "survived"]
    equivalent = [r for r in records if r["status"] == "equivalent"]
    errors = [r for r in records if r["status"] == "error"]
    head = _summary_rows(cfg, info, c, s, len(ran), data)
    sections = [f"# Mutation score of {cfg.name} {cfg.rows}x{cfg.cols}", "",
                *_md_table(head[0], head[1]), ""]
    for title, group in (("Survivors", survivors), ("Equivalent", equivalent),
                         ("Errors", errors)):
        if group:
            sections += [f"## {title}", "", *_md_table(
                ["id", "src", "module", "mode", "target", "Verilog", "detail"],
                [[r["id"], r["src"], r["module"], r["mode"], r["target"], f"`{r['line']}`",
                  r["detail"]]
                 for r in group]), ""]
    write_atomic(root / "mutation.md", "\n".join(sections))
    print()
    print("\n".join(table([head[1][0]], head[0], "l" + "r" * (len(head[0]) - 1), indent="")))
    if survivors:
        print("\nsurvivors (source location in the Verilog, mutation, target):")
        print("\n".join(table([[r["id"], r["src"], r["mode"], r["target"], r["line"][:60]]
                               for r in survivors], ["id", "src", "mode", "target", "Verilog"],
                              indent="  ")))
        print(f"  reproduce one: {survivors[0]['reproduce']}")
    for r in errors[:5]:
        print(f"  error m{r['id']:04d}: {r['detail']}")
    print(f"\nreport: {root / 'mutation.md'}, {root / 'mutation.json'}")
    return data


def _summary_rows(cfg, info, c, s, n, data) -> tuple[list[str], list[list[str]]]:
    per = data["wall_seconds_per_mutant"]
    headers = ["config", "sim", "mutants", "killed", "timeout", "survived", "equivalent",
               "error", "score", "s/mutant", "wall s"]
    row = [f"{cfg.name} {cfg.rows}x{cfg.cols}", info["sim"], str(n), str(c["killed"]),
           str(c["timeout"]), str(c["survived"]), str(c["equivalent"]), str(c["error"]),
           "-" if s is None else f"{100 * s:.1f} %", "-" if per is None else f"{per:.1f}",
           f"{info['wall_s']:.0f}"]
    return headers, [row]


def _md_table(headers: list[str], rows: list[list]) -> list[str]:
    def cell(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(cell(v) for v in r) + " |" for r in rows)]
