"""Golden model of the dcim core: configuration, arithmetic spec and bit-accurate model.

Imports neither amaranth nor cocotb.
"""

from .arith import Rounding, quantize_multiplier, requantize
from .config import ROUNDING_MODES, CoreConfig
from .model import (BitSerialResult, DpuParams, accumulate, dpu, fold_input_zero_point, mvm,
                    mvm_bitserial, mvm_tiled)

__all__ = [
    "ROUNDING_MODES",
    "BitSerialResult",
    "CoreConfig",
    "DpuParams",
    "Rounding",
    "accumulate",
    "dpu",
    "fold_input_zero_point",
    "mvm",
    "mvm_bitserial",
    "mvm_tiled",
    "quantize_multiplier",
    "requantize",
]
