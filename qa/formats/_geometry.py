"""Shapes that are areas but not polygons (boxes, rotated boxes, ellipses, circles) as polygons.

The loaders for CVAT, Label Studio and LabelMe turn every area into the model's polygon form so that
the engine rasterises them all the same way (pycocotools). Coordinates are image pixels, x to the
right and y down; a positive rotation turns a shape clockwise on screen, as CVAT and Label Studio
draw it.

Huge or infinite inputs (a radius of 1e308, a corner at 1e306 percent) never raise here: the shape
comes out with huge or non-finite vertices, which :func:`polygon_problem` and :func:`bounds_problem`
then report (FMT001), as for any polygon.
"""

from __future__ import annotations

import math

import numpy as np

MAX_ELLIPSE_VERTICES = 1024
"""Upper bound on the vertices of a polygon approximating an ellipse."""


def finite_number(value) -> bool:
    """Whether a value read from an export is a finite int or float (not a bool).

    Integers too large for a float (JSON allows 400-digit ones) are not finite numbers here, where
    ``math.isfinite`` would raise.

    Examples
    --------
    >>> finite_number(3), finite_number(2.5), finite_number(True), finite_number(float("nan"))
    (True, True, False, False)
    >>> finite_number(10 ** 400), finite_number("1")
    (False, False)
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _rotate(points: np.ndarray, degrees: float, pivot: tuple[float, float]) -> np.ndarray:
    if not degrees:
        return points
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    px, py = pivot
    with np.errstate(over="ignore", invalid="ignore"):
        dx = points[:, 0] - px
        dy = points[:, 1] - py
        return np.column_stack((px + c * dx - s * dy, py + s * dx + c * dy))


def box_polygon(x0: float, y0: float, x1: float, y1: float, *, rotation: float = 0.0,
                pivot: tuple[float, float] | None = None) -> np.ndarray:
    """The four corners of a box, rotated about ``pivot``, as a ``(4, 2)`` float64 polygon.

    Parameters
    ----------
    x0, y0, x1, y1 : float, pixels
        Top-left and bottom-right corners before rotation.
    rotation : float, degrees, default 0.0
        Clockwise on screen (y points down).
    pivot : (float, float), optional
        The point the box turns about; its centre by default (CVAT). Label Studio turns a box about
        its top-left corner.

    Returns
    -------
    ndarray
        Corners in the order top-left, top-right, bottom-right, bottom-left (before rotation).

    Examples
    --------
    >>> box_polygon(0, 2, 4, 4).tolist()
    [[0.0, 2.0], [4.0, 2.0], [4.0, 4.0], [0.0, 4.0]]
    >>> box_polygon(0, 0, 2, 2, rotation=90, pivot=(0, 0)).round(6).tolist()
    [[0.0, 0.0], [0.0, 2.0], [-2.0, 2.0], [-2.0, 0.0]]
    """
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    if pivot is None:
        pivot = (x0 / 2.0 + x1 / 2.0, y0 / 2.0 + y1 / 2.0)  # halves first: no overflow near 1e308
    return _rotate(corners, rotation, pivot)


def ellipse_vertices(rx: float, ry: float, tolerance: float = 0.25) -> int:
    """How many vertices keep an inscribed polygon within ``tolerance`` pixels of the ellipse.

    A regular n-gon inscribed in a circle of radius r lies at most ``r (1 - cos(pi / n))`` inside it;
    the larger semi-axis bounds the error. At least 8 and at most :data:`MAX_ELLIPSE_VERTICES`, which
    any radius above about 2e4 px needs (and an infinite one too: ``acos`` of 1.0 is 0).

    Examples
    --------
    >>> ellipse_vertices(1, 1)
    8
    >>> ellipse_vertices(100, 50)
    45
    >>> ellipse_vertices(1e308, 1), ellipse_vertices(float("inf"), 1)
    (1024, 1024)
    """
    r = max(abs(rx), abs(ry))
    if not r > tolerance:  # also NaN
        return 8
    step = math.acos(1.0 - tolerance / r)
    if step <= math.pi / MAX_ELLIPSE_VERTICES:
        return MAX_ELLIPSE_VERTICES
    n = math.ceil(math.pi / step)
    return int(min(max(n, 8), MAX_ELLIPSE_VERTICES))


def ellipse_polygon(cx: float, cy: float, rx: float, ry: float, *, rotation: float = 0.0,
                    tolerance: float = 0.25) -> np.ndarray:
    """An ellipse as an inscribed polygon (vertices on the ellipse), rotated about its centre.

    Parameters
    ----------
    cx, cy : float, pixels
        Centre.
    rx, ry : float, pixels
        Semi-axes along x and y before rotation.
    rotation : float, degrees, default 0.0
        Clockwise on screen.
    tolerance : float, pixels, default 0.25
        Largest distance between the polygon and the ellipse (see :func:`ellipse_vertices`).

    Returns
    -------
    ndarray
        ``(n, 2)`` float64, starting at angle 0 and going clockwise on screen.

    Examples
    --------
    >>> p = ellipse_polygon(10, 10, 2, 1)
    >>> p.shape, p[0].tolist(), p[:, 1].max().round(3)
    ((8, 2), [12.0, 10.0], np.float64(11.0))
    """
    n = ellipse_vertices(rx, ry, tolerance)
    t = np.arange(n, dtype=np.float64) * (2.0 * math.pi / n)
    with np.errstate(over="ignore", invalid="ignore"):
        points = np.column_stack((cx + rx * np.cos(t), cy + ry * np.sin(t)))
    return _rotate(points, rotation, (cx, cy))


def polygon_problem(points: np.ndarray) -> str | None:
    """Why an ``(n, 2)`` vertex array is not a usable polygon, or None.

    Examples
    --------
    >>> polygon_problem(np.zeros((2, 2)))
    'polygon has 2 points, at least 3 are needed'
    >>> polygon_problem(np.array([[0, 0], [1, 0], [0, np.nan]])) is not None
    True
    """
    if points.ndim != 2 or points.shape[1] != 2:
        return "polygon coordinates do not form (x, y) pairs"
    if len(points) < 3:
        return f"polygon has {len(points)} points, at least 3 are needed"
    if not np.isfinite(points).all():
        return "polygon holds a NaN or infinite coordinate"
    return None


def bounds_problem(parts, width: int, height: int, *, what: str = "polygon") -> str | None:
    """Why the vertices of a shape on a ``width`` x ``height`` image cannot be rasterised, or None.

    Every geometry goes through this check before any stage sees it (:mod:`qa.formats._bounds`):
    vertices must be finite, and may lie outside the image (they are clipped when rasterised, as COCO
    does) but not by more than the image's own width or height, since pycocotools' rasteriser walks
    every edge pixel by pixel and a vertex at 1e9 exhausts memory or crashes it.

    Parameters
    ----------
    parts : sequence of (n, 2) array_like
        The shape's polygon parts, x and y in pixels.
    width, height : int
        The image's declared size.
    what : str, default "polygon"
        The shape named in the message; a polygon's parts are numbered, other shapes have one part.

    Examples
    --------
    >>> bounds_problem([np.array([[0, 0], [16, 0], [0, 12]])], 8, 6) is None
    True
    >>> bounds_problem([np.array([[0, 0], [1e12, 0], [4, 4]])], 8, 6)
    'polygon part 0 has the vertex (1e+12, 0), farther outside the 8x6 image than its own size'
    >>> bounds_problem([np.array([[0, 0], [np.inf, 0], [4, 4]])], 8, 6, what="ellipse")
    'ellipse holds a NaN or infinite coordinate'
    """
    for k, part in enumerate(parts):
        name = f"{what} part {k}" if what == "polygon" else what
        arr = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(arr).all():
            return f"{name} holds a NaN or infinite coordinate"
        far = (arr[:, 0] < -width) | (arr[:, 0] > 2 * width) | (arr[:, 1] < -height) | (arr[:, 1] > 2 * height)
        if far.any():
            x, y = arr[int(np.argmax(far))]
            return f"{name} has the vertex ({x:g}, {y:g}), farther outside the {width}x{height} image than its own size"
    return None
