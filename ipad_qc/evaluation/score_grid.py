"""The grid pixel scores are counted on: fine where softmax maps put their mass, fixed in size.

Pixel scores are too many to keep (2000 maps of 518 x 518 are half a billion per class), so the
evaluator counts them in cells and computes every curve from the counts. A uniform grid fails on
the maps IPAD-CLIP makes: Eq. 12 is a softmax of cosines over a temperature of 0.07, so artifact
pixels score 1 - 1e-6 .. 1 - 1e-12 and clean ones 1e-6 .. 1e-12, and a 65,536-level grid puts all
of them in its top or bottom level (S-AP 1.1-1.3 points low on such maps).

The cells here follow the distance ``u = min(s, 1 - s)`` of a score to the nearer end, which is how
a softmax spreads its values (``u`` is about ``exp(-|logit|)``), so the grid is close to uniform in
the logit. Cells are ranges of float32 bit patterns of ``u``:

* ``u`` in [2**-64, 1/16): the float32 exponent and the top 11 bits of the mantissa, so cells are
  2**-11 of ``u`` wide, about 5e-4 in the logit; ``u`` below 2**-64 (5e-20) falls in the end cell;
* ``u`` in [1/16, 1/2]: the top 14 bits of the mantissa, cells 2**-18 .. 2**-16 wide;
* so a cell is nowhere wider than the old 65,536-level uniform grid's levels (2**-16), and every
  float32 score above 1 - 2**-12 (0.99976) has a cell of its own: the saturated top, where an
  artifact map's positives are, is counted exactly.

That is ``CELLS`` = 344,065 cells, whatever the number of maps. ``1 - s`` is exact in the score's
own precision for ``s >= 1/2`` (Sterbenz), and rounding ``u`` to float32 keeps its relative
precision, so float64 scores keep their saturated tails too. The cell index is non-decreasing in
the score, which is all the curves need; what is lost is the order of distinct scores that share a
cell, and :meth:`ipad_qc.evaluation.curves.RankCurve.error_bounds` turns that into proven bounds.
Along with the cell, :func:`score_cells` returns the float32 bits of ``u``, which identify the
score within its cell, so the evaluator can tell cells of one distinct score (real ties, such as
an 8-bit map's levels) from cells whose inner order was lost.
"""

from __future__ import annotations

import numpy as np

_FINE_SHIFT, _COARSE_SHIFT = 23 - 14, 3  # float32 has 23 mantissa bits; the tails keep 14 - 3 = 11
_LOW_BITS = (127 - 64) << 23  # float32 bits of 2**-64: lower distances share the end cell
_MIDDLE_FINE = ((127 - 4) << 23) - _LOW_BITS >> _FINE_SHIFT  # fine index of u = 1/16
_TAIL_CELLS = _MIDDLE_FINE >> _COARSE_SHIFT
_HALF = _TAIL_CELLS + (((126 << 23) - _LOW_BITS >> _FINE_SHIFT) - _MIDDLE_FINE)  # the cell of s = 1/2
#: Number of cells; index 0 holds s = 0 (and u < 2**-64), index ``CELLS - 1`` holds s = 1 alone.
CELLS = 2 * _HALF + 1


def score_cells(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index (int32, in ``[0, CELLS)``) of each score, and the float32 bits of its distance ``u``
    to the nearer end (int32; equal within a cell exactly when the scores are, at float32 precision
    of ``u``). Scores outside [0, 1] go to the end cells.

    NaN is refused rather than put in an arbitrary cell, which would hide a broken model behind
    plausible metrics. Float32 and float64 are used as given, other types as float32. Written as
    whole-array integer arithmetic on the float bits, without masks or branches, because it runs
    on every pixel of every class map.
    """
    scores = np.asarray(scores)
    if scores.dtype != np.float64:
        scores = scores.astype(np.float32, copy=False)
    distance = 1.0 - scores
    np.minimum(scores, distance, out=distance)  # u; negative (end cells) for scores outside [0, 1]
    if distance.size and np.isnan(distance.max()):  # NaN propagates through both
        raise ValueError("scores contain NaN")
    distance_bits = distance.astype(np.float32, copy=False).view(np.int32)
    bits = np.maximum(distance_bits, _LOW_BITS)
    bits -= _LOW_BITS
    bits >>= _FINE_SHIFT
    middle = bits - _MIDDLE_FINE
    np.maximum(middle, 0, out=middle)
    np.minimum(bits, _MIDDLE_FINE, out=bits)
    bits >>= _COARSE_SHIFT
    bits += middle  # cell of u, counted from u = 0
    sign = (scores < 0.5).astype(np.int32)
    sign *= 2
    sign -= 1  # +1 below 1/2, -1 from 1/2 up, where the cells of u run the other way
    bits -= _HALF
    bits *= sign
    bits += _HALF
    return bits, distance_bits
