"""Derive one annotator's labels of one scene from the truth: noise models, then planted faults.

Stages run in a fixed order so each fault is planted on the geometry that is exported:

1. geometry noise (annotator-wide): category-pair boundary shift, dilation or erosion,
   simplification, vertex jitter; then every outline is clipped to the image and rounded to 0.01 px;
2. per-object agreement faults: missed small things, label swaps, dropped occluded flags, swapped
   z-orders;
3. per-object rule faults, each on an object no other per-object fault touched.

Each stage draws from its own random stream (seed, image, annotator, fault), so changing one fault
leaves the others where they were.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import box

from qa.synth._faults import FAULTS, RULE_FAULTS, FaultSpec
from qa.synth._raster import area_bbox, quantise
from qa.synth._scene import (ISTHING, MIN_VISIBLE_SHARE, Z_STEP, Scene, Shape, object_id, to_geometry,
                             to_parts)

_FAULT_INDEX = {name: i for i, name in enumerate(FAULTS)}
EXTRA_LOCAL_ID = 900
"""Objects a fault adds (slivers) get local ids from here on (``object_id(image, 900 + k)``)."""


def record(fault: str, annotator: str, image: str | None, obj: Shape | None = None, *,
           params: dict | None = None, related=(), rule=None, also=None, object_id_=None,
           category=None) -> dict:
    """One planted-fault entry of ``planted.json``."""
    ftype = FAULTS[fault]
    return {
        "fault": fault,
        "annotator": annotator,
        "image": image,
        "object_id": obj.id if obj is not None else object_id_,
        "category": obj.category if obj is not None else category,
        "rule": ftype.rule if rule is None else (rule or None),
        "also": list(ftype.also if also is None else also),
        "related_ids": [int(r) for r in related],
        "params": params or {},
    }


def in_scope(obj: Shape, scope: str) -> bool:
    """Whether ``obj`` is in a noise model's ``categories`` scope (things, stuff, all, or A+B+...)."""
    if scope == "all":
        return True
    if scope == "things":
        return obj.isthing
    if scope == "stuff":
        return not obj.isthing
    return obj.category in scope.split("+")


def _rng(seed: int, image: int, annotator: int, fault: str, occurrence: int) -> np.random.Generator:
    return np.random.default_rng([seed, image, annotator, _FAULT_INDEX[fault], occurrence])


# --- geometry noise ------------------------------------------------------------------------------------

def _mitre(geom, px: float):
    return shapely.buffer(geom, px, join_style="mitre", mitre_limit=3.0)


def _shift(objects: list[Shape], pair: str, px: float) -> None:
    a_name, b_name = pair.split("/")
    if px < 0:
        a_name, b_name, px = b_name, a_name, -px
    a_objs = [o for o in objects if o.category == a_name]
    b_objs = [o for o in objects if o.category == b_name]
    if not a_objs or not b_objs or px == 0:
        return
    a_geom = shapely.union_all([to_geometry(o.parts) for o in a_objs])
    grown = _mitre(a_geom, px)
    for o in b_objs:
        b_geom = to_geometry(o.parts)
        taken = b_geom.intersection(grown)
        o.parts = to_parts(b_geom.difference(grown))
        a_objs[0].parts = to_parts(to_geometry(a_objs[0].parts).union(taken))


def _dilate(objects, px, scope, lost: list[Shape]) -> list[Shape]:
    keep = []
    for o in objects:
        if in_scope(o, scope) and px:
            o.parts = to_parts(_mitre(to_geometry(o.parts), px))
            if not o.parts:
                lost.append(o)
                continue
        keep.append(o)
    return keep


def _simplify(objects, tolerance, scope) -> None:
    for o in objects:
        if not in_scope(o, scope) or tolerance <= 0:
            continue
        new_parts = []
        for part in o.parts:
            simple = shapely.simplify(shapely.Polygon(part), tolerance, preserve_topology=True)
            ring = to_parts(simple)
            new_parts.append(ring[0] if len(ring) == 1 and len(ring[0]) >= 4 else part)
        o.parts = new_parts


def _jitter(objects, sigma, scope, rng, width, height) -> None:
    """Gaussian noise on every vertex; stuff vertices shared between regions move together; vertices on
    the image border move along it only; where a part would cross itself the noise there is halved."""
    rows = [(o, k) for o in objects if in_scope(o, scope) for k in range(len(o.parts))]
    if not rows or sigma <= 0:
        return
    coords = np.concatenate([o.parts[k] for o, k in rows])
    owner = np.repeat(np.arange(len(rows)), [len(o.parts[k]) for o, k in rows])
    stuff_row = np.repeat([not o.isthing for o, _ in rows], [len(o.parts[k]) for o, k in rows])
    node = np.arange(len(coords))
    if stuff_row.any():
        _, inverse = np.unique(np.round(coords[stuff_row], 6), axis=0, return_inverse=True)
        node[stuff_row] = len(coords) + inverse.ravel()
    nodes, node = np.unique(node, return_inverse=True)
    noise = rng.normal(0.0, sigma, (len(nodes), 2))
    noise = np.clip(noise, -3 * sigma, 3 * sigma)
    on_x = np.isclose(coords[:, 0], 0.0) | np.isclose(coords[:, 0], width)
    on_y = np.isclose(coords[:, 1], 0.0) | np.isclose(coords[:, 1], height)
    for attempt in range(6):
        step = noise[node].copy()
        step[on_x, 0] = 0.0
        step[on_y, 1] = 0.0
        moved = coords + step
        polys = shapely.polygons(shapely.linearrings(moved, indices=owner))
        bad = ~shapely.is_valid(polys)
        if not bad.any():
            break
        noise[np.unique(node[bad[owner]])] *= 0.0 if attempt >= 4 else 0.5
    start = 0
    for o, k in rows:
        n = len(o.parts[k])
        o.parts[k] = moved[start:start + n]
        start += n


def clean(parts, width: int, height: int) -> list:
    """Clip to the image, quantise to 0.01 px, drop repeated consecutive vertices and degenerate parts.

    A part that rounding leaves self-touching (a sub-pixel spike cut off at the image border) is
    repaired with ``make_valid`` and rounded again.
    """
    if not parts:
        return []
    pts = np.concatenate(parts)
    if pts.min() < 0 or pts[:, 0].max() > width or pts[:, 1].max() > height:
        parts = to_parts(to_geometry(parts).intersection(box(0, 0, width, height)))
    out = []
    pending = list(parts)
    for _ in range(len(pending) * 4 + 4):
        if not pending:
            break
        p = quantise(pending.pop())
        p = p[np.any(p != np.roll(p, 1, axis=0), axis=1)]
        if len(p) < 3:
            continue
        poly = shapely.Polygon(p)
        if poly.area <= 0.0:
            continue
        if poly.is_valid:
            out.append(p)
        else:
            pending.extend(q for q in to_parts(shapely.make_valid(poly)) if shapely.Polygon(q).area >= 0.5)
    return out[::-1]


# --- helpers for per-object faults ---------------------------------------------------------------------

def _geom(o: Shape):
    """The object's outline as a valid geometry (a planted self-intersection is repaired for measuring)."""
    g = to_geometry(o.parts)
    return g if g.is_valid else shapely.make_valid(g)


def _things(objects, used):
    return [o for o in objects if o.isthing and o.id not in used]


def _overlapping_pairs(objects, min_overlap):
    """Thing pairs (back, front, overlap area) whose outlines overlap by at least ``min_overlap`` px^2."""
    things = [o for o in objects if o.isthing]
    geoms = [_geom(o) for o in things]
    if len(things) < 2:
        return []
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = []
    for i, j in zip(left.tolist(), right.tolist()):
        if i >= j:
            continue
        overlap = geoms[i].intersection(geoms[j]).area
        if overlap >= min_overlap:
            a, b = (things[i], things[j]) if things[i].z_order <= things[j].z_order else (things[j], things[i])
            pairs.append((a, b, overlap))
    return pairs


def _covered_share(target: Shape, objects, z_of) -> float:
    """Share of ``target``'s outline covered by things whose z (``z_of``) is above its own."""
    g = _geom(target)
    above = [_geom(o) for o in objects
             if o.isthing and o is not target and z_of(o) > z_of(target)]
    if not above or g.area == 0:
        return 0.0
    return float(g.intersection(shapely.union_all(above)).area / g.area)


def _perimeter(parts) -> float:
    return float(sum(shapely.Polygon(p).exterior.length for p in parts))


# --- the annotator -------------------------------------------------------------------------------------

def annotate(scene: Scene, annotator: str, annotator_index: int, faults: list[FaultSpec], seed: int):
    """One annotator's objects for one scene, the per-object planted-fault records, and declared values.

    Parameters
    ----------
    scene : Scene
        The truth.
    annotator : str
        The annotator's name.
    annotator_index : int
        Position of the annotator (selects its random streams).
    faults : list of FaultSpec
        This annotator's faults, in the order given on the command line.
    seed : int
        The batch seed.

    Returns
    -------
    objects : list of Shape
        In export order: the truth's order, extra objects (slivers) last.
    records : list of dict
        One per planted per-object fault (annotator-wide noise is recorded by the caller).
    declared : dict
        ``{object id: (area, bbox)}`` for objects whose declared area and bbox differ from the mask.
    """
    W, H = scene.width, scene.height
    key = scene.key
    objects = [o.copy() for o in scene.objects]
    records: list[dict] = []
    declared: dict[int, tuple[float, list[float]]] = {}
    counts: dict[str, int] = {}

    def rng_for(name):
        counts[name] = counts.get(name, 0) + 1
        return _rng(seed, scene.index, annotator_index, name, counts[name])

    geometric = {"shift": 0, "dilate": 1, "simplify": 2, "jitter": 3}
    for spec in sorted((f for f in faults if f.fault in geometric), key=lambda f: geometric[f.fault]):
        p = spec.params
        if spec.fault == "shift":
            _shift(objects, p["pair"], float(p["px"]))
        elif spec.fault == "dilate":
            lost: list[Shape] = []
            objects = _dilate(objects, float(p["px"]), p["categories"], lost)
            for o in lost:
                records.append(record("dilate", annotator, key, o,
                                      params={"px": p["px"], "lost": True, "truth_area_px": scene.area[o.id]}))
        elif spec.fault == "simplify":
            _simplify(objects, float(p["tolerance_px"]), p["categories"])
        else:
            _jitter(objects, float(p["sigma_px"]), p["categories"], rng_for("jitter"), W, H)
    for o in objects:
        o.parts = clean(o.parts, W, H)
    objects = [o for o in objects if o.parts]

    used: set[int] = set()
    z_now = {o.id: o.z_order for o in objects}
    for spec in faults:
        p = spec.params
        rng = rng_for(spec.fault) if spec.fault in FAULTS and FAULTS[spec.fault].kind != "noise" else None
        if spec.fault == "miss_small":
            occluding = {oid for ids in scene.occluders.values() for oid in ids}
            for o in list(objects):
                if (o.isthing and o.id not in used and o.id not in occluding
                        and scene.area[o.id] < p["area_px"] and rng.uniform() < p["p"]):
                    objects.remove(o)
                    used.add(o.id)
                    records.append(record("miss_small", annotator, key, o, params={
                        "area_px": scene.area[o.id], "threshold_px": p["area_px"], "p": p["p"]}))
        elif spec.fault == "swap":
            a, b = p["pair"].split("/")
            for o in objects:
                if o.isthing and o.id not in used and o.category in (a, b) and rng.uniform() < p["p"]:
                    new = b if o.category == a else a
                    records.append(record("swap", annotator, key, o, params={
                        "truth": o.category, "written": new, "p": p["p"]}))
                    o.category = new
                    used.add(o.id)
        elif spec.fault == "drop_occluded":
            for o in objects:
                if (o.isthing and o.occluded and o.id not in used
                        and scene.covered.get(o.id, 0.0) >= p["min_share"] and rng.uniform() < p["p"]):
                    o.occluded = False
                    used.add(o.id)
                    records.append(record("drop_occluded", annotator, key, o, params={
                        "covered_share": round(scene.covered[o.id], 4), "min_share": p["min_share"],
                        "p": p["p"]}))
        elif spec.fault == "zorder":
            pairs = _overlapping_pairs(objects, p["min_overlap_px"])
            for idx in rng.permutation(len(pairs)):
                back, front, overlap = pairs[idx]
                if back.id in used or front.id in used or rng.uniform() >= p["p"]:
                    continue
                z_new = dict(z_now)
                z_new[back.id], z_new[front.id] = z_now[front.id], z_now[back.id]
                share = _covered_share(front, objects, lambda o: z_new[o.id])
                if share > p["max_share"] or 1.0 - share < MIN_VISIBLE_SHARE:
                    continue
                records.append(record("zorder", annotator, key, front, related=[back.id], params={
                    "z_truth": [back.z_order, front.z_order], "z_written": [front.z_order, back.z_order],
                    "overlap_px": round(overlap, 2), "covered_share_after": round(share, 4)}))
                back.z_order, front.z_order = front.z_order, back.z_order
                z_now = z_new
                used.update((back.id, front.id))
        elif spec.fault in RULE_FAULTS:
            for _ in range(int(p["n"])):
                rec = _plant_rule(spec.fault, p, objects, used, rng, scene, annotator, declared)
                if rec is not None:
                    records.append(rec)
    records.extend(_side_effects(scene, objects, records, annotator))
    return objects, records, declared


def _side_effects(scene: Scene, objects, records, annotator) -> list[dict]:
    """Record what the noise did to things no planted fault explains: covered but unflagged, flagged
    but isolated, or nearly hidden (thresholds: the ``effect`` rows of :data:`FAULTS`)."""
    from qa.synth._raster import paint

    explained = {r["object_id"] for r in records} | {i for r in records for i in r["related_ids"]}
    things = [o for o in objects if o.isthing]
    if not things:
        return []
    order = sorted(range(len(things)), key=lambda k: things[k].z_order)
    labels = paint([(k + 1, things[k].parts) for k in order], scene.height, scene.width)
    visible = np.bincount(labels.ravel(), minlength=len(things) + 1)
    geoms = [_geom(o) for o in things]
    tree = shapely.STRtree(geoms)
    cover_min = FAULTS["covered_unflagged"].params["covered_share"]
    gap = FAULTS["flagged_isolated"].params["gap_px"]
    visible_min = FAULTS["hidden"].params["visible_share"]
    out = []
    for k, o in enumerate(things):
        if o.id in explained:
            continue
        area = area_bbox(o.parts, scene.height, scene.width)[0]
        if area == 0:
            continue
        share = 1.0 - visible[k + 1] / area
        truth_share = round(scene.covered.get(o.id, 0.0), 4)
        if not o.occluded and share >= cover_min:
            out.append(record("covered_unflagged", annotator, scene.key, o, params={
                "covered_share": round(share, 4), "truth_covered_share": truth_share, "threshold": cover_min}))
        if o.occluded:
            near = [j for j in tree.query(geoms[k], predicate="dwithin", distance=gap).tolist() if j != k]
            if not near:
                out.append(record("flagged_isolated", annotator, scene.key, o, params={
                    "gap_px": gap, "truth_covered_share": truth_share}))
        if 1.0 - share < visible_min:
            out.append(record("hidden", annotator, scene.key, o, params={
                "visible_share": round(1.0 - share, 4), "threshold": visible_min}))
    return out


def _plant_rule(fault, p, objects, used, rng, scene: Scene, annotator, declared):
    """Plant one rule fault; return its record, or None when no object in this image qualifies."""
    W, H, key = scene.width, scene.height, scene.key
    things = _things(objects, used)
    order = rng.permutation(len(things)).tolist()
    candidates = [things[i] for i in order]

    if fault == "duplicate_vertices":
        for o in candidates:
            if len(o.parts) == 1 and len(o.parts[0]) >= 4:
                part = o.parts[0]
                i = int(rng.integers(len(part)))
                o.parts[0] = np.insert(part, [i + 1] * int(p["repeats"]), part[i], axis=0)
                used.add(o.id)
                return record(fault, annotator, key, o, params={
                    "vertex_index": i, "repeats": int(p["repeats"]), "vertex": part[i].tolist()})
    elif fault == "self_intersection":
        for o in candidates:
            if len(o.parts) != 1 or len(o.parts[0]) < 6:
                continue
            part = o.parts[0]
            for i in rng.permutation(len(part) - 1).tolist():
                swapped = part.copy()
                swapped[[i, i + 1]] = swapped[[i + 1, i]]
                reason = shapely.is_valid_reason(shapely.Polygon(swapped))
                if reason.startswith("Self-intersection"):
                    o.parts[0] = swapped
                    used.add(o.id)
                    return record(fault, annotator, key, o, params={"swapped": [i, i + 1], "reason": reason})
    elif fault in ("sliver", "zero_area"):
        return _extra_object(fault, p, objects, used, rng, scene, annotator)
    elif fault == "outside_image":
        def margin(o):
            pts = np.concatenate(o.parts)
            return min(pts[:, 0].min(), pts[:, 1].min(), W - pts[:, 0].max(), H - pts[:, 1].max())
        for o in sorted(candidates, key=margin)[:8]:
            if len(o.parts) != 1:
                continue
            part = o.parts[0]
            dist = np.column_stack([part[:, 0], part[:, 1], W - part[:, 0], H - part[:, 1]])
            i, edge = np.unravel_index(np.argmin(dist), dist.shape)
            moved = part.copy()
            px = float(p["px"])
            moved[i] = [(-px, moved[i][1]), (moved[i][0], -px), (W + px, moved[i][1]), (moved[i][0], H + px)][edge]
            if shapely.Polygon(moved).is_valid:
                o.parts[0] = moved
                used.add(o.id)
                return record(fault, annotator, key, o, params={
                    "vertex_index": int(i), "edge": ["left", "top", "right", "bottom"][edge],
                    "vertex": moved[i].tolist(), "px": px})
    elif fault == "too_few_vertices":
        k = int(p["vertices"])
        for o in candidates:
            if len(o.parts) != 1 or len(o.parts[0]) < 6 or scene.area.get(o.id, 0) < 100:
                continue
            part = o.parts[0]
            idx = np.linspace(0, len(part), k, endpoint=False).astype(int)
            few = part[idx]
            if k == 3 and shapely.Polygon(few).area < 1.0:
                continue
            o.parts[0] = few
            used.add(o.id)
            perimeter = float(np.hypot(*np.diff(np.vstack([few, few[:1]]), axis=0).T).sum())
            per_100 = 100.0 * k / perimeter if perimeter else float("inf")
            if k < 3:
                return record(fault, annotator, key, o, rule="FMT001", also=[],
                              params={"vertices": k, "vertices_before": len(part)})
            return record(fault, annotator, key, o, also=["VTX001"] if per_100 < 4.0 else [],
                          params={"vertices": k, "vertices_before": len(part),
                                  "per_100px": round(per_100, 2)})
    elif fault == "over_dense":
        for o in candidates:
            if len(o.parts) != 1 or _perimeter(o.parts) < 60:
                continue
            before = len(o.parts[0])
            dense = to_parts(shapely.segmentize(shapely.Polygon(o.parts[0]), float(p["spacing_px"])))
            if not dense:
                continue
            o.parts = [quantise(dense[0])]
            used.add(o.id)
            return record(fault, annotator, key, o, params={
                "spacing_px": p["spacing_px"], "vertices_before": before, "vertices_after": len(o.parts[0]),
                "per_100px": round(100.0 * len(o.parts[0]) / _perimeter(o.parts), 2)})
    elif fault == "occluded_isolated":
        all_things = [o for o in objects if o.isthing]
        geoms = [_geom(o) for o in all_things]
        for o in candidates:
            if o.occluded:
                continue
            g = _geom(o)
            others = [gg for t, gg in zip(all_things, geoms) if t is not o]
            nearest = min((g.distance(gg) for gg in others), default=float("inf"))
            if nearest > p["gap_px"]:
                o.occluded = True
                used.add(o.id)
                return record(fault, annotator, key, o, params={
                    "gap_px": p["gap_px"], "nearest_thing_px": round(nearest, 2) if np.isfinite(nearest) else None})
    elif fault == "bbox_area":
        for o in candidates:
            area, bbox = area_bbox(o.parts, H, W)
            if area < 16:
                continue
            g = float(p["bbox_grow"])
            dx, dy = max(2.0, g * bbox[2]), max(2.0, g * bbox[3])
            written_bbox = [round(bbox[0] - dx, 2), round(bbox[1] - dy, 2),
                            round(bbox[2] + 2 * dx, 2), round(bbox[3] + 2 * dy, 2)]
            written_area = round(area * float(p["area_factor"]), 2)
            declared[o.id] = (written_area, written_bbox)
            used.add(o.id)
            return record(fault, annotator, key, o, params={
                "area_mask": area, "area_written": written_area, "bbox_mask": bbox, "bbox_written": written_bbox})
    elif fault == "zorder_equal":
        pairs = [(a, b, ov) for a, b, ov in _overlapping_pairs(objects, p["min_overlap_px"])
                 if a.id not in used and b.id not in used]
        if pairs:
            back, front, overlap = pairs[int(rng.integers(len(pairs)))]
            z_before = back.z_order
            back.z_order = front.z_order
            used.update((back.id, front.id))
            return record(fault, annotator, key, back, related=[front.id], params={
                "z_truth": [z_before, front.z_order], "z_written": [front.z_order, front.z_order],
                "overlap_px": round(overlap, 2)})
    elif fault == "stuff_above_thing":
        stuff = [o for o in objects if not o.isthing and o.id not in used]
        all_things = [o for o in objects if o.isthing and o.id not in used]
        options = []
        for s in stuff:
            sg = _geom(s)
            over = [(t, sg.intersection(_geom(t)).area) for t in all_things]
            over = [(t, a) for t, a in over if a >= p["min_overlap_px"]]
            if over:
                t, a = min(over, key=lambda ta: ta[0].z_order)
                if all(o.z_order != t.z_order + Z_STEP // 2 for o in objects):
                    options.append((s, t, a))
        if options:
            s, t, a = options[int(rng.integers(len(options)))]
            share = a / max(_geom(t).area, 1e-9)
            z_before = s.z_order
            s.z_order = t.z_order + Z_STEP // 2
            used.update((s.id, t.id))
            return record(fault, annotator, key, s, related=[t.id],
                          also=["LAY005", *(["LAY003"] if share > 0.95 else [])],
                          params={"z_truth": [z_before, t.z_order], "z_written": [s.z_order, t.z_order],
                                  "overlap_px": round(a, 2), "thing_share_under_stuff": round(share, 4)})
    return None


def _extra_object(fault, p, objects, used, rng, scene: Scene, annotator):
    """Add a sliver or zero-area object on open ground (no thing within 20 px)."""
    W, H = scene.width, scene.height
    length = float(p["length_px"])
    width = float(p.get("width_px", 0.0)) if fault == "sliver" else 0.0
    tree = shapely.STRtree([_geom(o) for o in objects if o.isthing])
    local = EXTRA_LOCAL_ID + sum(1 for o in objects if o.id % 1000 >= EXTRA_LOCAL_ID)
    for _ in range(100):
        # A zero-area outline runs along x or y, so its vertices stay exactly collinear when rounded.
        angle = rng.uniform(0, np.pi) if fault == "sliver" else float(rng.choice([0.0, np.pi / 2]))
        u = np.array([np.cos(angle), np.sin(angle)]).round(12)
        n = np.array([-u[1], u[0]])
        start = rng.uniform([2, 2], [W - 2, H - 2])
        if fault == "sliver":
            pts = np.array([start, start + length * u, start + length * u + width * n, start + width * n])
        else:
            pts = np.array([start + t * length * u for t in (0.0, 1 / 3, 2 / 3, 1.0)])
        pts = quantise(pts)
        if pts.min() < 1 or pts[:, 0].max() > W - 1 or pts[:, 1].max() > H - 1:
            continue
        if len(tree.query(shapely.LineString(pts), predicate="dwithin", distance=20.0)):
            continue
        category = str(rng.choice(sorted(c for c, t in ISTHING.items() if t)))
        z = max(o.z_order for o in objects) + Z_STEP
        obj = Shape(object_id(scene.index, local), category, [pts], z, False)
        objects.append(obj)
        used.add(obj.id)
        area = area_bbox(obj.parts, H, W)[0]
        params = {"length_px": length, "area_px": area, "polygon_area": round(abs(shapely.Polygon(pts).area), 4)}
        if fault == "sliver":
            params["width_px"] = width
        return record(fault, annotator, scene.key, obj, params=params)
    return None
