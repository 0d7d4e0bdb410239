"""Vertex density and polygon validity (family VTX).

Every check works on the export's flat vertex table (:class:`qa.rules._context.Vertices`): edge
lengths, turns and distances are array expressions over all vertices of all polygons at once, and
per-part or per-object figures are reductions (``np.bincount``, ``np.maximum.at``). Validity comes from
shapely 2's array functions (``linearrings`` over all parts in one call, ``is_valid_reason``).

Each check receives its parameters as arrays with one value per object of the context (the value
for the object's category), so per-category settings cost nothing extra.
"""

from __future__ import annotations

import numpy as np

from qa.rules._context import ExportContext, Hit
from qa.rules._registry import rule


def _per_object(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value), (n,))


def _edges(v) -> np.ndarray:
    d = v.xy[v.nxt] - v.xy
    return np.hypot(d[:, 0], d[:, 1])


def _object_sums(ctx: ExportContext, v, weights) -> np.ndarray:
    return np.bincount(v.vertex_object, weights=weights, minlength=ctx.n)


def _density(ctx: ExportContext):
    v = ctx.vertices
    count = np.bincount(v.vertex_object, minlength=ctx.n).astype(np.float64)
    perimeter = _object_sums(ctx, v, _edges(v))
    with np.errstate(divide="ignore", invalid="ignore"):
        density = np.where(perimeter > 0, 100.0 * count / perimeter, np.nan)
    return count, perimeter, density


def _shared(ctx: ExportContext, v) -> np.ndarray:
    """Whether each vertex sits exactly on a vertex of another object in the same image.

    The vertices are sorted by one hash of image and position (``-0.0`` counted as ``0.0``), and the
    vertices of each run of one hash are compared pairwise (:func:`qa.engine._kernels_vertices._shared_runs`),
    so two places that share a hash are still told apart.
    """
    from qa.engine._kernels_vertices import _shared_runs

    if not len(v.xy):
        return np.zeros(0, bool)
    obj = v.vertex_object.astype(np.int64)
    _, image = np.unique(ctx.image, return_inverse=True) if ctx.n else (None, np.zeros(0, np.int64))
    img = image.reshape(-1)[obj].astype(np.int64)
    x, y = v.xy[:, 0] + 0.0, v.xy[:, 1] + 0.0  # contiguous, and -0.0 + 0.0 is 0.0
    key = x.view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    key ^= y.view(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F) + (key >> np.uint64(29))
    key ^= img.view(np.uint64) * np.uint64(0x165667B19E3779F9)
    return _shared_runs(np.argsort(key), key, img, x, y, obj)


@rule("VTX001", "sparse-polygon", "polygon has too few vertices for the length of its outline",
      severity="warning")
def sparse_polygon(ctx: ExportContext, *, min_vertices_per_100px=1.0, min_perimeter_px=40.0):
    """
    ## What it checks
    Polygons whose vertex count per 100 px of outline (all parts together) is below the
    category's minimum. Outlines shorter than `min_perimeter_px` are not checked.

    ## Why it matters
    A coarse outline cuts corners off the object and adds background: a model trained on it
    learns blunt, bloated shapes, and boundary metrics (boundary F, boundary IoU) penalise it.

    ## Example
    A pedestrian drawn with 5 vertices on a 410 px outline: 1.2 vertices per 100 px against a
    minimum of 4 for `person`.

    ## How to fix
    Add vertices where the outline bends (or use the tool's brush or smart-polygon mode), and set
    a lower minimum for categories with straight edges (signs, buildings).

    ## Parameters
    - `min_vertices_per_100px` (float, default 1.0, vertices per 100 px of outline): the minimum density.
    - `min_perimeter_px` (float, default 40.0, pixels): shorter outlines are not checked.
    """
    count, perimeter, density = _density(ctx)
    limit = _per_object(min_vertices_per_100px, ctx.n).astype(np.float64)
    floor = _per_object(min_perimeter_px, ctx.n).astype(np.float64)
    bad = np.flatnonzero((perimeter >= floor) & (density < limit))
    return [Hit(int(i), float(density[i]), float(limit[i]),
                f"polygon has {int(count[i])} vertices on a {perimeter[i]:.0f} px outline "
                f"({density[i]:.1f} per 100 px, minimum {limit[i]:g})") for i in bad]


@rule("VTX002", "dense-polygon", "polygon has more vertices than its outline needs", severity="info")
def dense_polygon(ctx: ExportContext, *, max_vertices_per_100px=50.0, min_perimeter_px=40.0):
    """
    ## What it checks
    Polygons whose vertex count per 100 px of outline is above the category's maximum, for
    outlines at least `min_perimeter_px` long.

    ## Why it matters
    Vertex-per-pixel outlines usually come from a tracing tool or a mask converted to a polygon;
    they carry the staircase of the pixel grid rather than the object's shape, make exports large,
    and make editing in the annotation tool slow, so later corrections get skipped.

    ## Example
    A lung nodule outlined with 96 vertices on a 100 px outline (96 per 100 px, maximum 50).

    ## How to fix
    Simplify the polygon (Douglas-Peucker at about half a pixel keeps the mask) or raise the
    maximum for categories whose guideline asks for pixel-accurate outlines.

    ## Parameters
    - `max_vertices_per_100px` (float, default 50.0, vertices per 100 px of outline): the maximum density.
    - `min_perimeter_px` (float, default 40.0, pixels): shorter outlines are not checked.
    """
    count, perimeter, density = _density(ctx)
    limit = _per_object(max_vertices_per_100px, ctx.n).astype(np.float64)
    floor = _per_object(min_perimeter_px, ctx.n).astype(np.float64)
    bad = np.flatnonzero((perimeter >= floor) & (density > limit))
    return [Hit(int(i), float(density[i]), float(limit[i]),
                f"polygon has {int(count[i])} vertices on a {perimeter[i]:.0f} px outline "
                f"({density[i]:.1f} per 100 px, maximum {limit[i]:g})") for i in bad]


@rule("VTX003", "too-few-vertices", "polygon part has fewer vertices than the minimum", severity="warning")
def too_few_vertices(ctx: ExportContext, *, min_vertices=4):
    """
    ## What it checks
    Polygon parts of things with fewer vertices than `min_vertices` (the part with the fewest
    counts). Stuff regions are not checked: tiled to fit their neighbours, they have triangular
    pieces at corners. Parts with fewer than 3 points are rejected at load time (FMT001).

    ## Why it matters
    A triangle is rarely the shape of a real object; it is usually a misclick or a placeholder,
    and it teaches the model a shape that is not there.

    ## Example
    A car drawn as a 3-vertex triangle when the minimum is 4.

    ## How to fix
    Redraw the object, or delete the part if it was a misclick.

    ## Parameters
    - `min_vertices` (int, default 4, vertices): the fewest vertices a part may have.
    """
    from qa.engine._kernels_vertices import _min_at

    v = ctx.vertices
    fewest = np.full(ctx.n, np.iinfo(np.int64).max, dtype=np.int64)
    _min_at(fewest.reshape(-1, 1), v.part_object.astype(np.int64), v.length.astype(np.int64).reshape(-1, 1))
    limit = _per_object(min_vertices, ctx.n)
    has = np.zeros(ctx.n, bool)
    has[v.part_object] = True
    bad = np.flatnonzero(has & ctx.isthing & (fewest < limit))
    return [Hit(int(i), float(fewest[i]), float(limit[i]),
                f"polygon part has {fewest[i]} vertices (minimum {limit[i]})") for i in bad]


@rule("VTX004", "duplicate-vertex", "consecutive vertices at the same place", severity="warning")
def duplicate_vertex(ctx: ExportContext, *, tolerance_px=0.0):
    """
    ## What it checks
    Consecutive vertices no farther apart than `tolerance_px`. A ring closed explicitly (the
    last vertex repeats the first exactly, as GeoJSON and some converters write it) is not a
    duplicate; a last vertex merely close to the first is.

    ## Why it matters
    Duplicates are harmless to the mask but break tools that compute angles or normals along the
    outline (smoothing, simplification, boundary losses) and hint at double clicks in the tool.

    ## Example
    `(44, 52), (44, 52)` at positions 10 and 11 of a LabelMe polygon.

    ## How to fix
    Remove the repeated vertex; most tools have a "remove duplicate points" action.

    ## Parameters
    - `tolerance_px` (float, default 0.0, pixels): vertices this close or closer count as duplicates.
    """
    from qa.engine._kernels_vertices import _min_at

    v = ctx.vertices
    tol = _per_object(tolerance_px, ctx.n).astype(np.float64)
    dup = _edges(v) <= tol[v.vertex_object]
    closing = v.start + v.length - 1
    dup[closing[(v.xy[closing] == v.xy[v.start]).all(axis=1)]] = False
    count = np.bincount(v.vertex_object[dup], minlength=ctx.n)
    first = np.full(ctx.n, len(v.xy), dtype=np.int64)
    where = np.flatnonzero(dup)
    _min_at(first.reshape(-1, 1), v.vertex_object[where].astype(np.int64), where.astype(np.int64).reshape(-1, 1))
    bad = np.flatnonzero(count > 0)
    hits = []
    for i in bad:
        k = first[i]
        part = v.vertex_part[k]
        x, y = v.xy[k]
        hits.append(Hit(int(i), float(count[i]), 0.0,
                        f"polygon has {count[i]} duplicate consecutive vertices (first at vertex "
                        f"{k - v.start[part]} of part {v.part_index[part]}, ({x:g}, {y:g}))"))
    return hits


@rule("VTX005", "collinear-run", "many vertices lie on the line between their neighbours", severity="info")
def collinear_run(ctx: ExportContext, *, tolerance_px=0.1, max_redundant_share=0.3, min_vertices=10):
    """
    ## What it checks
    The share of a polygon's vertices that are redundant (polygons of at least `min_vertices`
    vertices): within `tolerance_px` of the straight
    segment between their two neighbours, and between them. Duplicate vertices are left to VTX004.
    Vertices that keep boundaries shared are not counted: those at exactly the same place as a
    vertex of another object of the image (regions that meet share their vertices), and runs along
    the image border (an outline cut by the frame).

    ## Why it matters
    Runs of redundant vertices add no shape; they come from pixel tracing or from mask-to-polygon
    conversion and make outlines heavy to edit. A high share often means the outline follows the
    pixel grid's staircase instead of the object.

    ## Example
    A polygon of 40 vertices of which 22 lie on straight runs (55 %, maximum 30 %).

    ## How to fix
    Simplify the outline (remove vertices within a tenth of a pixel of the line), or raise the
    maximum for categories whose outlines are traced by a tool.

    ## Parameters
    - `tolerance_px` (float, default 0.1, pixels): a vertex this close to its neighbours' chord is redundant.
    - `max_redundant_share` (float, default 0.3, share of vertices): the largest share allowed.
    - `min_vertices` (int, default 10, vertices): smaller polygons are not checked (on a few short
      edges a tenth of a pixel is no longer small).
    """
    v = ctx.vertices
    xy = v.xy
    a, b = xy[v.prv], xy[v.nxt]
    chord = b - a
    chord_len = np.hypot(chord[:, 0], chord[:, 1])
    rel = xy - a
    cross = np.abs(rel[:, 0] * chord[:, 1] - rel[:, 1] * chord[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(chord_len > 0, cross / chord_len, np.inf)
        t = np.where(chord_len > 0, (rel * chord).sum(axis=1) / chord_len ** 2, -1.0)
    edges = _edges(v)
    distinct = (edges > 0) & (edges[v.prv] > 0)
    tol = _per_object(tolerance_px, ctx.n).astype(np.float64)[v.vertex_object]
    obj = v.vertex_object
    w, h = ctx.width[obj].astype(np.float64), ctx.height[obj].astype(np.float64)
    border = np.zeros(len(xy), bool)
    for coord, edge in ((0, 0.0), (0, w), (1, 0.0), (1, h)):
        on = xy[:, coord] == edge
        border |= on & on[v.prv] & on[v.nxt]
    redundant = distinct & ~border & ~_shared(ctx, v) & (dist <= tol) & (t > 0) & (t < 1) \
        & (v.length[v.vertex_part] > 3)
    count = np.bincount(v.vertex_object, weights=redundant.astype(np.float64), minlength=ctx.n)
    total = np.bincount(v.vertex_object, minlength=ctx.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, count / np.maximum(total, 1), 0.0)
    limit = _per_object(max_redundant_share, ctx.n).astype(np.float64)
    bad = np.flatnonzero((share > limit) & (total >= _per_object(min_vertices, ctx.n)))
    return [Hit(int(i), float(share[i]), float(limit[i]),
                f"{int(count[i])} of {total[i]} vertices lie on straight runs ({100 * share[i]:.0f} %, "
                f"maximum {100 * limit[i]:g} %)") for i in bad]


@rule("VTX006", "self-intersection", "polygon outline crosses itself", severity="error")
def self_intersection(ctx: ExportContext):
    """
    ## What it checks
    Polygon parts whose outline crosses or touches itself, as GEOS (through shapely's
    `is_valid_reason`) reports it: `Self-intersection[x y]` or `Ring Self-intersection[x y]`.

    ## Why it matters
    A bow-tie outline has no agreed inside: pycocotools, OpenCV and shapely fill it differently,
    so the same label gives different masks in training and in evaluation.

    ## Example
    `[(0, 0), (10, 10), (10, 0), (0, 10)]`: Self-intersection[5 5].

    ## How to fix
    Redraw the crossing edges, or split the part in two at the crossing.

    ## Parameters
    None.
    """
    import shapely

    v = ctx.vertices
    if not len(v.length):
        return []
    ok_part = v.length >= 3
    keep = ok_part[v.vertex_part]
    rings = shapely.linearrings(v.xy[keep], indices=np.repeat(np.arange(ok_part.sum()), v.length[ok_part]))
    reasons = np.asarray(shapely.is_valid_reason(shapely.polygons(rings)), dtype=object)
    parts = np.flatnonzero(ok_part)
    hits = []
    reported = set()
    for k, reason in zip(parts, reasons):
        if reason is None or "Self-intersection" not in reason:
            continue
        obj = int(v.part_object[k])
        if obj in reported:
            continue
        reported.add(obj)
        hits.append(Hit(obj, 1.0, 0.0, f"polygon part {v.part_index[k]} is invalid: {reason}"))
    return hits


@rule("VTX007", "sliver", "polygon part is a sliver or has zero area", severity="warning")
def sliver(ctx: ExportContext, *, min_width_px=0.5):
    """
    ## What it checks
    Polygon parts whose mean width, twice the area divided by the outline length, is below
    `min_width_px`. A part with zero area (all vertices on one line) has width 0.

    ## Why it matters
    Slivers rasterise to a handful of pixels or none: the object vanishes from the mask while it
    still counts as an instance, so the model is trained on an empty or broken target.

    ## Example
    A part of area 3 px² on a 40 px outline: mean width 0.15 px, minimum 0.5.

    ## How to fix
    Delete the sliver (usually a stray part) or redraw it around the real object.

    ## Parameters
    - `min_width_px` (float, default 0.5, pixels): the narrowest mean width a part may have (a strip
      narrower than half a pixel loses pixels when rasterised).
    """
    v = ctx.vertices
    if not len(v.length):
        return []
    xy = v.xy
    cross = xy[:, 0] * xy[v.nxt, 1] - xy[v.nxt, 0] * xy[:, 1]
    area = np.abs(np.bincount(v.vertex_part, weights=cross, minlength=len(v.length))) / 2.0
    perimeter = np.bincount(v.vertex_part, weights=_edges(v), minlength=len(v.length))
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.where(perimeter > 0, 2.0 * area / perimeter, 0.0)
    limit = _per_object(min_width_px, ctx.n).astype(np.float64)[v.part_object]
    bad_parts = np.flatnonzero(width < limit)
    hits, reported = [], set()
    for k in bad_parts:
        obj = int(v.part_object[k])
        if obj in reported:
            continue
        reported.add(obj)
        what = "has zero area" if area[k] == 0 else "is a sliver"
        hits.append(Hit(obj, float(width[k]), float(limit[k]),
                        f"polygon part {v.part_index[k]} {what}: area {area[k]:.1f} px² on a "
                        f"{perimeter[k]:.0f} px outline (mean width {width[k]:.2f} px, minimum {limit[k]:g})"))
    return hits


@rule("VTX008", "vertex-outside-image", "polygon vertices lie outside the image", severity="warning")
def vertex_outside_image(ctx: ExportContext, *, tolerance_px=0.5):
    """
    ## What it checks
    Vertices farther than `tolerance_px` outside the image rectangle `[0, width] x [0, height]`
    (pixel-edge coordinates, as COCO and CVAT use).

    ## Why it matters
    The mask is clipped at the border, so the declared area and bbox no longer match the mask,
    and the outline suggests the object continues where nothing was seen.

    ## Example
    A vertex at x = 530 on a 512 px wide image: 18 px outside (tolerance 0.5).

    ## How to fix
    Snap the vertices to the border (most tools clip when asked), then re-export.

    ## Parameters
    - `tolerance_px` (float, default 0.5, pixels): how far outside a vertex may lie.
    """
    from qa.engine._kernels_vertices import _max_at

    v = ctx.vertices
    if not len(v.xy):
        return []
    obj = v.vertex_object
    w = ctx.width[obj].astype(np.float64)
    h = ctx.height[obj].astype(np.float64)
    x, y = v.xy[:, 0], v.xy[:, 1]
    out = np.maximum.reduce([np.zeros_like(x), -x, x - w, -y, y - h])
    worst = np.zeros(ctx.n)
    _max_at(worst.reshape(-1, 1), obj.astype(np.int64), out.astype(np.float64).reshape(-1, 1))
    count = np.bincount(obj, weights=(out > 0).astype(np.float64), minlength=ctx.n)
    limit = _per_object(tolerance_px, ctx.n).astype(np.float64)
    bad = np.flatnonzero(worst > limit)
    return [Hit(int(i), float(worst[i]), float(limit[i]),
                f"{int(count[i])} vertices lie outside the {ctx.width[i]}x{ctx.height[i]} image, up to "
                f"{worst[i]:.1f} px (tolerance {limit[i]:g})") for i in bad]
