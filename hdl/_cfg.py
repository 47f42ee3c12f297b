"""The configuration check every component of the core makes first."""

from __future__ import annotations

from typing import Any

from ..golden.config import CoreConfig

__all__ = ["check_cfg"]


def check_cfg(cfg: Any, owner: object = None) -> CoreConfig:
    """Return ``cfg`` if it is a :class:`CoreConfig`.

    Parameters
    ----------
    cfg
        The configuration given to a component.
    owner : Elaboratable, optional
        The component being constructed. When ``cfg`` is rejected, Amaranth is told not to warn
        that this half-built object was never elaborated (the TypeError is the whole story).

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig; the message names its type.
    """
    if not isinstance(cfg, CoreConfig):
        if owner is not None:
            # Amaranth's own opt-out of its UnusedElaboratable warning (amaranth/_unused.py).
            owner._MustUse__silence = True
        raise TypeError(f"cfg must be a CoreConfig, got {type(cfg).__name__}")
    return cfg
