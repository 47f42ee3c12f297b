"""Pooling ops, off the array: max pooling on the codes, average pooling requantized on the host.

Windows come from :func:`dcim.golden.quant.tensor_ops.pool_windows` (NCHW; ONNX ``pads`` order
``(top, left, bottom, right)``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..arith import quantize_multiplier, requantize
from .ops import Op, OpKind
from .scheme import fake_round
from .tensor_ops import pool_windows

__all__ = ["AvgPool", "GlobalAvgPool", "MaxPool", "Pool"]


@dataclasses.dataclass
class Pool(Op):
    """A 2-D sliding window (abstract).

    Attributes
    ----------
    kernel, strides, dilations : tuple of int
        ``(kh, kw)``, ``(sh, sw)``, ``(dh, dw)``.
    pads : tuple of int
        ``(top, left, bottom, right)``.
    """

    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)

    def windows(self, x: np.ndarray, pad_value=0) -> np.ndarray:
        """The windows of ``x``: shape ``(N, C, OH, OW, kh, kw)``."""
        return pool_windows(x, self.kernel, self.strides, self.pads, pad_value, self.dilations)


@dataclasses.dataclass
class MaxPool(Pool):
    """Max pooling, on the codes (monotone: exact); padding with the lowest code."""

    kind = layer_kind = OpKind.MAXPOOL

    def run_float(self, args):
        return self.windows(args[0], -np.inf).max(axis=(-2, -1))

    def run_int(self, m, layer, args):
        return self.windows(args[0], m.cfg.act_range[0]).max(axis=(-2, -1))


@dataclasses.dataclass
class AvgPool(Pool):
    """Average pooling: the centred sum of a window over its divisor ``d``,
    ``requantize(sum(q - zp_in), quantize_multiplier(s_in / (d s_out))) + zp_out``, clamped.

    Padding adds real zeros (the input zero point in codes: nothing to the centred sum). The
    divisor is the window size ``n = kh*kw``, or with ``count_include_pad = 0`` and padding the
    number of input elements in each window (one multiplier per count ``1..n``).

    Attributes
    ----------
    count_include_pad : bool
        ONNX ``count_include_pad``.
    """

    count_include_pad: bool = False
    kind = layer_kind = OpKind.AVGPOOL
    requantizes = True

    @property
    def per_position(self) -> bool:
        """Whether the divisor varies with the window's position (padding not counted)."""
        return any(self.pads) and not self.count_include_pad

    def window_size(self) -> int | None:
        """Elements per window (None: known only from the input, as for a global pool)."""
        return self.kernel[0] * self.kernel[1]

    def flat_windows(self, x: np.ndarray, pad_value=0) -> np.ndarray:
        """The windows of ``x``, flattened: shape ``(N, C, OH, OW, n)``."""
        win = self.windows(x, pad_value)
        return win.reshape(win.shape[:4] + (-1,))

    def counts(self, x: np.ndarray) -> np.ndarray:
        """Input elements in each window, int64 ``(OH, OW)``."""
        ones = np.ones((1, 1) + x.shape[2:], dtype=np.int64)
        return self.flat_windows(ones)[0, 0].sum(axis=-1)

    def run_float(self, args):
        x = args[0]
        if self.per_position:
            return self.flat_windows(x).sum(axis=-1) / self.counts(x)
        return self.windows(x).mean(axis=(-2, -1))

    def quantize(self, cfg, layer, qparams, warnings):
        n = self.window_size()
        qin, qout = qparams[layer.inputs[0]], qparams[layer.output]
        divisors = [] if n is None else range(1, n + 1) if self.per_position else [n]
        layer.mults = [quantize_multiplier(qin.scale / (d * qout.scale)) for d in divisors]

    def _pool(self, m, layer, x, fake):
        qin, qout = m.qparams[layer.inputs[0]], m.qparams[layer.output]
        win = self.flat_windows(x, qin.zero_point)
        n = win.shape[-1]
        ratio = qin.scale / qout.scale
        if self.per_position:
            count = self.counts(x)
            mult = np.array([p[0] for p in layer.mults])[count - 1]
            shift = np.array([p[1] for p in layer.mults])[count - 1]
        else:
            mult, shift = (layer.mults[0] if layer.mults
                           else quantize_multiplier(qin.scale / (n * qout.scale)))
        if fake and self.per_position:
            y = fake_round((win - qin.zero_point).sum(axis=-1) / count * ratio, shift,
                           m.cfg.rounding)
        elif fake:
            y = fake_round((win - qin.zero_point).mean(axis=-1) * ratio, shift, m.cfg.rounding)
        else:
            total = win.sum(axis=-1, dtype=np.int64) - n * qin.zero_point
            y = requantize(total, mult, shift, m.cfg.rounding)
        return np.clip(y + qout.zero_point, layer.act_min, layer.act_max).astype(np.int64)

    def run_int(self, m, layer, args):
        return self._pool(m, layer, args[0], False)

    def run_fake(self, m, layer, args):
        return self._pool(m, layer, args[0], True)


@dataclasses.dataclass
class GlobalAvgPool(AvgPool):
    """GlobalAveragePool: the average over each channel's whole plane (kept as 1x1)."""

    kind = OpKind.GAP

    def run_float(self, args):
        return args[0].mean(axis=(2, 3), keepdims=True)

    def window_size(self):
        return None

    def flat_windows(self, x, pad_value=0):
        return x.reshape(x.shape[0], x.shape[1], 1, 1, -1)
