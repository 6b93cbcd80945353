"""Exact selection over partitions: the ``count`` smallest keys of each group, ties taken in row order.

The detection rule flags "the ``count`` rows with the lowest label quality" (``flag="rank"``)
or, in each given class, "the ``count`` rows with the widest margin" (``flag="class_noise"``),
ties taken in row order (:func:`labelclean.detection._largest`). Over a partitioned dataset
that is a global order statistic. It is found exactly, without moving the rows: the float32
values become ``uint32`` keys in the same order (:func:`sortable`), and two passes over the
parts histogram the high and then the low 16 bits of the keys still in the running
(:func:`histogram`); the driver narrows each group's cut from the summed histograms
(:meth:`Selection.narrow`). The last histogram of each part also says how many of its rows
tie with the cut, so each part knows how many of its tied rows, in row order, to take
(:meth:`Selection.ties_per_part`, :func:`selected`).

Examples
--------
>>> import numpy as np
>>> q = np.array([0.5, 0.1, 0.3, 0.1, 0.9, 0.1], dtype=np.float32)
>>> parts = [slice(0, 2), slice(2, 4), slice(4, 6)]
>>> keys, groups = sortable(q), np.zeros(6, dtype=np.int64)
>>> sel = Selection.start(np.array([3]), np.array([6]))
>>> for r in range(ROUNDS):
...     hists = [histogram(keys[p], groups[p], sel, r) for p in parts]
...     sel = sel.narrow(hists, r)
>>> take = sel.ties_per_part(hists)
>>> np.concatenate([selected(keys[p], groups[p], sel, take[i]) for i, p in enumerate(parts)]).astype(int).tolist()
[0, 1, 0, 1, 0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: Bits of the key decided per pass, and passes for a 32-bit key.
DIGIT_BITS = 16
ROUNDS = 32 // DIGIT_BITS
_DIGITS = 1 << DIGIT_BITS


def sortable(values: np.ndarray, *, descending: bool = False) -> np.ndarray:
    """float32 values as ``uint32`` keys that sort in the same order (or the reverse); ``-0.0`` counts as ``0.0``.

    Examples
    --------
    >>> v = np.array([-1.5, 0.0, -0.0, 2.0, 1e-30], dtype=np.float32)
    >>> np.argsort(sortable(v), kind="stable").tolist(), bool(sortable(v)[1] == sortable(v)[2])
    ([0, 1, 2, 4, 3], True)
    """
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    keys = np.where(bits >> np.uint32(31), ~bits, bits | np.uint32(0x80000000)).astype(np.uint32)
    return ~keys if descending else keys


@dataclass(frozen=True)
class Selection:
    """Where the search for each group's cut stands (driver side; broadcast to the parts).

    Attributes
    ----------
    count : ndarray of int64
        Rows to select in each group.
    size : ndarray of int64
        Rows in each group.
    prefix : ndarray of uint32
        The high bits of the cut found so far (``DIGIT_BITS`` per finished pass).
    rank : ndarray of int64
        The cut's rank (1-based) among the rows that share ``prefix``.
    below : ndarray of int64
        Rows whose key is below every key that shares ``prefix``.
    """

    count: np.ndarray
    size: np.ndarray
    prefix: np.ndarray
    rank: np.ndarray
    below: np.ndarray

    @classmethod
    def start(cls, count: np.ndarray, size: np.ndarray) -> Selection:
        count = np.minimum(np.asarray(count, dtype=np.int64), np.asarray(size, dtype=np.int64))
        zeros = np.zeros(len(count), dtype=np.int64)
        return cls(count, np.asarray(size, dtype=np.int64), zeros.astype(np.uint32), count.copy(), zeros)

    @property
    def open(self) -> np.ndarray:
        """Groups whose cut must be searched for (some, not all, of their rows are selected)."""
        return (self.count > 0) & (self.count < self.size)

    def narrow(self, hists: list[tuple[np.ndarray, np.ndarray]], round_: int) -> Selection:
        """The selection after pass ``round_``, from the parts' histograms (:func:`histogram`)."""
        cells, counts = _merge(hists)
        prefix, rank, below = self.prefix.copy(), self.rank.copy(), self.below.copy()
        group_of = cells // _DIGITS
        for g in np.flatnonzero(self.open):
            mine = group_of == g
            digits, hist = cells[mine] % _DIGITS, counts[mine]
            cum = np.cumsum(hist)
            at = int(np.searchsorted(cum, rank[g]))  # first digit whose cumulative count reaches the rank
            before = int(cum[at - 1]) if at else 0
            prefix[g] = (int(prefix[g]) << DIGIT_BITS) | int(digits[at]) if round_ else int(digits[at])
            rank[g] -= before
            below[g] += before
        return replace(self, prefix=prefix.astype(np.uint32), rank=rank, below=below)

    def ties_per_part(self, hists: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """After the last pass: per part and group, how many of its rows tying with the cut are selected."""
        need = np.where(self.open, self.count - self.below, 0)
        take = []
        for cells, counts in hists:
            tied = np.zeros(len(self.count), dtype=np.int64)
            groups = cells // _DIGITS
            hit = (cells % _DIGITS) == (self.prefix[groups] & (_DIGITS - 1))
            np.add.at(tied, groups[hit], counts[hit])
            mine = np.minimum(tied, need)
            need = need - mine
            take.append(mine)
        return take


def _merge(hists: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The parts' sparse histograms summed: sorted cells (``group * 2**16 + digit``) and their counts."""
    cells = np.concatenate([c for c, _ in hists]) if hists else np.zeros(0, dtype=np.int64)
    counts = np.concatenate([n for _, n in hists]) if hists else np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(cells, return_inverse=True)
    total = np.zeros(len(unique), dtype=np.int64)
    np.add.at(total, inverse, counts)
    return unique, total


def _in_play(keys: np.ndarray, groups: np.ndarray, sel: Selection, round_: int) -> np.ndarray:
    """Rows of open groups whose key shares the group's prefix after ``round_`` passes."""
    mask = sel.open[groups]
    if round_:
        shift = np.uint32(32 - DIGIT_BITS * round_)
        mask &= (keys >> shift) == sel.prefix[groups]
    return mask


def histogram(keys: np.ndarray, groups: np.ndarray, sel: Selection, round_: int) -> tuple[np.ndarray, np.ndarray]:
    """One part's sparse histogram of digit ``round_`` of the keys still in play: cells and counts (int64)."""
    rows = _in_play(keys, groups, sel, round_)
    shift = np.uint32(32 - DIGIT_BITS * (round_ + 1))
    digits = ((keys[rows] >> shift) & np.uint32(_DIGITS - 1)).astype(np.int64)
    cells, counts = np.unique(groups[rows].astype(np.int64) * _DIGITS + digits, return_counts=True)
    return cells.astype(np.int64), counts.astype(np.int64)


def selected(keys: np.ndarray, groups: np.ndarray, sel: Selection, take: np.ndarray) -> np.ndarray:
    """One part's selected rows: below its group's cut, or tied with it and among the first ``take`` of the part."""
    cut = sel.prefix[groups]
    out = (sel.count[groups] >= sel.size[groups]) & (sel.count[groups] > 0)
    open_ = sel.open[groups]
    out |= open_ & (keys < cut)
    tied = np.flatnonzero(open_ & (keys == cut))
    if tied.size:
        g = groups[tied]
        order = np.argsort(g, kind="stable")  # rows of a group stay in row order
        starts = np.searchsorted(g[order], g[order], side="left")
        position = np.empty(len(tied), dtype=np.int64)
        position[order] = np.arange(len(tied)) - starts  # rank of each tied row within its group
        out[tied] = position < take[g]
    return out
