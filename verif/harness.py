"""What every cocotb test of :mod:`dcim.verif.test_core` does around its body.

:func:`core_test` is ``cocotb.test`` with the simulated-time limit of
:func:`dcim.verif.sequences.timeout_us`; :func:`start` builds a reset :class:`~dcim.verif.tb.TB`
with its own coverage counters and a numpy generator seeded from ``cocotb.RANDOM_SEED`` and the
test name; :func:`record` adds the test's figures and coverage hits to the stats file of the
run (:data:`dcim.verif.env.ENV_STATS`), read back and rewritten by each test, so that no state
is kept between tests in the test module.
"""

from __future__ import annotations

import functools
import json

import cocotb
import numpy as np
import pytest

from .coverage import Coverage
from .sequences import env, rand_weights, seed_for, timeout_us
from .tb import TB

__all__ = ["core_test", "load_random_weights", "not_applicable", "record", "start"]


def core_test(vectors, weight_loads: int = 1, dpu_loads: int = 1, extra_cycles: int = 0,
              skip: bool = False, reason: str = "", **kw):
    """``cocotb.test`` with the limit of :func:`~dcim.verif.sequences.timeout_us`; ``vectors``
    is a number or a function of the :class:`~dcim.verif.sequences.RunEnv`. ``skip`` (with its
    ``reason``) skips the test, also when a test filter names it (:func:`not_applicable`)."""
    e = env()
    n = vectors(e) if callable(vectors) else vectors
    test = cocotb.test(timeout_time=timeout_us(e.cfg, n, weight_loads, dpu_loads, extra_cycles),
                       timeout_unit="us", skip=skip, **kw)
    return lambda f: test(not_applicable(skip, reason)(f))


def not_applicable(skip: bool, reason: str):
    """With ``skip``, replace a test body by one that skips with ``reason``. ``cocotb.test``'s
    own ``skip`` is ignored in cocotb's TESTCASE mode, which any ``COCOTB_TEST_FILTER`` (``dcim
    regress --tests``) selects: a filter naming a test that does not apply to the configuration
    (double-buffer tests with one weight set) would otherwise run it and fail. cocotb scores
    ``pytest.skip`` as a skip in every mode."""
    def decorate(f):
        if not skip:
            return f

        @functools.wraps(f)
        async def skipped(dut):
            pytest.skip(reason or "does not apply to this run")
        return skipped
    return decorate


async def start(dut, name: str, idle: str = "none", backpressure: str = "none",
          profile: bool = False) -> TB:
    """A reset testbench with its own coverage counters and a numpy generator seeded for
    ``name``."""
    e = env()
    seed = seed_for(cocotb.RANDOM_SEED, name)
    cocotb.log.info("test %s: numpy seed %d (from cocotb.RANDOM_SEED=%d; rerun with that seed "
                    "to reproduce)", name, seed, cocotb.RANDOM_SEED)
    tb = TB(dut, e.cfg, e.regs, np.random.default_rng(seed), Coverage(), idle=idle,
            backpressure=backpressure, xcheck=e.xcheck, profile=profile)
    await tb.reset()
    return tb


def record(name: str, tb: TB, extra: dict | None = None) -> None:
    """Add test ``name``'s figures and coverage hits to the stats file (if the run has one)."""
    e = env()
    if not e.stats:
        return
    try:
        with open(e.stats) as f:
            stats = json.load(f)
    except FileNotFoundError:
        stats = {"config": e.cfg.fields(), "sim": e.sim, "tests": {}, "coverage": {}}
    stats["tests"][name] = {"compared": tb.sb.compared, "macs": tb.sb.macs,
                            "checks": tb.checks, "digest": tb.sb.digest.hexdigest(),
                            **(extra or {})}
    for key, n in tb.cov.hits.items():
        stats["coverage"][key] = stats["coverage"].get(key, 0) + n
    with open(e.stats, "w") as f:
        json.dump(stats, f, indent=1)


async def load_random_weights(tb: TB) -> np.ndarray:
    """Load random weights (:func:`~dcim.verif.sequences.rand_weights` from the test's
    generator) into every row and return them."""
    W = rand_weights(tb.cfg, tb.rng)
    await tb.load_weights(W)
    return W


async def send_and_drain(tb: TB, X: np.ndarray, residual: bool = False) -> None:
    """Send every vector of ``X`` (each with a random int8 residual if ``residual``), then wait
    until every result was compared."""
    for x in X:
        tb.send_vector(x)
        if residual:
            tb.send_residual(tb.rng.integers(-128, 128, tb.cfg.cols))
    await tb.drain()
