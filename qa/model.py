"""The in-memory model every stage shares: plain records, no behaviour beyond small helpers.

One :class:`Export` holds one annotator's labels as read from one file; :func:`qa.align.align` turns
several exports into one :class:`Batch`. Every :class:`Object` keeps its :class:`Source` (file, list
index, id) so a finding can point at the exact place in the export.

This module imports nothing from ``qa``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Severity = Literal["error", "warning", "info"]
GeometryKind = Literal["polygon", "rle", "segment"]

DEFAULT_MAX_PIXELS = 100_000_000
"""Largest image (width x height) a loader accepts unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that protect a run from hostile or broken exports.

    Attributes
    ----------
    max_pixels : int, default 100_000_000
        Largest declared image size (width x height), and largest PNG a loader will decode.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass(frozen=True, slots=True)
class Source:
    """Where something came from: a file, a position in one of its lists, and the item's own id.

    ``section`` names the list (``annotations``, ``images``, ``segments_info``, ``shape``); ``index`` is
    the position in it. ``str(source)`` gives ``file: annotations[17] id=4312``.
    """

    file: str
    index: int | None = None
    id: Any = None
    section: str = "annotations"

    @property
    def where(self) -> str:
        parts = []
        if self.index is not None:
            parts.append(f"{self.section}[{self.index}]")
        if self.id is not None:
            parts.append(f"id={self.id}")
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.file}: {self.where}" if self.where else self.file


@dataclass(slots=True)
class Image:
    """One image as an export declares it.

    ``key`` is the normalised file name used to pair images across annotators; ``path`` is the image
    file on disk when the export's folder holds it (only then can a report show pixels).
    """

    key: str
    file_name: str
    width: int
    height: int
    path: Path | None = None
    source: Source | None = None


@dataclass(slots=True)
class Category:
    """A label class, keyed by name across exports (aliases are resolved at alignment)."""

    name: str
    isthing: bool = True
    supercategory: str = ""


@dataclass(slots=True, eq=False)
class Object:
    """One labelled object: an instance polygon or mask, or a panoptic segment.

    Exactly one geometry is set, as ``kind`` says:

    - ``"polygon"``: ``polygons`` is a tuple of ``(N, 2)`` float64 arrays of x, y vertices, one per
      part (COCO's list of flat coordinate lists).
    - ``"rle"``: ``rle`` is a COCO compressed RLE dict (``size`` = [height, width], ``counts`` bytes).
    - ``"segment"``: ``segment_id`` is the id of the segment in the image's panoptic PNG
      (``Export.id_maps``).

    ``bbox`` ([x, y, w, h]) and ``area`` are the values the export declares, kept so rules can check
    them against the geometry. ``attributes`` holds everything else, with the normalised keys
    ``occluded`` (bool), ``z_order`` (int) and ``group`` (int) when the export has them.
    """

    annotator: str
    image: str
    category: str
    kind: GeometryKind
    source: Source
    polygons: tuple[np.ndarray, ...] | None = None
    rle: dict | None = None
    segment_id: int | None = None
    iscrowd: bool = False
    bbox: tuple[float, float, float, float] | None = None
    area: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def occluded(self) -> bool | None:
        value = self.attributes.get("occluded")
        return None if value is None else bool(value)

    @property
    def z_order(self) -> int | None:
        value = self.attributes.get("z_order")
        return None if value is None else int(value)


@dataclass(slots=True)
class Finding:
    """Something wrong or notable, found while loading, aligning or checking.

    ``code`` is a stable id (``FMT001``, ``ALN002``, ``VTX001``); ``value`` and ``limit`` are the
    measured value and the threshold where the finding has them.
    """

    code: str
    severity: Severity
    message: str
    annotator: str | None = None
    image: str | None = None
    source: Source | None = None
    value: float | None = None
    limit: float | None = None

    def __str__(self) -> str:
        where = str(self.source) if self.source is not None else (self.image or "")
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.code} {self.message}"


@dataclass(slots=True)
class Export:
    """One annotator's labels as read from one export.

    ``id_maps`` maps an image key to its panoptic PNG (COCO panoptic exports only). ``ordinals``, on an
    export narrowed to a chunk of images, holds each object's position in the whole export (the position a
    whole load gives it).
    """

    annotator: str
    path: Path
    format: str
    images: dict[str, Image] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    objects: list[Object] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    id_maps: dict[str, Path] = field(default_factory=dict)
    ordinals: np.ndarray | None = None

    def positions(self) -> np.ndarray:
        """Each object's position in the whole export (``ordinals``, or ``0 .. n - 1`` when whole)."""
        if self.ordinals is not None:
            return self.ordinals
        return np.arange(len(self.objects), dtype=np.int64)


@dataclass(slots=True)
class Batch:
    """Several annotators' exports, aligned: the input of every later stage.

    ``images`` holds every image key any annotator has (with the first annotator's declaration);
    ``coverage`` says which annotators have each image. ``categories`` are the canonical categories
    after aliases. ``findings`` are the loaders' and the alignment's. ``aliases`` maps each raw category
    name the aliases rewrote to its category, and ``alias_report`` records how every raw name was resolved
    (see :func:`qa.align.align`). ``name`` and ``description`` come from the batch manifest when there is one.
    """

    annotators: list[str]
    exports: dict[str, Export]
    images: dict[str, Image]
    categories: dict[str, Category]
    coverage: dict[str, tuple[str, ...]]
    findings: list[Finding] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    alias_report: dict = field(default_factory=dict)
    name: str | None = None
    description: str | None = None

    def objects(self, annotator: str | None = None, image: str | None = None) -> list[Object]:
        """Objects of one annotator and/or one image, in export order."""
        exports = [self.exports[annotator]] if annotator is not None else self.exports.values()
        return [o for e in exports for o in e.objects if image is None or o.image == image]

    def by_image(self) -> dict[str, dict[str, list[Object]]]:
        """Objects grouped as ``{image key: {annotator: [objects]}}`` (every covered annotator present)."""
        grouped: dict[str, dict[str, list[Object]]] = {
            key: {a: [] for a in self.coverage.get(key, ())} for key in self.images
        }
        for export in self.exports.values():
            for obj in export.objects:
                grouped.setdefault(obj.image, {}).setdefault(obj.annotator, []).append(obj)
        return grouped
