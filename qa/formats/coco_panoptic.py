"""COCO panoptic: a JSON of ``segments_info`` per image plus a folder of RGB id PNGs.

A pixel's segment id is ``R + 256 G + 256^2 B``; id 0 is unlabelled (void). The PNG folder is the
``png_dir`` option when given, else the folder named like the JSON file (``panoptic_val2017.json`` ->
``panoptic_val2017/``), as panopticapi lays it out.

Each segment becomes an :class:`~qa.model.Object` of kind ``"segment"``; the export's ``id_maps`` maps
each image key to its PNG. The PNG is decoded once at load to check it against ``segments_info``
(size, ids present in one and not the other); the comparison decodes it again when it needs pixels.

**panopticapi's 2-channel format.** Some PNGs hold the category id in the first channel and the
instance id in the second (the third is zero; panopticapi's ``sample_data/panoptic_examples_2ch_format``
and ``converters/2channels2panoptic_coco_format.py``). Decoded as above, a pixel's id is then
``category + 256 instance``, which names one segment per (category, instance) exactly, so such a PNG is
read as it is: a PNG none of whose ids is in ``segments_info``, with no third channel and whose every
first-channel value is a category id (or 0, void) gives one segment per id, of category ``id % 256``,
without ``iscrowd``, area or bbox. The export reports it once (``FMT023``, info) instead of a
``FMT010`` line per segment.

**PNGs with their own segments_info (COCONut).** COCONut publishes each panoptic PNG with its
``segments_info`` list beside it (``<stem>.png`` and ``<stem>_segments_info.json``) and no COCO panoptic
JSON. A folder holding such pairs, or one ``*_segments_info.json`` file, is read as one export: each
PNG's size comes from its header, its image key is its file name (or, with the option
``images_file``, the ``file_name`` of the image of that stem in a COCO JSON's ``images``, so that the
PNG pairs with the annotators' COCO exports), and its categories from the option ``categories_file``
(a JSON list of categories, or any JSON with a ``categories`` list) or else the 133 COCO panoptic
categories shipped with qa (``coco_panoptic_categories.json``, from panopticapi).

Options (``[exports.options]`` in the manifest; ``*_dir`` and ``*_file`` paths are relative to it)
------------------------------------------------------------------------------------------------------
``png_dir`` : the PNG folder of a COCO panoptic JSON.
``categories_file``, ``images_file`` : see above (PNGs with their own segments_info only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa.errors import ConfigError, InputError
from qa.formats._findings import finding
from qa.formats._json import read_json, sniff_json
from qa.formats._location import location
from qa.formats._safe import normalise_name, open_png_checked, png_size, resolve_inside, unsafe_reason
from qa.formats.coco import (_is_id, _is_int, _require_list, _show, as_flag, declared_box, read_categories,
                             read_images)
from qa.model import Export, Image, Limits, Object, Source

NAME = "coco_panoptic"

SEGMENTS_SUFFIX = "_segments_info.json"
"""The name ending of a segments_info file beside its PNG (``<stem>.png``, ``<stem>_segments_info.json``)."""


def _segments_files(path: Path) -> list[tuple[Path, Path]]:
    """``(segments_info file, its PNG)`` pairs: the file itself, or a folder's files, sorted by name."""
    from qa.formats._location import location

    path = location(path)
    if path.is_file():
        files = [path] if path.name.endswith(SEGMENTS_SUFFIX) else []
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(SEGMENTS_SUFFIX) and p.is_file())
    else:
        files = []
    return [(f, f.with_name(f.name[:-len(SEGMENTS_SUFFIX)] + ".png")) for f in files]


def sniff(path: Path) -> bool:
    pairs = _segments_files(path)
    if pairs:
        first, png = pairs[0]
        doc = sniff_json(first)
        return isinstance(doc, list) and png.is_file() and all(isinstance(s, dict) for s in doc[:5])
    doc = sniff_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        return False
    first = next(iter(doc["annotations"]), None)
    return isinstance(first, dict) and "segments_info" in first and "segmentation" not in first


def builtin_categories_path() -> Path:
    """The 133 COCO panoptic categories shipped with qa (from panopticapi; credits inside the file)."""
    return Path(__file__).with_name("coco_panoptic_categories.json")


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
    if _segments_files(path):
        return [_read_segments_files(location(path), limits, options)]
    if location(path).is_dir():
        raise InputError(f"no COCO panoptic JSON and no '*{SEGMENTS_SUFFIX}' file beside a PNG here", path=path)
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise InputError(f"top level is a JSON {type(doc).__name__}, expected an object", path=path)
    export = Export(annotator="", path=path, format=NAME)
    categories = read_categories(doc, path, export.findings)
    declared_image_ids: set = set()
    images = read_images(doc, path, limits, export.findings, declared_image_ids)
    export.categories = {c.name: c for c in categories.values()}
    png_dir = location(options["png_dir"]) if options.get("png_dir") else path.with_suffix("")
    if not png_dir.is_absolute() and options.get("png_dir"):
        png_dir = path.parent / png_dir
    annotations = _require_list(doc, "annotations", path)

    by_image_id = {}
    for index, _span, raw in annotations:
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

    two_channel = []
    for image_id, (image, _annotator) in images.items():
        if image.key in export.images:
            export.findings.append(finding("FMT005", f"file name {image.file_name!r} appears twice; the first is "
                                                     "kept", image.source, image=image.key))
            continue
        export.images[image.key] = image
        if image_id not in by_image_id:
            continue
        index, raw = by_image_id[image_id]
        if _read_image_segments(export, image, raw, index, path, png_dir, categories, limits):
            two_channel.append((image, Source(str(path), index, raw["image_id"])))
    _two_channel_finding(export, two_channel, len(by_image_id))
    return [export]


def _two_channel_finding(export, two_channel, total) -> None:
    """One FMT023 per export naming how many PNGs were read as 2-channel, and the first."""
    if not two_channel:
        return
    image, src = two_channel[0]
    export.findings.append(finding(
        "FMT023", f"{len(two_channel)} of {total} PNGs (the first {image.key!r}) are in panopticapi's 2-channel "
                  "format (R = category id, G = instance id, B = 0), not RGB ids: their segments are read from "
                  "the PNGs, one per category and instance; segments_info ids, areas and iscrowd are not used",
        src, image=image.key))


def _option_doc(options: dict, key: str, path: Path):
    """The parsed JSON a ``*_file`` option names (None when the option is not set)."""
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        raise ConfigError(f"option {key!r} must be a path to a JSON file, got {value!r}", path=path)
    return read_json(Path(value))


def _read_segments_files(path: Path, limits: Limits, options: dict) -> Export:
    """PNGs with their own segments_info list beside them (COCONut's form; see the module docstring)."""
    export = Export(annotator="", path=path, format=NAME)
    categories_doc = _option_doc(options, "categories_file", path)
    categories_path = Path(options["categories_file"]) if categories_doc is not None else builtin_categories_path()
    if categories_doc is None:
        categories_doc = read_json(categories_path)
    if isinstance(categories_doc, list):
        categories_doc = {"categories": categories_doc}
    if not isinstance(categories_doc, dict):
        raise InputError("expected a list of categories or an object with a 'categories' list", path=categories_path)
    categories = read_categories(categories_doc, categories_path, export.findings)
    export.categories = {c.name: c for c in categories.values()}
    by_stem: dict[str, Image] = {}
    images_doc = _option_doc(options, "images_file", path)
    if images_doc is not None:
        if not isinstance(images_doc, dict):
            raise InputError("expected a COCO JSON object with an 'images' list", path=Path(options["images_file"]))
        for image, _annotator in read_images(images_doc, Path(options["images_file"]), limits,
                                             export.findings).values():
            by_stem.setdefault(Path(image.file_name).stem, image)
    two_channel = []
    pairs = _segments_files(path)
    for index, (info, png) in enumerate(pairs):
        segments = read_json(info)
        src = Source(str(info), None, None, "segments_info")
        if not isinstance(segments, list):
            raise InputError(f"top level is a JSON {type(segments).__name__}, expected the segments_info list",
                             path=info)
        if not png.is_file():
            export.findings.append(finding("FMT009", f"{png.name}: file not found beside {info.name}; "
                                                     "its segments left out", src))
            continue
        try:
            width, height = png_size(png)
        except InputError as exc:
            export.findings.append(finding("FMT009", f"{png.name}: {exc.message}; its segments left out", src))
            continue
        known = by_stem.get(png.stem)
        if images_doc is not None and known is None:
            export.findings.append(finding("FMT006", f"no image named {png.stem}.* in the images file; "
                                                     f"{png.name} left out", src))
            continue
        key = known.key if known is not None else normalise_name(png.name)
        if known is not None and (known.width, known.height) != (width, height):
            export.findings.append(finding("FMT003", f"PNG {png.name} is {width}x{height}, the image is declared "
                                                     f"{known.width}x{known.height} (width x height); its segments "
                                                     "left out", src, image=key))
            continue
        image = known if known is not None else Image(key=key, file_name=png.name, width=width, height=height,
                                                      source=src)
        export.images[key] = image
        raw = {"image_id": key, "file_name": png.name, "segments_info": segments}
        if _read_image_segments(export, image, raw, index, info, png.parent, categories, limits,
                                src=src, section="segments_info"):
            two_channel.append((image, src))
    _two_channel_finding(export, two_channel, len(pairs))
    return export


def _two_channel_segments(export, image, id_map, present, declared_ids, categories, png, src) -> bool:
    """Read an image's segments from a 2-channel PNG when it is one (see the module docstring)."""
    ids = np.fromiter(present, dtype=np.int64, count=len(present))
    if not len(ids) or ids.max() >= 1 << 16 or present & declared_ids:
        return False
    cats = ids & 255
    if not all(c == 0 or c in categories for c in cats.tolist()) or not cats.any():
        return False
    for seg_id, cat in sorted(zip(ids.tolist(), cats.tolist())):
        if cat == 0:
            continue  # void
        export.objects.append(Object(
            annotator="", image=image.key, category=categories[cat].name, kind="segment",
            source=Source(src.file, src.index, seg_id, src.section), segment_id=seg_id, iscrowd=False,
            attributes={"instance": seg_id >> 8, "png_format": "2-channel"}))
    export.id_maps[image.key] = png
    return True


def _read_image_segments(export, image, raw, index, path, png_dir, categories, limits, *, src=None,
                         section=None):
    """Read one image's segments from its PNG and segments_info; True when the PNG was 2-channel.

    ``src`` is the image's place (default: ``annotations[index]`` of the JSON) and ``section`` the
    segments' list (default ``annotations[index].segments_info``).
    """
    png_name = raw["file_name"]
    src = Source(str(path), index, raw["image_id"]) if src is None else src
    section = f"annotations[{index}].segments_info" if section is None else section
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
    declared_ids = {seg.get("id") for seg in raw["segments_info"] if isinstance(seg, dict) and _is_int(seg.get("id"))}
    if _two_channel_segments(export, image, id_map, present, declared_ids, categories, png, src):
        return True
    declared = set()
    for k, seg in enumerate(raw["segments_info"]):
        seg_id = seg.get("id") if isinstance(seg, dict) else None
        seg_src = Source(str(path), k, seg_id, section)
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
                                       src, image=image.key))
    export.id_maps[image.key] = png
    return False
