"""Objects to COCO RLE, full masks and bbox crops.

Every geometry kind meets here: polygons are rasterised by pycocotools (the same rasteriser COCO's own
evaluation uses, so areas agree with ``maskUtils.area``), RLEs pass through, and panoptic segments are cut
out of their image's id map.

The comparison never builds a full-image mask per object. A compressed RLE is parsed once into its run
lengths (:func:`rle_runs`), and numba kernels paint the runs straight into a crop: the object's tight
bbox (:func:`decode_crop`), or a window shared by several objects (:func:`decode_crops`).
:class:`ObjectCrops` holds the tight crops of all objects of one annotator on one image in one flat
buffer, which is what the intersection kernels read. Panoptic segments get the same structure from one
pass over the id map (:func:`segment_crops`).

Conventions: a bbox or window is ``(x0, y0, x1, y1)`` in pixels, end-exclusive; an empty mask has the
bbox ``(0, 0, 0, 0)`` and a ``(0, 0)`` crop. COCO RLE runs are column-major (down the first column,
then the next) and start with a run of zeros.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pycocotools import mask as mask_utils

from qa.formats._rle_counts import counts_runs
from qa.model import Object


# --- kernels ------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _runs_bbox(runs, height):
    """Tight bbox and area of the ones in column-major runs.

    Parameters
    ----------
    runs : (m,) int64
        Alternating runs of zeros and ones.
    height : int
        Image height (the length of one column).

    Returns
    -------
    x0, y0, x1, y1, area : int
        End-exclusive bbox (all zero when empty) and the number of ones.
    """
    xmin = np.int64(1) << 62
    ymin = np.int64(1) << 62
    xmax = np.int64(-1)
    ymax = np.int64(-1)
    area = np.int64(0)
    p = np.int64(0)
    for i in range(runs.shape[0]):
        r = runs[i]
        if i % 2 == 1 and r > 0:
            s = p
            e = p + r - 1
            xs = s // height
            xe = e // height
            if xe > xs:  # the run wraps: it reaches the last row of column xs and the first of xe
                ys = np.int64(0)
                ye = height - 1
            else:
                ys = s % height
                ye = e % height
            if xs < xmin:
                xmin = xs
            if xe > xmax:
                xmax = xe
            if ys < ymin:
                ymin = ys
            if ye > ymax:
                ymax = ye
            area += r
        p += r
    if xmax < 0:
        return 0, 0, 0, 0, 0
    return xmin, ymin, xmax + 1, ymax + 1, area


@njit(cache=True, nogil=True)
def _paint_runs(runs, height, x0, y0, out):
    """Write the ones of column-major runs into a window of the image.

    The runs are column-major and the window row-major, so writing each run's pixels would stride across
    rows; instead each run marks where it starts and ends in every column it crosses (a toggle), and one
    pass down the rows turns the toggles into pixels (each row is the XOR of its toggles and the row
    above), contiguous and vectorised. Two runs that meet (a zero-length run of zeros between them)
    toggle the same pixel twice and join, as they should.

    Parameters
    ----------
    runs : (m,) int64
        Alternating runs of zeros and ones.
    height : int
        Image height.
    x0, y0 : int
        The window's top-left corner in the image.
    out : (wh, ww) uint8, C-contiguous
        The window, zeroed by the caller; pixels of the object inside it are set to 1, the rest of the
        object is clipped away.
    """
    wh = out.shape[0]
    ww = out.shape[1]
    p = np.int64(0)
    for i in range(runs.shape[0]):
        r = runs[i]
        if i % 2 == 1 and r > 0:
            s = p
            e = p + r
            c = s // height
            while True:
                col = c * height
                if c >= x0 + ww:
                    break
                if c >= x0:
                    ra = max(max(s, col) - col, y0)
                    rb = min(min(e, col + height) - col, y0 + wh)
                    if ra < rb:
                        out[ra - y0, c - x0] ^= 1
                        if rb < y0 + wh:
                            out[rb - y0, c - x0] ^= 1
                if col + height >= e:
                    break
                c += 1
        p += r
    for y in range(1, wh):
        for x in range(ww):
            out[y, x] ^= out[y - 1, x]


@njit(cache=True, nogil=True)
def _paint_many(runs, run_starts, height, boxes, buf, buf_starts):
    """Paint several objects' runs into their tight crops inside one flat buffer.

    Parameters
    ----------
    runs : (total,) int64
        The run lengths of all objects, one after the other.
    run_starts : (n + 1,) int64
        Object ``k``'s runs are ``runs[run_starts[k]:run_starts[k + 1]]``.
    height : int
        Image height.
    boxes : (n, 4) int64
        Each object's tight bbox ``x0, y0, x1, y1``.
    buf : (size,) uint8
        Zeroed; object ``k``'s crop is ``buf[buf_starts[k]:buf_starts[k + 1]]`` in row-major order.
    buf_starts : (n + 1,) int64
        Crop offsets in ``buf``.
    """
    for k in range(boxes.shape[0]):
        w = boxes[k, 2] - boxes[k, 0]
        h = boxes[k, 3] - boxes[k, 1]
        if w <= 0 or h <= 0:
            continue
        crop = buf[buf_starts[k]:buf_starts[k] + w * h].reshape((h, w))
        _paint_runs(runs[run_starts[k]:run_starts[k + 1]], height, boxes[k, 0], boxes[k, 1], crop)


@njit(cache=True, nogil=True)
def _find_sorted(ids, value):
    """Position of ``value`` in the sorted array ``ids``, or -1."""
    lo = 0
    hi = ids.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if ids[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    if lo < ids.shape[0] and ids[lo] == value:
        return lo
    return -1


@njit(cache=True, nogil=True)
def _segment_boxes(id_map, ids):
    """Tight bboxes and areas of the segments of an id map, in one pass.

    Parameters
    ----------
    id_map : (H, W) int32
        Panoptic id map.
    ids : (n,) int64, sorted ascending
        The segment ids wanted; other ids are skipped.

    Returns
    -------
    boxes : (n, 4) int64
        ``x0, y0, x1, y1`` end-exclusive; all zero for an id absent from the map.
    areas : (n,) int64
        Pixel counts.
    """
    n = ids.shape[0]
    boxes = np.zeros((n, 4), np.int64)
    areas = np.zeros(n, np.int64)
    xmin = np.full(n, np.int64(1) << 62)
    ymin = np.full(n, np.int64(1) << 62)
    xmax = np.full(n, np.int64(-1))
    ymax = np.full(n, np.int64(-1))
    height = id_map.shape[0]
    width = id_map.shape[1]
    for y in range(height):
        x = 0
        while x < width:
            v = id_map[y, x]
            start = x
            x += 1
            while x < width and id_map[y, x] == v:
                x += 1
            k = _find_sorted(ids, v)
            if k < 0:
                continue
            areas[k] += x - start
            if start < xmin[k]:
                xmin[k] = start
            if x - 1 > xmax[k]:
                xmax[k] = x - 1
            if y < ymin[k]:
                ymin[k] = y
            if y > ymax[k]:
                ymax[k] = y
    for k in range(n):
        if xmax[k] >= 0:
            boxes[k, 0] = xmin[k]
            boxes[k, 1] = ymin[k]
            boxes[k, 2] = xmax[k] + 1
            boxes[k, 3] = ymax[k] + 1
    return boxes, areas


@njit(cache=True, nogil=True)
def _cut_segments(id_map, ids, order, boxes, buf, buf_starts):
    """Write every segment of an id map into its tight crop inside one flat buffer, in one pass.

    Parameters
    ----------
    id_map : (H, W) int32
        Panoptic id map.
    ids : (n,) int64, sorted ascending
        Segment ids.
    order : (n,) int64
        ``ids[j]`` belongs to object ``order[j]``.
    boxes : (n, 4) int64
        Tight bboxes by object, from :func:`_segment_boxes`.
    buf : (size,) uint8
        Zeroed; object ``k``'s crop is ``buf[buf_starts[k]:buf_starts[k + 1]]`` in row-major order.
    buf_starts : (n + 1,) int64
        Crop offsets in ``buf``, by object.
    """
    height = id_map.shape[0]
    width = id_map.shape[1]
    for y in range(height):
        x = 0
        while x < width:
            v = id_map[y, x]
            start = x
            x += 1
            while x < width and id_map[y, x] == v:
                x += 1
            j = _find_sorted(ids, v)
            if j < 0:
                continue
            k = order[j]
            w = boxes[k, 2] - boxes[k, 0]
            row = buf_starts[k] + (y - boxes[k, 1]) * w - boxes[k, 0]
            for xx in range(start, x):
                buf[row + xx] = 1


# --- RLE helpers --------------------------------------------------------------------------------------

def polygons_to_rle(polygons, height: int, width: int) -> dict:
    """Rasterise the parts of one polygon object into a single compressed RLE."""
    flat = [np.ascontiguousarray(p, dtype=np.float64).ravel().tolist() for p in polygons]
    rles = mask_utils.frPyObjects(flat, height, width)
    return mask_utils.merge(rles) if len(rles) > 1 else rles[0]


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode a 2-D boolean or 0/1 mask as compressed COCO RLE."""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def object_rle(obj: Object, height: int, width: int, id_map: np.ndarray | None = None) -> dict:
    """The object's mask as compressed COCO RLE of size ``height x width``.

    ``id_map`` (the image's panoptic id map) is needed for ``"segment"`` objects only.
    """
    if obj.kind == "polygon":
        return polygons_to_rle(obj.polygons, height, width)
    if obj.kind == "rle":
        return obj.rle
    if obj.kind == "segment":
        if id_map is None:
            raise ValueError("a panoptic segment needs its image's id map")
        return mask_to_rle(id_map == obj.segment_id)
    raise ValueError(f"unknown geometry kind {obj.kind!r}")


def rle_runs(rle: dict) -> np.ndarray:
    """The run lengths of a COCO RLE (compressed or uncompressed), as int64.

    Raises
    ------
    ValueError
        When the counts are malformed or do not sum to height x width.

    Examples
    --------
    >>> rle_runs(mask_to_rle(np.array([[0, 1], [1, 1]]))).tolist()
    [1, 3]
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    runs = np.asarray(counts, dtype=np.int64) if isinstance(counts, list) else counts_runs(counts)
    if runs is None or (runs < 0).any() or int(runs.sum()) != h * w:
        raise ValueError(f"RLE counts do not describe a {h}x{w} mask")
    return runs


def rle_bbox(rle: dict) -> tuple[int, int, int, int]:
    """Tight integer bbox ``(x0, y0, x1, y1)`` (end-exclusive) of an RLE; all zeros when empty.

    Examples
    --------
    >>> m = np.zeros((4, 5), np.uint8); m[1:3, 2:4] = 1
    >>> rle_bbox(mask_to_rle(m))
    (2, 1, 4, 3)
    """
    x0, y0, x1, y1, _ = _runs_bbox(rle_runs(rle), int(rle["size"][0]))
    return int(x0), int(y0), int(x1), int(y1)


def decode_full(rle: dict) -> np.ndarray:
    """The full-image uint8 mask of an RLE (for display and tests; the comparison uses crops).

    The runs are painted by the same kernel as :func:`decode_crop`, with the whole image as the window;
    pycocotools' ``decode`` is not used (under numpy 2 it raises a DeprecationWarning).

    Parameters
    ----------
    rle : dict
        COCO RLE, compressed or uncompressed.

    Returns
    -------
    (height, width) uint8

    Examples
    --------
    >>> decode_full({"size": [2, 3], "counts": [1, 2, 3]}).tolist()
    [[0, 1, 0], [1, 0, 0]]
    """
    h, w = (int(v) for v in rle["size"])
    return decode_crop(rle, (0, 0, w, h))[0]


def decode_crop(rle: dict, window: tuple[int, int, int, int] | None = None
                ) -> tuple[np.ndarray, tuple[int, int]]:
    """The mask inside its tight bbox (or ``window``), and the crop's ``(x0, y0)`` offset in the image.

    The runs are painted straight into the crop: no full-image mask is built.

    Parameters
    ----------
    rle : dict
        COCO RLE.
    window : (x0, y0, x1, y1), optional
        End-exclusive window of the image; default the mask's tight bbox. Parts of the mask outside
        the window are clipped away.

    Returns
    -------
    crop : (y1 - y0, x1 - x0) uint8
    offset : (x0, y0)

    Examples
    --------
    >>> m = np.zeros((4, 5), np.uint8); m[1:3, 2:4] = 1; m[2, 3] = 0
    >>> crop, offset = decode_crop(mask_to_rle(m))
    >>> crop.tolist(), offset
    ([[1, 1], [1, 0]], (2, 1))
    """
    h = int(rle["size"][0])
    runs = rle_runs(rle)
    if window is None:
        x0, y0, x1, y1, _ = _runs_bbox(runs, h)
    else:
        x0, y0, x1, y1 = (int(v) for v in window)
    out = np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=np.uint8)
    if out.size:
        _paint_runs(runs, h, int(x0), int(y0), out)
    return out, (int(x0), int(y0))


def decode_crops(rles: list[dict], window: tuple[int, int, int, int]) -> np.ndarray:
    """Several masks cut from one shared window, as a ``(len(rles), y1 - y0, x1 - x0)`` uint8 stack.

    Examples
    --------
    >>> a = np.zeros((3, 4), np.uint8); a[0, 0] = 1
    >>> b = np.zeros((3, 4), np.uint8); b[1, 1:3] = 1
    >>> decode_crops([mask_to_rle(a), mask_to_rle(b)], (0, 0, 3, 2)).tolist()
    [[[1, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 1, 1]]]
    """
    x0, y0, x1, y1 = (int(v) for v in window)
    out = np.zeros((len(rles), max(y1 - y0, 0), max(x1 - x0, 0)), dtype=np.uint8)
    if out[0:1].size:
        for k, rle in enumerate(rles):
            _paint_runs(rle_runs(rle), int(rle["size"][0]), x0, y0, out[k])
    return out


def union_window(box_a, box_b, *, margin: int = 0, shape: tuple[int, int] | None = None
                 ) -> tuple[int, int, int, int]:
    """The smallest window holding two bboxes (empty boxes ignored), grown by ``margin`` and clipped
    to the image ``shape`` (H, W) when given."""
    boxes = [b for b in (box_a, box_b) if b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return 0, 0, 0, 0
    x0 = min(b[0] for b in boxes) - margin
    y0 = min(b[1] for b in boxes) - margin
    x1 = max(b[2] for b in boxes) + margin
    y1 = max(b[3] for b in boxes) + margin
    if shape is not None:
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, shape[1]), min(y1, shape[0])
    return int(x0), int(y0), int(x1), int(y1)


# --- the crops of one annotator on one image ----------------------------------------------------------

class ObjectCrops:
    """Tight crops of several objects of one image, in one flat row-major uint8 buffer.

    Attributes
    ----------
    boxes : (n, 4) int64
        Tight bboxes ``x0, y0, x1, y1`` (end-exclusive; zeros for an empty object).
    areas : (n,) int64
        Pixel counts.
    buf : (size,) uint8
        Crop ``k`` is ``buf[starts[k]:starts[k + 1]]`` reshaped to its bbox.
    starts : (n + 1,) int64
    shape : (H, W)
        The image size.
    """

    __slots__ = ("boxes", "areas", "buf", "starts", "shape")

    def __init__(self, boxes, areas, buf, starts, shape):
        self.boxes = boxes
        self.areas = areas
        self.buf = buf
        self.starts = starts
        self.shape = tuple(int(v) for v in shape)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (so a byte-bounded cache can keep crops of whole images)."""
        return int(self.buf.nbytes + self.boxes.nbytes + self.areas.nbytes + self.starts.nbytes)

    def crop(self, k: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Object ``k``'s tight crop (a view into the buffer) and its ``(x0, y0)`` offset."""
        x0, y0, x1, y1 = (int(v) for v in self.boxes[k])
        return self.buf[self.starts[k]:self.starts[k + 1]].reshape(y1 - y0, x1 - x0), (x0, y0)

    def window(self, k: int, window: tuple[int, int, int, int]) -> np.ndarray:
        """Object ``k`` in an arbitrary window ``(x0, y0, x1, y1)`` (zeros outside the object)."""
        wx0, wy0, wx1, wy1 = window
        out = np.zeros((wy1 - wy0, wx1 - wx0), dtype=np.uint8)
        x0, y0, x1, y1 = (int(v) for v in self.boxes[k])
        ix0, iy0, ix1, iy1 = max(x0, wx0), max(y0, wy0), min(x1, wx1), min(y1, wy1)
        if ix0 < ix1 and iy0 < iy1:
            crop, _ = self.crop(k)
            out[iy0 - wy0:iy1 - wy0, ix0 - wx0:ix1 - wx0] = crop[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0]
        return out


@njit(cache=True, nogil=True)
def _runs_boxes(runs, run_ptr, height):
    """:func:`_runs_bbox` of several objects' runs (object ``k``'s are ``runs[run_ptr[k]:run_ptr[k + 1]]``):
    ``(boxes (n, 4) int64, areas (n,) int64)``."""
    n = run_ptr.shape[0] - 1
    boxes = np.zeros((n, 4), np.int64)
    areas = np.zeros(n, np.int64)
    for k in range(n):
        x0, y0, x1, y1, area = _runs_bbox(runs[run_ptr[k]:run_ptr[k + 1]], height)
        boxes[k, 0] = x0
        boxes[k, 1] = y0
        boxes[k, 2] = x1
        boxes[k, 3] = y1
        areas[k] = area
    return boxes, areas


def _starts(boxes: np.ndarray) -> np.ndarray:
    sizes = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    starts = np.zeros(len(boxes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    return starts


def _parsed_counts(rles: list[dict], size: int):
    """The runs of RLEs with compressed counts: ``(runs, run_starts, ok)`` of
    :func:`qa.formats._rle_counts._rle_strings_runs` (``ok`` False where :func:`rle_runs` would raise)."""
    from qa.formats._rle_counts import _rle_strings_runs

    raw = [c.encode("ascii", "replace") if isinstance(c, str) else bytes(c) for c in (r["counts"] for r in rles)]
    char_ptr = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in raw], out=char_ptr[1:])
    chars = np.frombuffer(b"".join(raw), dtype=np.uint8)
    return _rle_strings_runs(chars, char_ptr, int(size))


def rle_crops(rles: list[dict], height: int, width: int) -> ObjectCrops:
    """Tight crops of several RLE objects of one ``height x width`` image.

    Each RLE is parsed once; its runs are painted into its crop by a numba kernel.

    Raises
    ------
    ValueError
        When an RLE's size differs from the image or its counts are malformed.

    Examples
    --------
    >>> a = np.zeros((3, 4), np.uint8); a[1, 1:3] = 1
    >>> crops = rle_crops([mask_to_rle(a)], 3, 4)
    >>> crops.boxes.tolist(), crops.areas.tolist(), crops.crop(0)[0].tolist()
    ([[1, 1, 3, 2]], [2], [[1, 1]])
    """
    parsed = None
    if all(isinstance(rle["counts"], (str, bytes)) and [int(v) for v in rle["size"]] == [height, width]
           for rle in rles):
        # compressed counts (pycocotools' output): every string parsed and checked in one call
        parsed = _parsed_counts(rles, height * width)
    if parsed is not None and parsed[2].all():
        runs, run_starts, _ = parsed
    else:  # one by one, so the first bad RLE raises its own error
        runs_list = []
        for rle in rles:
            if [int(v) for v in rle["size"]] != [height, width]:
                raise ValueError(f"RLE size {rle['size'][0]}x{rle['size'][1]} differs from image {height}x{width}")
            runs_list.append(rle_runs(rle))
        run_starts = np.zeros(len(rles) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in runs_list], out=run_starts[1:])
        runs = np.concatenate(runs_list) if runs_list else np.zeros(0, dtype=np.int64)
    boxes, areas = _runs_boxes(runs, run_starts, height)
    starts = _starts(boxes)
    buf = np.zeros(int(starts[-1]), dtype=np.uint8)
    _paint_many(runs, run_starts, height, boxes, buf, starts)
    return ObjectCrops(boxes, areas, buf, starts, (height, width))


def segment_crops(id_map: np.ndarray, ids) -> ObjectCrops:
    """Tight crops of the segments ``ids`` (distinct) of a panoptic id map, from two passes over the map.

    Examples
    --------
    >>> m = np.array([[0, 5, 5], [7, 7, 5]], dtype=np.int32)
    >>> crops = segment_crops(m, [7, 5])
    >>> crops.boxes.tolist(), crops.areas.tolist(), crops.crop(1)[0].tolist()
    ([[0, 1, 2, 2], [1, 0, 3, 2]], [2, 3], [[1, 1], [0, 1]])
    """
    id_map = np.ascontiguousarray(id_map, dtype=np.int32)
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    order = np.argsort(ids, kind="stable").astype(np.int64)
    sorted_ids = ids[order]
    boxes_sorted, areas_sorted = _segment_boxes(id_map, sorted_ids)
    boxes = np.empty_like(boxes_sorted)
    areas = np.empty_like(areas_sorted)
    boxes[order] = boxes_sorted
    areas[order] = areas_sorted
    starts = _starts(boxes)
    buf = np.zeros(int(starts[-1]), dtype=np.uint8)
    _cut_segments(id_map, sorted_ids, order, boxes, buf, starts)
    return ObjectCrops(boxes, areas, buf, starts, id_map.shape)
