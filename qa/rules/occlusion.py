"""Occlusion flags against the geometry, and across annotators (family OCC).

The flags are the normalised ``Object.attributes["occluded"]`` values the loaders set (CVAT XML
``occluded``, LabelMe ``<occluded>``, CVAT-made COCO ``attributes.occluded``). An export that carries
no flag at all (plain COCO) is not checked by OCC002-OCC004.

Geometry comes from :class:`qa.rules._context.ExportContext`: pairs of objects found from bboxes,
then compared on crops; "covered" is the share of an object's mask under the union of the objects
drawn above it (higher z_order, or later in the export when z_order ties or is missing and the tool
paints in export order). In an export with no layer order (amodal COCO) an overlap hides one of
the two objects without saying which: OCC002 then asks that one of them be flagged, and OCC003
does not apply. Only things occlude: stuff (road, sky) is background, and a stuff region drawn
above a thing is a layer error (LAY002), not an occlusion. OCC002 and OCC003 check things only.
"""

from __future__ import annotations

import numpy as np

from qa.rules._context import BatchContext, ExportContext, Hit
from qa.rules._registry import rule


def _per_object(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value), (n,))


def _gaps_to_nearest(ctx: ExportContext, objects: np.ndarray, eligible: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Pixels of background between each of ``objects`` and the nearest ``eligible`` object of its image
    other than itself (0 when they touch or overlap), exact up to its ``reach``; beyond it, a lower bound
    from the bboxes; NaN when its image has no such object. One kernel call per image
    (:func:`qa.engine._kernels_sdf._gaps`).

    Parameters
    ----------
    ctx : ExportContext
    objects : (m,) int
        Object indices of ``ctx``.
    eligible : (ctx.n,) bool
    reach : (m,) int
    """
    from qa.engine._kernels_sdf import _gaps

    objects = np.asarray(objects, dtype=np.int64)
    reach = np.asarray(reach, dtype=np.int64)
    out = np.empty(len(objects), dtype=np.float64)
    groups: dict = {}
    for k, image in enumerate(ctx.image[objects].tolist()):
        groups.setdefault(image, []).append(k)
    box, slot = ctx.mask_bbox, ctx._slot
    for image, ks in groups.items():
        ks = np.asarray(ks, dtype=np.int64)
        idx = ctx.by_image[image]
        mine = objects[ks]
        crops = ctx.image_crops(image)
        out[ks] = _gaps(crops.buf, crops.starts, box[idx], eligible[idx], slot[mine], reach[ks],
                        ctx.height[mine].astype(np.int64), ctx.width[mine].astype(np.int64))
    return out


def _gap_to_nearest(ctx: ExportContext, i: int, others: np.ndarray, reach: int) -> float:
    """Pixels of background between object ``i`` and the nearest of ``others`` (0 when they touch or
    overlap), exact up to ``reach``; beyond it, a lower bound from the bboxes (:func:`_gaps_to_nearest`
    of one object)."""
    eligible = np.zeros(ctx.n, dtype=bool)
    eligible[np.asarray(others, dtype=np.int64)] = True
    return float(_gaps_to_nearest(ctx, np.array([i]), eligible, np.array([reach]))[0])


@rule("OCC001", "occluded-without-occluder", "object flagged occluded but nothing overlaps or touches it",
      severity="warning")
def occluded_without_occluder(ctx: ExportContext, *, touch_px=2):
    """
    ## What it checks
    Objects flagged occluded while no thing (no object of a category with `isthing` true) of
    the same annotator in the image overlaps them or comes within `touch_px` pixels of
    background; stuff such as road or sky does not occlude. The measured value is the gap to the
    nearest labelled thing in pixels (NaN when there is none in the image).

    ## Why it matters
    Models that predict occlusion (amodal completion, tracking through occlusion) learn it from
    these flags; a flag with no occluder in sight teaches them to see occlusion everywhere, and
    it often marks truncation at the image border or an unlabelled occluder instead.

    ## Example
    A car flagged `occluded="1"` whose nearest labelled neighbour is 14 px away.

    ## How to fix
    Clear the flag, or label the occluding object (which the guideline may require anyway).

    ## Parameters
    - `touch_px` (int, default 2, pixels): background pixels allowed between the object and its occluder.
    """
    flagged = np.flatnonzero(ctx.occluded == 1)
    if not len(flagged):
        return []
    limit = _per_object(touch_px, ctx.n).astype(np.int64)
    hits = []
    nonempty = ctx.mask_area > 0
    flagged = flagged[nonempty[flagged]]
    gaps = _gaps_to_nearest(ctx, flagged, nonempty & ctx.isthing, limit[flagged])
    report = np.isnan(gaps) | (gaps > limit[flagged])
    for i, gap in zip(flagged[report].tolist(), gaps[report].tolist()):
        if np.isnan(gap):
            hits.append(Hit(int(i), float("nan"), float(limit[i]),
                            "object is flagged occluded but no other thing is labelled in the image"))
            continue
        hits.append(Hit(int(i), gap, float(limit[i]),
                        f"object is flagged occluded but the nearest labelled thing is {gap:.0f} px "
                        f"away (maximum {limit[i]} px)"))
    return hits


@rule("OCC002", "unflagged-occlusion", "object largely covered by objects above it but not flagged occluded",
      severity="warning")
def unflagged_occlusion(ctx: ExportContext, *, max_covered_share=0.2):
    """
    ## What it checks
    Things not flagged occluded of which more than `max_covered_share` of the mask lies under
    things drawn above them (by z_order; by export order where z_order ties or is missing), in
    exports that carry occluded flags. In exports with no layer order (amodal labels without
    z_order) the share under any overlapping object counts, and the object is reported only when
    none of the objects overlapping it is flagged either. Crowd regions are not checked.

    ## Why it matters
    With amodal labels the hidden part is drawn but not seen; a model that trusts the flag treats
    the hidden part as visible evidence. With layered labels the flag is how occlusion-aware
    metrics and samplers find hard cases: a missing flag hides them.

    ## Example
    A pedestrian 45 % under a car drawn above it, with `occluded="0"` (maximum 20 %).

    ## How to fix
    Set the occluded flag, or fix the layer order if the object is in fact in front.

    ## Parameters
    - `max_covered_share` (float, default 0.2, share of the object's area): the most an unflagged object may be covered.
    """
    if not ctx.has_occluded_flags:
        return []
    covered = ctx.covered_by_things
    limit = _per_object(max_covered_share, ctx.n).astype(np.float64)
    bad = (ctx.occluded != 1) & ~ctx.iscrowd & ctx.isthing & (np.nan_to_num(covered) > limit)
    if not ctx.ordered:
        p = ctx.overlaps
        flagged_neighbour = np.zeros(ctx.n, bool)
        flagged_neighbour[p.i[(ctx.occluded[p.j] == 1) & ctx.isthing[p.j]]] = True
        flagged_neighbour[p.j[(ctx.occluded[p.i] == 1) & ctx.isthing[p.i]]] = True
        bad &= ~flagged_neighbour
    bad = np.flatnonzero(bad)
    return [Hit(int(i), float(covered[i]), float(limit[i]),
                f"object is {100 * covered[i]:.0f} % covered by things above it but not flagged occluded "
                f"(maximum {100 * limit[i]:g} %)") for i in bad]


@rule("OCC003", "heavy-occlusion", "heavily covered object kept against the guideline's policy",
      severity="warning", choices={"policy": ("flag", "drop")})
def heavy_occlusion(ctx: ExportContext, *, max_covered_share=0.8, policy="drop"):
    """
    ## What it checks
    Things of which more than `max_covered_share` lies under things drawn above them, handled
    against the guideline's `policy`: with `"drop"` such objects should not be labelled at all;
    with `"flag"` they must carry the occluded flag (checked only in exports that have flags;
    this is OCC002 at a higher threshold, so select one of the two). Exports with no layer order
    (no z_order, and a tool that does not paint in export order) are not checked, and neither are
    crowd regions.

    ## Why it matters
    A sliver of a person behind a bus is a guess, not a label: guidelines either drop such
    objects or flag them so training can ignore them. Kept unflagged, they teach the model to
    detect objects from a few pixels and they dominate disagreement between annotators.

    ## Example
    A car 93 % covered by the truck in front of it, while the guideline drops objects above 80 %.

    ## How to fix
    Delete the object (policy "drop") or set its occluded flag (policy "flag").

    ## Parameters
    - `max_covered_share` (float, default 0.8, share of the object's area): above this the object is heavily occluded.
    - `policy` (str, default "drop", "flag" or "drop"): what the guideline does with heavily occluded objects.
    """
    if not ctx.ordered:
        return []
    covered = np.nan_to_num(ctx.covered_by_things)
    limit = _per_object(max_covered_share, ctx.n).astype(np.float64)
    pol = _per_object(policy, ctx.n)
    heavy = (covered > limit) & ~ctx.iscrowd & ctx.isthing
    drop = heavy & (pol == "drop")
    flag = heavy & (pol == "flag") & (ctx.occluded != 1) & ctx.has_occluded_flags
    hits = []
    for i in np.flatnonzero(drop | flag):
        if drop[i]:
            text = (f"object is {100 * covered[i]:.0f} % covered by things above it; the guideline drops "
                    f"objects covered more than {100 * limit[i]:g} %")
        else:
            text = (f"object is {100 * covered[i]:.0f} % covered by things above it and not flagged "
                    f"occluded; the guideline flags objects covered more than {100 * limit[i]:g} %")
        hits.append(Hit(int(i), float(covered[i]), float(limit[i]), text))
    return hits


@rule("OCC004", "occluded-flag-disagreement", "annotators disagree on whether the same object is occluded",
      severity="warning", level="batch")
def occluded_flag_disagreement(ctx: BatchContext, *, iou_threshold=0.5, max_disagreeing_share=0.5, min_area_px=50):
    """
    ## What it checks
    Objects matched across annotators (mask IoU at least `iou_threshold`, one-to-one per pair of
    annotators, labels ignored) whose occluded flag differs from more than
    `max_disagreeing_share` of their matched counterparts. With two annotators both objects of a
    disagreeing pair are reported; with more, the minority is. Objects smaller than `min_area_px`
    are not matched: a pixel of outline noise changes their IoU with every neighbour.

    ## Why it matters
    When annotators split on the flag the guideline's notion of occlusion is ambiguous, and the
    flag is noise for any model or sampler that uses it.

    ## Example
    Object flagged occluded by one annotator while the 3 annotators matched to it say it is not.

    ## How to fix
    Settle the case in the guideline (how much must be hidden, does truncation count), then
    correct the minority.

    ## Parameters
    - `iou_threshold` (float, default 0.5, mask IoU): the least IoU at which two objects are the same object.
    - `max_disagreeing_share` (float, default 0.5, share of matched counterparts): the largest share that may disagree.
    - `min_area_px` (int, default 50, pixels): smaller objects are not compared.
    """
    occ = ctx.attribute("occluded")
    has = (occ >= 0) & (ctx.attribute("mask_area") >= _per_object(min_area_px, ctx.n))
    if not has.any():
        return []
    thr = float(np.min(_per_object(iou_threshold, ctx.n))) if ctx.n else 0.5
    rows = ctx.matches(iou_threshold=thr, where=has)
    if not len(rows):
        return []
    ga, gb, iou = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2]
    need = _per_object(iou_threshold, ctx.n).astype(np.float64)
    ok = (iou >= need[ga]) & (iou >= need[gb])
    ga, gb = ga[ok], gb[ok]
    differ = occ[ga] != occ[gb]
    matched = np.bincount(np.concatenate([ga, gb]), minlength=ctx.n)
    disagree = np.bincount(np.concatenate([ga, gb]), weights=np.concatenate([differ, differ]).astype(float),
                           minlength=ctx.n)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(matched > 0, disagree / np.maximum(matched, 1), 0.0)
    limit = _per_object(max_disagreeing_share, ctx.n).astype(np.float64)
    hits = []
    for g in np.flatnonzero(share > limit):
        partners = np.concatenate([gb[(ga == g) & differ], ga[(gb == g) & differ]])
        names = ", ".join(sorted(str(ctx.owner[p]) for p in partners))
        mine = "occluded" if occ[g] == 1 else "not occluded"
        theirs = "not" if occ[g] == 1 else "occluded"
        hits.append(Hit(int(g), float(share[g]), float(limit[g]),
                        f"object is flagged {mine} but {int(disagree[g])} of {matched[g]} matched objects say "
                        f"{'not occluded' if theirs == 'not' else 'occluded'} ({names})"))
    return hits
