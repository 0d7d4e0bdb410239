"""COCO panoptic: a JSON of ``segments_info`` per image plus a folder of RGB id PNGs.

A pixel's segment id is ``R + 256 G + 256^2 B``; id 0 is unlabelled (void). The PNG folder is the
``png_dir`` option when given, else the folder named like the JSON file (``panoptic_val2017.json`` ->
``panoptic_val2017/``), as panopticapi lays it out.

Each segment becomes an :class:`~qa.model.Object` of kind ``"segment"``; the export's ``id_maps`` maps
each image key to its PNG. The PNG is decoded once at load to check it against ``segments_info``
(size, ids present in one and not the other); the comparison decodes it again when it needs pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.errors import InputError
from qa.formats._findings import finding
from qa.formats._json import read_json, sniff_json
from qa.formats._safe import open_png_checked, png_size, resolve_inside, unsafe_reason
from qa.formats.coco import (_is_id, _is_int, _require_list, _show, as_flag, declared_box, read_categories,
                             read_images)
from qa.model import Export, Limits, Object, Source

NAME = "coco_panoptic"


def sniff(path: Path) -> bool:
    doc = sniff_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        return False
    first = next(iter(doc["annotations"]), None)
    return isinstance(first, dict) and "segments_info" in first and "segmentation" not in first


def read_id_map(png: Path, limits: Limits) -> np.ndarray:
    """Decode a panoptic PNG to an int32 ``(height, width)`` id map (``R + 256 G + 256^2 B``).

    Raises :class:`~qa.errors.InputError` when the file cannot be read, is too large, or is not RGB.
    """
    image = open_png_checked(png, limits)
    with image:
        if image.mode not in ("RGB", "RGBA", "P"):
            raise InputError(f"panoptic PNG has mode {image.mode}, expected RGB (id = R + 256 G + 256^2 B)",
                             path=png)
        try:
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(f"cannot decode image: {exc}", path=png) from None
    ids = rgb[..., 0] + (rgb[..., 1] << 8) + (rgb[..., 2] << 16)
    return ids.astype(np.int32)


def read(path: Path, *, limits: Limits, options: dict) -> list[Export]:
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"top level is a JSON {type(doc).__name__}, expected an object", path=path)
    export = Export(annotator="", path=path, format=NAME)
    categories = read_categories(doc, path, export.findings)
    images = read_images(doc, path, limits, export.findings)
    export.categories = {c.name: c for c in categories.values()}
    png_dir = Path(options["png_dir"]) if options.get("png_dir") else path.with_suffix("")
    if not png_dir.is_absolute() and options.get("png_dir"):
        png_dir = path.parent / png_dir
    annotations = _require_list(doc, "annotations", path)

    declared_image_ids = {im.get("id") for im in doc["images"] if isinstance(im, dict) and _is_id(im.get("id"))}
    by_image_id = {}
    for index, raw in enumerate(annotations):
        image_id = raw.get("image_id") if isinstance(raw, dict) else None
        src = Source(str(path), index, image_id if _is_id(image_id) else None)
        if not isinstance(raw, dict) or not _is_id(image_id) or not isinstance(raw.get("segments_info"), list) \
                or not isinstance(raw.get("file_name"), str):
            export.findings.append(finding("FMT011", "panoptic annotation needs an 'image_id', a 'file_name' and a "
                                                     "'segments_info' list; left out", src))
            continue
        entry = images.get(image_id)
        if entry is None:
            if image_id not in declared_image_ids:
                export.findings.append(finding("FMT006", f"image_id {image_id!r} is not in 'images'; its segments "
                                                         "left out", src))
            continue
        if raw["image_id"] in by_image_id:
            export.findings.append(finding("FMT005", f"image_id {raw['image_id']} has two annotations; "
                                                     "the first is kept", src))
            continue
        by_image_id[raw["image_id"]] = (index, raw)

    for image_id, (image, _annotator) in images.items():
        if image.key in export.images:
            export.findings.append(finding("FMT005", f"file name {image.file_name!r} appears twice; the first is "
                                                     "kept", image.source, image=image.key))
            continue
        export.images[image.key] = image
        if image_id not in by_image_id:
            continue
        index, raw = by_image_id[image_id]
        _read_image_segments(export, image, raw, index, path, png_dir, categories, limits)
    return [export]


def _read_image_segments(export, image, raw, index, path, png_dir, categories, limits):
    png_name = raw["file_name"]
    src = Source(str(path), index, raw["image_id"])
    reason = unsafe_reason(png_name)
    png = None if reason else resolve_inside(png_dir, png_name)
    if png is None:
        export.findings.append(finding("FMT007", f"{reason or 'PNG path leaves the PNG folder'}; "
                                                 "image's segments left out", src, image=image.key))
        return
    try:
        width, height = png_size(png)
        if (width, height) != (image.width, image.height):
            export.findings.append(finding("FMT003", f"PNG {png_name} is {width}x{height}, the image is declared "
                                                     f"{image.width}x{image.height} (width x height); image's "
                                                     "segments left out", src, image=image.key))
            return
        if width * height > limits.max_pixels:
            export.findings.append(finding("FMT008", f"PNG {png_name} is {width}x{height}, above the limit of "
                                                     f"{limits.max_pixels} pixels; image's segments left out",
                                           src, image=image.key))
            return
        id_map = read_id_map(png, limits)
    except InputError as exc:
        export.findings.append(finding("FMT009", f"{png_name}: {exc.message}; image's segments left out", src,
                                       image=image.key))
        return
    present = set(np.unique(id_map).tolist()) - {0}
    declared = set()
    for k, seg in enumerate(raw["segments_info"]):
        seg_id = seg.get("id") if isinstance(seg, dict) else None
        seg_src = Source(str(path), k, seg_id, f"annotations[{index}].segments_info")
        if not isinstance(seg, dict) or not _is_int(seg_id):
            export.findings.append(finding("FMT011", "segment needs an integer 'id'; left out",
                                           Source(str(path), k, None, seg_src.section), image=image.key))
            continue
        if seg_id in declared:
            export.findings.append(finding("FMT005", f"segment id {seg_id} appears twice in one image; "
                                                     "the first is kept", seg_src, image=image.key))
            continue
        declared.add(seg_id)
        category_id = seg.get("category_id")
        category = categories.get(category_id) if _is_id(category_id) else None
        if category is None:
            export.findings.append(finding("FMT004", f"category_id {_show(category_id)} is not in "
                                                     "'categories'; segment left out", seg_src, image=image.key))
            continue
        iscrowd = as_flag(seg.get("iscrowd", 0))
        if iscrowd is None:
            export.findings.append(finding("FMT011", f"iscrowd {_show(seg.get('iscrowd'))} is not 0 or 1; segment "
                                                     "left out", seg_src, image=image.key))
            continue
        if seg_id not in present:
            export.findings.append(finding("FMT010", f"segment id {seg_id} is in segments_info but not in "
                                                     f"{png_name}; segment left out", seg_src, image=image.key))
            continue
        attributes = {k: v for k, v in seg.items()
                      if k not in ("id", "category_id", "area", "bbox", "iscrowd")}
        bbox, area = declared_box(seg, seg_src, image.key, export.findings)
        export.objects.append(Object(
            annotator="", image=image.key, category=category.name, kind="segment", source=seg_src,
            segment_id=seg_id, iscrowd=iscrowd, bbox=bbox, area=area, attributes=attributes,
        ))
    for seg_id in sorted(present - declared):
        export.findings.append(finding("FMT010", f"segment id {seg_id} is in {png_name} but not in "
                                                 "segments_info; its pixels count as unlabelled",
                                       src, image=image.key, severity="warning"))
    export.id_maps[image.key] = png
