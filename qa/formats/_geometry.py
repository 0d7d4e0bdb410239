"""Shapes that are areas but not polygons (boxes, rotated boxes, ellipses, circles) as polygons.

The loaders for CVAT, Label Studio and LabelMe turn every area into the model's polygon form so that
the engine rasterises them all the same way (pycocotools). Coordinates are image pixels, x to the
right and y down; a positive rotation turns a shape clockwise on screen, as CVAT and Label Studio
draw it.
"""

from __future__ import annotations

import math

import numpy as np

MAX_ELLIPSE_VERTICES = 1024
"""Upper bound on the vertices of a polygon approximating an ellipse."""


def _rotate(points: np.ndarray, degrees: float, pivot: tuple[float, float]) -> np.ndarray:
    if not degrees:
        return points
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    px, py = pivot
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
        pivot = ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
    return _rotate(corners, rotation, pivot)


def ellipse_vertices(rx: float, ry: float, tolerance: float = 0.25) -> int:
    """How many vertices keep an inscribed polygon within ``tolerance`` pixels of the ellipse.

    A regular n-gon inscribed in a circle of radius r lies at most ``r (1 - cos(pi / n))`` inside it;
    the larger semi-axis bounds the error. At least 8 and at most :data:`MAX_ELLIPSE_VERTICES`.

    Examples
    --------
    >>> ellipse_vertices(1, 1)
    8
    >>> ellipse_vertices(100, 50)
    45
    """
    r = max(abs(rx), abs(ry))
    if r <= tolerance:
        return 8
    n = math.ceil(math.pi / math.acos(1.0 - tolerance / r))
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
