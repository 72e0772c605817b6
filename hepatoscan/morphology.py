"""Binary morphology in NumPy alone (the runtime carries no SciPy).

Connected components work on runs along the last axis: runs in neighbouring lines that overlap
are joined with a vectorised union-find. Face connectivity (4 in 2D, 6 in 3D).
"""
from __future__ import annotations

import numpy as np


def _runs(mask2d: np.ndarray):
    """(L, W) bool -> (line, start, end) int64 arrays of the foreground runs, end exclusive."""
    lines, width = mask2d.shape
    padded = np.zeros((lines, width + 2), np.int8)
    padded[:, 1:-1] = mask2d
    d = np.diff(padded, axis=1)
    line_s, start = np.nonzero(d == 1)
    _, end = np.nonzero(d == -1)
    return line_s.astype(np.int64), start.astype(np.int64), end.astype(np.int64)


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


def _run_components(m: np.ndarray):
    """bool (H, W) or (Z, H, W) -> (line, start, end, component id per run 1..n, n)."""
    if m.ndim not in (2, 3):
        raise ValueError(f"label expects a 2D or 3D mask, got shape {m.shape}")
    h, w = m.shape[-2], m.shape[-1]
    flat = m.reshape(-1, w)
    line, start, end = _runs(flat)
    if line.size == 0:
        return line, start, end, np.zeros(0, np.int32), 0
    pairs = [_overlap_pairs(line, start, end, w, 1, lambda l, t: (l // h) == (t // h))]
    if m.ndim == 3:
        pairs.append(_overlap_pairs(line, start, end, w, h, lambda l, t: t < flat.shape[0]))
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    roots = _union_find(line.size, a, b)
    _, comp = np.unique(roots, return_inverse=True)
    comp = comp.astype(np.int32) + 1
    return line, start, end, comp, int(comp.max())


def _paint(shape, line, start, end, values, dtype) -> np.ndarray:
    """Write one value per run into a new array of ``shape``."""
    out = np.zeros((int(np.prod(shape[:-1])), shape[-1]), dtype)
    lengths = end - start
    rows = np.repeat(line, lengths)
    cols = np.repeat(start, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    out[rows, cols] = np.repeat(values, lengths)
    return out.reshape(shape)


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(H, W) or (Z, H, W) bool -> (int16 or int32 labels 1..n, 0 background; n). Face connectivity."""
    m = np.asarray(mask, bool)
    line, start, end, comp, n = _run_components(m)
    dtype = np.int16 if n < np.iinfo(np.int16).max else np.int32  # half the memory for volumes
    return _paint(m.shape, line, start, end, comp.astype(dtype), dtype), n


def keep_largest(mask: np.ndarray, min_fraction: float = 1.0) -> np.ndarray:
    """Keep the largest component, plus any at least ``min_fraction`` of its size. Same shape, bool.
    Works on runs, so no full-size label volume is made."""
    m = np.asarray(mask, bool)
    line, start, end, comp, n = _run_components(m)
    if n <= 1:
        return m.copy()
    sizes = np.bincount(comp, weights=end - start, minlength=n + 1)
    keep = sizes >= max(1.0, min_fraction * sizes.max())
    keep[0] = False
    sel = keep[comp]
    return _paint(m.shape, line[sel], start[sel], end[sel], np.ones(int(sel.sum()), bool), bool)


def remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop components smaller than ``min_size`` pixels/voxels. Same shape, bool; run-based."""
    m = np.asarray(mask, bool)
    line, start, end, comp, n = _run_components(m)
    if n == 0:
        return m.copy()
    sizes = np.bincount(comp, weights=end - start, minlength=n + 1)
    sel = sizes[comp] >= min_size
    return _paint(m.shape, line[sel], start[sel], end[sel], np.ones(int(sel.sum()), bool), bool)


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
