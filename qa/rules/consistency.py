"""Format consistency (family FMT): declared fields against the geometry, and load-time codes.

FMT001-FMT023 are raised by the loaders while reading an export (``qa/formats/_findings.py``); they
are documented here so ``qa rules list`` and ``qa rules explain`` cover them. FMT101 and later are
checks the rule engine runs on the loaded objects: declared bbox and area against the mask, panoptic
``segments_info`` against the PNG, the unlabelled share of panoptic images, and dangling group ids.
"""

from __future__ import annotations

import numpy as np

from qa.formats._findings import LOAD_CODES, severity_of
from qa.rules._context import ExportContext, Hit
from qa.rules._registry import document, rule


def _per_object(value, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value), (n,))


def _vertex_extents(ctx: ExportContext) -> np.ndarray:
    """Each polygon object's vertex extents ``(x0, y0, x1, y1)``; NaN for other kinds."""
    v = ctx.vertices
    out = np.full((ctx.n, 4), np.nan)
    if not len(v.xy):
        return out
    from qa.engine._kernels_vertices import _max_at, _min_at

    obj = v.vertex_object
    lo = np.full((ctx.n, 2), np.inf)
    hi = np.full((ctx.n, 2), -np.inf)
    xy = np.ascontiguousarray(v.xy, dtype=np.float64)
    _min_at(lo, obj.astype(np.int64), xy)
    _max_at(hi, obj.astype(np.int64), xy)
    has = np.isfinite(lo[:, 0])
    out[has, :2] = lo[has]
    out[has, 2:] = hi[has]
    return out


def _shoelace_area(ctx: ExportContext) -> np.ndarray:
    """Each polygon object's area as the sum of its parts' shoelace areas; NaN for other kinds."""
    v = ctx.vertices
    out = np.full(ctx.n, np.nan)
    if not len(v.xy):
        return out
    xy = v.xy
    cross = xy[:, 0] * xy[v.nxt, 1] - xy[v.nxt, 0] * xy[:, 1]
    part = np.abs(np.bincount(v.vertex_part, weights=cross, minlength=len(v.length))) / 2.0
    total = np.bincount(v.part_object, weights=part, minlength=ctx.n)
    has = np.bincount(v.part_object, minlength=ctx.n) > 0
    out[has] = total[has]
    return out


def _declared_corners(ctx: ExportContext) -> np.ndarray:
    b = ctx.declared_bbox
    return np.column_stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]])


@rule("FMT101", "bbox-mismatch", "declared bbox differs from the geometry's bbox", severity="warning")
def bbox_mismatch(ctx: ExportContext, *, tolerance_px=1.0):
    """
    ## What it checks
    Polygon and RLE objects whose declared `bbox` differs from the geometry's by more than
    `tolerance_px` on any side. Both conventions in use are accepted: the extents of the
    polygon's vertices (COCO) and the tight box of the rasterised mask (`[0, 0, 0, 0]` when the
    mask is empty, as pycocotools gives it). Panoptic segments are checked by FMT103.

    ## Why it matters
    Detectors are trained on the declared bbox while segmentation heads learn the mask; when they
    disagree the two heads learn different objects, and crops cut from the bbox miss parts.

    ## Example
    `bbox = [10, 10, 50, 40]` on a polygon spanning x 10-90: the right side is 30 px off.

    ## How to fix
    Recompute bboxes from the masks when exporting (the converter, not the annotator, is usually
    at fault: resizing one and not the other, or keeping a stale bbox after an edit).

    ## Parameters
    - `tolerance_px` (float, default 1.0, pixels): the largest difference allowed on any side.
    """
    declared = _declared_corners(ctx)
    has = np.isfinite(declared).all(axis=1) & (ctx.kind != "segment")
    if not has.any():
        return []
    mask_box = ctx.mask_bbox.astype(np.float64)  # all zeros for an empty mask, as pycocotools' toBbox
    d_mask = np.abs(declared - mask_box).max(axis=1)
    ext = _vertex_extents(ctx)
    d_vert = np.where(np.isnan(ext).any(axis=1), np.inf, np.nan_to_num(np.abs(declared - ext), nan=np.inf).max(axis=1))
    diff = np.minimum(d_mask, d_vert)
    limit = _per_object(tolerance_px, ctx.n).astype(np.float64)
    bad = np.flatnonzero(has & (diff > limit))
    hits = []
    for i in bad:
        ref = ext[i] if d_vert[i] <= d_mask[i] else mask_box[i]
        got = ", ".join(f"{v:g}" for v in ctx.declared_bbox[i])
        want = f"{ref[0]:g}, {ref[1]:g}, {ref[2] - ref[0]:g}, {ref[3] - ref[1]:g}"
        value = float(diff[i]) if np.isfinite(diff[i]) else float("nan")
        hits.append(Hit(int(i), value, float(limit[i]),
                        f"declared bbox [{got}] differs from the geometry's [{want}] by {diff[i]:.1f} px "
                        f"(tolerance {limit[i]:g})"))
    return hits


@rule("FMT102", "area-mismatch", "declared area differs from the mask's area", severity="warning")
def area_mismatch(ctx: ExportContext, *, max_relative_error=0.1):
    """
    ## What it checks
    Polygon and RLE objects whose declared `area` differs from the mask's pixel count (and, for
    polygons, from the polygon's own area) by more than `max_relative_error` of it. The closer of
    the two references is used, since tools use either.

    ## Why it matters
    COCO evaluation buckets objects by the declared area (small, medium, large) and samplers
    balance on it: a wrong area moves the object to the wrong bucket and skews both.

    ## Example
    `area = 5000` on a mask of 1210 px (313 % off, maximum 10 %).

    ## How to fix
    Recompute areas from the masks when exporting.

    ## Parameters
    - `max_relative_error` (float, default 0.1, share of the reference area): the largest relative difference allowed.
    """
    declared = ctx.declared_area
    has = np.isfinite(declared) & (ctx.kind != "segment")
    if not has.any():
        return []
    mask_area = ctx.mask_area
    poly = _shoelace_area(ctx)
    with np.errstate(divide="ignore", invalid="ignore"):
        e_mask = np.abs(declared - mask_area) / np.maximum(mask_area, 1.0)
        e_poly = np.where(np.isnan(poly), np.inf, np.abs(declared - poly) / np.maximum(poly, 1.0))
    err = np.minimum(e_mask, e_poly)
    limit = _per_object(max_relative_error, ctx.n).astype(np.float64)
    bad = np.flatnonzero(has & (err > limit))
    return [Hit(int(i), float(err[i]), float(limit[i]),
                f"declared area {declared[i]:g} differs from the mask's {mask_area[i]:g} px by "
                f"{100 * err[i]:.1f} % (maximum {100 * limit[i]:g} %)") for i in bad]


@rule("FMT103", "segment-mismatch", "panoptic segments_info area or bbox differs from the PNG",
      severity="warning")
def segment_mismatch(ctx: ExportContext, *, area_tolerance_px=0, bbox_tolerance_px=0):
    """
    ## What it checks
    Panoptic segments whose `area` in `segments_info` differs from the number of pixels with the
    segment's id in the PNG by more than `area_tolerance_px`, or whose `bbox` differs from the
    pixels' tight box by more than `bbox_tolerance_px` on a side. Ids present in one and not the
    other are reported at load time (FMT010).

    ## Why it matters
    panopticapi and COCO evaluation read the JSON for areas (small/medium/large buckets, crowd
    handling); when the JSON and the PNG disagree the metrics are computed on objects that are
    not the ones in the masks.

    ## Example
    Segment 5 declares `area = 1500`, the PNG holds 1432 pixels with id 5.

    ## How to fix
    Regenerate `segments_info` from the PNGs (panopticapi's converters do) after editing masks.

    ## Parameters
    - `area_tolerance_px` (int, default 0, pixels): the largest area difference allowed.
    - `bbox_tolerance_px` (int, default 0, pixels): the largest bbox difference allowed on any side.
    """
    seg = ctx.kind == "segment"
    if not seg.any():
        return []
    idx = np.flatnonzero(seg)
    area = ctx.mask_area
    a_lim = _per_object(area_tolerance_px, ctx.n).astype(np.float64)
    b_lim = _per_object(bbox_tolerance_px, ctx.n).astype(np.float64)
    declared = _declared_corners(ctx)
    box = ctx.mask_bbox.astype(np.float64)
    hits = []
    for i in idx:
        if np.isfinite(ctx.declared_area[i]):
            d = abs(ctx.declared_area[i] - area[i])
            if d > a_lim[i]:
                hits.append(Hit(int(i), float(d), float(a_lim[i]),
                                f"segments_info area {ctx.declared_area[i]:g} differs from the PNG's "
                                f"{area[i]:g} px by {d:g} px (tolerance {a_lim[i]:g})"))
                continue
        if np.isfinite(declared[i]).all():
            d = float(np.abs(declared[i] - box[i]).max())
            if d > b_lim[i]:
                got = ", ".join(f"{v:g}" for v in ctx.declared_bbox[i])
                want = f"{box[i, 0]:g}, {box[i, 1]:g}, {box[i, 2] - box[i, 0]:g}, {box[i, 3] - box[i, 1]:g}"
                hits.append(Hit(int(i), d, float(b_lim[i]),
                                f"segments_info bbox [{got}] differs from the PNG's [{want}] by {d:g} px "
                                f"(tolerance {b_lim[i]:g})"))
    return hits


@rule("FMT104", "unlabelled-share", "too much of a panoptic image is unlabelled", severity="warning",
      level="image")
def unlabelled_share(ctx: ExportContext, *, max_unlabelled_share=0.15):
    """
    ## What it checks
    Panoptic images in which the share of pixels that belong to no segment in `segments_info`
    (id 0, or an id the JSON does not list) is above `max_unlabelled_share`.

    ## Why it matters
    Unlabelled pixels are ignored by panoptic training and evaluation: a large void share means
    stuff classes were skipped, and a model is neither taught nor scored on those regions.

    ## Example
    An image whose PNG is 31 % id 0 (maximum 15 %).

    ## How to fix
    Label the missing stuff regions, or add a catch-all stuff class if the guideline has one.

    ## Parameters
    - `max_unlabelled_share` (float, default 0.15, share of the image): the largest void share allowed.
    """
    hits = []
    limit = float(max_unlabelled_share)
    for key in sorted(ctx.export.id_maps):
        if key not in ctx.export.images:
            continue
        ids = np.array([ctx.objects[k].segment_id for k in ctx.by_image.get(key, ())
                        if ctx.objects[k].kind == "segment"], dtype=np.int64)
        id_map = ctx.id_map(key)
        share = 1.0 - np.count_nonzero(np.isin(id_map, ids[ids != 0])) / max(id_map.size, 1)
        if share > limit:
            image = ctx.export.images[key]
            hits.append(Hit(None, float(share), limit,
                            f"{100 * share:.1f} % of the image is unlabelled (maximum {100 * limit:g} %)",
                            image=key, source=image.source))
    return hits


@rule("FMT105", "dangling-group-id", "object's group id is shared by no other object of the image",
      severity="info", status="preview")
def dangling_group_id(ctx: ExportContext):
    """
    ## What it checks
    Objects whose `group` attribute (CVAT `group_id`; 0 means no group) is not shared by any
    other object of the same annotator in the same image. The CVAT loader joins the shapes of one
    group and label into one object; such an object is not a group of one. Dangling image and category ids are
    load-time findings (FMT006, FMT004) and dangling segment ids FMT010.

    ## Why it matters
    Groups join the parts of one object (a person split by a pole) or an object and its parts;
    a group of one usually means its partner was deleted or relabelled, and the object is
    trained as a whole object when it is only a piece.

    ## Example
    A `person` with `group_id="3"` and no other shape of group 3 in the image.

    ## How to fix
    Restore the missing partner, or clear the group id.

    ## Parameters
    None.
    """
    groups = [o.attributes.get("group") for o in ctx.objects]
    keys = [(k, (ctx.image[k], g)) for k, g in enumerate(groups) if isinstance(g, int) and g != 0]
    if not keys:
        return []
    counts: dict = {}
    for k, key in keys:  # an object read from several CVAT shapes of its group counts each shape
        counts[key] = counts.get(key, 0) + int(ctx.objects[k].attributes.get("shapes", 1))
    hits = []
    for k, g in enumerate(groups):
        if isinstance(g, int) and g != 0 and counts[(ctx.image[k], g)] == 1:
            hits.append(Hit(k, 1.0, 2.0, f"group id {g} has no other member in the image"))
    return hits


# --- load-time codes (raised by the loaders, documented here) -------------------------------------------

_LOAD_DOCS = {
    "FMT001": """
        ## What it checks
        Polygon segmentations that cannot be a polygon: an empty list with neither a bbox nor
        keypoints, a part with fewer than 3 points, an odd number of coordinates, or NaN and
        infinite values. The object is left out. (An empty list beside a bbox or keypoints is a
        box or keypoint annotation: FMT012.)

        ## Why it matters
        Such a polygon rasterises to nothing or to garbage; kept, it is an object with no mask.

        ## Example
        `"segmentation": [[10, 10, 20, 20]]`: 2 points.

        ## How to fix
        Redraw or delete the object in the annotation tool and export again.

        ## Parameters
        None.
    """,
    "FMT002": """
        ## What it checks
        RLE masks whose counts are malformed (not a valid compressed string, negative runs) or do
        not add up to height x width. The object is left out.

        ## Why it matters
        pycocotools would decode such an RLE to a shifted or truncated mask without complaint.

        ## Example
        Uncompressed counts summing to 307199 on a 480x640 image.

        ## How to fix
        Re-export the masks; check the converter writes column-major (Fortran order) runs.

        ## Parameters
        None.
    """,
    "FMT003": """
        ## What it checks
        A mask or panoptic PNG whose size differs from the image's declared size.

        ## Why it matters
        The mask cannot be placed on the image: every pixel is off, so it is left out.

        ## Example
        RLE size 480x640 on an image declared 512x640.

        ## How to fix
        Export masks at the image's size (resized images need their masks resized too).

        ## Parameters
        None.
    """,
    "FMT004": """
        ## What it checks
        Objects whose category id is not in the export's category list. The object is left out.

        ## Why it matters
        Without a category the object cannot be compared or trained on.

        ## Example
        `"category_id": 91` when `categories` stops at 90.

        ## How to fix
        Add the category to the export or correct the id.

        ## Parameters
        None.
    """,
    "FMT005": """
        ## What it checks
        Two items of one list (images, annotations, categories, segments) sharing an id, or two
        annotations of one image by the same annotator (Label Studio). The message says which
        is kept (the first, or both for COCO annotation ids).

        ## Why it matters
        References by id become ambiguous: annotations may land on the wrong image.

        ## Example
        Two annotations with `"id": 4312`.

        ## How to fix
        Renumber the ids when merging exports.

        ## Parameters
        None.
    """,
    "FMT006": """
        ## What it checks
        Objects that refer to an image id the export does not define (a dangling image id).

        ## Why it matters
        The object has no image, so it is left out of every comparison.

        ## Example
        `"image_id": 17` with no image 17 in `images`.

        ## How to fix
        Export the image entries together with their annotations.

        ## Parameters
        None.
    """,
    "FMT007": """
        ## What it checks
        File names that are absolute or climb out of the export's folder (`..`).

        ## Why it matters
        Reading them could touch files outside the batch; the image and its objects are left out.

        ## Example
        `"file_name": "../../etc/passwd"`.

        ## How to fix
        Use paths relative to the export's folder.

        ## Parameters
        None.
    """,
    "FMT008": """
        ## What it checks
        Images whose declared width x height is above the configured limit (100 megapixels by default).

        ## Why it matters
        A hostile or broken size would exhaust memory when masks are decoded.

        ## Example
        `"width": 100000, "height": 100000`.

        ## How to fix
        Correct the size, or raise the limit with `--max-pixels` or `max_pixels` in the manifest.

        ## Parameters
        None.
    """,
    "FMT009": """
        ## What it checks
        A file the export refers to (a panoptic PNG, a mask) that is missing or unreadable.

        ## Why it matters
        Without the file the objects it holds cannot be compared; they are left out.

        ## Example
        `panoptic_val2017/000000139.png` missing from the PNG folder.

        ## How to fix
        Ship the file with the export, or point `png_dir` at the right folder.

        ## Parameters
        None.
    """,
    "FMT010": """
        ## What it checks
        Panoptic PNGs and `segments_info` that disagree on segment ids: an id in the JSON that no
        pixel has (the segment is left out), or an id in the PNG the JSON does not list (its
        pixels count as unlabelled).

        ## Why it matters
        The JSON carries the category; a mismatch either loses a segment or loses its label.

        ## Example
        Segment id 5 in `segments_info` and no pixel with id 5 in the PNG.

        ## How to fix
        Regenerate `segments_info` from the PNG.

        ## Parameters
        None.
    """,
    "FMT011": """
        ## What it checks
        A required field that is missing or has the wrong type (an image without `file_name`, a
        category without `name`, a segmentation that is neither a list nor an RLE).

        ## Why it matters
        The item cannot be read, so it is left out and everything that refers to it too.

        ## Example
        `{"id": 3, "width": 640}` in `images`: no `file_name` or `height`.

        ## How to fix
        Export with a tool version that writes complete COCO, or fill in the field.

        ## Parameters
        None.
    """,
    "FMT012": """
        ## What it checks
        Shapes that are not areas (polylines, points, tags, skeletons; COCO annotations with
        keypoints or a bbox but no segmentation) in an export. They are counted and left out of
        the comparison, with one finding per kind and export that points at the first one.

        ## Why it matters
        Agreement and the rules here are about regions; a region drawn as a polyline by mistake
        would otherwise vanish without a word.

        ## Example
        A CVAT `<points>` keypoint on a battery, a LabelMe `linestrip`, or the 34 keypoint-only
        annotations of a COCO keypoints file (one line: `34 keypoint-only annotations skipped`).

        ## How to fix
        Nothing, when the shapes are meant as keypoints or lines; redraw as a polygon otherwise.

        ## Parameters
        None.
    """,
    "FMT013": """
        ## What it checks
        Objects the tool marks as deleted (LabelMe `<deleted>1</deleted>`) and annotations marked
        cancelled (Label Studio `was_cancelled`). They are left out.

        ## Why it matters
        Deleted work is not the annotator's answer; comparing it would count phantom objects.

        ## Example
        A LabelMe object with `<deleted>1</deleted>` left in the XML.

        ## How to fix
        Nothing; purge deleted objects from the export if they should not travel with it.

        ## Parameters
        None.
    """,
    "FMT020": """
        ## What it checks
        A label-map or binary-mask PNG whose bit depth or colour type is not what its export
        expects (a 16-bit map in an 8-bit folder, an RGB map where class ids are expected).

        ## Why it matters
        Reading such a file as if it had the expected encoding would turn class ids into other
        classes, silently mislabelling whole images.

        ## Example
        `seg_B07.png` saved as 16-bit greyscale in a folder of 8-bit class-id maps.

        ## How to fix
        Re-export the file with the same encoding as the rest of the folder, or give the export a
        class table that matches its encoding.

        ## Parameters
        None.
    """,
    "FMT021": """
        ## What it checks
        Which colour of a binary mask was taken as foreground when the export's `foreground`
        option is `auto`; the choice is sniffed from the masks' border pixels and reported, once
        per export. When the border does not decide, FMT022 is reported instead.

        ## Why it matters
        Some datasets draw the foreground black. Taking the wrong polarity inverts every mask,
        and agreement would be measured on the background.

        ## Example
        BU-BIL expert masks: cells drawn black on white, so black is taken as foreground.

        ## How to fix
        Nothing when the choice is right; otherwise set `foreground = "white"` or `"black"` in
        the export's options.

        ## Parameters
        None.
    """,
    "FMT014": """
        ## What it checks
        A field that is missing or malformed where the reader has a documented fallback, and uses
        it: a CVAT attribute value that does not parse as its declared type (kept as text), a
        CVAT version other than 1.1 (read as 1.1), a Label Studio region with several labels
        (the first is used), a Label Studio task with no region giving the image size (left out:
        it has nothing to compare), a labelme JSON without `imagePath` (keyed by its file name).

        ## Why it matters
        The item is read, but not quite as written; a fallback that is wrong for your export
        (the second label was the right one) changes what is compared.

        ## Example
        `<attribute name="count">many</attribute>` on a `number` attribute.

        ## How to fix
        Correct the field in the tool, or nothing when the fallback is right.

        ## Parameters
        None.
    """,
    "FMT015": """
        ## What it checks
        Items a reader does not read although they may hold labels: labelme `mask` shapes and
        unknown shape types, LabelMe XML objects with a `<segm>` mask or no `<polygon>`, and
        files in a LabelMe folder that are not LabelMe files. They are left out.

        ## Why it matters
        Unlike points and lines (FMT012) these may be areas an annotator drew; leaving them out
        without a word would count them as misses.

        ## Example
        A labelme shape with `"shape_type": "mask"`.

        ## How to fix
        Export the shapes as polygons, or remove stray files from the export folder.

        ## Parameters
        None.
    """,
    "FMT016": """
        ## What it checks
        An optional field of an object that is present but malformed: a `bbox` or `area` that is
        not finite numbers, `attributes` that is not an object, an `occluded` flag that is not
        yes/no, a `z_order` or `group` that is not an integer of 32 bits. The field is ignored and
        the object is kept.

        ## Why it matters
        The rules that read these fields (bbox and area against the mask, occlusion flags, layer
        order) would otherwise check a value nobody wrote; ignored, they check nothing for this
        object, which this finding makes visible.

        ## Example
        `"bbox": ["a", NaN, 1, 1]`, or CVAT `z_order="top"`.

        ## How to fix
        Correct the field in the tool or the export script.

        ## Parameters
        None.
    """,
    "FMT022": """
        ## What it checks
        Binary masks whose foreground colour is in doubt: with `foreground = "auto"` the masks'
        border is neither mostly white nor mostly black (white is taken), or a colour set in the
        options (`--foreground`, `foreground = ...`) looks inverted: it covers more than half of
        the image on most masks and at least 95 % of their border. Once per export, with the fix.

        ## Why it matters
        Read with the wrong polarity every mask is the background of the object: nothing
        matches the other annotators (BU-BIL read with white foreground: 0 matched, alpha
        -0.98), and the figures measure the wrong thing without any other sign.

        ## Example
        `foreground = "white"` on BU-BIL's experts, whose cells are black on white.

        ## How to fix
        Set `foreground` to the other colour, or to `auto`.

        ## Parameters
        None.
    """,
    "FMT023": """
        ## What it checks
        COCO panoptic PNGs in panopticapi's 2-channel format (the first channel the category
        id, the second the instance id, the third zero) instead of RGB ids: a PNG none of whose
        ids is in `segments_info` and whose every first-channel value is a category id. Its
        segments are read from the PNG (one per category and instance); reported once per export.

        ## Why it matters
        Read as RGB ids, nothing in such a PNG matches `segments_info`: every segment would be
        lost. Its segments carry no `iscrowd` and the JSON's areas and bboxes are not used.

        ## Example
        panopticapi's `sample_data/panoptic_examples_2ch_format`.

        ## How to fix
        Nothing, or convert with panopticapi's `converters/2channels2panoptic_coco_format.py`.

        ## Parameters
        None.
    """,
}



def _fallback_doc(title: str) -> str:
    """The explain text of a load-time code that has no text here yet (tests require one)."""
    return (f"## What it checks\n{title[0].upper()}{title[1:]}.\n\n## Why it matters\nThe item is left out.\n\n"
            "## Example\nSee the loader's message.\n\n## How to fix\nCorrect the export.\n\n## Parameters\nNone.")


for _code, (_name, _title) in LOAD_CODES.items():
    document(_code, _name, _title, _LOAD_DOCS.get(_code) or _fallback_doc(_title),
             severity=severity_of(_code))
