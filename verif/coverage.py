"""Functional coverage against the testplan (``verif/testplan.json``: features -> bins).

The testbench calls :meth:`Coverage.hit` when it observes a bin's event; each run writes its
hit counts into its stats file, and :func:`merge` / :func:`report` combine the runs of one
configuration into the coverage report of a regression. A bin may carry a ``when`` condition
over the configuration fields (e.g. ``"act_signed and weight_signed"``); it does not apply to a
configuration where the condition is false (reported ``n/a``, not counted).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["TESTPLAN", "Coverage", "load_testplan", "merge", "report", "summary"]

#: The testplan file (package data of ``dcim.verif``).
TESTPLAN = Path(str(resources.files("dcim.verif").joinpath("testplan.json")))


def load_testplan(path: str | Path = TESTPLAN) -> dict[str, Any]:
    """Read and sanity-check the testplan.

    Raises
    ------
    ValueError
        A feature or bin has no name, or a bin name is repeated.
    """
    plan = json.loads(Path(path).read_text())
    seen = set()
    for feature in plan["features"]:
        for b in feature["bins"]:
            key = f"{feature['name']}.{b['name']}"
            if key in seen:
                raise ValueError(f"testplan bin {key} is defined twice")
            seen.add(key)
    return plan


def _applies(when: str | None, cfg_fields: dict[str, Any]) -> bool:
    if not when:
        return True
    return bool(eval(when, {"__builtins__": {}}, dict(cfg_fields)))  # noqa: S307 (our own plan)


def bins(plan: dict[str, Any], cfg_fields: dict[str, Any]) -> dict[str, bool]:
    """Every bin key ``feature.bin`` of the plan, mapped to whether it applies to the config."""
    return {f"{f['name']}.{b['name']}": _applies(b.get("when"), cfg_fields)
            for f in plan["features"] for b in f["bins"]}


class Coverage:
    """Hit counters for the bins of a testplan.

    Parameters
    ----------
    plan : dict
        As :func:`load_testplan` returns.
    """

    def __init__(self, plan: dict[str, Any] | None = None):
        self.plan = load_testplan() if plan is None else plan
        self.known = {f"{f['name']}.{b['name']}" for f in self.plan["features"]
                      for b in f["bins"]}
        self.hits: Counter[str] = Counter()

    def hit(self, key: str, n: int = 1) -> None:
        """Count ``n`` hits of bin ``key`` (``feature.bin``).

        Raises
        ------
        KeyError
            ``key`` is not in the testplan (a typo must not silently cover nothing).
        """
        if key not in self.known:
            raise KeyError(f"coverage bin {key} is not in the testplan")
        if n:
            self.hits[key] += int(n)


def merge(hit_dicts: Iterable[dict[str, int]]) -> Counter[str]:
    """Sum the hit counts of several runs."""
    total: Counter[str] = Counter()
    for h in hit_dicts:
        total.update(h)
    return total


def summary(plan: dict[str, Any], cfg_fields: dict[str, Any], hits: dict[str, int]
            ) -> tuple[int, int]:
    """``(bins hit, bins that apply)`` for one configuration."""
    applicable = [k for k, ok in bins(plan, cfg_fields).items() if ok]
    return sum(1 for k in applicable if hits.get(k, 0) > 0), len(applicable)


def report(plan: dict[str, Any], cfg_fields: dict[str, Any], hits: dict[str, int],
           title: str = "") -> str:
    """A markdown coverage report: one table row per bin with its hit count."""
    hit, total = summary(plan, cfg_fields, hits)
    pct = 100.0 * hit / total if total else 100.0
    out = [f"# Functional coverage{': ' + title if title else ''}", "",
           f"{hit} of {total} applicable bins hit ({pct:.1f}%).", "",
           "| feature | bin | hits | description |", "| --- | --- | ---: | --- |"]
    for f in plan["features"]:
        for b in f["bins"]:
            key = f"{f['name']}.{b['name']}"
            if not _applies(b.get("when"), cfg_fields):
                count = "n/a"
            else:
                n = hits.get(key, 0)
                count = str(n) if n else "**MISSED**"
            out.append(f"| {f['name']} | {b['name']} | {count} | {b.get('desc', '')} |")
    return "\n".join(out) + "\n"
