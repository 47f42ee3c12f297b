"""JUnit XML: reading cocotb's results file of one run (``results.xml``) into plain records,
and writing the report of a whole regression (``dcim regress --junit``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from ..golden.fileio import write_atomic

__all__ = ["ParseError", "parse_results", "write_junit", "write_junit_groups"]

#: Raised for a results file that is not well-formed XML.
ParseError = ET.ParseError


def parse_results(path: Path) -> tuple[list[dict], list[str]]:
    """The test cases of the JUnit file at ``path`` and the names of the failed ones.

    Skipped cases are left out. Each case is a dict with ``name``, ``time`` (wall seconds),
    ``sim_time_ns`` (cocotb's attribute; 0 if absent), ``failed`` (a ``failure`` or ``error``
    element) and ``message`` (that element's ``message`` attribute, else its text, else "").

    Raises
    ------
    ParseError
        The file is not well-formed XML.
    """
    cases, failures = [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("skipped") is not None:
            continue
        failed = case.find("failure") is not None or case.find("error") is not None
        name = case.get("name", "?")
        cases.append({"name": name, "time": float(case.get("time", 0) or 0),
                      "sim_time_ns": float(case.get("sim_time_ns", 0) or 0),
                      "failed": failed, "message": _failure_message(case)})
        if failed:
            failures.append(name)
    return cases, failures


def _failure_message(case: ET.Element) -> str:
    for tag in ("failure", "error"):
        node = case.find(tag)
        if node is not None:
            return (node.get("message") or node.text or "").strip()
    return ""


def write_junit(path: Path, label: str, summaries: Iterable) -> None:
    """Write the JUnit report of a regression to ``path`` (atomically).

    Parameters
    ----------
    path : Path
        The report; its folder is created.
    label : str
        The name of the whole report (``<config>_<label>``); every suite is named
        ``<label>.<sim>.<view>.seed<seed>``.
    summaries : iterable of dcim.sim.regress_runs.SimSummary
        One per (simulator, array view): its ``sim``, ``view``, ``runs`` (``(seed,
        RunResult)`` pairs, one suite each, a case per test case and a ``simulator`` error
        case when the run itself failed) and ``errors`` (one failed ``regression`` case each).
    """
    write_junit_groups(path, f"dcim regress {label}", [(label, summaries)])


def write_junit_groups(path: Path, name: str, groups: Iterable[tuple[str, Iterable]]) -> None:
    """As :func:`write_junit`, for several configurations in one report (``dcim farm``):
    ``groups`` are ``(label, summaries)`` pairs, the report is named ``name``."""
    suites = ET.Element("testsuites", name=name)
    for label, summaries in groups:
        for s in summaries:
            _suites(suites, f"{label}.{s.sim}.{s.view}", s)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ET.tostring(suites, encoding="unicode", xml_declaration=True))


def _suites(suites: ET.Element, base: str, s) -> None:
    """The suites of one (simulator, view) summary under ``suites``."""
    for seed, r in s.runs:
        name = f"{base}.seed{seed}"
        suite = ET.SubElement(suites, "testsuite", name=name, tests=str(r.tests),
                              failures=str(r.failed), time=f"{r.seconds:.3f}")
        for c in r.cases:
            case = ET.SubElement(suite, "testcase", classname=name, name=c["name"],
                                 time=f"{c['time']:.3f}")
            if c["failed"]:
                ET.SubElement(case, "failure", message=c["message"][:2000])
        if r.error:
            case = ET.SubElement(suite, "testcase", classname=name, name="simulator")
            ET.SubElement(case, "error", message=r.error)
    for err in s.errors:
        suite = ET.SubElement(suites, "testsuite", name=base, tests="1", failures="1")
        case = ET.SubElement(suite, "testcase", classname=base, name="regression")
        ET.SubElement(case, "failure", message=err)
