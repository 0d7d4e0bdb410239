"""The noise-free street scene: stuff regions that tile the image and things in a true depth order.

Geometry is kept as polygons in image coordinates (x right, y down, the image spans ``[0, W] x [0, H]``,
pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)`` as in COCO). Stuff is built as one planar arrangement
(skyline, horizon, road edges, tree crowns, the image border), densified and jittered once, so two
regions that meet share the very same vertices. Things stand on the ground with a perspective scale,
so their sizes span COCO's small, medium and large classes; their z-order is their depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from qa.synth import _raster

# (id, name, isthing, colour); ids and colours follow Cityscapes' order and palette.
CATEGORIES: tuple[tuple[int, str, bool, tuple[int, int, int]], ...] = (
    (1, "road", False, (128, 64, 128)),
    (2, "sidewalk", False, (244, 35, 232)),
    (3, "building", False, (70, 70, 70)),
    (4, "vegetation", False, (107, 142, 35)),
    (5, "sky", False, (70, 130, 180)),
    (6, "person", True, (220, 20, 60)),
    (7, "bicycle", True, (119, 11, 32)),
    (8, "car", True, (0, 0, 142)),
    (9, "traffic sign", True, (220, 220, 0)),
)
CATEGORY_ID = {name: cid for cid, name, _, _ in CATEGORIES}
ISTHING = {name: thing for _, name, thing, _ in CATEGORIES}
STUFF_ORDER = ("sky", "building", "sidewalk", "road", "vegetation")
"""Stuff from bottom to top: a region's exterior may enclose a higher one (a tree inside a building)."""

Z_STEP = 10
"""Truth z_orders are multiples of this, so a fault can slot an object between two others."""
OCCLUDED_SHARE = 0.02
"""A thing is flagged occluded in the truth when things above it cover more than this share of it."""
MIN_VISIBLE_SHARE = 0.10
"""Things left less visible than this by the things above them are not placed."""
DENSITY = (5.0, 10.0)
"""Vertices per 100 px of outline in the truth (each object draws its own density in this range; a
2 px dilation of a 100 px outline still leaves more than 4)."""
MIN_VERTICES = 6
"""Fewest vertices of a thing's outline in the truth (small things are denser than DENSITY)."""
STUFF_JITTER_PX = 0.5
"""Standard deviation of the jitter on densified stuff boundaries (so straight runs are not collinear)."""


@dataclass(slots=True)
class Shape:
    """One object: its export id, category, outline parts (``(N, 2)`` x, y arrays, open rings),
    z_order and occluded flag."""

    id: int
    category: str
    parts: list
    z_order: int
    occluded: bool = False

    @property
    def isthing(self) -> bool:
        return ISTHING[self.category]

    def copy(self) -> "Shape":
        return Shape(self.id, self.category, [np.array(p, dtype=np.float64) for p in self.parts],
                     self.z_order, self.occluded)


@dataclass(slots=True)
class Scene:
    """One image's truth: its objects and, per object id, the raster facts the faults rely on.

    ``area`` is the raster area of the full (amodal) outline, ``visible`` the pixels left after the
    objects above it are painted, ``covered`` the share of a thing covered by things above it.
    """

    index: int
    key: str
    height: int
    width: int
    objects: list[Shape]
    area: dict[int, int] = field(default_factory=dict)
    visible: dict[int, int] = field(default_factory=dict)
    covered: dict[int, float] = field(default_factory=dict)
    occluders: dict[int, list[int]] = field(default_factory=dict)


def image_key(index: int) -> str:
    """The file name of image ``index`` (also its key in every export).

    Examples
    --------
    >>> image_key(7)
    'scene_00007.jpg'
    """
    return f"scene_{index:05d}.jpg"


def object_id(index: int, local: int) -> int:
    """Export id of the ``local``-th object (1-based) of image ``index``; panoptic ids stay below 2**24.

    Examples
    --------
    >>> object_id(3, 12)
    3012
    """
    return index * 1000 + local


def to_parts(geom) -> list:
    """Exterior rings of a Polygon or MultiPolygon as open ``(N, 2)`` arrays (holes are dropped:
    the objects above fill them)."""
    if geom is None or geom.is_empty:
        return []
    polys = [geom] if geom.geom_type == "Polygon" else [g for g in getattr(geom, "geoms", []) if
                                                          g.geom_type == "Polygon"]
    out = []
    for poly in polys:
        if poly.is_empty or poly.area <= 0:
            continue
        ring = np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]
        if len(ring) >= 3:
            out.append(ring)
    return out


def to_geometry(parts):
    """The parts of an object as one shapely (Multi)Polygon."""
    polys = [Polygon(p) for p in parts if len(p) >= 3]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


# --- stuff -------------------------------------------------------------------------------------------

def _blob(rng, cx, cy, rx, ry, *, exponent=2.0, roughness=0.05, n=256):
    """A closed smooth curve: a superellipse with a few random low harmonics, ``(n, 2)``."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    r = (np.abs(c) ** exponent + np.abs(s) ** exponent) ** (-1.0 / exponent)
    k = np.arange(2, 6)[:, None]
    amp = roughness * rng.uniform(0.3, 1.0, (4, 1)) / (k - 1)
    r = r * (1.0 + (amp * np.cos(k * t + rng.uniform(0, 2 * np.pi, (4, 1)))).sum(axis=0))
    return np.column_stack([cx + rx * r * c, cy + ry * r * s])


def _resample(curve: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` vertices spaced about evenly along a closed curve, with a random start and small spacing noise."""
    closed = np.vstack([curve, curve[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    step = total / n
    targets = (np.arange(n) + rng.uniform(0, 1)) * step + rng.uniform(-0.2, 0.2, n) * step
    targets = np.sort(np.mod(targets, total))
    return np.column_stack([np.interp(targets, cum, closed[:, 0]), np.interp(targets, cum, closed[:, 1])])


def _stuff(rng, height: int, width: int) -> tuple[dict[str, object], dict]:
    """Stuff regions as shapely geometries keyed by category, and the layout the things stand on."""
    H, W = float(height), float(width)
    y_h = H * rng.uniform(0.38, 0.5)
    vx = W * rng.uniform(0.4, 0.6)
    a = W * rng.uniform(0.01, 0.03)
    xl = vx - a - W * rng.uniform(0.6, 0.9)
    xr = vx + a + W * rng.uniform(0.6, 0.9)
    # Skyline: building blocks of random width and height.
    xs, tops = [0.0], []
    while xs[-1] < W:
        xs.append(min(W, xs[-1] + W * rng.uniform(0.05, 0.16)))
        tops.append(rng.uniform(0.08 * H, y_h - 0.1 * H))
    sky_pts = []
    for i, top in enumerate(tops):
        sky_pts += [(xs[i], top), (xs[i + 1], top)]
    lines = [
        box(0, 0, W, H).exterior,
        LineString(sky_pts),
        LineString([(0, y_h), (W, y_h)]),
        LineString([(vx - a, y_h), (xl, H)]),
        LineString([(vx + a, y_h), (xr, H)]),
    ]
    density = rng.uniform(*DENSITY)
    trees = []
    for _ in range(rng.integers(2, 5)):
        r = W * rng.uniform(0.03, 0.07)
        cx, cy = rng.uniform(0, W), y_h - r * rng.uniform(1.0, 1.6)
        curve = _blob(rng, cx, cy, r, r * rng.uniform(0.8, 1.1), roughness=0.08)
        perimeter = float(np.hypot(*np.diff(np.vstack([curve, curve[:1]]), axis=0).T).sum())
        crown = Polygon(_resample(curve, max(8, int(perimeter * density / 100.0)), rng))
        crown = crown.intersection(box(0, 0, W, y_h - 1.0))
        if crown.geom_type == "Polygon" and crown.area > 1.0:
            trees.append(crown)
            lines.append(crown.exterior)
    canopy = shapely.union_all(trees) if trees else Polygon()
    noded = shapely.union_all(lines).intersection(box(0, 0, W, H))
    spacing = 100.0 / density
    noded = shapely.segmentize(noded, spacing)
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    # One consistent jitter per distinct vertex: shared boundaries stay shared, border vertices stay on it.
    coords, owner = shapely.get_coordinates(faces, return_index=True)
    uniq, inverse = np.unique(np.round(coords, 6), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    jitter = np.clip(rng.normal(0.0, STUFF_JITTER_PX, uniq.shape), -2 * STUFF_JITTER_PX, 2 * STUFF_JITTER_PX)
    on_x = np.isclose(uniq[:, 0], 0.0) | np.isclose(uniq[:, 0], W)
    on_y = np.isclose(uniq[:, 1], 0.0) | np.isclose(uniq[:, 1], H)
    jitter[on_x, 0] = 0.0
    jitter[on_y, 1] = 0.0
    jitter[on_x & on_y] = 0.0
    # Where jitter makes a face cross itself (short edges near junctions), halve it there until valid.
    for attempt in range(6):
        moved = shapely.set_coordinates(faces.copy(), coords + jitter[inverse])
        bad = ~shapely.is_valid(moved)
        if not bad.any():
            break
        rows = np.unique(inverse[bad[owner]])
        jitter[rows] *= 0.0 if attempt >= 4 else 0.5
    faces = moved[shapely.area(moved) > 0]
    rep = shapely.point_on_surface(faces)
    px, py = shapely.get_x(rep), shapely.get_y(rep)
    sky_top = np.asarray(tops)[np.clip(np.searchsorted(np.asarray(xs), px, side="right") - 1, 0, len(tops) - 1)]
    left = (vx - a) + (xl - (vx - a)) * (py - y_h) / (H - y_h)
    right = (vx + a) + (xr - (vx + a)) * (py - y_h) / (H - y_h)
    label = np.where(py < sky_top, "sky", np.where(py < y_h, "building",
                     np.where((px > left) & (px < right), "road", "sidewalk"))).astype(object)
    if trees:
        label[shapely.contains_xy(canopy, px, py)] = "vegetation"
    regions = {}
    for name in STUFF_ORDER:
        sel = faces[label == name]
        if len(sel):
            regions[name] = shapely.union_all(sel)
    layout = {"y_h": y_h, "vx": vx, "a": a, "xl": xl, "xr": xr}
    return regions, layout


# --- things ------------------------------------------------------------------------------------------

_THING_COUNTS = {"car": (10, 15), "person": (8, 12), "bicycle": (3, 6), "traffic sign": (4, 7)}


def _thing_outline(rng, category, cx, cy, w, h):
    if category == "car":
        curve = _blob(rng, cx, cy, w / 2, h / 2, exponent=rng.uniform(3.0, 4.0), roughness=0.06)
    elif category == "person":
        curve = _blob(rng, cx, cy, w / 2, h / 2, exponent=rng.uniform(2.0, 2.6), roughness=0.08)
    elif category == "bicycle":
        curve = _blob(rng, cx, cy, w / 2, h / 2, exponent=rng.uniform(2.0, 2.5), roughness=0.1)
    else:  # traffic sign: round, diamond-ish or square-ish
        curve = _blob(rng, cx, cy, w / 2, h / 2, exponent=float(rng.choice([1.3, 2.0, 5.0])), roughness=0.03)
    perimeter = float(np.hypot(*np.diff(np.vstack([curve, curve[:1]]), axis=0).T).sum())
    n = max(MIN_VERTICES, int(round(perimeter * rng.uniform(*DENSITY) / 100.0)))
    return _resample(curve, n, rng)


def _things(rng, height, width, layout):
    """Thing outlines with their depth (the y of their base); nearer things have larger depth."""
    H, W = float(height), float(width)
    y_h, vx, a, xl, xr = (layout[k] for k in ("y_h", "vx", "a", "xl", "xr"))
    out = []
    for category, (lo, hi) in _THING_COUNTS.items():
        for _ in range(rng.integers(lo, hi + 1)):
            s = float(np.exp(rng.uniform(np.log(0.03), 0.0)))
            base = y_h + s * (H - y_h)
            left = (vx - a) + (xl - (vx - a)) * s
            right = (vx + a) + (xr - (vx + a)) * s
            if category == "car":
                w = s * 0.32 * W * rng.uniform(0.8, 1.15)
                h = w * rng.uniform(0.42, 0.55)
                cx = rng.uniform(left + 0.3 * w, max(left + 0.3 * w + 1, right - 0.3 * w))
                cy = base - h / 2
            elif category == "person":
                h = s * 0.24 * W * rng.uniform(0.85, 1.15)
                w = h * rng.uniform(0.3, 0.4)
                side = rng.choice([-1.0, 1.0])
                edge = left if side < 0 else right
                cx = edge + side * rng.uniform(-0.02, 0.25) * W * s if rng.uniform() > 0.2 \
                    else rng.uniform(left, right)
                cy = base - h / 2
            elif category == "bicycle":
                w = s * 0.2 * W * rng.uniform(0.85, 1.15)
                h = w * rng.uniform(0.55, 0.7)
                edge = left if rng.uniform() < 0.5 else right
                cx = edge + rng.uniform(-0.08, 0.08) * W * s
                cy = base - h / 2
            else:
                w = s * 0.06 * W * rng.uniform(0.8, 1.3)
                h = w * rng.uniform(0.9, 1.1)
                side = rng.choice([-1.0, 1.0])
                edge = left if side < 0 else right
                cx = edge + side * rng.uniform(0.02, 0.15) * W * s
                cy = base - s * 0.18 * W - h / 2
            w, h = max(w, 4.0), max(h, 4.0)
            if not (0 <= cx <= W and 0 <= cy <= H):
                continue
            outline = _thing_outline(rng, category, cx, cy, w, h)
            geom = Polygon(outline)
            if not geom.is_valid:
                continue
            if not box(0, 0, W, H).contains(geom):
                geom = geom.intersection(box(0, 0, W, H))
            parts = to_parts(geom)
            if parts:
                out.append((base, category, parts))
    out.sort(key=lambda t: t[0])
    return out


def scene_facts(objects: list[Shape], height: int, width: int):
    """Raster area, visible pixels, covered share and occluders of each object, painting in z-order.

    Stuff is painted first (in z-order), things after it; ties keep the list order. Returns the
    painted map of 1-based positions in ``objects`` (0 where nothing is painted) and four dicts keyed
    by object id.
    """
    order = sorted(range(len(objects)), key=lambda k: (objects[k].isthing, objects[k].z_order))
    labels = _raster.paint([(k + 1, objects[k].parts) for k in order], height, width)
    counts = np.bincount(labels.ravel(), minlength=len(objects) + 1)
    area, covered, occluders, visible = {}, {}, {}, {}
    things = [objects[k] for k in order if objects[k].isthing]
    geoms = [to_geometry(o.parts) for o in things]
    tree = shapely.STRtree(geoms)
    for k, o in enumerate(objects):
        area[o.id] = _raster.area_bbox(o.parts, height, width)[0]
        visible[o.id] = int(counts[k + 1])
    for i, o in enumerate(things):
        covered[o.id] = 1.0 - visible[o.id] / area[o.id] if area[o.id] else 0.0
        hits = tree.query(geoms[i], predicate="intersects")
        occluders[o.id] = sorted(things[j].id for j in hits.tolist()
                                 if j != i and things[j].z_order > o.z_order)
    return labels, area, visible, covered, occluders


def generate_scene(rng: np.random.Generator, index: int, height: int, width: int) -> Scene:
    """Draw one street scene.

    Parameters
    ----------
    rng : numpy.random.Generator
        The image's own generator (the scene depends on nothing else).
    index : int
        The image's position in the batch (0-based); sets its key and object ids.
    height, width : int
        Image size in pixels.

    Returns
    -------
    Scene
        Stuff objects first (z_order 0, 10, ... in :data:`STUFF_ORDER`), then things far to near.
    """
    regions, layout = _stuff(rng, height, width)
    things = _things(rng, height, width, layout)
    objects: list[Shape] = []
    layer = 0
    for name in STUFF_ORDER:
        if name in regions:
            parts = to_parts(regions[name])
            if parts:
                objects.append(Shape(0, name, parts, layer * Z_STEP))
        layer += 1
    for _, category, parts in things:
        objects.append(Shape(0, category, parts, layer * Z_STEP))
        layer += 1
    # Coordinates as exported (0.01 px), then leave out things the nearer ones hide (almost) entirely.
    for o in objects:
        o.parts = [_raster.quantise(p) for p in o.parts]
    for k, o in enumerate(objects):
        o.id = object_id(index, k + 1)
    for _ in range(3):
        _, area, visible, covered, _ = scene_facts(objects, height, width)
        keep = [o for o in objects
                if not o.isthing or (area[o.id] >= 4 and 1.0 - covered[o.id] >= MIN_VISIBLE_SHARE)]
        if len(keep) == len(objects):
            break
        objects = keep
        for k, o in enumerate(objects):
            o.id = object_id(index, k + 1)
    _, area, visible, covered, occluders = scene_facts(objects, height, width)
    for o in objects:
        o.occluded = bool(o.isthing and covered[o.id] > OCCLUDED_SHARE)
    return Scene(index=index, key=image_key(index), height=height, width=width, objects=objects,
                 area=area, visible=visible, covered=covered, occluders=occluders)
