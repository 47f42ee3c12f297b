"""Layout helpers shared by the float reference, the integer path and the example trainer.

Pure data movement (no arithmetic on values), so the same functions serve float tensors and
exact int64 tensors. NCHW layout throughout, as in ONNX.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conv_out_size", "im2col", "im2col_hwc", "pool_windows"]


def conv_out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int,
                  dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one axis (floor mode)."""
    return (size + pad_lo + pad_hi - (kernel - 1) * dilation - 1) // stride + 1


def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value) -> np.ndarray:
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def pool_windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
                 pads: tuple[int, int, int, int] = (0, 0, 0, 0), pad_value=0,
                 dilations: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Every window of a 2-D sliding operation.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, C, H, W)
    kernel, strides : (kh, kw), (sh, sw)
    pads : (top, left, bottom, right)
        ONNX ``pads`` order (begin values then end values).
    pad_value : scalar
        Value of the padding (0 for a float convolution, the zero point for a quantized one).
    dilations : (dh, dw)
        Spacing of the window's taps (ONNX ``dilations``).

    Returns
    -------
    numpy.ndarray, shape (N, C, OH, OW, kh, kw)
        A view where possible.
    """
    xp = _pad(x, pads, pad_value)
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    return win[:, :, ::strides[0], ::strides[1], ::dilations[0], ::dilations[1]]


def im2col(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
           pads: tuple[int, int, int, int] = (0, 0, 0, 0), pad_value=0,
           dilations: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Unfold convolution patches into rows: shape ``(N * OH * OW, C * kh * kw)``.

    Row ``(n, oh, ow)`` (row-major) holds the patch in ``(c, i, j)`` order, so a weight tensor
    of shape ``(Cout, C, kh, kw)`` reshaped to ``(Cout, C*kh*kw)`` and transposed multiplies it.
    """
    win = pool_windows(x, kernel, strides, pads, pad_value, dilations)
    n, c, oh, ow, kh, kw = win.shape
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * kh * kw)


def im2col_hwc(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
               pads: tuple[int, int, int, int] = (0, 0, 0, 0), pad_value=0,
               dilations: tuple[int, int] = (1, 1)) -> np.ndarray:
    """:func:`im2col` with the patch in ``(i, j, c)`` order: shape ``(N * OH * OW, kh * kw *
    C)``, channels innermost (contiguous copies; fastest when ``x`` is an NCHW view of
    channel-last memory). Weights ``(Cout, C, kh, kw)`` multiply it as
    ``w.transpose(0, 2, 3, 1).reshape(Cout, -1).T``.
    """
    xh = x.transpose(0, 2, 3, 1)
    n, h, w, c = xh.shape
    top, left, bottom, right = pads
    xp = np.full((n, h + top + bottom, w + left + right, c), pad_value, dtype=x.dtype)
    xp[:, top:top + h, left:left + w] = xh
    span = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations))
    win = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(1, 2))
    win = win[:, ::strides[0], ::strides[1], :, ::dilations[0], ::dilations[1]]
    oh, ow, kh, kw = win.shape[1], win.shape[2], win.shape[4], win.shape[5]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(n * oh * ow, kh * kw * c)
