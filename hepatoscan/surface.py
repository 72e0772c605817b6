"""Surface distances between two masks (ASSD, HD95, Hausdorff), exact, in NumPy alone.

LiTS and the Medical Segmentation Decathlon report them beside Dice: where Dice says how much two
segmentations overlap, these say how far apart their borders run, in mm. Definitions as in
medpy (which LiTS used): a mask's surface is its voxels with a face neighbour outside it (a voxel
on the array's edge counts as surface); each surface voxel of one mask is given its Euclidean
distance, in physical units, to the nearest surface voxel of the other, both ways.

The runtime carries no SciPy, so nearest distances are found in three steps, on the two masks'
bounding box: distances along each row (exact, by running minima); a search of the rows and
slices within ``SEARCH_MM`` (exact for every voxel whose result is within it: its nearest surface
voxel is then inside the search); and, for the voxels it leaves (a missed lesion, a false island,
a border far off), brute force against the other surface's voxels where they are few, else the
exact squared distance transform (Felzenszwalb and Huttenlocher's lower envelopes, vectorised
over lines) along the columns they lie in, read at their rows, then the nearest slice. A liver
pair of IRCAD patient 1 (512 x 512 x 129) takes about 0.9 s on two cores; a pair whose borders run
far apart over the whole field takes longer (benchmarks/run_all.py). Memory: no temporary larger
than two bool copies of the box and a slab of slices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEARCH_MM = 10.0  # the banded transform's reach
BRUTE_FORCE_MAX_PAIRS = 30_000_000  # voxels it leaves x the other surface's: up to this, brute force
BRUTE_FORCE_PAIRS = 2_000_000  # distances computed at once by brute force (memory)
NO_FEATURE = 1e12  # squared distance (mm^2) standing for "no feature on this line" in the exact transform


@dataclass(frozen=True)
class SurfaceDistance:
    """Distances between two masks' surfaces, in ``unit`` ("mm", or "px" where the spacing is unknown).

    assd: average symmetric surface distance (the mean over both surfaces' voxels); hd95: the 95th
    percentile Hausdorff distance (the larger of the two directions' 95th percentiles, as medpy's
    hd95); maximum: the Hausdorff distance (LiTS's maximum symmetric surface distance).
    """

    assd: float
    hd95: float
    maximum: float
    unit: str

    def describe(self) -> str:
        """e.g. "ASSD 1.7 mm, HD95 7.8 mm" (short enough for a table cell; the maximum is in to_dict)."""
        return f"ASSD {self.assd:.1f} {self.unit}, HD95 {self.hd95:.1f} {self.unit}"

    def to_dict(self) -> dict:
        return {"assd": round(self.assd, 3), "hd95": round(self.hd95, 3), "maximum": round(self.maximum, 3),
                "unit": self.unit}


def surface(mask: np.ndarray, planar: bool = False) -> np.ndarray:
    """(Z, H, W) mask (nonzero inside) -> bool of the same shape: voxels of the mask with a face
    neighbour outside it or on the array's edge; ``planar``: neighbours in-plane only (each slice
    a separate image). Slice by slice: no temporary larger than a slice."""
    n = mask.shape[0]
    out = np.zeros(mask.shape, bool)
    for z in range(n):
        m = np.asarray(mask[z]) != 0
        inner = np.zeros_like(m)
        inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        if not planar:
            if 0 < z < n - 1:
                inner &= (np.asarray(mask[z - 1]) != 0) & (np.asarray(mask[z + 1]) != 0)
            else:
                inner[:] = False
        out[z] = m & ~inner
    return out


def _row_distance_sq(features: np.ndarray, sx: float) -> np.ndarray:
    """(Z, H, W) bool -> float32 squared distance along each row to its nearest feature (inf:
    none), slice by slice (no full-size integer temporaries)."""
    w = features.shape[-1]
    x = np.arange(w, dtype=np.int32)
    far = np.int32(4 * w + 4)
    out = np.empty(features.shape, np.float32)
    for z, f in enumerate(features):
        left = np.maximum.accumulate(np.where(f, x, -far), axis=-1)
        right = np.minimum.accumulate(np.where(f, x, far)[:, ::-1], axis=-1)[:, ::-1]
        d = np.minimum(x - left, right - x).astype(np.float32)
        d[d > w] = np.inf
        out[z] = (d * np.float32(sx)) ** 2
    return out


def _by_slab(points: np.ndarray, n_z: int, slab: int):
    """Yield (z0, z1, indices of the points with z0 <= z < z1) over slabs of ``slab`` slices."""
    order = np.argsort(points[:, 0], kind="stable")
    bounds = np.searchsorted(points[order, 0], np.arange(0, n_z + slab, slab))
    for i, z0 in enumerate(range(0, n_z, slab)):
        if bounds[i + 1] > bounds[i]:
            yield z0, min(z0 + slab, n_z), order[bounds[i]:bounds[i + 1]]


def _banded_sq(features: np.ndarray, points: np.ndarray, spacing_mm, reach_rows: int, reach_slices: int,
               slab: int = 16) -> np.ndarray:
    """Squared distance at ``points`` ((N, 3) int z, y, x) to the nearest feature within
    ``reach_rows`` rows and ``reach_slices`` slices (any distance along the row), inf where none.
    The points are taken a slab of slices at a time (memory: the slab and its reach, float32)."""
    sz, sy, sx = spacing_mm
    n_z, n_y, _ = features.shape
    found = np.full(len(points), np.inf)
    for z0, z1, idx in _by_slab(points, n_z, slab):
        lo, hi = max(0, z0 - reach_slices), min(n_z, z1 + reach_slices)
        row_sq = _row_distance_sq(features[lo:hi], sx)
        zx_sq = row_sq[z0 - lo:z1 - lo].copy()  # nearest along the row in this or a nearby slice
        for d in range(1, reach_slices + 1):
            step = np.float32((d * sz) ** 2)
            for z in range(z0, z1):
                for zz in (z - d, z + d):
                    if lo <= zz < hi:
                        np.minimum(zx_sq[z - z0], row_sq[zz - lo] + step, out=zx_sq[z - z0])
        z, y, x = points[idx].T
        z = z - z0
        best = zx_sq[z, y, x].astype(np.float64)
        for d in range(1, reach_rows + 1):  # then in a nearby row
            for yy in (y - d, y + d):
                ok = (yy >= 0) & (yy < n_y)
                best[ok] = np.minimum(best[ok], zx_sq[z[ok], yy[ok], x[ok]] + (d * sy) ** 2)
        found[idx] = best
        del row_sq, zx_sq  # before the next slab's are made
    return found


def _lower_envelope(g: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelopes of the parabolas (p - j step)^2 + g[j, l] of each line l (Felzenszwalb and
    Huttenlocher's 1D squared distance transform, vectorised over the lines; each line's last
    parabola is held in dense arrays, so only the lines that pop one are gathered from).

    g: (n, L) float32 squared distances, position along the line first, NO_FEATURE where a line
    has none there. -> (v, z): (n, L) int32 the parabolas' positions in envelope order, (n + 1, L)
    float64 the boundaries between them, in mm (v[k] takes over from v[k - 1] at z[k]).
    """
    n, lines_n = g.shape
    pos = np.arange(n) * step_mm
    v = np.zeros((n, lines_n), np.int32)
    z = np.empty((n + 1, lines_n))
    z[0], z[1] = -np.inf, np.inf
    vf, zf = v.ravel(), z.ravel()
    line = np.arange(lines_n)
    k = np.zeros(lines_n, np.int64)  # each line's last envelope parabola: its index,
    last_p = np.zeros(lines_n)  # position (mm),
    last_h = g[0].astype(np.float64)  # height g + p^2,
    last_z = np.full(lines_n, -np.inf)  # and left boundary
    for q in range(1, n):
        hq = g[q] + pos[q] ** 2
        s = (hq - last_h) / (2.0 * (pos[q] - last_p))
        popping = np.nonzero(s <= last_z)[0]
        while popping.size:  # the new parabola hides these lines' last one: drop it, look again
            k[popping] -= 1
            at = k[popping] * lines_n + popping
            vk = vf[at]
            last_p[popping] = pos[vk]
            last_h[popping] = g[vk, popping] + pos[vk] ** 2
            last_z[popping] = zf[at]
            s[popping] = (hq[popping] - last_h[popping]) / (2.0 * (pos[q] - last_p[popping]))
            popping = popping[s[popping] <= last_z[popping]]
        k += 1
        at = k * lines_n + line
        vf[at] = q
        zf[at] = s
        zf[at + lines_n] = np.inf
        last_p[:], last_h, last_z = pos[q], hq, s
    return v, z


def _exact_sq(features: np.ndarray, points: np.ndarray, spacing_mm, planar: bool,
              chunk_voxels: int = 2_000_000) -> np.ndarray:
    """Exact squared distance at ``points`` ((N, 3) int z, y, x) to the nearest feature: row
    distances, then the transform along the columns the points lie in (lower envelopes), read at
    their rows, then the nearest slice for each point (only their own with ``planar``). Slices
    in chunks of about ``chunk_voxels`` voxels (memory: about 20 bytes a voxel of the columns
    transformed, 40 MB)."""
    sz, sy, sx = spacing_mm
    n_z, n_y, n_x = features.shape
    columns, col_of = np.unique(points[:, 2], return_inverse=True)
    best = np.full(len(points), np.inf)
    pos = np.arange(n_y) * sy
    step = max(1, chunk_voxels // (n_y * n_x))
    order = np.argsort(points[:, 1], kind="stable")
    rows_needed, starts = np.unique(points[order, 1], return_index=True)
    ends = np.append(starts[1:], len(order))
    for z0 in range(0, n_z, step):
        z_hi = min(z0 + step, n_z)
        if planar and not ((points[:, 0] >= z0) & (points[:, 0] < z_hi)).any():
            continue
        g = _row_distance_sq(features[z0:z_hi], sx)[:, :, columns]  # (c, H, columns)
        g = np.ascontiguousarray(g.transpose(1, 0, 2)).reshape(n_y, -1)  # (H, lines (z, column))
        g[~np.isfinite(g)] = NO_FEATURE
        v, bound = _lower_envelope(g, sy)
        lines_n = g.shape[1]
        vf, zf = v.ravel(), bound.ravel()
        k = np.zeros(lines_n, np.int64)  # each line's parabola over the current row: its index,
        cur_p, cur_g = np.zeros(lines_n), g[0].astype(np.float64)  # position and height,
        next_z = bound[1].copy()  # and where the next one takes over
        for q, a, b in zip(rows_needed.tolist(), starts.tolist(), ends.tolist()):
            ahead = np.nonzero(next_z < pos[q])[0]
            while ahead.size:  # walk these lines' envelopes on to the parabola over row q
                k[ahead] += 1
                at = k[ahead] * lines_n + ahead
                vk = vf[at]
                cur_p[ahead], cur_g[ahead] = pos[vk], g[vk, ahead]
                next_z[ahead] = zf[at + lines_n]
                ahead = ahead[next_z[ahead] < pos[q]]
            col_sq = ((pos[q] - cur_p) ** 2 + cur_g).reshape(z_hi - z0, len(columns))
            idx = order[a:b]
            zq, cq = points[idx, 0], col_of[idx]
            if planar:
                inside = (zq >= z0) & (zq < z_hi)
                got = np.full(len(idx), np.inf)
                got[inside] = col_sq[zq[inside] - z0, cq[inside]]
            else:
                dz = (zq[None, :] - np.arange(z0, z_hi)[:, None]) * sz
                got = (col_sq[:, cq] + dz ** 2).min(axis=0)
            best[idx] = np.minimum(best[idx], got)
        del g, v, bound  # before the next chunk's are made
    best[best >= NO_FEATURE / 2] = np.inf
    return best


def _brute_force_sq(points_mm: np.ndarray, targets_mm: np.ndarray) -> np.ndarray:
    """(N, 3), (M, 3) float64 -> (N,) squared distance of each point to its nearest target, as
    |p|^2 - 2 p.t + |t|^2 (a matrix product), in chunks of BRUTE_FORCE_PAIRS."""
    out = np.empty(len(points_mm))
    t2 = np.einsum("mk,mk->m", targets_mm, targets_mm)
    chunk = max(1, BRUTE_FORCE_PAIRS // max(1, len(targets_mm)))
    for i in range(0, len(points_mm), chunk):
        p = points_mm[i:i + chunk]
        d2 = t2[None, :] - 2.0 * (p @ targets_mm.T)
        out[i:i + chunk] = np.maximum(d2.min(axis=1) + np.einsum("nk,nk->n", p, p), 0.0)
    return out


def nearest_distances(points: np.ndarray, features: np.ndarray, spacing_mm, planar: bool = False) -> np.ndarray:
    """Euclidean distance of each of ``points`` ((N, 3) int z, y, x) to the nearest True voxel of
    ``features`` ((Z, H, W) bool, at least one True), spacing_mm (z, y, x) -> (N,) float64 in the
    spacing's unit (inf where ``planar`` and the point's slice has no feature). ``planar``: only
    features of the point's own slice count (separate images).

    First a search within SEARCH_MM across rows and slices (exact for whatever it finds within
    reach: anything outside it is farther); the points it leaves are settled by brute force where
    they are few, else by the exact transform along the columns they lie in."""
    sz, sy, sx = (float(s) for s in spacing_mm)
    reach_rows, reach_slices = int(np.ceil(SEARCH_MM / sy)), 0 if planar else int(np.ceil(SEARCH_MM / sz))
    exact_mm = min((reach_rows + 1) * sy, np.inf if planar else (reach_slices + 1) * sz)
    found_sq = _banded_sq(features, points, (sz, sy, sx), reach_rows, reach_slices)
    idx = np.nonzero(found_sq > exact_mm ** 2)[0]
    if not idx.size:
        return np.sqrt(found_sq)
    if not planar and len(idx) * int(np.count_nonzero(features)) <= BRUTE_FORCE_MAX_PAIRS:  # a few left
        scale = np.array([sz, sy, sx])
        found_sq[idx] = _brute_force_sq(points[idx] * scale, np.argwhere(features) * scale)
    else:
        found_sq[idx] = _exact_sq(features, points[idx], (sz, sy, sx), planar)
    return np.sqrt(found_sq)


def bounding_box(*masks: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every nonzero voxel of the (Z, H, W) masks (one shape), found
    slice by slice (no full-size temporary); None where all are empty. Surface distances within
    the box are those of the whole arrays: outside it every mask is background."""
    hit_z, hit_y, hit_x = [], np.zeros(masks[0].shape[1], bool), np.zeros(masks[0].shape[2], bool)
    for z in range(masks[0].shape[0]):
        planes = [np.asarray(m[z]) != 0 for m in masks]
        rows = np.logical_or.reduce([p.any(axis=1) for p in planes])
        if rows.any():
            hit_z.append(z)
            hit_y |= rows
            hit_x |= np.logical_or.reduce([p.any(axis=0) for p in planes])
    if not hit_z:
        return None
    y, x = np.nonzero(hit_y)[0], np.nonzero(hit_x)[0]
    return slice(hit_z[0], hit_z[-1] + 1), slice(int(y[0]), int(y[-1]) + 1), slice(int(x[0]), int(x[-1]) + 1)


def surface_distance(reference: np.ndarray, hepatoscan: np.ndarray, spacing_mm=None,
                     separate_images: bool = False) -> SurfaceDistance | None:
    """reference, hepatoscan: (Z, H, W) or (H, W) masks of one shape (nonzero inside);
    spacing_mm: (z, y, x) in mm, or None (distances in px, voxels taken as cubes);
    separate_images: the Z slices are unrelated images (surfaces and distances in-plane only).
    -> SurfaceDistance, or None where either mask is empty (undefined)."""
    a, b = np.asarray(reference), np.asarray(hepatoscan)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} and {b.shape}")
    if a.ndim == 2:
        a, b = a[None], b[None]
    planar = separate_images or a.shape[0] == 1
    known = spacing_mm is not None and all(spacing_mm[i] for i in (1, 2)) and (planar or spacing_mm[0])
    spacing = (float(spacing_mm[0] or 1.0), float(spacing_mm[1]), float(spacing_mm[2])) if known else (1.0, 1.0, 1.0)
    box = bounding_box(a, b)
    if box is None:
        return None
    sa, sb = surface(a[box], planar), surface(b[box], planar)
    if not sa.any() or not sb.any():
        return None
    pa, pb = np.argwhere(sa), np.argwhere(sb)
    a_to_b = nearest_distances(pa, sb, spacing, planar)
    b_to_a = nearest_distances(pb, sa, spacing, planar)
    if planar:  # an image where only one mask has a surface has no distance there: left out
        a_to_b, b_to_a = a_to_b[np.isfinite(a_to_b)], b_to_a[np.isfinite(b_to_a)]
        if not a_to_b.size or not b_to_a.size:
            return None
    both = np.concatenate([a_to_b, b_to_a])
    hd95 = max(float(np.percentile(a_to_b, 95)), float(np.percentile(b_to_a, 95)))
    return SurfaceDistance(float(both.mean()), hd95, float(both.max()), "mm" if known else "px")
