"""The environment variables through which a regression run (``dcim.sim.runner``) tells the
cocotb test module (:mod:`dcim.verif.test_core`) what to test; importable without cocotb."""

__all__ = ["ENV_CONFIG", "ENV_REGMAP", "ENV_REPLAY", "ENV_SIM", "ENV_STATS"]

#: Path of the core's JSON (``dcim generate``), the configuration under test.
ENV_CONFIG = "DCIM_CORE_JSON"
#: Path of the register-map JSON generated with it.
ENV_REGMAP = "DCIM_REGMAP_JSON"
#: File the test module writes its statistics to (transactions, MACs, coverage, digest).
ENV_STATS = "DCIM_STATS_JSON"
#: The simulator's name (``icarus`` or ``verilator``).
ENV_SIM = "DCIM_SIM"
#: The export directory ``test_replay`` replays (``dcim regress --vectors``).
ENV_REPLAY = "DCIM_REPLAY_DIR"
