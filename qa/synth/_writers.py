"""Write one set of objects as COCO instances, COCO panoptic, CVAT for images 1.1 and label-map PNGs.

Per image, :func:`image_outputs` paints the objects once (stuff first, then things in z-order) and
turns the result into panoptic segments and a class-id map; the JSON and XML documents are assembled
by :func:`coco_document`, :func:`panoptic_document` and :func:`cvat_document` once every image is done.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from qa.synth._raster import area_bbox, paint, quantise
from qa.synth._scene import CATEGORIES, CATEGORY_ID, Shape

SUPERCATEGORY = {"road": "flat", "sidewalk": "flat", "building": "construction", "vegetation": "nature",
                 "sky": "sky", "person": "human", "bicycle": "vehicle", "car": "vehicle",
                 "traffic sign": "object"}


def categories_json() -> list[dict]:
    return [{"id": cid, "name": name, "supercategory": SUPERCATEGORY[name], "isthing": int(thing),
             "color": list(color)} for cid, name, thing, color in CATEGORIES]


def _fmt(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def instance_annotations(objects: list[Shape], image_id: int, height: int, width: int,
                         declared: dict) -> list[dict]:
    """COCO instance annotations (polygons, CVAT-style ``attributes``) in object order."""
    out = []
    for o in objects:
        parts = [quantise(p) for p in o.parts]
        area, bbox = area_bbox(parts, height, width)
        if o.id in declared:
            area, bbox = declared[o.id]
        out.append({
            "id": o.id,
            "image_id": image_id,
            "category_id": CATEGORY_ID[o.category],
            "segmentation": [p.ravel().tolist() for p in parts],
            "area": float(area),
            "bbox": [float(v) for v in bbox],
            "iscrowd": 0,
            "attributes": {"occluded": bool(o.occluded), "z_order": int(o.z_order)},
        })
    return out


def image_outputs(objects: list[Shape], height: int, width: int, *, png_path: Path | None,
                  labelmap_path: Path | None) -> list[dict]:
    """Paint the objects, write the panoptic PNG and/or label-map PNG, return ``segments_info``.

    Stuff is painted first, then things, each in z-order (ties in object order), so the segments do
    not overlap. A segment's id is its object's id; objects left with no visible pixel get no segment.
    """
    order = sorted(range(len(objects)), key=lambda k: (objects[k].isthing, objects[k].z_order))
    labels = _fill_seams(paint([(k + 1, objects[k].parts) for k in order], height, width))
    rgb_lut = np.zeros((len(objects) + 1, 3), dtype=np.uint8)
    classes = np.zeros(len(objects) + 1, dtype=np.uint8)
    for k, o in enumerate(objects):
        rgb_lut[k + 1] = (o.id & 255, (o.id >> 8) & 255, (o.id >> 16) & 255)
        classes[k + 1] = CATEGORY_ID[o.category]
    counts = np.bincount(labels.ravel(), minlength=len(objects) + 1)
    segments = []
    for k in order:
        o = objects[k]
        if counts[k + 1] == 0:
            continue
        rows, cols = _label_extent(labels, k + 1, o.parts, height, width)
        segments.append({"id": int(o.id), "category_id": CATEGORY_ID[o.category], "area": int(counts[k + 1]),
                         "bbox": [int(cols[0]), int(rows[0]), int(cols[1] - cols[0] + 1), int(rows[1] - rows[0] + 1)],
                         "iscrowd": 0})
    if png_path is not None:
        write_png(png_path, np.take(rgb_lut, labels, axis=0))
    if labelmap_path is not None:
        write_png(labelmap_path, np.take(classes, labels))
    return segments


def _fill_seams(labels: np.ndarray) -> np.ndarray:
    """Give pixels no polygon covers the label of the nearest covered pixel.

    Stuff tiles the image, but where noise moves a vertex that only one of two neighbouring regions
    has (a T-junction made by the boundary shift), a seam of a few pixels can open between them; an
    annotation tool would snap it shut, and so does this.
    """
    empty = labels == 0
    if not empty.any() or empty.all():
        return labels
    from scipy import ndimage

    rows = np.flatnonzero(empty.any(axis=1))
    cols = np.flatnonzero(empty.any(axis=0))
    y0, y1 = max(rows[0] - 2, 0), min(rows[-1] + 3, labels.shape[0])
    x0, x1 = max(cols[0] - 2, 0), min(cols[-1] + 3, labels.shape[1])
    window = labels[y0:y1, x0:x1]
    if (window == 0).all():
        return labels
    idx = ndimage.distance_transform_edt(window == 0, return_distances=False, return_indices=True)
    labels = labels.copy()
    labels[y0:y1, x0:x1] = window[tuple(idx)]
    return labels


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an 8-bit grey ``(H, W)`` or RGB ``(H, W, 3)`` array as a PNG.

    Every row uses PNG's Sub filter (each byte minus the byte one pixel to its left), so the inside of
    a segment becomes runs of zeros that zlib's run-length strategy packs fast and small. Pillow's
    encoder tries five filters on every row, which costs several times more on 1024x2048 label maps;
    Pillow reads these files back bit-exactly (the tests check it).
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    flat = array.reshape(height, width * channels)
    raw = np.empty((height, 1 + width * channels), dtype=np.uint8)
    raw[:, 0] = 1  # filter type Sub
    raw[:, 1:1 + channels] = flat[:, :channels]
    np.subtract(flat[:, channels:], flat[:, :-channels], out=raw[:, 1 + channels:])
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = packer.compress(raw.tobytes()) + packer.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def _label_extent(labels, label, parts, height, width):
    pts = np.concatenate(parts)
    x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, width)
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, height)
    window = labels[y0:y1, x0:x1] == label
    r = np.flatnonzero(window.any(axis=1))
    c = np.flatnonzero(window.any(axis=0))
    return (y0 + r[0], y0 + r[-1]), (x0 + c[0], x0 + c[-1])


def _info(description: str) -> dict:
    return {"description": description, "version": "1.0", "contributor": "qa synth", "year": 2026}


def coco_document(images: list[dict], annotations: list[dict], description: str) -> dict:
    return {"info": _info(description), "licenses": [], "categories": categories_json(),
            "images": images, "annotations": annotations}


def panoptic_document(images: list[dict], annotations: list[dict], description: str) -> dict:
    return {"info": _info(description), "licenses": [], "categories": categories_json(),
            "images": images, "annotations": annotations}


def cvat_image(n: int, image: dict, objects: list[Shape]) -> str:
    """The ``<image>`` element of CVAT for images 1.1 for one image: one ``<polygon>`` per outline part.

    Parts of one multi-part object share a ``group_id`` (the object's id).
    """
    lines = [f'  <image id="{n}" name={quoteattr(image["file_name"])} width="{image["width"]}" '
             f'height="{image["height"]}">']
    for o in objects:
        group = f' group_id="{o.id}"' if len(o.parts) > 1 else ""
        for part in o.parts:
            points = ";".join(f"{_fmt(x)},{_fmt(y)}" for x, y in part)
            lines.append(f'    <polygon label={quoteattr(o.category)} source="manual" '
                         f'occluded="{int(bool(o.occluded))}" points="{points}" z_order="{int(o.z_order)}"'
                         f'{group}>')
            lines.append("    </polygon>")
    lines.append("  </image>")
    return "\n".join(lines)


def cvat_document(image_elements: list[str], name: str) -> str:
    """A CVAT for images 1.1 XML document from :func:`cvat_image` elements."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>",
             "  <meta>", "    <task>", f"      <name>{_xml_text(name)}</name>",
             f"      <size>{len(image_elements)}</size>", "      <mode>annotation</mode>",
             "      <z_order>True</z_order>", "      <labels>"]
    for _cid, cname, _thing, color in CATEGORIES:
        lines += ["        <label>", f"          <name>{_xml_text(cname)}</name>",
                  "          <color>#%02x%02x%02x</color>" % color, "          <type>polygon</type>",
                  "          <attributes>", "          </attributes>", "        </label>"]
    lines += ["      </labels>", "    </task>", "  </meta>", *image_elements, "</annotations>"]
    return "\n".join(lines) + "\n"


def _xml_text(text: str) -> str:
    return quoteattr(text)[1:-1]


def write_json(path: Path, doc, *, indent: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=indent, separators=(",", ": ") if indent else (",", ":"))
    path.write_text(text + "\n", encoding="utf-8")


def _toml_str(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def manifest_text(name: str, entries: list[tuple[str, str, str, dict]], categories: list[str], *,
                  classes: list[dict] | None = None) -> str:
    """A batch manifest (see :mod:`qa.manifest`): ``entries`` are (annotator, path, format, options);
    ``classes`` is written as the top-level ``[[classes]]`` table of label maps (docs/labelmaps.md)."""
    lines = ["# Written by qa synth; paths are relative to this file.",
             f"name = {_toml_str(name)}",
             "categories = [" + ", ".join(_toml_str(c) for c in categories) + "]", ""]
    for annotator, path, fmt, options in entries:
        lines += ["[[exports]]", f"annotator = {_toml_str(annotator)}", f"path = {_toml_str(path)}",
                  f"format = {_toml_str(fmt)}"]
        if options:
            lines.append("options = { " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in options.items()) + " }")
        lines.append("")
    for entry in classes or ():
        lines.append("[[classes]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
