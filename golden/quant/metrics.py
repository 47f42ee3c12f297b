"""Figures of the ``dcim calibrate`` report: top-1 with ties, agreement, logit SQNR, and per-layer
SQNR that stays meaningful when a range clips outliers.

**Ties.** A sample is a tie when its highest logit is shared by more than one class (exact
equality: INT8 logits are codes, so two classes often get the same one). A tie has no top-1
prediction (:func:`top1` gives -1) and counts as wrong, even when the label is one of the tied
classes: resolving it by class index, as ``argmax`` does, would credit the model with a
decision it did not make. :func:`flow_metrics` also counts the ties whose tied classes include
the label (what index resolution could have counted as correct).

**Agreement.** A sample agrees with the FP32 model when both have a top-1 prediction (neither is
a tie) and it is the same class.

**Per-layer clipping.** Over a tensor whose calibrated range clips outliers, the plain SQNR
is dominated by the few clipped values, whose error grows with the outlier, while every other
value gets a finer scale: it ranks a clipping calibrator below min/max even where it represents
almost every value better. :class:`LayerStats` therefore also gives the SQNR over the values
inside the quantization range (``inrange_sqnr_db``), the fraction of values outside it
(``clipped_fraction``) and the share of the squared error they cause (``clip_error_share``).
A value is clipped when the float reference lies more than half a step beyond the range of
the codes, ``[s (qmin - zp), s (qmax - zp)]``: there the error exceeds rounding's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .scheme import QParams, dequantize, sqnr_db, sqnr_from_sums

__all__ = ["LayerStats", "flow_metrics", "top1"]


def top1(logits: np.ndarray) -> np.ndarray:
    """Top-1 class per sample (int64), ``-1`` where the highest value is shared by several
    classes (a tie) or is not a number."""
    v = np.asarray(logits)
    v = v.reshape(len(v), -1)
    hits = v == v.max(axis=1, keepdims=True)
    pred = hits.argmax(axis=1).astype(np.int64)
    pred[hits.sum(axis=1) != 1] = -1
    return pred


def flow_metrics(logits: np.ndarray, labels: np.ndarray, ref_logits: np.ndarray | None = None
                 ) -> dict[str, Any]:
    """Accuracy (a tie counts as wrong), ties, and against the FP32 logits ``ref_logits`` (if
    given) top-1 agreement and the logit SQNR in dB (``inf`` when identical).

    Returns
    -------
    dict
        ``accuracy``, ``correct``, ``ties``, ``ties_with_label`` (ties whose tied classes
        include the label), and with ``ref_logits`` ``top1_agreement_with_fp32`` and
        ``logit_sqnr_db``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(labels)
    pred = top1(logits)
    tie = pred < 0
    label_is_max = logits[np.arange(n), labels] == logits.max(axis=1)
    correct = int(np.sum(pred == labels))
    out: dict[str, Any] = {"accuracy": correct / n, "correct": correct, "ties": int(tie.sum()),
                           "ties_with_label": int(np.sum(tie & label_is_max))}
    if ref_logits is not None:
        ref = np.asarray(ref_logits, dtype=np.float64)
        if ref.shape != logits.shape:
            raise ValueError(f"logits of shape {logits.shape} cannot be compared with FP32 "
                             f"logits of shape {ref.shape}")
        ref_pred = top1(ref)
        out["top1_agreement_with_fp32"] = float(np.mean((pred == ref_pred) & (pred >= 0)))
        out["logit_sqnr_db"] = sqnr_db(ref, logits)
    return out


@dataclasses.dataclass
class LayerStats:
    """Sums over the evaluation set for one integer tensor, batch by batch (:meth:`add`)."""

    sig: float = 0.0
    err: float = 0.0
    sig_in: float = 0.0
    err_in: float = 0.0
    err_clip: float = 0.0
    clipped: int = 0
    mismatches: int = 0
    elements: int = 0
    max_diff: int = 0

    def add(self, ref: np.ndarray, codes: np.ndarray, fake: np.ndarray | None, qp: QParams,
            act_range: tuple[int, int]) -> None:
        """One batch: the float reference, the integer path's codes, the fake-quant codes (or
        None) and the tensor's quantization."""
        ref = np.asarray(ref, dtype=np.float64)
        err2 = (ref - dequantize(codes, qp)) ** 2
        sig2 = ref ** 2
        half = 0.5 * qp.scale
        lo = qp.scale * (act_range[0] - qp.zero_point)
        hi = qp.scale * (act_range[1] - qp.zero_point)
        clip = (ref < lo - half) | (ref > hi + half)
        self.sig += float(sig2.sum())
        self.err += float(err2.sum())
        self.err_clip += float(err2[clip].sum())
        self.sig_in += float(sig2[~clip].sum())
        self.err_in += float(err2[~clip].sum())
        self.clipped += int(clip.sum())
        self.elements += ref.size
        if fake is not None:
            diff = np.abs(np.asarray(codes) - np.asarray(fake))
            self.mismatches += int(np.count_nonzero(diff))
            self.max_diff = max(self.max_diff, int(diff.max(initial=0)))

    def as_dict(self) -> dict[str, Any]:
        """``sqnr_db`` (all values), ``inrange_sqnr_db`` (the values inside the range),
        ``clipped_fraction``, ``clip_error_share``, ``fakequant_mismatches``, ``elements``,
        ``max_lsb_diff``."""
        return {"sqnr_db": sqnr_from_sums(self.sig, self.err),
                "inrange_sqnr_db": sqnr_from_sums(self.sig_in, self.err_in),
                "clipped_fraction": self.clipped / self.elements if self.elements else 0.0,
                "clip_error_share": self.err_clip / self.err if self.err else 0.0,
                "fakequant_mismatches": self.mismatches, "elements": self.elements,
                "max_lsb_diff": self.max_diff}
