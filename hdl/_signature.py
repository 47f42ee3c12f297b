"""The base of the interface signatures the blocks of the core declare for each other."""

from __future__ import annotations

from typing import Any

from amaranth.lib import wiring

from ..golden.config import CoreConfig
from ._cfg import check_cfg

__all__ = ["CfgSignature"]


class CfgSignature(wiring.Signature):
    """A signature whose members follow from a :class:`CoreConfig` alone.

    Two such signatures are equal when they are of the same class and have equal
    configurations (so that ``connect`` diagnostics and ``==`` compare what matters).

    Parameters
    ----------
    cfg : CoreConfig
    members : dict
        The members, as for :class:`amaranth.lib.wiring.Signature`.

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig.
    """

    def __init__(self, cfg: CoreConfig, members: dict[str, Any]) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__(members)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.cfg == self.cfg

    def __hash__(self) -> int:
        return hash((type(self), self.cfg))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg.rows}x{self.cfg.cols})"
