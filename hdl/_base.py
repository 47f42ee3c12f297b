"""The base classes of the core's components and of the interface signatures they declare."""

from __future__ import annotations

from typing import Any

from amaranth.lib import wiring

from ..golden.config import CoreConfig
from ._cfg import CfgChecked, check_cfg

__all__ = ["CfgComponent", "CfgSignature"]


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


class CfgComponent(CfgChecked, wiring.Component):
    """A component of the core whose signature follows from a :class:`CoreConfig`.

    ``cfg`` is checked before anything is built from it; the signature's members are what
    :meth:`_members` returns for it.

    Parameters
    ----------
    cfg : CoreConfig

    Attributes
    ----------
    cfg : CoreConfig

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig (checked before the component is created, so Amaranth has
        no half-built elaboratable to report as unused).
    """

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = check_cfg(cfg)
        super().__init__(self._members(self.cfg))

    def _members(self, cfg: CoreConfig) -> dict[str, Any]:
        """The members of the component's signature for ``cfg``."""
        raise NotImplementedError  # pragma: no cover
