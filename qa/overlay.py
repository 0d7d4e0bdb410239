"""Overlay pictures for the report: each annotator's outlines in its own colour, disagreement tinted.

One picture per image, drawn at thumbnail resolution. Each object is decoded into its bbox crop by the
engine's numba kernels (:func:`qa.engine._masks.rle_crops`, :func:`~qa.engine._masks.segment_crops`),
never as a full-image mask; the crop is sampled (nearest neighbour) onto the thumbnail, where two small
label canvases per annotator are painted in layer order: object ids (for the outlines) and category
codes (for the disagreement). numpy does the rest on thumbnail-sized arrays, so a picture costs a few
milliseconds beyond decoding its masks.

What a picture shows:

- the image itself, dimmed, when its file is available (:attr:`qa.model.Image.path`, or the file name
  inside the export's folder); otherwise a dark canvas on which regions that every annotator gives the
  same category are shaded grey (one shade per category);
- in magenta (:data:`DISAGREEMENT_COLOUR`), pixels whose category is not the same for every annotator
  (one labels it and another does not, or they label it differently); each annotator's category at a
  pixel is that of its top-most object there (highest ``z_order``, then the last in the export);
- each annotator's visible outlines in its colour (:func:`annotator_colour`, Okabe-Ito), drawn in
  annotator order, so where outlines coincide the last annotator's colour shows.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# Okabe-Ito: distinguishable for the common colour-vision deficiencies. Magenta is kept for disagreement.
ANNOTATOR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178), (230, 159, 0), (0, 158, 115), (240, 228, 66),
    (86, 180, 233), (213, 94, 0), (255, 255, 255), (0, 0, 0),
)
DISAGREEMENT_COLOUR = (204, 0, 204)
"""Magenta: pixels the annotators do not all give the same category."""

DEFAULT_MAX_SIDE = 640
"""Longest side of an overlay picture, in pixels."""


def annotator_colour(index: int) -> tuple[int, int, int]:
    """The colour of the ``index``-th annotator (Okabe-Ito, cycling after eight).

    Examples
    --------
    >>> annotator_colour(0), annotator_colour(8)
    ((0, 114, 178), (0, 114, 178))
    """
    return ANNOTATOR_COLOURS[index % len(ANNOTATOR_COLOURS)]


def hex_colour(rgb: Sequence[int]) -> str:
    """A colour as CSS hex.

    Examples
    --------
    >>> hex_colour((0, 114, 178))
    '#0072b2'
    """
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def thumbnail_shape(height: int, width: int, max_side: int) -> tuple[int, int, float]:
    """Rows, columns and scale of an image's thumbnail (the scale is never above 1).

    Examples
    --------
    >>> thumbnail_shape(1024, 2048, 640)
    (320, 640, 0.3125)
    >>> thumbnail_shape(100, 50, 640)
    (100, 50, 1.0)
    """
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale)), scale


def _sample_crop(crop: np.ndarray, offset: tuple[int, int], scale: float, canvas: tuple[int, int]):
    """Nearest-neighbour sample of a full-resolution crop onto the canvas: (bool mask, (r0, c0)).

    Picture pixel ``(r, c)`` takes the image pixel under its centre, ``((r + 0.5) / scale,
    (c + 0.5) / scale)``; only the picture pixels whose centre falls inside the crop are returned.
    """
    x0, y0 = offset
    h, w = crop.shape
    if h == 0 or w == 0:
        return _EMPTY, (0, 0)
    r0 = max(0, math.ceil(y0 * scale - 0.5))
    c0 = max(0, math.ceil(x0 * scale - 0.5))
    r1 = min(canvas[0], math.ceil((y0 + h) * scale - 0.5))
    c1 = min(canvas[1], math.ceil((x0 + w) * scale - 0.5))
    if r1 <= r0 or c1 <= c0:
        return _EMPTY, (r0, c0)
    rows = np.minimum(((np.arange(r0, r1) + 0.5) / scale).astype(np.intp) - y0, h - 1)
    cols = np.minimum(((np.arange(c0, c1) + 0.5) / scale).astype(np.intp) - x0, w - 1)
    sampled = crop.take(rows, axis=0).take(cols, axis=1)
    return (sampled.view(bool) if sampled.dtype == np.uint8 else sampled.astype(bool)), (r0, c0)


_EMPTY = np.zeros((0, 0), bool)


def _edges(ids: np.ndarray) -> np.ndarray:
    """Labelled pixels with a 4-neighbour of another id (the visible outlines; the image border is not one).

    Examples
    --------
    >>> _edges(np.array([[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 2]])).astype(int).tolist()
    [[0, 1, 0, 0], [0, 1, 0, 1], [0, 1, 1, 1]]
    """
    differ_h = ids[:, 1:] != ids[:, :-1]
    differ_v = ids[1:, :] != ids[:-1, :]
    edge = np.zeros(ids.shape, bool)
    edge[:, 1:] |= differ_h
    edge[:, :-1] |= differ_h
    edge[1:, :] |= differ_v
    edge[:-1, :] |= differ_v
    return edge & (ids > 0)


Layer = Iterable[tuple[np.ndarray, tuple[int, int], int]]
"""One annotator's objects in painting order (bottom first): ``(crop, (x0, y0), category code > 0)``."""


def focus_window(boxes, height: int, width: int, *, min_side: int = 64, max_share: float = 0.35
                 ) -> tuple[int, int, int, int] | None:
    """The part of an image worth showing when its objects cover only a small part of it, or None.

    The union of the boxes, grown by a quarter of its size plus 16 px on each side and to at least
    ``min_side`` pixels per side (centred), clipped to the image. None (draw the whole image) when
    there are no boxes or the window would cover more than ``max_share`` of the image.

    Parameters
    ----------
    boxes : iterable of (x0, y0, x1, y1)
        End-exclusive boxes in image pixels (empty ones are ignored).
    height, width : int
        The image size.

    Examples
    --------
    >>> focus_window([(250, 250, 262, 258)], 512, 512)
    (224, 222, 288, 286)
    >>> focus_window([(0, 0, 400, 400)], 512, 512) is None
    True
    """
    boxes = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    out = []
    for lo, hi, size in ((x0, x1, width), (y0, y1, height)):
        grow = (hi - lo) // 4 + 16
        lo, hi = lo - grow, hi + grow
        if hi - lo < min_side:
            centre = (lo + hi) // 2
            lo, hi = centre - min_side // 2, centre - min_side // 2 + min_side
        if lo < 0:
            lo, hi = 0, min(size, hi - lo)
        if hi > size:
            lo, hi = max(0, lo - (hi - size)), size
        out.append((int(lo), int(hi)))
    (wx0, wx1), (wy0, wy1) = out
    if (wx1 - wx0) * (wy1 - wy0) > max_share * height * width:
        return None
    return wx0, wy0, wx1, wy1


def picture_shape(height: int, width: int, max_side: int, window=None, max_zoom: float = 6.0
                  ) -> tuple[int, int, float, tuple[int, int, int, int]]:
    """Rows, columns, scale and window of a picture: the whole image scaled down to ``max_side`` (never
    up), or a ``window`` of it scaled to ``max_side`` (up to ``max_zoom`` times).

    Examples
    --------
    >>> picture_shape(1024, 2048, 640)
    (320, 640, 0.3125, (0, 0, 2048, 1024))
    >>> picture_shape(512, 512, 640, window=(224, 222, 288, 286))
    (384, 384, 6.0, (224, 222, 288, 286))
    """
    if window is None:
        rows, cols, scale = thumbnail_shape(height, width, max_side)
        return rows, cols, scale, (0, 0, int(width), int(height))
    x0, y0, x1, y1 = (int(v) for v in window)
    scale = min(float(max_zoom), max_side / max(y1 - y0, x1 - x0))
    return max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale)), scale, (x0, y0, x1, y1)


def render_overlay(height: int, width: int, layers: Sequence[Layer], *, background: np.ndarray | None = None,
                   max_side: int = DEFAULT_MAX_SIDE, window: tuple[int, int, int, int] | None = None,
                   dashed: Sequence[int] = ()) -> np.ndarray:
    """Draw one image's overlay.

    Parameters
    ----------
    height, width : int
        The image's size in pixels.
    layers : sequence of iterables of (crop, (x0, y0), category)
        For each annotator in order, its objects bottom first: a uint8 or bool bbox crop, the crop's
        offset in the image, and a category code (a positive int; equal codes mean equal categories
        across annotators).
    background : ndarray, optional
        The image (or its window) at the picture's size (``(h, w, 3)`` uint8, see
        :func:`load_background`); a dark canvas when None.
    max_side : int, pixels, default 640
        The longest side of the result.
    window : (x0, y0, x1, y1), optional
        Draw only this part of the image, enlarged up to 6 times (see :func:`focus_window`).
    dashed : sequence of int, optional
        Layers whose outlines are drawn dashed (4 picture pixels on, 4 off along the diagonals): a
        reference's outline under an annotator's solid one.

    Returns
    -------
    ndarray
        ``(h, w, 3)`` uint8 RGB (see the module docstring for what it shows).

    Examples
    --------
    >>> square = np.ones((4, 4), np.uint8)
    >>> rgb = render_overlay(8, 8, [[(square, (0, 0), 1)], [(square, (2, 2), 1)]])
    >>> rgb.shape
    (8, 8, 3)
    >>> [rgb[r, c].tolist() for r, c in [(7, 7), (3, 0), (1, 1), (2, 2)]]  # none, a's edge, a only, b's edge
    [[40, 40, 40], [0, 114, 178], [130, 18, 130], [230, 159, 0]]
    """
    rows, cols, scale, (wx0, wy0, _, _) = picture_shape(height, width, max_side, window)
    n = len(layers)
    counts = [len(objects) if hasattr(objects, "__len__") else 0 for objects in layers]
    id_type = np.int16 if max(counts, default=0) < 32_000 and all(hasattr(o, "__len__") for o in layers) \
        else np.int32
    ids = np.zeros((max(n, 1), rows, cols), id_type)
    cats = np.zeros((max(n, 1), rows, cols), np.int32)
    for a, objects in enumerate(layers):
        for k, (crop, (x0, y0), category) in enumerate(objects, start=1):
            mask, (r0, c0) = _sample_crop(np.asarray(crop), (x0 - wx0, y0 - wy0), scale, (rows, cols))
            if not mask.size:
                continue
            h, w = mask.shape
            np.copyto(ids[a, r0:r0 + h, c0:c0 + w], k, where=mask)
            np.copyto(cats[a, r0:r0 + h, c0:c0 + w], int(category), where=mask)
    # one code per pixel, then one look-up: 0 nothing, 1-6 agreed (shade per category), 7 disagreement,
    # 8 + a annotator a's outline
    disagree = (cats != cats[0]).any(axis=0)
    code = np.where(cats[0] > 0, 1 + cats[0] % 6, 0).astype(np.uint8)
    code[disagree] = 7
    dash = None
    if dashed:
        rr, cc = np.indices((rows, cols))
        dash = ((rr + cc) // 4) % 2 == 0
    for a in range(n):
        edges = _edges(ids[a])
        if dash is not None and a in dashed:
            edges &= dash
        code[edges] = 8 + a % len(ANNOTATOR_COLOURS)
    palette = np.zeros((8 + len(ANNOTATOR_COLOURS), 3), np.uint8)
    palette[0] = 40
    palette[1:7] = (62 + 14 * np.arange(6))[:, None]
    palette[7] = np.round(40 * 0.45 + np.array(DISAGREEMENT_COLOUR) * 0.55)
    palette[8:] = ANNOTATOR_COLOURS
    rgb = palette[code]
    if background is not None:  # the dimmed image where nothing is drawn, tinted where annotators disagree
        base = (np.asarray(background, np.uint16)[..., :3] * 141 >> 8) + 20  # 0.55 x the image + 20
        tinted = (base * 115 + np.array(DISAGREEMENT_COLOUR, np.uint16) * 141 + 128) >> 8
        rgb = np.where((code < 7)[..., None], base, np.where((code == 7)[..., None], tinted, rgb)).astype(np.uint8)
    return rgb


def load_background(path, height: int, width: int, *, max_side: int = DEFAULT_MAX_SIDE,
                    max_pixels: int | None = None, window=None) -> tuple[np.ndarray | None, str | None]:
    """The image file at the picture's size (:func:`picture_shape`), or None and why not.

    The file must exist, be a regular file Pillow reads, have the size the export declares, and stay
    within ``max_pixels``; its header is checked before anything is decoded (Pillow's own
    decompression-bomb guard, which raises above 179 megapixels whatever the limit, is replaced by this
    check, so a bomb beside an export is a picture left out, not a failed run). A whole JPEG is decoded
    at a reduced scale (Pillow's ``draft``), so a large photo costs little.

    Returns
    -------
    rgb : (h, w, 3) uint8 or None
    reason : str or None
        Why there is no picture (None when there is one).
    """
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    from qa.formats._safe import is_regular, open_image_unguarded
    from qa.model import DEFAULT_MAX_PIXELS

    rows, cols, _, box = picture_shape(height, width, max_side, window)
    if Path(path).exists() and not is_regular(path):
        return None, "the image path is not a regular file"
    try:
        with open_image_unguarded(Path(path)) as img:
            if img.size[0] * img.size[1] > (max_pixels or DEFAULT_MAX_PIXELS):
                return None, (f"the image file is {img.size[0]}x{img.size[1]}, larger than the pixel limit "
                              f"({max_pixels or DEFAULT_MAX_PIXELS} pixels)")
            if img.size != (width, height):
                return None, f"the image file is {img.size[0]}x{img.size[1]}, the export says {width}x{height}"
            if window is None:
                img.draft("RGB", (cols, rows))
                rgb = img.convert("RGB").resize((cols, rows), PILImage.BILINEAR)
            else:
                rgb = img.convert("RGB").resize((cols, rows), PILImage.BILINEAR, box=box)
            return np.asarray(rgb, np.uint8), None
    except FileNotFoundError:
        return None, "no image file"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, PILImage.DecompressionBombError) as exc:
        return None, f"the image file cannot be read ({type(exc).__name__})"


def encode_image(rgb: np.ndarray, *, lossless: bool = False, quality: int = 72) -> bytes:
    """Encode an RGB array as WebP bytes (lossless for flat drawings, lossy for photographs)."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    image = PILImage.fromarray(np.ascontiguousarray(rgb))
    if lossless:
        image.save(buffer, "WEBP", lossless=True, quality=20, method=2)  # fast; as small as slower settings here
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def data_uri(payload: bytes, fmt: str = "webp") -> str:
    """A ``data:`` URI for an encoded image, so the report needs no other file.

    Examples
    --------
    >>> data_uri(b"RIFF")
    'data:image/webp;base64,UklGRg=='
    """
    return f"data:image/{fmt};base64," + base64.b64encode(payload).decode("ascii")


# --- one image of a batch -----------------------------------------------------------------------------

def _paint_order(objects) -> list[int]:
    """Positions of ``objects`` bottom first: by ``z_order`` (missing counts as 0), then export order."""
    return sorted(range(len(objects)), key=lambda k: (objects[k].z_order or 0, k))


def annotator_crops(objects, height: int, width: int, *, id_map: np.ndarray | None = None):
    """Bbox crops of one annotator's objects on one image, decoded by the engine's kernels.

    Parameters
    ----------
    objects : list of qa.model.Object
        The annotator's objects on the image.
    height, width : int
        The image size.
    id_map : ndarray, optional
        The image's panoptic id map (int32), needed for ``"segment"`` objects.

    Returns
    -------
    list of (crop, (x0, y0), object)
        In painting order (bottom first); objects whose geometry cannot be decoded (a bad RLE, a
        segment without its id map) are left out, as the comparison leaves them out.
    """
    from qa.engine._masks import polygons_to_rle, rle_crops, segment_crops

    ordered = [objects[k] for k in _paint_order(objects)]
    segments = [o for o in ordered if o.kind == "segment"]
    others = [o for o in ordered if o.kind != "segment"]
    out: dict[int, tuple] = {}
    if segments and id_map is not None:
        crops = segment_crops(id_map, [int(o.segment_id) for o in segments])
        for k, o in enumerate(segments):
            crop, offset = crops.crop(k)
            out[id(o)] = (crop, offset, o)
    rles, kept = [], []
    for o in others:
        try:
            rle = polygons_to_rle(o.polygons, height, width) if o.kind == "polygon" else o.rle
            if rle is None or [int(v) for v in rle["size"]] != [height, width]:
                continue
        except (TypeError, ValueError, KeyError):
            continue
        rles.append(rle)
        kept.append(o)
    if rles:
        try:
            crops = rle_crops(rles, height, width)
            for k, o in enumerate(kept):
                crop, offset = crops.crop(k)
                out[id(o)] = (crop, offset, o)
        except ValueError:  # one malformed RLE: decode the others one by one
            from qa.engine._masks import decode_crop

            for rle, o in zip(rles, kept):
                try:
                    crop, offset = decode_crop(rle)
                except ValueError:
                    continue
                out[id(o)] = (crop, offset, o)
    return [out[id(o)] for o in ordered if id(o) in out]
