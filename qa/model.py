"""The in-memory model every stage shares: plain records, no behaviour beyond small helpers.

One :class:`Export` holds one annotator's labels as read from one file; :func:`qa.align.align` turns
several exports into one :class:`Batch`. Every :class:`Object` keeps its :class:`Source` (file, list
index, id) so a finding can point at the exact place in the export.

This module imports nothing from ``qa``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np

if TYPE_CHECKING:  # the stages' result types, named in Run's fields only (this module imports nothing of qa)
    import pandas as pd

    from qa.analytics import Analytics
    from qa.analytics.attributes import AttributeAgreement
    from qa.analytics.boundaries import BoundaryAnalysis
    from qa.analytics.reference import ReferenceScores
    from qa.engine.compare import Comparison
    from qa.engine.semantic import SemanticComparison
    from qa.gate import Verdict
    from qa.rules.packs import Pack
    from qa.store import MatchRowParts, ObjectRowParts

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


def _pickled_by_fields(cls):
    """Pickle (and copy) instances of the slots dataclass ``cls`` as its constructor's arguments.

    A slots dataclass's own ``__getstate__``/``__setstate__`` look its fields up again for every
    instance; a run pickles every object twice (from the workers, and into the main process's packed
    blocks), where the arguments tuple takes half the time and 40 % fewer bytes.
    """
    from operator import attrgetter

    names = tuple(f.name for f in dataclasses.fields(cls))
    arguments = attrgetter(*names)

    def __reduce__(self):
        return cls, arguments(self)

    cls.__reduce__ = __reduce__
    return cls


@_pickled_by_fields
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
    ``scaled_from`` is the ``(width, height)`` the export declared when alignment scaled its labels into
    another export's frame of the same image (``width`` and ``height`` are then the new frame's).
    """

    key: str
    file_name: str
    width: int
    height: int
    path: Path | None = None
    source: Source | None = None
    scaled_from: tuple[int, int] | None = None


@dataclass(slots=True)
class Category:
    """A label class, keyed by name across exports (aliases are resolved at alignment)."""

    name: str
    isthing: bool = True
    supercategory: str = ""


@_pickled_by_fields
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
class Census:
    """What an export's objects add up to, kept when the objects themselves are not (a streamed export).

    ``per_category`` counts objects by category name; ``crowd`` counts those with ``iscrowd``.
    """

    objects: int = 0
    crowd: int = 0
    per_category: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Export:
    """One annotator's labels as read from one export.

    ``id_maps`` maps an image key to its panoptic PNG (COCO panoptic exports only). ``census`` is set
    on an export of a streamed index (:mod:`qa.formats._index`), whose ``objects`` stay empty: each chunk
    of images reads its own objects. ``ordinals``, on an export narrowed to a chunk of images, holds each
    object's position in the whole export (the position a whole load gives it).
    """

    annotator: str
    path: Path
    format: str
    images: dict[str, Image] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    objects: list[Object] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    id_maps: dict[str, Path] = field(default_factory=dict)
    census: Census | None = None
    ordinals: np.ndarray | None = None

    def positions(self) -> np.ndarray:
        """Each object's position in the whole export (``ordinals``, or ``0 .. n - 1`` when whole)."""
        if self.ordinals is not None:
            return self.ordinals
        return np.arange(len(self.objects), dtype=np.int64)

    def count(self) -> Census:
        """The export's :class:`Census`: its own when streamed, else counted from its objects."""
        if self.census is not None:
            return self.census
        per_category: dict[str, int] = {}
        for obj in self.objects:
            per_category[obj.category] = per_category.get(obj.category, 0) + 1
        return Census(objects=len(self.objects), crowd=sum(bool(o.iscrowd) for o in self.objects),
                      per_category=per_category)


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
    reference: str | None = None
    """The reference export every other is scored against (``--reference``, ``role = "reference"``), if any."""
    attribute_levels: dict = field(default_factory=dict)
    """Declared levels of measurement of object attributes, ``{name: "nominal" | "ordinal"}`` (the manifest's
    ``[attributes]``, ``--attribute NAME=LEVEL``)."""
    index: object = None
    """The streamed index (:class:`qa.engine.chunks.BatchIndex`) when the exports' objects are not held:
    each chunk of images reads its own (:func:`qa.engine.chunks.chunks_of`)."""

    def objects(self, annotator: str | None = None, image: str | None = None) -> list[Object]:
        """Objects of one annotator and/or one image, in export order."""
        exports = [self.exports[annotator]] if annotator is not None else self.exports.values()
        if image is not None:  # a streamed run's packed objects find one image's without reading the rest
            return [o for e in exports for o in (e.objects.of_image(image) if hasattr(e.objects, "of_image")
                                                 else (o for o in e.objects if o.image == image))]
        return [o for e in exports for o in e.objects]

    def by_image(self) -> dict[str, dict[str, list[Object]]]:
        """Objects grouped as ``{image key: {annotator: [objects]}}`` (every covered annotator present)."""
        grouped: dict[str, dict[str, list[Object]]] = {
            key: {a: [] for a in self.coverage.get(key, ())} for key in self.images
        }
        for export in self.exports.values():
            for obj in export.objects:
                grouped.setdefault(obj.image, {}).setdefault(obj.annotator, []).append(obj)
        return grouped


def objects_at(objects, indices) -> list:
    """``[objects[k] for k in indices]``, from a list or from a streamed run's packed objects
    (:class:`qa.pickled.PackedObjects`, which then reads each block it needs once instead of once a lookup)."""
    if hasattr(objects, "take"):
        return objects.take(indices)
    return [objects[int(k)] for k in indices]


# --- a run ---------------------------------------------------------------------------------------------

def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_run_id(started: datetime | None = None) -> str:
    """A new run id: the UTC start time and six random hex digits, ``20260115T103012Z-3fa9c1``.

    Ids sort by start time, and are unique without asking the store, so a run has its id (and a
    verdict can name it) before it is stored.
    """
    started = started or _utcnow()
    return f"{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances (the CLI draws a bar when on a terminal)."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    """Everything that shapes a run besides its exports: what :func:`qa.run` takes as keywords, what
    ``qa run`` parses its options into, and what the store keeps of them (:meth:`settings`).

    Attributes
    ----------
    manifest : str or os.PathLike, optional
        A batch manifest (:mod:`qa.manifest`); its exports come before the ones given.
    aliases : dict, optional
        ``{canonical: [patterns]}``, added to the manifest's.
    categories : list of str, optional
        The declared category list.
    max_pixels : int, optional
        Largest image accepted (default :data:`DEFAULT_MAX_PIXELS`).
    format_options : dict, optional
        ``{format: {option: value}}`` for every export read in that format (``--foreground``,
        ``--threshold`` of binary masks).
    instances : {"classes", "components"}, default "classes"
        How label maps enter instance matching: one object per class, or one per connected component of
        each thing class (:func:`qa.engine.semantic.components_as_instances`).
    pack : str, os.PathLike, Pack or None, default "default"
        The rule pack (a built-in name, a pack file or a resolved pack); None skips the rules.
    select, ignore : list of str, optional
        Rule ids or prefixes applied after the pack.
    tolerances : tuple of float, pixels, default (1, 2, 4)
        Boundary tolerances of the comparison.
    iou_threshold : float, default 0.5
        Matching threshold of the comparison.
    analytics : bool, default True
        Run the analytics (aggregates, pixel alpha, review queue, consensus).
    gate : str or os.PathLike, optional
        A pack whose ``[gate]`` table the run is checked against.
    baseline : str, optional
        A stored run (id, prefix, seq or ``latest``) for the gate's regression checks; needs ``db``.
    max_drop : float, optional
        Overrides the pack's ``[gate.regression] max_drop``.
    db : str or os.PathLike, optional
        The run store: the baseline is read from it and the run written to it.
    store : bool, default True
        Write the run to ``db``; False only reads the baseline from it.
    lock_timeout : float, seconds, optional
        How long to wait for another process's lock on the store (default 30).
    workers : int, optional
        Processes of the local pool (default: all cores; 1 runs in this process).
    executor : str or concurrent.futures.Executor, optional
        Where the per-image work runs instead: a Dask scheduler address, ``"local:N"``, or an executor
        the caller owns (see ``docs/scale.md``).
    spill_dir : str or os.PathLike, optional
        Write the comparison's per-object and per-image tables to this folder as Parquet parts while
        the images are compared, instead of holding them in memory
        (:func:`qa.engine.compare.compare_batch`).
    report : str or os.PathLike, optional
        Write the run's HTML report there.
    report_pictures : int, optional
        How many of the worst images the report draws.
    progress : callable, optional
        ``progress(stage, done, total)`` (:data:`Progress`).
    outputs : callable, optional
        ``outputs(run, staged)`` writes further files of the run through ``staged.write(path, content)``.
    run_id : str, optional
        The run's id (default: made from the start time, :func:`new_run_id`). ``qa serve`` gives each
        job's run its id before it starts, so a job whose server stopped can be told stored or not.
    reference : str, optional
        The annotator every other is scored against (a gold set; the manifest's ``role = "reference"``),
        or ``"consensus"``: each annotator against the consensus of the others, built in the run
        (:mod:`qa.analytics.reference`); the reference may label a subset of the images (honeypots).
    pairs : {"reference", "all"}, optional
        With a reference: compare only each annotator with it where it labels the image (default), or
        every pair too.
    rescale : tuple of str, default ()
        Annotators whose exports are at another resolution of the same images: scaled into the
        reference's frame (:func:`qa.align.align`).
    attributes : dict, optional
        ``{attribute: "nominal" | "ordinal"}``: levels of measurement for attribute agreement
        (:mod:`qa.analytics.attributes`), over the manifest's.
    consensus_method : {"vote", "staple"}, default "vote"
        How ``reference="consensus"`` builds the consensus of the others.
    """

    manifest: str | os.PathLike | None = None
    aliases: dict[str, list[str]] | None = None
    categories: list[str] | None = None
    max_pixels: int | None = None
    format_options: dict[str, dict[str, Any]] | None = None
    instances: str = "classes"
    pack: Any = "default"
    select: list[str] | None = None
    ignore: list[str] | None = None
    tolerances: tuple[float, ...] = (1, 2, 4)
    iou_threshold: float = 0.5
    analytics: bool = True
    gate: str | os.PathLike | None = None
    baseline: str | None = None
    max_drop: float | None = None
    db: str | os.PathLike | None = None
    store: bool = True
    lock_timeout: float | None = None
    workers: int | None = None
    executor: Any = None
    spill_dir: str | os.PathLike | None = None
    report: str | os.PathLike | None = None
    report_pictures: int | None = None
    progress: Progress | None = field(default=None, compare=False)
    outputs: Callable[..., None] | None = field(default=None, compare=False)
    run_id: str | None = None
    reference: str | None = None
    pairs: str | None = None
    rescale: tuple[str, ...] = ()
    attributes: dict[str, str] | None = None
    consensus_method: str = "vote"

    @classmethod
    def from_keywords(cls, options: "RunOptions | None" = None, /, caller: str = "qa.run()",
                      **keywords) -> "RunOptions":
        """``options`` (default: all defaults) with ``keywords`` replacing its fields.

        Raises
        ------
        TypeError
            On a keyword that is no field, naming it and the fields.

        Examples
        --------
        >>> RunOptions.from_keywords(workers=2).workers
        2
        >>> RunOptions.from_keywords(worker=2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: qa.run() got an unexpected keyword argument 'worker'; did you mean 'workers'? ...
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for key in keywords:
            if key not in names:
                import difflib

                near = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise TypeError(f"{caller} got an unexpected keyword argument {key!r}{hint} "
                                f"(the options of a run are the fields of qa.RunOptions: {', '.join(names)})")
        if options is not None and not isinstance(options, RunOptions):
            raise TypeError(f"{caller}: options must be a qa.RunOptions, got {type(options).__name__}")
        return dataclasses.replace(options or cls(), **keywords)

    def settings(self) -> dict[str, Any]:
        """The options a stored run keeps (the store's ``runs.settings``), before the stages add theirs:
        the largest image, and the format options, instance mode, manifest, aliases and categories when
        given."""
        out: dict[str, Any] = {"max_pixels": self.max_pixels or DEFAULT_MAX_PIXELS}
        if self.format_options:
            out["format_options"] = self.format_options
        if self.instances != "classes":
            out["instances"] = self.instances
        if self.manifest is not None:
            out["manifest"] = str(self.manifest)
        if self.aliases:
            out["aliases"] = self.aliases
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out

    def gate_settings(self) -> dict[str, Any]:
        """The gate's options a stored run keeps (empty without a gate)."""
        if self.gate is None:
            return {}
        return {"gate": str(self.gate), "baseline": self.baseline, "max_drop": self.max_drop}


@dataclass(slots=True)
class Run:
    """Everything one run produced (:func:`qa.run`).

    ``run_id`` names the run in the store and in its verdict; ``inputs`` holds each export's
    fingerprint (:func:`qa.store.input_fingerprints`); ``verdict`` is the gate's, when gated;
    ``stored`` is the store the run was written to, if any; ``options`` how it was made.
    """

    batch: Batch
    """The batch; from :func:`qa.run`, its objects without their geometry (see its notes)."""
    summary: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)
    started_at: datetime = field(default_factory=_utcnow)
    finished_at: datetime | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    verdict: Verdict | None = None
    stored: str | None = None
    comparison: Comparison | None = None
    """The comparison of every annotator pair (None with one annotator)."""
    scores: pd.DataFrame | None = None
    """The long scores table (``scope, key, metric, value, n``), None with one annotator."""
    violations: Sequence[Finding] = field(default_factory=list)
    """Rule violations of the run's pack, in run order: a read-only sequence (``len``, iteration, ``[k]``,
    slices), a :class:`qa.rules.violations.PackedFindings` when the run made them (they stay pickled, in a
    file of the run's temporary folder that lasts as long as they do; each read gives a new ``Finding``)."""
    findings: list[Finding] = field(default_factory=list)
    """Findings raised from the comparison of the whole batch (agreement codes such as ``AGR001``)."""
    pack: Pack | None = None
    """The resolved rule pack, or None when rules were not run."""
    analytics: Analytics | None = None
    """The agreement analytics, None with one annotator."""
    semantic: SemanticComparison | None = None
    """The semantic comparison of label-map and panoptic exports, if any."""
    boundaries: BoundaryAnalysis | None = None
    """The boundary analysis (offsets, category-pair boundaries)."""
    boundary_disagreement: pd.DataFrame | None = None
    """Rows of the store's ``boundary_disagreement`` table, from the boundary analysis."""
    report: str | None = None
    """The HTML report written for the run, if any."""
    options: RunOptions | None = None
    """The options the run was made with."""
    reference: ReferenceScores | None = None
    """Each annotator against the reference, if there is one."""
    attributes: AttributeAgreement | None = None
    """Attribute agreement, when objects carry attributes."""
    object_rows: ObjectRowParts | None = None
    """The store's ``objects`` rows as the run's pass made them (Parquet files in the run's folder), when the
    run was to be stored; the store makes them from the objects otherwise."""
    match_rows: MatchRowParts | None = None
    """The store's ``object_matches`` rows made on the run's executor (:func:`qa.store.stored_match_rows`),
    when the run was to be stored; the store makes them itself otherwise."""
