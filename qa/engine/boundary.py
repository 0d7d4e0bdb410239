"""Every boundary metric of a mask pair from two crops, in one pass over shared distance maps.

The engine cuts two equal-shape uint8 crops from the same window of the image (the union of the two
objects' bboxes plus a margin of at least one pixel, clipped to the image) and calls
:func:`boundary_pair`. The public functions of :mod:`qa.metrics` call the same helpers on crops they
cut from full masks, so both give the same numbers as a full-image computation: every boundary pixel
and every surface element of both masks lies inside the window, distances are exact Euclidean
distances to those, and the window's sides that lie on the image border are handled as the image
border.
"""

from __future__ import annotations

import math

import numpy as np

_DIAG = 0.5 * math.sqrt(1.0 ** 2 + 1.0 ** 2)
# DeepMind's create_table_neighbour_code_to_contour_length for a spacing of (1, 1) pixel.
_LENGTHS = np.zeros(16, dtype=np.float64)
for _code, _length in ((1, _DIAG), (2, _DIAG), (3, 1.0), (4, _DIAG), (5, 1.0), (6, 2 * _DIAG),
                       (7, _DIAG), (8, _DIAG), (9, 2 * _DIAG), (10, 1.0), (11, _DIAG), (12, 1.0),
                       (13, _DIAG), (14, _DIAG)):
    _LENGTHS[_code] = _length
# rank of each length among the distinct lengths, so that ties in distance sort by length
_LENGTH_RANK = np.searchsorted(np.unique(_LENGTHS), _LENGTHS).astype(np.int64)

INNER = "inner"
"""Boundary kind: mask pixels with an edge neighbour (inside the image) outside the mask."""
SEG2BMAP = "seg2bmap"
"""Boundary kind: DAVIS ``seg2bmap`` (pixels that differ from their E, S or SE neighbour)."""


def tolerance_label(tolerance: float) -> str:
    """Name part for a tolerance: ``2.0 -> "2px"``, ``1.5 -> "1p5px"`` (snake_case metric names)."""
    text = f"{float(tolerance):g}".replace(".", "p").replace("-", "m")
    return f"{text}px"


def edges_of(shape, offset, image_shape) -> tuple[int, int, int, int]:
    """Which sides of a crop lie on the image border: ``(top, bottom, left, right)`` as 0/1.

    Parameters
    ----------
    shape : (int, int)
        The crop's ``(h, w)``.
    offset : (int, int)
        The crop's ``(x0, y0)`` in the image.
    image_shape : (int, int) or None
        The image's ``(H, W)``; None means the crop is the whole image.
    """
    h, w = shape
    if image_shape is None:
        return 1, 1, 1, 1
    x0, y0 = (int(v) for v in offset)
    height, width = (int(v) for v in image_shape)
    if x0 < 0 or y0 < 0 or y0 + h > height or x0 + w > width:
        raise ValueError(f"crop of {h}x{w} at (x0={x0}, y0={y0}) does not fit an image of "
                         f"{height}x{width}")
    return int(y0 == 0), int(y0 + h == height), int(x0 == 0), int(x0 + w == width)


def _bbox(mask):
    """Tight end-exclusive ``(x0, y0, x1, y1)`` of a full mask, None when empty (rows first, then the
    columns of those rows only, so a small object in a large image is found in one light pass)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    return int(cols[0]), y0, int(cols[-1]) + 1, y1


def crop_window(a: np.ndarray, b: np.ndarray, margin: int = 1):
    """Cut two full-image masks to the union of their bboxes plus ``margin`` pixels.

    Returns
    -------
    (ndarray, ndarray, (int, int))
        The two uint8 crops and their ``(x0, y0)`` offset. Two empty masks give 1x1 crops at (0, 0).
    """
    height, width = a.shape
    boxes = [box for box in (_bbox(a), _bbox(b)) if box is not None]
    if not boxes:
        return (np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8), (0, 0))
    x0 = max(min(box[0] for box in boxes) - margin, 0)
    y0 = max(min(box[1] for box in boxes) - margin, 0)
    x1 = min(max(box[2] for box in boxes) + margin, width)
    y1 = min(max(box[3] for box in boxes) + margin, height)
    a_crop = (a[y0:y1, x0:x1] != 0).astype(np.uint8)
    b_crop = (b[y0:y1, x0:x1] != 0).astype(np.uint8)
    return a_crop, b_crop, (x0, y0)


def boundary_map(crop: np.ndarray, edges, kind: str = INNER) -> np.ndarray:
    """Boundary map of one crop (``kind`` is :data:`INNER` or :data:`SEG2BMAP`)."""
    from qa.engine import _kernels_boundary as kb

    top, bottom, left, right = edges
    if kind == SEG2BMAP:
        return kb._seg2bmap(crop, bottom, right)
    if kind == INNER:
        return kb._inner_boundary(crop, 4, top, bottom, left, right)
    raise ValueError(f"unknown boundary kind {kind!r}; use {INNER!r} or {SEG2BMAP!r}")


def f_measure(matched_a: int, n_a: int, matched_b: int, n_b: int) -> float:
    """Boundary F from match counts, with DAVIS's conventions for empty boundaries.

    ``matched_a`` of ``n_a`` boundary pixels of ``a`` lie within the tolerance of ``b``'s boundary
    (precision when ``a`` is the segmentation), and ``matched_b`` of ``n_b`` the other way (recall).
    No boundary on either side gives 1; on one side only, 0.
    """
    if n_a == 0 and n_b == 0:
        return 1.0
    if n_a == 0 or n_b == 0:
        return 0.0
    precision = matched_a / float(n_a)
    recall = matched_b / float(n_b)
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def boundary_f_counts(a_crop, b_crop, edges, tolerances, kind: str = INNER):
    """Match counts of both boundaries at each tolerance.

    Returns
    -------
    (ndarray, ndarray)
        int64 arrays of length ``len(tolerances) + 1``: for ``a`` then ``b``, the matched count at
        each tolerance followed by the boundary size.
    """
    tol = np.ascontiguousarray(tolerances, dtype=np.float64)
    points_a = boundary_points(boundary_map(a_crop, edges, kind))
    points_b = boundary_points(boundary_map(b_crop, edges, kind))
    return point_match_counts(points_a, points_b, tol), point_match_counts(points_b, points_a, tol)


def boundary_points(boundary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ys, xs)`` int32 of a boundary map's pixels, in row-major order."""
    ys, xs = np.nonzero(boundary)
    return ys.astype(np.int32), xs.astype(np.int32)


def point_match_counts(query, target, tolerances: np.ndarray) -> np.ndarray:
    """Query points within each tolerance of the target points, then the number of query points.

    ``query`` and ``target`` are ``(ys, xs)`` int32 pairs, the target in row-major order. A point
    matches when its exact Euclidean distance to the nearest target point is <= the tolerance (a disk
    of that radius, as DAVIS dilates with ``skimage.morphology.disk``); with no target nothing
    matches. The search costs in the number of points, not in the area around them, and stops at the
    largest tolerance.
    """
    from qa.engine import _kernels_sdf as ks

    # every squared distance whose root is within the largest tolerance lies below the bound
    bound = int(np.floor(float(np.max(tolerances, initial=0.0)) ** 2)) + 2
    d = np.sqrt(ks._nearest_d2_below(query[0], query[1], target[0], target[1], bound))
    return np.append(np.count_nonzero(d[:, None] <= tolerances[None, :], axis=0), d.shape[0])


def boundary_iou_counts(a_crop, b_crop, edges, dilation: int, outside_is_background: bool):
    """``(intersection, union)`` of the two masks' boundary bands of width ``dilation`` pixels."""
    from qa.engine import _kernels_boundary as kb

    top, bottom, left, right = edges
    flag = int(bool(outside_is_background))
    band_a = kb._chessboard_band(a_crop, int(dilation), flag, top, bottom, left, right)
    band_b = kb._chessboard_band(b_crop, int(dilation), flag, top, bottom, left, right)
    inter, union, _, _ = kb._overlap_counts(band_a, band_b)
    return int(inter), int(union)


def surface_stats(a_crop, b_crop, tolerances, percent: float = 95.0):
    """DeepMind surface statistics of both masks (surface elements at pixel corners).

    Returns
    -------
    (ndarray, ndarray)
        For ``a`` (distances to ``b``) then ``b``: ``[total length, sum of length x distance,
        percentile distance, element count, overlap length at each tolerance]``.
    """
    from qa.engine import _kernels_sdf as ks

    tol = np.ascontiguousarray(tolerances, dtype=np.float64)
    codes_a = ks._corner_codes(a_crop)
    codes_b = ks._corner_codes(b_crop)
    d2_to_b = ks._edt_squared(ks._surfels(codes_b))
    d2_to_a = ks._edt_squared(ks._surfels(codes_a))
    return (ks._directed_surface(codes_a, d2_to_b, _LENGTHS, _LENGTH_RANK, tol, float(percent)),
            ks._directed_surface(codes_b, d2_to_a, _LENGTHS, _LENGTH_RANK, tol, float(percent)))


def surface_summary(stats_a, stats_b, ntol: int) -> dict:
    """NSD at each tolerance, ASSD and HD95 from :func:`surface_stats` (both empty: 1, 0, 0)."""
    len_a, len_b = stats_a[0], stats_b[0]
    if stats_a[3] == 0 and stats_b[3] == 0:
        return {"nsd": [1.0] * ntol, "assd": 0.0, "hd95": 0.0}
    nsd = [float((stats_a[4 + t] + stats_b[4 + t]) / (len_a + len_b)) for t in range(ntol)]
    if stats_a[3] == 0 or stats_b[3] == 0:
        return {"nsd": nsd, "assd": math.inf, "hd95": math.inf}
    assd = float((stats_a[1] + stats_b[1]) / (len_a + len_b))
    return {"nsd": nsd, "assd": assd, "hd95": float(max(stats_a[2], stats_b[2]))}


def offset_stats(reference_crop, other_crop, edges):
    """Signed offset of ``other``'s outline from ``reference``'s: ``(mean, median, n)`` in pixels."""
    from qa.engine import _kernels_boundary as kb
    from qa.engine import _kernels_sdf as ks

    d2_ref = ks._edt_squared(boundary_map(reference_crop, edges, INNER))
    mean, median, n = kb._offset_stats(boundary_map(other_crop, edges, INNER), d2_ref, reference_crop)
    return float(mean), float(median), int(n)


class Outlines:
    """The outlines of several objects of one image, as point lists in image coordinates.

    Built by :func:`crop_outlines`, :func:`object_outlines` or :func:`id_map_outlines` (one pass over
    the pixels, then work in the length of the boundaries), read by :func:`outline_pairs`. Object
    ``k``'s entries of each list are ``[ptr[k], ptr[k + 1])`` of its pointer array, sorted by row,
    then column.

    Attributes
    ----------
    runs : (ptr, y, x0, x1)
        Row runs ``[x0, x1)`` of each mask.
    b4 : (ptr, y, x)
        Inner boundary pixels (a mask pixel with an edge neighbour in the image outside the mask).
    band : (ptr, y, x)
        Boundary band of width ``band_width`` (:func:`boundary_iou_counts` with the image border not
        boundary).
    surfels : (ptr, y, x, code)
        Surface elements at pixel corners with their DeepMind neighbour codes.
    band_width : int
    """

    __slots__ = ("runs", "b4", "band", "surfels", "band_width")

    def __init__(self, arrays, band_width: int):
        self.runs = arrays[0:4]
        self.b4 = arrays[4:7]
        self.band = arrays[7:10]
        self.surfels = arrays[10:14]
        self.band_width = int(band_width)

    def __len__(self) -> int:
        return int(self.runs[0].shape[0] - 1)

    def arrays(self) -> tuple:
        return (*self.runs, *self.b4, *self.band, *self.surfels)

    def take(self, indices) -> "Outlines":
        """The outlines of objects ``indices`` (in that order), as their own :class:`Outlines`.

        Examples
        --------
        >>> crop = np.ones((2, 3), np.uint8)
        >>> both = Outlines.concatenate([crop_outlines(crop), crop_outlines(crop[:1])], 2)
        >>> both.take([1]).runs[0].tolist(), both.take([1]).runs[1].tolist()
        ([0, 1], [0])
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        arrays = []
        for group in (self.runs, self.b4, self.band, self.surfels):
            ptr = group[0]
            start, stop = ptr[indices], ptr[indices + 1]
            lengths = stop - start
            out_ptr = np.zeros(len(indices) + 1, np.int64)
            np.cumsum(lengths, out=out_ptr[1:])
            # positions of every entry to keep: each object's range, one after the other
            rows = np.repeat(start - out_ptr[:-1], lengths) + np.arange(int(out_ptr[-1]), dtype=np.int64)
            arrays.append(out_ptr)
            arrays.extend(values[rows] for values in group[1:])
        return Outlines(arrays, self.band_width)

    @classmethod
    def concatenate(cls, parts: list, band_width: int) -> "Outlines":
        """One :class:`Outlines` of the objects of ``parts``, in order."""
        arrays = []
        for group in range(14):
            pieces = [p.arrays()[group] for p in parts]
            if group in (0, 4, 7, 10):  # pointer arrays: shift each part by the entries before it
                out, total = [np.zeros(1, np.int64)], 0
                for ptr in pieces:
                    out.append(ptr[1:] + total)
                    total += int(ptr[-1])
                arrays.append(np.concatenate(out))
            else:
                arrays.append(np.concatenate(pieces) if pieces else np.zeros(0, np.int32))
        return cls(arrays, band_width)


_FIRST = np.zeros(1, dtype=np.int64)


def crop_outlines(crop: np.ndarray, *, offset=(0, 0), image_shape=None, band_width: int = 2) -> Outlines:
    """:class:`Outlines` of one mask given as a crop (nonzero is inside) at ``offset`` = (x0, y0) of an
    image of ``image_shape`` (None: the crop is the image). Outside the crop is background."""
    from qa.engine import _kernels_boundary as kb

    crop = np.ascontiguousarray(crop, dtype=np.uint8)
    if crop.ndim != 2:
        raise ValueError(f"a crop must be 2-D, got {crop.ndim}-D")
    top, bottom, left, right = edges_of(crop.shape, offset, image_shape)
    x0, y0 = (int(v) for v in offset)
    if crop.max(initial=0) > 1:
        crop = (crop != 0).view(np.uint8)
    return Outlines(kb._mask_outlines(crop, y0, x0, top, bottom, left, right, int(band_width)), band_width)


def object_outlines(crops, *, band_width: int = 2) -> Outlines:
    """:class:`Outlines` of every object of a :class:`qa.engine._masks.ObjectCrops` (tight 0/1 crops), from
    one kernel call over all of them (each object's lists are those of :func:`crop_outlines` of its crop)."""
    from qa.engine import _kernels_boundary as kb

    height, width = crops.shape
    boxes = np.ascontiguousarray(crops.boxes, dtype=np.int64).reshape(-1, 4)
    return Outlines(kb._crops_outlines(np.ascontiguousarray(crops.buf, dtype=np.uint8),
                                       np.ascontiguousarray(crops.starts, dtype=np.int64), boxes, int(height),
                                       int(width), int(band_width)), band_width)


def id_map_outlines(id_map: np.ndarray, ids, *, band_width: int = 2) -> Outlines:
    """:class:`Outlines` of the segments ``ids`` (distinct) of a panoptic id map, from one pass over it;
    object ``k`` is segment ``ids[k]``."""
    from qa.engine import _kernels_boundary as kb

    id_map = np.ascontiguousarray(id_map, dtype=np.int32)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    order = np.argsort(ids, kind="stable").astype(np.int64)
    return Outlines(kb._outlines(id_map, ids[order], order, len(ids), 0, 0, 1, 1, 1, 1, int(band_width)),
                    band_width)


def _outline_raw(outlines_a: Outlines, outlines_b: Outlines, index_a, index_b, tolerances, surfaces: bool = True):
    """The tolerances as an array and the kernel's raw row of figures for each pair of outlines (without
    the surface statistics when ``surfaces`` is False: their entries are then 0)."""
    from qa.engine import _kernels_sdf as ks

    if outlines_a.band_width != outlines_b.band_width:
        raise ValueError(f"band widths differ: {outlines_a.band_width} and {outlines_b.band_width}")
    tol = np.ascontiguousarray(tolerances, dtype=np.float64).reshape(-1)
    index_a = np.ascontiguousarray(index_a, dtype=np.int64).reshape(-1)
    index_b = np.ascontiguousarray(index_b, dtype=np.int64).reshape(-1)
    return tol, ks._outline_pairs(*outlines_a.arrays(), *outlines_b.arrays(), index_a, index_b, tol, _LENGTHS,
                                  _LENGTH_RANK, 95.0, bool(surfaces))


def outline_pairs(outlines_a: Outlines, outlines_b: Outlines, index_a, index_b, *,
                  tolerances=(1.0, 2.0, 4.0)) -> list[dict]:
    """:func:`boundary_pair`'s dict for each pair ``(index_a[r], index_b[r])`` of objects of two
    :class:`Outlines` of one image (boundary IoU with their ``band_width``)."""
    tol, raw = _outline_raw(outlines_a, outlines_b, index_a, index_b, tolerances)
    return [_pair_values(row, tol) for row in raw]


SURFACE_COLUMNS = ("nsd_", "assd", "hd95", "surface_a_length", "surface_b_length")
"""The names (or name prefixes) of :func:`outline_columns` that come from the surface statistics."""


def outline_columns(outlines_a: Outlines, outlines_b: Outlines, index_a, index_b, *,
                    tolerances=(1.0, 2.0, 4.0), surfaces: bool = True) -> dict[str, np.ndarray]:
    """:func:`outline_pairs` as columns: ``{name: (len(index_a),) float64}``, the names (and their order)
    of :func:`boundary_pair`'s dict; each value equal to the dict's, to the bit.

    ``surfaces`` False leaves out the columns of the surface statistics (:data:`SURFACE_COLUMNS`: NSD,
    ASSD, HD95 and the surface lengths) and the distances between surface elements they need, most of
    the cost; the other columns are the same.
    """
    tol, raw = _outline_raw(outlines_a, outlines_b, index_a, index_b, tolerances, surfaces)
    nt = tol.shape[0]
    p = 2 * (nt + 1)
    columns = value_columns(tol, raw[:, 0:nt + 1], raw[:, nt + 1:p], raw[:, p + 5:p + 9 + nt],
                            raw[:, p + 9 + nt:p + 13 + 2 * nt], inter=raw[:, p + 3], union=raw[:, p + 4],
                            offset_mean=raw[:, p], offset_median=raw[:, p + 1], offset_n=raw[:, p + 2])
    if surfaces:
        return columns
    return {name: values for name, values in columns.items() if not name.startswith(SURFACE_COLUMNS)}


def value_columns(tol, counts_a, counts_b, stats_a, stats_b, *, inter, union, offset_mean, offset_median,
                  offset_n) -> dict[str, np.ndarray]:
    """:func:`pair_values_dict` for many pairs at once (one row of each argument per pair), as columns
    holding the same values: the same operations, in the same order, on each row."""
    nt = tol.shape[0]
    n_a, n_b = counts_a[:, nt], counts_b[:, nt]
    out = {"boundary_a_n": n_a.astype(np.float64), "boundary_b_n": n_b.astype(np.float64)}
    len_a, len_b = stats_a[:, 0], stats_b[:, 0]
    none_a, none_b = stats_a[:, 3] == 0, stats_b[:, 3] == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        for t in range(nt):
            label = tolerance_label(tol[t])
            precision = counts_a[:, t] / n_a
            recall = counts_b[:, t] / n_b
            f = np.where(precision + recall == 0, 0.0, 2 * precision * recall / (precision + recall))
            f = np.where((n_a == 0) | (n_b == 0), 0.0, f)
            out[f"boundary_f_{label}"] = np.where((n_a == 0) & (n_b == 0), 1.0, f)
            out[f"boundary_a_matched_{label}"] = counts_a[:, t].astype(np.float64)
            out[f"boundary_b_matched_{label}"] = counts_b[:, t].astype(np.float64)
            nsd = (stats_a[:, 4 + t] + stats_b[:, 4 + t]) / (len_a + len_b)
            out[f"nsd_{label}"] = np.where(none_a & none_b, 1.0, nsd)
        out["boundary_iou"] = np.where(union == 0, 1.0, inter / union)
        assd = (stats_a[:, 1] + stats_b[:, 1]) / (len_a + len_b)
    hd95 = np.maximum(stats_a[:, 2], stats_b[:, 2])
    one_side = none_a ^ none_b
    out["biou_intersection"] = inter.astype(np.float64)
    out["biou_union"] = union.astype(np.float64)
    out["assd"] = np.where(none_a & none_b, 0.0, np.where(one_side, math.inf, assd))
    out["hd95"] = np.where(none_a & none_b, 0.0, np.where(one_side, math.inf, hd95))
    out["surface_a_length"] = len_a.astype(np.float64)
    out["surface_b_length"] = len_b.astype(np.float64)
    out["signed_offset"] = offset_mean.astype(np.float64)
    out["signed_offset_median"] = offset_median.astype(np.float64)
    out["signed_offset_n"] = offset_n.astype(np.float64)
    return {name: np.ascontiguousarray(values, dtype=np.float64) for name, values in out.items()}


def _pair_values(row: np.ndarray, tol: np.ndarray) -> dict:
    """The dict of :func:`boundary_pair` from one row of ``_outline_pair``."""
    nt = tol.shape[0]
    p = 2 * (nt + 1)
    return pair_values_dict(tol, row[0:nt + 1], row[nt + 1:p], row[p + 5:p + 9 + nt], row[p + 9 + nt:p + 13 + 2 * nt],
                            inter=row[p + 3], union=row[p + 4],
                            offset_mean=row[p], offset_median=row[p + 1], offset_n=row[p + 2])


def pair_values_dict(tol, counts_a, counts_b, stats_a, stats_b, *, inter, union, offset_mean, offset_median,
                     offset_n) -> dict:
    """Name the raw figures of one mask pair: the dict of :func:`boundary_pair`.

    ``counts_*`` are the matched boundary pixels at each tolerance followed by the boundary's size,
    ``stats_*`` the surface statistics of :func:`surface_stats`; shared with the dense reference of the
    tests so both name the same figures the same way.
    """
    nt = tol.shape[0]
    inter, union = int(inter), int(union)
    surface = surface_summary(stats_a, stats_b, nt)
    n_a, n_b = int(counts_a[nt]), int(counts_b[nt])
    out = {"boundary_a_n": float(n_a), "boundary_b_n": float(n_b)}
    for t in range(nt):
        label = tolerance_label(tol[t])
        out[f"boundary_f_{label}"] = f_measure(int(counts_a[t]), n_a, int(counts_b[t]), n_b)
        out[f"boundary_a_matched_{label}"] = float(counts_a[t])
        out[f"boundary_b_matched_{label}"] = float(counts_b[t])
        out[f"nsd_{label}"] = surface["nsd"][t]
    out["boundary_iou"] = 1.0 if union == 0 else inter / union
    out["biou_intersection"] = float(inter)
    out["biou_union"] = float(union)
    out["assd"] = surface["assd"]
    out["hd95"] = surface["hd95"]
    out["surface_a_length"] = float(stats_a[0])
    out["surface_b_length"] = float(stats_b[0])
    out["signed_offset"] = float(offset_mean)
    out["signed_offset_median"] = float(offset_median)
    out["signed_offset_n"] = float(offset_n)
    return out


def boundary_pair(a_crop, b_crop, *, tolerances=(1.0, 2.0, 4.0), offset=(0, 0), image_shape=None,
                  biou_dilation: int = 2) -> dict:
    """Every boundary metric of one mask pair, from two crops of the same image window.

    One pass over each crop lists its outline (row runs, inner boundary, boundary band, surface
    elements, :func:`crop_outlines`); every figure then comes from those lists: exact nearest-neighbour
    distances between the two inner boundaries give boundary F at every tolerance and the signed
    offset, the two bands give boundary IoU, and distances between the two surfaces give NSD at every
    tolerance, ASSD and HD95. Apart from the pass over the crops, the cost grows with the length of
    the outlines (and their distances), not with the area of the window.

    Parameters
    ----------
    a_crop, b_crop : ndarray of uint8, shape (h, w)
        The two masks (0/1) cut from the same window of the image. The window must hold both objects
        with a margin of at least one pixel on every side that is not on the image border.
    tolerances : sequence of float, pixels, default (1.0, 2.0, 4.0)
        Tolerances for boundary F and NSD.
    offset : (int, int), default (0, 0)
        ``(x0, y0)`` of the window in the image.
    image_shape : (int, int), optional
        ``(H, W)`` of the image, so the image border is known; None when the crops are the image.
    biou_dilation : int, pixels, default 2
        Width of the boundary band for boundary IoU.

    Returns
    -------
    dict of str to float
        ``boundary_f_<t>`` for each tolerance label ``<t>`` (:func:`tolerance_label`, e.g.
        ``boundary_f_2px``) and the counts behind it (``boundary_a_n``, ``boundary_b_n``,
        ``boundary_a_matched_<t>``, ``boundary_b_matched_<t>``); ``boundary_iou`` with
        ``biou_intersection`` and ``biou_union``; ``nsd_<t>``, ``assd``, ``hd95`` with
        ``surface_a_length`` and ``surface_b_length``; ``signed_offset`` (mean signed distance of
        ``a``'s boundary from ``b``'s outline, positive when ``a`` lies outside ``b``),
        ``signed_offset_median`` and ``signed_offset_n``.

    Notes
    -----
    The conventions are those of the defaults of :mod:`qa.metrics`: boundaries are inner 4-neighbour
    boundaries, the image border is never boundary (for boundary F, boundary IoU and the offset),
    and two empty boundaries score 1. Surface distances follow DeepMind's ``surface_distance``
    (surface elements at pixel corners, outside the image is background). Distances are exact: every
    figure equals the one from exact Euclidean distance transforms of the whole window, to the bit.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((8, 8), np.uint8); a[2:6, 2:6] = 1
    >>> b = np.zeros((8, 8), np.uint8); b[1:6, 2:6] = 1
    >>> r = boundary_pair(a, b, tolerances=(1.0,))
    >>> r["boundary_f_1px"], r["boundary_iou"], round(r["signed_offset"], 3), r["hd95"]
    (1.0, 0.8, -0.167, 1.0)
    """
    a_crop = np.ascontiguousarray(a_crop, dtype=np.uint8)
    b_crop = np.ascontiguousarray(b_crop, dtype=np.uint8)
    if a_crop.shape != b_crop.shape or a_crop.ndim != 2:
        raise ValueError(f"crops must be two 2-D arrays of one shape, got {a_crop.shape} and "
                         f"{b_crop.shape}")
    dilation = int(biou_dilation)
    out_a = crop_outlines(a_crop, offset=offset, image_shape=image_shape, band_width=dilation)
    out_b = crop_outlines(b_crop, offset=offset, image_shape=image_shape, band_width=dilation)
    return outline_pairs(out_a, out_b, _FIRST, _FIRST, tolerances=tolerances)[0]
