"""A z-buffered triangle rasterizer in numpy: which triangle of a 2-D projected mesh each pixel shows, and where.

Pixel centres sit at integer coordinates (OpenCV's convention). A pixel p lies in triangle (a, b, c) when its
barycentric weights
    w_a = E(b, c, p) / E(a, b, c),  w_b = E(c, a, p) / E(a, b, c),  w_c = 1 - w_a - w_b,
    E(u, v, p) = (v - u) x (p - u)  (the 2-D cross product, twice the signed area)
are all >= 0 (either winding); its depth is w . z, and the triangle with the largest depth (nearest the viewer,
who looks down -z) wins. Every triangle tests the pixels of its bounding box at once, so the cost is the number
of (triangle, pixel) pairs: meshes whose triangles cover a few pixels each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Raster:
    tri: np.ndarray        # int32 [H, W]: the visible triangle at each pixel, -1 where none
    weights: np.ndarray    # float32 [H, W, 3]: its barycentric weights there (0 where none)

    def interpolate(self, tris: np.ndarray, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """float32 [H, W, C]: per-vertex values [N, C] interpolated at every covered pixel (fill elsewhere)."""
        values = np.asarray(values, np.float32)
        out = np.full(self.tri.shape + values.shape[1:], fill, np.float32)
        hit = self.tri >= 0
        corners = values[tris[self.tri[hit]]]                          # [P, 3, C]
        out[hit] = np.einsum("pk,pkc->pc", self.weights[hit], corners)
        return out


def rasterize(xy: np.ndarray, z: np.ndarray, tris: np.ndarray, height: int, width: int) -> Raster:
    """The visible triangle and weights at each pixel of an H x W image for vertices xy [N, 2] (pixels), depths
    z [N] and triangles tris [M, 3] (module docstring)."""
    xy, z = np.asarray(xy, np.float64), np.asarray(z, np.float64)
    a, b, c = xy[tris[:, 0]], xy[tris[:, 1]], xy[tris[:, 2]]
    lo = np.ceil(np.minimum(np.minimum(a, b), c) - 1e-9).astype(np.int64)
    hi = np.floor(np.maximum(np.maximum(a, b), c) + 1e-9).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    n = np.maximum(hi - lo + 1, 0)
    count = np.where(np.abs(area) > 1e-12, n[:, 0] * n[:, 1], 0)
    t = np.repeat(np.arange(len(tris)), count)                          # one row per (triangle, pixel) pair
    k = np.arange(len(t)) - np.repeat(np.cumsum(count) - count, count)
    nx = n[t, 0]
    px = (lo[t, 0] + k % nx).astype(np.float64)
    py = (lo[t, 1] + k // nx).astype(np.float64)
    at, bt, ct = a[t], b[t], c[t]
    wa = ((ct[:, 0] - bt[:, 0]) * (py - bt[:, 1]) - (ct[:, 1] - bt[:, 1]) * (px - bt[:, 0])) / area[t]
    wb = ((at[:, 0] - ct[:, 0]) * (py - ct[:, 1]) - (at[:, 1] - ct[:, 1]) * (px - ct[:, 0])) / area[t]
    wc = 1.0 - wa - wb
    eps = -1e-7
    inside = (wa >= eps) & (wb >= eps) & (wc >= eps)
    t, px, py, wa, wb, wc = t[inside], px[inside], py[inside], wa[inside], wb[inside], wc[inside]
    tz = z[tris[t]]
    depth = wa * tz[:, 0] + wb * tz[:, 1] + wc * tz[:, 2]
    pix = py.astype(np.int64) * width + px.astype(np.int64)
    order = np.lexsort((depth, pix))                                    # by pixel, then depth ascending
    last = np.ones(len(order), bool)
    last[:-1] = pix[order][1:] != pix[order][:-1]                       # the nearest pair of each pixel
    win = order[last]
    tri = np.full(height * width, -1, np.int32)
    weights = np.zeros((height * width, 3), np.float32)
    tri[pix[win]] = t[win]
    weights[pix[win]] = np.stack([wa[win], wb[win], wc[win]], 1)
    return Raster(tri.reshape(height, width), weights.reshape(height, width, 3))


__all__ = ["Raster", "rasterize"]
