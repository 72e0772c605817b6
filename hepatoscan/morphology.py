"""Binary morphology in NumPy alone (the runtime carries no SciPy).

Connected components work on runs along the last axis: runs in neighbouring lines that overlap
are joined with a vectorised union-find. Face connectivity (4 in 2D, 6 in 3D).

Memory: runs are found and painted one slice at a time, and :func:`keep_largest` and
:func:`remove_small` can edit a mask in place, so a 512 x 512 x 150 volume needs no full-size
temporary besides the mask itself. :class:`Components` keeps a labelling as runs, which a volume's
measurements read slice by slice instead of through a full-size label volume.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _runs_2d(mask2d: np.ndarray):
    """(L, W) bool -> (line, start, end) int64 arrays of the foreground runs, end exclusive."""
    lines, width = mask2d.shape
    padded = np.zeros((lines, width + 2), np.int8)
    padded[:, 1:-1] = mask2d
    d = np.diff(padded, axis=1)
    line_s, start = np.nonzero(d == 1)
    _, end = np.nonzero(d == -1)
    return line_s.astype(np.int64), start.astype(np.int64), end.astype(np.int64)


def _runs(m: np.ndarray):
    """(H, W) or (Z, H, W) bool -> runs of the lines of m.reshape(-1, W), one slice at a time."""
    if m.ndim == 2:
        return _runs_2d(m)
    h = m.shape[1]
    parts = [_runs_2d(s) for s in m]
    line = np.concatenate([p[0] + z * h for z, p in enumerate(parts)]) if parts else np.empty(0, np.int64)
    start = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
    end = np.concatenate([p[2] for p in parts]) if parts else np.empty(0, np.int64)
    return line, start, end


def _overlap_pairs(line, start, end, width, neighbour_offset, same_block):
    """Index pairs (a, b) of runs in line l and line l + neighbour_offset that overlap."""
    key_start = line * (width + 1) + start
    key_end = line * (width + 1) + end
    target = line + neighbour_offset
    lo = np.searchsorted(key_end, target * (width + 1) + start, side="right")
    hi = np.searchsorted(key_start, target * (width + 1) + end, side="left")
    valid = same_block(line, target) & (hi > lo)
    a = np.nonzero(valid)[0]
    counts = (hi - lo)[a]
    if counts.sum() == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    rep_a = np.repeat(a, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return rep_a, np.repeat(lo[a], counts) + offsets


def _union_find(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    parent = np.arange(n)
    while a.size:
        pa, pb = parent[a], parent[b]
        differ = pa != pb
        if not differ.any():
            break
        m = np.minimum(pa, pb)
        np.minimum.at(parent, pa, m)
        np.minimum.at(parent, pb, m)
        while True:  # pointer jumping until every run points at its root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    return parent


@dataclass
class Components:
    """Connected components of a (H, W) or (Z, H, W) mask, held as runs.

    line: run's line in mask.reshape(-1, W) (= z * H + row); start, end: columns, end exclusive;
    comp: component id of each run, 1..n. All int arrays of one length, ordered by (line, start).
    """

    shape: tuple[int, ...]
    line: np.ndarray
    start: np.ndarray
    end: np.ndarray
    comp: np.ndarray
    n: int

    @classmethod
    def of(cls, mask: np.ndarray) -> "Components":
        m = np.asarray(mask, bool)
        if m.ndim not in (2, 3):
            raise ValueError(f"components expects a 2D or 3D mask, got shape {m.shape}")
        h, w = m.shape[-2], m.shape[-1]
        line, start, end = _runs(m)
        if line.size == 0:
            return cls(m.shape, line, start, end, np.zeros(0, np.int32), 0)
        n_lines = int(np.prod(m.shape[:-1]))
        pairs = [_overlap_pairs(line, start, end, w, 1, lambda l, t: (l // h) == (t // h))]
        if m.ndim == 3:
            pairs.append(_overlap_pairs(line, start, end, w, h, lambda l, t: t < n_lines))
        roots = _union_find(line.size, np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs]))
        _, comp = np.unique(roots, return_inverse=True)
        comp = comp.astype(np.int32) + 1
        return cls(m.shape, line, start, end, comp, int(comp.max()))

    @property
    def lengths(self) -> np.ndarray:
        return self.end - self.start

    @property
    def run_slice(self) -> np.ndarray:
        """Slice index z of each run (0 for a 2D mask)."""
        return self.line // self.shape[-2] if len(self.shape) == 3 else np.zeros(self.line.size, np.int64)

    @property
    def run_row(self) -> np.ndarray:
        """Row of each run within its slice."""
        return self.line % self.shape[-2]

    def sizes(self) -> np.ndarray:
        """(n + 1,) int64 pixel/voxel count of each component; index 0 unused (0)."""
        return np.bincount(self.comp, weights=self.lengths, minlength=self.n + 1).astype(np.int64)

    def weighted_sizes(self, slice_weight: np.ndarray) -> np.ndarray:
        """slice_weight: (Z,) what a voxel of each slice counts for -> (n + 1,) float64 sizes (a
        series with gaps: Scan.slab_mm over the usual step); index 0 unused (0)."""
        return np.bincount(self.comp, weights=self.lengths * np.asarray(slice_weight)[self.run_slice],
                           minlength=self.n + 1)

    def renumbered_by_size(self, slice_weight: np.ndarray | None = None) -> "Components":
        """The same components numbered 1..n by decreasing size (ties: first met first), each
        voxel counted for its slice's ``slice_weight`` where given (:meth:`weighted_sizes`)."""
        if self.n == 0:
            return self
        sizes = self.sizes() if slice_weight is None else self.weighted_sizes(slice_weight)
        remap = np.zeros(self.n + 1, np.int32)
        remap[np.argsort(-sizes[1:], kind="stable") + 1] = np.arange(1, self.n + 1)
        return Components(self.shape, self.line, self.start, self.end, remap[self.comp], self.n)

    def centroids(self) -> np.ndarray:
        """(n + 1, ndim) float64 mean voxel index of each component, (z,) y, x in the mask's axis
        order (a pixel's centre at its index); row 0 unused (0)."""
        lengths = self.lengths.astype(np.float64)
        sizes = np.maximum(np.bincount(self.comp, weights=lengths, minlength=self.n + 1), 1.0)
        cols = (self.start + self.end - 1) / 2.0  # a run's mean column
        axes = ([self.run_slice] if len(self.shape) == 3 else []) + [self.run_row, cols]
        return np.stack([np.bincount(self.comp, weights=a * lengths, minlength=self.n + 1) / sizes
                         for a in axes], axis=1)

    def bounds(self) -> np.ndarray:
        """(n + 1, ndim, 2) int64 each component's lowest and highest voxel index along each axis,
        (z,) y, x in the mask's axis order, both included; row 0 unused (0)."""
        axes = ([(self.run_slice, self.run_slice)] if len(self.shape) == 3 else []) + [
            (self.run_row, self.run_row), (self.start, self.end - 1)]
        out = np.zeros((self.n + 1, len(axes), 2), np.int64)
        for k, (low, high) in enumerate(axes):
            lo = np.full(self.n + 1, np.iinfo(np.int64).max)
            hi = np.full(self.n + 1, -1, np.int64)
            np.minimum.at(lo, self.comp, low)
            np.maximum.at(hi, self.comp, high)
            out[1:, k, 0], out[1:, k, 1] = lo[1:], hi[1:]
        return out

    def largest_slices(self) -> tuple[np.ndarray, np.ndarray]:
        """-> ((n + 1,) slice where each component has most voxels (lowest on ties), (n + 1,) those
        voxels); index 0 unused. Sparse over (component, slice) pairs that occur."""
        n_slices = self.shape[0] if len(self.shape) == 3 else 1
        z_best, area = np.zeros(self.n + 1, np.int64), np.zeros(self.n + 1, np.int64)
        if self.n == 0:  # no component
            return z_best, area
        key = self.comp.astype(np.int64) * n_slices + self.run_slice
        pairs, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse, weights=self.lengths).astype(np.int64)
        comp_of, z_of = pairs // n_slices, pairs % n_slices
        order = np.lexsort((z_of, -counts, comp_of))  # by component, then most voxels, then lowest z
        first = order[np.r_[True, comp_of[order][1:] != comp_of[order][:-1]]]
        z_best[comp_of[first]], area[comp_of[first]] = z_of[first], counts[first]
        return z_best, area

    def slice_runs(self, z: int = 0) -> tuple[slice, np.ndarray]:
        """Runs of slice z (the whole mask when 2D) -> (their index range in the run arrays,
        their rows within the slice). Runs are ordered by line, so a slice's runs are contiguous."""
        if len(self.shape) == 2:
            return slice(None), self.line
        h = self.shape[-2]
        sl = slice(int(np.searchsorted(self.line, z * h)), int(np.searchsorted(self.line, (z + 1) * h)))
        return sl, self.line[sl] - z * h

    def slice_labels(self, z: int = 0, dtype=np.int32) -> np.ndarray:
        """(H, W) labels of slice z (the whole mask when 2D): component ids, 0 background."""
        sl, rows = self.slice_runs(z)
        out = np.zeros(self.shape[-2:], dtype)
        _paint_lines(out, rows, self.start[sl], self.end[sl], self.comp[sl].astype(dtype))
        return out

    def labels(self) -> np.ndarray:
        """Full-size label array (int16 where the ids fit, else int32), 0 background."""
        dtype = np.int16 if self.n < np.iinfo(np.int16).max else np.int32
        if len(self.shape) == 2:
            return self.slice_labels(0, dtype)
        return np.stack([self.slice_labels(z, dtype) for z in range(self.shape[0])])


def _paint_lines(out2d: np.ndarray, line, start, end, values) -> None:
    """Write one value per run (or one scalar for all) into out2d (lines x W), in place."""
    lengths = end - start
    if lengths.size == 0:
        return
    rows = np.repeat(line, lengths)
    cols = np.repeat(start, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    out2d[rows, cols] = np.repeat(values, lengths) if np.ndim(values) else values


def _clear_runs(m: np.ndarray, comps: Components, drop: np.ndarray) -> None:
    """Set the runs flagged in ``drop`` to False in m, slice by slice (bounded temporaries)."""
    for z in (np.unique(comps.run_slice[drop]) if m.ndim == 3 else [0]):
        sl, rows = comps.slice_runs(int(z))
        d = drop[sl]
        _paint_lines(m[z] if m.ndim == 3 else m, rows[d], comps.start[sl][d], comps.end[sl][d], False)


def _output(mask: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    m = np.asarray(mask, bool)
    if out is None:
        return m.copy()
    if out is not mask:
        np.copyto(out, m)
    return out


def as_bool(mask: np.ndarray) -> np.ndarray:
    """A {0, 1} mask as bool without a copy where it is already bool or uint8 in {0, 1}."""
    m = np.asarray(mask)
    if m.dtype == bool:
        return m
    if m.dtype == np.uint8 and m.size and m.max() <= 1:
        return m.view(bool)
    return m.astype(bool)


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W) or (Z, H, W) bool -> (int16 or int32 labels 1..n, 0 background; n). Face connectivity."""
    comps = Components.of(mask)
    return comps.labels(), comps.n


def keep_largest(mask: np.ndarray, min_fraction: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Keep the largest component, plus any at least ``min_fraction`` of its size. Same shape, bool.
    ``out`` (a bool array, may be ``mask`` itself) is written in place instead of a new array."""
    comps = Components.of(mask)
    result = _output(mask, out)
    if comps.n <= 1:
        return result
    sizes = comps.sizes()
    keep = sizes >= max(1.0, min_fraction * sizes.max())
    keep[0] = False
    _clear_runs(result, comps, ~keep[comps.comp])
    return result


def remove_small(mask: np.ndarray, min_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Drop components smaller than ``min_size`` pixels/voxels. Same shape, bool; ``out`` as in
    :func:`keep_largest`."""
    comps = Components.of(mask)
    result = _output(mask, out)
    if comps.n == 0:
        return result
    _clear_runs(result, comps, comps.sizes()[comps.comp] < min_size)
    return result


def remove_components(mask: np.ndarray, comps: Components, drop: np.ndarray) -> np.ndarray:
    """Clear, in ``mask`` itself (bool, the mask ``comps`` was found in), the components whose
    ``drop`` ((n + 1,) bool, index 0 unused) is True. -> mask."""
    if comps.n:
        _clear_runs(mask, comps, np.asarray(drop, bool)[comps.comp])
    return mask


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> bool with enclosed background filled (4-connected background)."""
    m = np.asarray(mask, bool)
    labels, n = label(~m)
    if n == 0:
        return m.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.isin(labels, border[border > 0])
    return ~outside


def dilate(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """(..., H, W) bool -> bool, in-plane dilation by ``radius_px`` steps of the 3x3 square (chessboard disc)."""
    m = np.asarray(mask, bool).copy()
    for _ in range(max(0, int(radius_px))):
        g = m.copy()
        g[..., 1:, :] |= m[..., :-1, :]
        g[..., :-1, :] |= m[..., 1:, :]
        h = g.copy()
        h[..., :, 1:] |= g[..., :, :-1]
        h[..., :, :-1] |= g[..., :, 1:]
        m = h
    return m


def boundary(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> bool: foreground pixels with a 4-neighbour outside the mask."""
    m = np.asarray(mask, bool)
    p = np.pad(m, 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner
