"""The per-image half of a run: one task per chunk of images, and the reduce of its results.

Everything a run computes image by image happens in :func:`run_chunk`, one pure, module-level function of
a :class:`qa.engine.chunks.Chunk` and the run's :class:`TaskOptions`. It loads the chunk's objects, decodes
each annotator's labels of each image once (:class:`qa.engine._decoded.Decoded`: crops, id map, outlines)
and hands them to every per-image figure, in this order:

1. the comparison of every annotator pair (:func:`qa.engine.compare.compare_image`: matching, every
   metric, PQ, image-level IoU);
2. the class maps of label-map and panoptic exports (:func:`qa.engine.semantic.semantic_image`);
3. pixel alpha's counts (:func:`qa.analytics.alpha.alpha_image`);
4. the consensus of three or more annotators, from the matches of step 1 and the outlines already
   listed (:func:`qa.analytics.consensus.consensus_image`);
5. the rules, which look at one image at a time, over the chunk, reading the crops already painted
   (:func:`qa.rules.check._check_chunk`).

The task returns compact partial results (rows and counts); :class:`Reduce` takes them in chunk order
(the executors yield them so) into the run's tables, and floats are summed image by image in image order,
so the results do not depend on the chunks or the executor. What needs the whole batch (alpha's
bootstrap, aggregates, the review queue, the boundary analysis, the gate) runs afterwards on the reduced
results (:mod:`qa.pipeline`). Each stage's public function (:func:`qa.engine.compare.compare_batch`,
:func:`qa.engine.semantic.compare_semantic`, :func:`qa.rules.check.check`,
:func:`qa.analytics.alpha.pixel_alpha`, :func:`qa.analytics.consensus.build_consensus`) runs the same
per-image code on its own.

This module sits after the analytics in the import order because the task calls the rules and the
analytics' per-image code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable

from qa.pickled import FileBlocks, PackedObjects, Reordered

Progress = Callable[[str, int, int], None]

STAGE = "images"
"""The progress stage of the per-image pass: ``progress("images", done, total)``."""


@dataclass(slots=True)
class TaskOptions:
    """What each task needs besides its chunk: the settings of each per-image part, None when the run
    does not compute it (plain data; pickled to the workers)."""

    categories: list
    """Category names by code (:func:`qa.engine.compare.category_list`)."""
    max_pixels: int
    compare: object = None
    """:func:`qa.engine.compare.compare_config` (None with one annotator)."""
    semantic: object = None
    """:func:`qa.engine.semantic.semantic_config` (None unless two or more exports label pixels)."""
    pack: object = None
    """The resolved rule pack (:class:`qa.rules.packs.Pack`), None to skip the rules."""
    alpha: object = None
    """:func:`qa.analytics.alpha.alpha_settings` (None without pixel alpha)."""
    consensus: object = None
    """:func:`qa.analytics.consensus.consensus_settings` (None with fewer than three annotators)."""
    objects: bool = False
    """Return each object without its geometry (:func:`bare_objects`), pickled in runs of consecutive
    export positions (:func:`object_runs`): a streamed batch's main process holds no objects until the pass
    brings these back, and keeps the pickles as they come."""
    attributes: tuple | None = None
    """Return each object's attribute values as codes (:func:`qa.analytics.attributes.chunk_values`), with
    these attribute names declared; None does not (one annotator)."""
    object_rows: bool = False
    """Return the store's ``objects`` rows of the chunk's objects (:func:`qa.store.object_rows`): a run that
    will be stored, so the main process does not read every object again to make them."""


def run_chunk(chunk, options: TaskOptions) -> dict:
    """Everything a run computes per image, for one chunk of images.

    Parameters
    ----------
    chunk : qa.engine.chunks.Chunk
        The images; ``chunk.load()`` is called first, and nothing else of the batch is read.
    options : TaskOptions

    Returns
    -------
    dict
        ``keys`` (the chunk's images), ``compare`` (:func:`qa.engine.compare.chunk_columns`),
        ``semantic`` (images compared, class rows, interface rows), ``alpha`` (per-image statistics),
        ``consensus`` (per-image clusters, rows and masks), ``findings`` (rule violations,
        :func:`qa.rules.violations.chunk_violations`), ``objects`` (:func:`object_runs`) and ``object_rows``
        (:func:`qa.store.object_rows` by annotator); a part is None when its options are.
    """
    from qa.engine._decoded import grouped_objects, image_labels

    batch = chunk.load()
    grouped = grouped_objects(batch)
    codes = {c: k for k, c in enumerate(options.categories)}
    cfg = options.compare
    outline_pairs = None
    pair_names = None
    if cfg is not None:
        from qa.engine.compare import _boundary_function, comparable, compare_image

        outline_pairs = _boundary_function() if cfg.boundary else None
        pair_names = list(cfg.pairs)
    if options.semantic is not None:
        from qa.engine.semantic import semantic_image, semantic_labels
    if options.alpha is not None:
        from qa.analytics.alpha import alpha_image
    if options.consensus is not None:
        from qa.analytics.consensus import consensus_image, edges_of
    compared, semantic, counted, consensus = [], ([], [], []), [], []
    decoded: dict = {}  # image -> {annotator: Decoded}, handed to the rules
    intersections: dict = {}  # (image, a, b) -> the comparison's pixel counts, handed to the rules
    for position, key in enumerate(chunk.keys):
        if len(batch.coverage.get(key, ())) < 2:
            continue  # the rules alone look at an image of one annotator
        labels = image_labels(batch, key, codes, options.max_pixels, grouped)
        decoded[key] = labels
        both = comparable(labels) if cfg is not None else {}
        results = []
        if len(both) >= 2:
            results = compare_image(both, cfg, outline_pairs)
            compared.extend((position, code, res) for code, res in results)
            for code, res in results:
                intersections[(key, *pair_names[code])] = res.pop("intersections")
        if options.semantic is not None:
            classes = semantic_labels(labels, options.semantic)
            if len(classes) >= 2:
                rows, interfaces = semantic_image(key, classes, options.semantic)
                semantic[0].append(sorted(classes))
                semantic[1].extend(rows)
                semantic[2].extend(interfaces)
        if options.alpha is not None:
            counted.append(alpha_image(key, labels, options.alpha))
        if options.consensus is not None and len(both) >= 2:
            consensus.append(consensus_image(key, both, edges_of(results, pair_names), options.consensus))
        for d in labels.values():  # what the rules do not read
            d.release_outlines()
    findings = None
    if options.pack is not None:
        from qa.rules.check import _check_chunk
        from qa.rules.violations import chunk_violations

        checked, _ = _check_chunk(batch, options.pack, decoded=decoded, intersections=intersections)
        findings = chunk_violations(checked)  # pickled by annotator, sort keys as codes
    part = {"keys": tuple(chunk.keys), "compare": None, "semantic": None, "alpha": None, "consensus": None,
            "findings": findings, "facts": None, "objects": None, "attributes": None, "object_rows": None}
    if options.objects:
        part["objects"] = {name: object_runs(export.positions(), bare_objects(export.objects))
                           for name, export in batch.exports.items()}  # pickled here: none unpickled to keep
    if options.object_rows:  # the store's rows of the objects, made here rather than from them again in main
        from qa.store import object_rows

        part["object_rows"] = {name: object_rows(export.objects, export.positions(), name)
                               for name, export in batch.exports.items()}
    if cfg is not None:  # each object's occluded flag and vertex density, for the batch-level analyses
        from qa.analytics.boundaries import object_facts

        part["facts"] = {name: (export.positions(), *object_facts(export.objects))
                         for name, export in batch.exports.items()}
    if options.attributes is not None:  # for attribute agreement: the main process need not read the objects
        from qa.analytics.attributes import chunk_values

        part["attributes"] = {name: (export.positions(), chunk_values(export.objects, options.attributes))
                              for name, export in batch.exports.items()}
    if cfg is not None:
        from qa.engine.compare import chunk_columns

        part["compare"] = chunk_columns(chunk.keys, compared)
    if options.semantic is not None:
        part["semantic"] = semantic
    if options.alpha is not None:
        part["alpha"] = counted
    if options.consensus is not None:  # as columns: the main process takes arrays, not a dict per row
        from qa.analytics.consensus import consensus_chunk

        part["consensus"] = consensus_chunk(consensus, options.consensus.tolerances)
    return part


def bare_objects(objects) -> list:
    """The objects without their geometry (polygons and RLE dropped; a segment keeps its id): what the
    batch-level work reads of them (category, image, bbox, area, crowd flag, attributes, source)."""
    from dataclasses import replace

    return [replace(o, polygons=None, rle=None) if o.polygons is not None or o.rle is not None else o
            for o in objects]


@dataclass(slots=True)
class Reduced:
    """What the per-image pass of a run produced, reduced over the batch."""

    comparison: object = None
    """:class:`qa.engine.compare.Comparison`, None with one annotator."""
    semantic: object = None
    """:class:`qa.engine.semantic.SemanticComparison`, None unless two exports label pixels."""
    violations: Sequence = field(default_factory=list)
    """Rule violations in run order (:func:`qa.rules.check.sort_findings`'s): a
    :class:`qa.rules.violations.PackedFindings` when the pass ran a pack."""
    alpha_counts: object = None
    """:class:`qa.analytics.alpha.AlphaCounts` (alpha and its bootstrap are made from them)."""
    consensus: object = None
    """:class:`qa.analytics.consensus.Consensus`, None with fewer than three annotators."""
    facts: dict | None = None
    """Each object's occluded flag and vertex density by annotator, by position in its export
    (:func:`qa.analytics.boundaries.batch_facts`), None with one annotator."""
    objects: dict | None = None
    """With ``TaskOptions.objects``: each export's objects without their geometry, in export order."""
    attribute_values: dict | None = None
    """With ``TaskOptions.attributes``: the batch's attribute values
    (:meth:`qa.analytics.attributes.ValueTable.finish`)."""
    object_rows: object = None
    """With ``TaskOptions.object_rows`` and a run folder: the store's ``objects`` rows
    (:class:`qa.store.ObjectRowParts`)."""


class Reduce:
    """Takes the tasks' partial results in chunk order into the run's tables.

    Where each part goes: the comparison's rows into :class:`qa.engine.tables.Tables` (compact columns,
    or Parquet parts with ``spill_dir``), PQ and image-level IoU sums per pair; the semantic rows into
    :class:`qa.engine.semantic.SemanticRows` (the comparison's rows as Parquet parts in ``folder``'s
    ``comparison`` when given a run folder and no ``spill_dir``); alpha's per-image statistics into
    :class:`qa.analytics.alpha.AlphaCounts` (three numbers and the label marginals per image); the
    consensus's clusters, rows and masks into :class:`qa.analytics.consensus.ConsensusRows` (Parquet parts
    in ``folder``'s ``consensus``, when given a :func:`qa.parts.run_folder`); findings pickled with their sort
    keys as codes (:class:`qa.rules.violations.ViolationTable`, in a file of ``folder`` when given); the
    objects without their geometry into pickled blocks (:class:`PackedObjects`, in ``folder`` when
    given); each object's occluded flag and vertex density into one array each per annotator
    (:class:`qa.analytics.boundaries.FactTable`); each object's attribute values as codes
    (:class:`qa.analytics.attributes.ValueTable`); the store's ``objects`` rows, as Parquet files in
    ``folder``'s ``object_rows`` (:class:`qa.store.ObjectRowParts`; not kept without a folder). Nothing per
    pixel.
    """

    def __init__(self, batch, options: TaskOptions, *, spill_dir=None, folder=None):
        self.batch = batch
        self.options = options
        self.tables = self.semantic = self.alpha = self.consensus = None
        if options.compare is not None:
            from qa.engine.compare import comparison_tables

            if spill_dir is None and folder is not None:  # the comparison's rows on disk, in the run's folder
                self.tables = comparison_tables(batch, options.compare, spill_dir=folder.path / "comparison",
                                                owner=folder)
            else:
                self.tables = comparison_tables(batch, options.compare, spill_dir=spill_dir)
        if options.semantic is not None:
            from qa.engine.semantic import SemanticRows

            self.semantic = SemanticRows(options.semantic)
        if options.alpha is not None:
            from qa.analytics.alpha import AlphaCounts

            self.alpha = AlphaCounts(options.alpha)
        if options.consensus is not None:
            from qa.analytics.consensus import ConsensusRows

            self.consensus = ConsensusRows(options.consensus.tolerances, owner=folder,
                                           folder=None if folder is None else folder.path / "consensus")
        self.violations = None
        if options.pack is not None:  # with the run's folder, their pickled blocks go to a file there
            from qa.rules.violations import ViolationTable

            self.violations = ViolationTable(None if folder is None else FileBlocks.create(
                folder.path / "violations.pickles", owner=folder))
        self.objects: dict | None = None
        if options.objects:  # with the run's folder, their pickled blocks go to a file per export there
            self.objects = {name: _ObjectParts(None if folder is None else FileBlocks.create(
                folder.path / "objects" / f"export-{k:03d}.pickles", owner=folder))
                for k, name in enumerate(batch.exports)}
        self.facts = None
        if options.compare is not None:
            from qa.analytics.boundaries import FactTable

            self.facts = FactTable()
        self.object_rows = None
        if options.object_rows and folder is not None:
            from qa.store import ObjectRowParts

            self.object_rows = ObjectRowParts(folder.path / "object_rows", owner=folder)
        self.values = None
        if options.attributes is not None:
            from qa.analytics.attributes import ValueTable

            self.values = ValueTable(batch.exports)
        self.images = 0

    def add(self, part: dict) -> None:
        self.images += len(part["keys"])
        if self.tables is not None:
            self.tables.add(part["compare"])
        if self.semantic is not None:
            self.semantic.add(*part["semantic"])
        if self.alpha is not None:
            self.alpha.add(part["alpha"])
        if self.consensus is not None:
            self.consensus.add(part["consensus"])
        if self.violations is not None:
            self.violations.add(part["findings"])
        if self.facts is not None:
            self.facts.add(part["facts"])
        if self.values is not None:
            self.values.add(part["attributes"])
        if self.object_rows is not None:
            self.object_rows.add(part["object_rows"])
        if self.objects is not None:
            for name, runs in part["objects"].items():
                self.objects[name].add_runs(runs)

    def finish(self) -> Reduced:
        out = Reduced(alpha_counts=self.alpha, facts=None if self.facts is None else self.facts.finish(),
                      attribute_values=None if self.values is None else self.values.finish(),
                      object_rows=None if self.object_rows is None else self.object_rows.finish())
        if self.objects is not None:
            out.objects = {name: parts.finish() for name, parts in self.objects.items()}
            self.objects = None
        if self.tables is not None:
            out.comparison = self.tables.finish()
        if self.semantic is not None:
            out.semantic = self.semantic.finish()
        if self.violations is not None:
            out.violations = self.violations.finish(self.batch.annotators)
        if self.consensus is not None:
            out.consensus = self.consensus.finish(self.batch, self.options.consensus,
                                                  iou_threshold=self.options.compare.iou_threshold)
        return out


def object_runs(positions, objects) -> list:
    """A chunk's objects cut into runs of consecutive export ``positions`` and pickled, as a task sends them:
    ``[(first position, objects, pickled objects, image keys)]`` in export order, whatever the order of the
    chunk's images in the export (:class:`_ObjectParts` keeps them)."""
    import pickle

    import numpy as np

    positions = np.asarray(positions, dtype=np.int64)
    if not len(positions):
        return []
    objects = list(objects)
    if np.any(np.diff(positions) <= 0):  # a chunk's objects in export order, whatever the export's order
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        objects = [objects[k] for k in order.tolist()]
    cuts = [0, *(np.flatnonzero(np.diff(positions) != 1) + 1).tolist(), len(positions)]
    runs = []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        run = objects[lo:hi]
        runs.append((int(positions[lo]), hi - lo, pickle.dumps(run, protocol=pickle.HIGHEST_PROTOCOL),
                     frozenset(o.image for o in run)))
    return runs


class _ObjectParts:
    """One export's objects as the chunks bring them, pickled (a few bytes per object where a Python
    ``Object`` takes hundreds; in a file of the run's folder when given ``blocks``, a :class:`FileBlocks`):
    each chunk's objects in export order, one block per run of consecutive export positions. An export that
    lists its objects image by image, in whatever order of images, gives a few runs per chunk; at the end
    the blocks are read in export order (:class:`PackedObjects`). An export that interleaves its images'
    objects gives runs of a few objects: past :data:`MANY_RUNS` runs of fewer than :data:`MIN_RUN` objects
    on average, the objects are kept as a list in export order instead (:func:`_in_export_order`)."""

    __slots__ = ("blocks", "spans", "images")

    def __init__(self, blocks=None):
        self.blocks = [] if blocks is None else blocks  # each run's pickled objects
        self.spans: list = []  # each run's (first position, objects)
        self.images: list = []  # each run's image keys

    def add(self, positions, objects) -> None:
        """A chunk's objects at their export ``positions`` (:func:`object_runs` made here)."""
        self.add_runs(object_runs(positions, objects))

    def add_runs(self, runs: list) -> None:
        """A chunk's objects as a task sends them, already pickled (:func:`object_runs`)."""
        for first, n, blob, images in runs:
            self.blocks.append(blob)
            self.spans.append((first, n))
            self.images.append(images)

    def finish(self):
        """The objects in export order: a :class:`PackedObjects`, or a list when the runs are short."""
        import pickle

        import numpy as np

        spans = np.array(self.spans, dtype=np.int64).reshape(-1, 2)
        order = np.argsort(spans[:, 0], kind="stable")
        if len(spans) > MANY_RUNS and spans[:, 1].sum() < MIN_RUN * len(spans):
            return _in_export_order([(np.arange(first, first + n), pickle.loads(block))
                                     for (first, n), block in zip(self.spans, self.blocks)])
        blocks = self.blocks
        if np.any(order != np.arange(len(order))):
            blocks = Reordered(blocks, order.tolist())
        return PackedObjects(blocks, spans[order, 1].tolist(), images=[self.images[k] for k in order.tolist()])


MIN_RUN = 8
MANY_RUNS = 1000
"""A streamed run keeps an export's objects pickled (:class:`_ObjectParts`) unless they come in more than
``MANY_RUNS`` runs of consecutive export positions holding fewer than ``MIN_RUN`` objects on average: a
block per few objects would then cost more than the objects."""


def _in_export_order(parts: list) -> list:
    """Objects of chunks ``[(positions in the export, objects)]`` in export order."""
    import numpy as np

    if not parts:
        return []
    positions = np.concatenate([np.asarray(p, dtype=np.int64) for p, _ in parts])
    objects = [o for _, chunk in parts for o in chunk]
    return [objects[k] for k in np.argsort(positions, kind="stable").tolist()]


def task_options(batch, *, tolerances=(1, 2, 4), iou_threshold: float = 0.5, max_pixels: int | None = None,
                 pack=None, analytics: bool = True, plan=None, consensus: bool = True,
                 stored: bool = False) -> TaskOptions:
    """The options of a run's per-image pass over ``batch`` (settings checked before any work): ``plan``
    (:class:`qa.engine.compare.PairPlan`) says which pairs are compared on each image and which side is the
    reference; ``consensus`` False leaves the consensus of everyone out (a run with a reference); ``stored``
    True makes the store's ``objects`` rows in the tasks (a run that will be stored)."""
    from qa.engine.compare import category_list, compare_config
    from qa.model import Limits

    options = TaskOptions(categories=category_list(batch), max_pixels=max_pixels or Limits().max_pixels, pack=pack,
                          objects=getattr(batch, "index", None) is not None, object_rows=stored)
    if len(batch.annotators) < 2:
        return options
    options.compare = compare_config(batch, tolerances=tolerances, iou_threshold=iou_threshold,
                                     max_pixels=max_pixels, plan=plan)
    options.attributes = tuple(getattr(batch, "attribute_levels", None) or ())
    from qa.engine.semantic import is_semantic, semantic_config

    if is_semantic(batch):
        options.semantic = semantic_config(batch, tolerances=tolerances, max_pixels=max_pixels)
    if analytics:
        from qa.analytics.alpha import alpha_settings

        options.alpha = alpha_settings(batch, max_pixels=max_pixels)
        if consensus and len(batch.annotators) >= 3:
            from qa.analytics.consensus import consensus_settings

            options.consensus = consensus_settings(batch, tolerances=options.compare.tolerances,
                                                   max_pixels=max_pixels)
    return options


def map_reduce(batch, options: TaskOptions, *, executor=None, workers: int | None = None,
               progress: Progress | None = None, spill_dir=None, folder=None) -> Reduced:
    """Run :func:`run_chunk` over every image of ``batch``, chunk by chunk, on ``executor`` (the run's,
    :mod:`qa.engine._executors`; or a local pool of ``workers``), and reduce the results.

    ``folder`` (:func:`qa.parts.run_folder`, the run's) keeps on disk what the main process would hold
    per object: a streamed batch's objects, as pickled blocks in a file per export (:class:`PackedObjects`
    reads them from it), and the consensus's tables (:class:`qa.analytics.consensus.ConsensusRows`),
    and the comparison's ``object_pairs`` and ``image_pairs`` (:class:`qa.engine.tables.Spill`), written as
    the chunks come; the tables read from it hold ``folder`` as long as they are.

    ``progress("images", done, total)`` is called as chunks come back.
    """
    from qa.engine import _pool
    from qa.engine.chunks import chunks_of
    from qa.rules.check import images_per_chunk

    keys = list(batch.images)
    total = len(keys)
    size, workers = _pool.plan(total, workers, executor)
    size = min(size, images_per_chunk(batch))
    reduce = Reduce(batch, options, spill_dir=spill_dir, folder=folder)
    if progress:
        progress(STAGE, 0, total)
    for part in _pool.run_chunks(run_chunk, chunks_of(batch, _pool.chunks(keys, size)), options, workers,
                                 executor):
        reduce.add(part)
        if progress:
            progress(STAGE, reduce.images, total)
    return reduce.finish()
