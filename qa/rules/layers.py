"""Layer order between overlapping objects (family LAY).

An object is drawn above another when its z_order is higher, or, when z_order ties or is missing, when
it comes later in the export (how CVAT and LabelMe paint). Exports with neither (COCO without
z_order) state no layer order, and LAY002 and LAY003 do not check them. Overlapping pairs come from
:attr:`qa.rules._context.ExportContext.overlaps` (the pairs of an image whose bboxes meet, from a sort
and sweep, then crop intersection for those pairs only). Crowd regions take no part.
"""

from __future__ import annotations

import numpy as np

from qa.rules._context import BatchContext, ExportContext, Hit
from qa.rules._registry import rule


def _per_object(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value), (n,))


def _where(ctx: ExportContext, k: int) -> str:
    return ctx.objects[k].source.where or f"object {k}"


def _pairs(ctx: ExportContext):
    p = ctx.overlaps
    keep = ~ctx.iscrowd[p.i] & ~ctx.iscrowd[p.j]
    return p.i[keep], p.j[keep], p.inter[keep]


@rule("LAY001", "z-order-tie", "overlapping objects share the same z_order", severity="warning")
def z_order_tie(ctx: ExportContext, *, min_overlap_px=1):
    """
    ## What it checks
    Pairs of one annotator's objects in one image that overlap by at least `min_overlap_px`
    pixels and carry the same z_order. The later object of the pair is reported.

    ## Why it matters
    Where two labels overlap, the z_order says which one owns the shared pixels. With a tie the
    owner depends on the order the tool happens to export, so the instance and semantic masks
    derived from the labels change from one export to the next.

    ## Example
    Two cars overlapping by 340 px, both with `z_order="0"` (the CVAT default).

    ## How to fix
    Raise the object in front (CVAT: "move to foreground") so the z_order states the visible order.

    ## Parameters
    - `min_overlap_px` (int, default 1, pixels): overlaps smaller than this are ignored.
    """
    i, j, inter = _pairs(ctx)
    zi, zj = ctx.z[i], ctx.z[j]
    limit = _per_object(min_overlap_px, ctx.n)
    tie = ~np.isnan(zi) & (zi == zj) & (inter >= limit[j])
    hits, seen = [], set()
    for a, b, n in zip(i[tie], j[tie], inter[tie]):
        if b in seen:
            continue
        seen.add(b)
        hits.append(Hit(int(b), float(n), float(limit[b]),
                        f"object overlaps {_where(ctx, a)} by {n} px with the same z_order {ctx.z[b]:g}"))
    return hits


@rule("LAY002", "stuff-above-thing", "a stuff region is drawn above a thing it overlaps", severity="warning")
def stuff_above_thing(ctx: ExportContext, *, min_overlap_px=1):
    """
    ## What it checks
    Stuff objects (categories with `isthing` false: road, sky, vegetation) drawn above a thing
    (person, car) they overlap by at least `min_overlap_px` pixels. Ties in z_order are left to
    LAY001. The stuff object is reported. Exports with no layer order are not checked.

    ## Why it matters
    Stuff is background by definition: drawn above a thing it erases the thing's pixels from the
    panoptic and semantic masks derived from the labels, so the model learns road where a car is.

    ## Example
    A `road` polygon with z_order 2 over a `car` with z_order 1, covering 1200 px of the car.

    ## How to fix
    Send the stuff region to the back (lowest z_order), or cut the thing's outline out of it.

    ## Parameters
    - `min_overlap_px` (int, default 1, pixels): overlaps smaller than this are ignored.
    """
    if not ctx.ordered:
        return []
    i, j, inter = _pairs(ctx)
    zi, zj = ctx.z[i], ctx.z[j]
    tie = ~np.isnan(zi) & (zi == zj)
    j_above = ctx.above(i, j)
    upper = np.where(j_above, j, i)
    lower = np.where(j_above, i, j)
    limit = _per_object(min_overlap_px, ctx.n)
    bad = ~tie & ~ctx.isthing[upper] & ctx.isthing[lower] & (inter >= limit[upper])
    hits, seen = [], set()
    for u, lo, n in zip(upper[bad], lower[bad], inter[bad]):
        if u in seen:
            continue
        seen.add(u)
        hits.append(Hit(int(u), float(n), float(limit[u]),
                        f"stuff {ctx.category[u]!r} is drawn above thing {ctx.category[lo]!r} "
                        f"({_where(ctx, lo)}), covering {n} px of it"))
    return hits


@rule("LAY003", "buried-object", "object is left almost invisible by the objects above it", severity="warning")
def buried_object(ctx: ExportContext, *, min_visible_share=0.05):
    """
    ## What it checks
    Objects of which less than `min_visible_share` of the mask remains visible under the
    objects drawn above them; the message names the object that hides most of it. Exports with
    no layer order are not checked.

    ## Why it matters
    An object that cannot be seen in the rendered labels is usually a layer-order mistake (the
    object belongs in front) or a duplicate hidden under its copy; either way the mask the model
    sees for it is a few stray pixels.

    ## Example
    A person 98 % under a building polygon drawn later (2 % visible, minimum 5 %).

    ## How to fix
    Bring the object forward, or delete it if it duplicates the one above.

    ## Parameters
    - `min_visible_share` (float, default 0.05, share of the object's area): the least that must stay visible.
    """
    if not ctx.ordered:
        return []
    visible = 1.0 - ctx.covered
    limit = _per_object(min_visible_share, ctx.n).astype(np.float64)
    bad = np.flatnonzero(~ctx.iscrowd & ~np.isnan(visible) & (visible < limit))
    if not len(bad):
        return []
    p = ctx.overlaps
    lower = np.concatenate([p.i, p.j])
    upper = np.concatenate([p.j, p.i])
    inter = np.concatenate([p.inter, p.inter])
    keep = ctx.above(lower, upper)
    lower, upper, inter = lower[keep], upper[keep], inter[keep]
    hits = []
    for k in bad:
        mine = lower == k
        top = upper[mine][np.argmax(inter[mine])]
        hits.append(Hit(int(k), float(visible[k]), float(limit[k]),
                        f"object is {100 * visible[k]:.1f} % visible under the objects above it "
                        f"(minimum {100 * limit[k]:g} %), mostly under {_where(ctx, int(top))}"))
    return hits


@rule("LAY004", "overlap-in-visible-only", "objects overlap where the guideline labels visible parts only",
      severity="warning")
def overlap_in_visible_only(ctx: ExportContext, *, max_overlap_share=0.01):
    """
    ## What it checks
    Pairs of one annotator's objects in one image that share more than `max_overlap_share` of
    the smaller object's area, for guidelines that label visible parts only (each pixel belongs
    to at most one object). The object drawn above is reported.

    ## Why it matters
    In a visible-only guideline overlaps are double-labelled pixels: converted to instance or
    panoptic masks, one object silently loses them, and the model learns the boundary from
    whichever object the converter happened to keep.

    ## Example
    A person and a bicycle sharing 8 % of the bicycle's pixels (maximum 1 %).

    ## How to fix
    Cut the front object's outline out of the one behind (most tools can subtract shapes).

    ## Parameters
    - `max_overlap_share` (float, default 0.01, share of the smaller object's area): the largest overlap allowed.
    """
    i, j, inter = _pairs(ctx)
    area = ctx.mask_area
    share = inter / np.maximum(np.minimum(area[i], area[j]), 1.0)
    j_above = ctx.above(i, j)
    upper = np.where(j_above, j, i)
    lower = np.where(j_above, i, j)
    limit = _per_object(max_overlap_share, ctx.n).astype(np.float64)
    bad = np.flatnonzero(share > limit[upper])
    order = bad[np.argsort(-share[bad], kind="stable")]
    hits, seen = [], set()
    for k in order:
        u = upper[k]
        if u in seen:
            continue
        seen.add(u)
        hits.append(Hit(int(u), float(share[k]), float(limit[u]),
                        f"object overlaps {_where(ctx, lower[k])} by {inter[k]} px, {100 * share[k]:.1f} % of "
                        f"the smaller object (maximum {100 * limit[u]:g} %)"))
    return hits


@rule("LAY005", "z-order-reversed", "annotators put the same overlapping pair in opposite layer order",
      severity="warning", level="batch")
def z_order_reversed(ctx: BatchContext, *, iou_threshold=0.5, min_area_px=50):
    """
    ## What it checks
    Pairs of overlapping objects that other annotators also labelled (matched at mask IoU at
    least `iou_threshold`, overlapping there too) where the z_order puts the pair the other way
    round for most of those annotators. The object this annotator put on top is reported; with
    two annotators both sides of a reversed pair are reported. Objects smaller than
    `min_area_px` are not matched: a pixel of outline noise changes their IoU with every neighbour.

    ## Why it matters
    The shared pixels go to different objects depending on who labelled the image, so the
    boundary between the two objects moves by the whole overlap: the model learns an occlusion
    order that flips at random.

    ## Example
    Alice puts the cyclist above the car (z 3 over z 1); Bob and Carol put the car above the cyclist.

    ## How to fix
    Decide which object is in front from the image and correct the layer order of the minority.

    ## Parameters
    - `iou_threshold` (float, default 0.5, mask IoU): the least IoU at which two objects are the same object.
    - `min_area_px` (int, default 50, pixels): smaller objects are not compared.
    """
    z = ctx.attribute("z")
    has = ~np.isnan(z) & (ctx.attribute("mask_area") >= _per_object(min_area_px, ctx.n))
    if not has.any() or len(ctx.batch.annotators) < 2:
        return []
    thr = float(np.min(_per_object(iou_threshold, ctx.n))) if ctx.n else 0.5
    rows = ctx.matches(iou_threshold=thr, where=has)
    if not len(rows):
        return []
    n = ctx.n
    names = list(ctx.offset)  # annotators in the order of the global indices
    column = {name: k for k, name in enumerate(names)}
    owner = np.repeat(np.arange(len(names), dtype=np.int64), [ctx.contexts[name].n for name in names])
    # each object's match in every other annotator's objects, -1 for none (the last row wins)
    a, b = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    mine_g, match_g = np.column_stack([a, b]).ravel(), np.column_stack([b, a]).ravel()
    slots = mine_g * len(names) + owner[match_g]
    _, last = np.unique(slots[::-1], return_index=True)
    last = len(slots) - 1 - last
    partner = np.full(n * len(names), -1, dtype=np.int64)
    partner[slots[last]] = match_g[last]
    partner = partner.reshape(n, len(names))
    overlapping = {}  # each annotator's overlapping pairs (g_i, g_j) as sorted codes g_i * n + g_j
    for name, sub in ctx.contexts.items():
        off = ctx.offset[name]
        p = sub.overlaps
        keep = ~sub.iscrowd[p.i] & ~sub.iscrowd[p.j]
        overlapping[name] = np.unique((p.i[keep] + off).astype(np.int64) * n + (p.j[keep] + off))
    hits = []
    reported = set()
    for name, pairs in overlapping.items():
        others = [o for o in ctx.batch.annotators if o != name]
        gi, gj = pairs // n, pairs % n
        keep = has[gi] & has[gj] & (z[gi] != z[gj])
        gi, gj = gi[keep], gj[keep]
        mine = np.sign(z[gj] - z[gi])
        same = np.zeros(len(gi), dtype=np.int64)
        flipped = np.zeros(len(gi), dtype=np.int64)
        flips = []
        for other in others:
            ci, cj = partner[gi, column[other]], partner[gj, column[other]]
            valid = (ci >= 0) & (cj >= 0)
            ci, cj = np.where(valid, ci, 0), np.where(valid, cj, 0)
            valid &= z[ci] != z[cj]
            known = overlapping[other]
            code = np.minimum(ci, cj) * n + np.maximum(ci, cj)
            at = np.minimum(np.searchsorted(known, code), max(len(known) - 1, 0))
            valid &= (known[at] == code) if len(known) else False
            agree = np.sign(z[cj] - z[ci]) == mine
            same += valid & agree
            flips.append(valid & ~agree)
            flipped += flips[-1]
        for k in np.flatnonzero(flipped > same).tolist():
            f, s_ = int(flipped[k]), int(same[k])
            top, bottom = (int(gj[k]), int(gi[k])) if mine[k] > 0 else (int(gi[k]), int(gj[k]))
            if top in reported:
                continue
            reported.add(top)
            who = [other for other, f_ in zip(others, flips) if f_[k]]
            sub = ctx.contexts[name]
            where = sub.objects[int(ctx.local[bottom])].source.where
            hits.append(Hit(top, f / (f + s_), 0.5,
                            f"object is drawn above {where} (z_order {z[top]:g} over {z[bottom]:g}) but "
                            f"{f} of {f + s_} other annotators put it below ({', '.join(who)})"))
    return hits
