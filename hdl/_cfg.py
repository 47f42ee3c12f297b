"""The configuration check every component of the core makes first."""

from __future__ import annotations

from typing import Any

from ..golden.config import CoreConfig

__all__ = ["CfgChecked", "check_cfg"]


def check_cfg(cfg: Any) -> CoreConfig:
    """Return ``cfg`` if it is a :class:`CoreConfig`.

    Parameters
    ----------
    cfg
        The configuration given to a component.

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig; the message names its type.
    """
    if not isinstance(cfg, CoreConfig):
        raise TypeError(f"cfg must be a CoreConfig, got {type(cfg).__name__}")
    return cfg


class CfgChecked:
    """Mixin (first among the bases) for an elaboratable built from a :class:`CoreConfig`, its
    first argument: the configuration is checked before the object exists.

    Amaranth warns about an elaboratable created and never elaborated (``UnusedElaboratable``,
    recorded when the object is created); a component whose ``__init__`` rejected its
    configuration would be one. Checking in ``__new__`` means no half-built object is ever
    created, with no use of Amaranth's private state.

    Raises
    ------
    TypeError
        ``cfg`` is not a CoreConfig.
    """

    def __new__(cls, cfg: Any, *args: Any, src_loc_at: int = 0, **kwargs: Any):
        check_cfg(cfg)
        # one frame more: Amaranth records where the object was created by the caller
        return super().__new__(cls, cfg, *args, src_loc_at=src_loc_at + 1, **kwargs)
