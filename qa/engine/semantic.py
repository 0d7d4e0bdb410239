"""Semantic comparison: label maps compared class by class, and category boundaries pixel by pixel.

Label maps (``labelmap``), binary masks (``binary_masks``) and panoptic exports (``coco_panoptic``)
describe every pixel's class. For those exports :func:`compare_semantic` rebuilds each annotator's class
map of an image once (an int32 array of class indices, -1 for void and unlabelled pixels) and compares
every annotator pair on it:

1. **per class**: pixel intersection and union from one confusion count over the two maps, hence the
   class IoU; and the class's boundary F at every tolerance, from the exact distances between the two
   maps' boundary points of the class (the engine's boundary convention, as
   :func:`qa.engine.boundary.boundary_f_counts` draws it);
2. **per pair of touching categories** (``road | sidewalk``): the interface where the two classes meet,
   drawn on the side of the category whose name sorts first, in each map; each side's interface pixels
   within each tolerance of the other side's interface (exact Euclidean distances), and the signed
   displacement between the two interfaces (which category gains, by how many pixels).

:func:`components_as_instances` turns each label map's thing classes into one object per connected
component, for instance matching (``qa run --instances components``).

Conventions
-----------
- A pixel counts for the class figures only where both maps label it (void or unlabelled on either side
  is left out, as Cityscapes' evaluation ignores void pixels). ``area_a``/``area_b`` are counted on those
  pixels. A binary mask labels every pixel: outside its masks is the class ``background``.
- The image border is never boundary; void pixels next to a class are (the class's outline is drawn
  there).
- ``displacement`` of a category pair ``A|B`` (names sorted) in the pair ``a|b`` is positive when ``A``
  gains in ``a``'s labels relative to ``b``'s: an interface pixel of ``a`` that ``b`` labels ``B`` counts
  ``+d`` (``a``'s ``A`` reaches ``d`` px into ``b``'s ``B``), one that ``b`` labels ``A`` counts ``-d``;
  ``b``'s interface pixels count the other way round. Pixels the other side gives a third class, or
  leaves void, have no sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.model import Batch, Limits

SEMANTIC_FORMATS = ("labelmap", "binary_masks", "coco_panoptic")
"""Export formats that label every pixel with a class, compared by :func:`compare_semantic`."""

INSTANCE_MODES = ("classes", "components")
"""``qa run --instances``: one object per class of a label map (as loaded), or one per connected
component of each thing class."""


# --- result -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class SemanticComparison:
    """What :func:`compare_semantic` produced.

    Attributes
    ----------
    classes : pandas.DataFrame
        One row per image, annotator pair and class present in either map: ``image``, ``annotator_a``,
        ``annotator_b``, ``category``, ``area_a``, ``area_b``, ``intersection``, ``union`` (pixels),
        ``iou``, ``boundary_a_n``, ``boundary_b_n`` (boundary pixels), ``boundary_a_matched_<t>``,
        ``boundary_b_matched_<t>`` and ``boundary_f_<t>`` at each tolerance label ``<t>`` (``2px``).
    interfaces : pandas.DataFrame
        One row per image, annotator pair and pair of touching categories (``category_a`` <
        ``category_b`` by name): ``length_a``, ``length_b`` (interface pixels in each map),
        ``matched_a_<t>``, ``matched_b_<t>``, ``boundary_f_<t>``, ``disagree_<t>_share`` (interface
        pixels of both maps farther than ``<t>`` from the other map's interface), ``signed_sum``,
        ``abs_sum`` (pixels), ``signed_n``, ``displacement_px_mean`` (+ when ``category_a`` gains in
        ``a``'s labels) and ``abs_displacement_px_mean``.
    scores : pandas.DataFrame
        Long scores rows: ``category`` (``class_iou``, ``class_boundary_f_<t>``), ``annotator_pair_category``
        (the same per pair, key ``alice|bob|road``), ``annotator_pair`` and ``batch``
        (``class_iou_mean``: mean class IoU over the classes).
    settings : dict
        The tolerances and the annotators compared.
    """

    classes: "object"
    interfaces: "object"
    scores: "object"
    settings: dict = field(default_factory=dict)

    def class_table(self):
        """Agreement per class over every image and annotator pair (pooled counts).

        Returns
        -------
        pandas.DataFrame
            ``category``, ``images`` (image pairs where the class is present), ``iou``
            (sum of intersections over sum of unions) and ``boundary_f_<t>`` (from the pooled match
            counts), sorted by IoU, worst first.
        """
        return _pooled(self.classes, ["category"], self.settings["tolerances"]).sort_values(
            ["iou", "category"], kind="stable").reset_index(drop=True)


# --- which exports, and their class maps --------------------------------------------------------------

def is_semantic(batch: Batch) -> bool:
    """True when at least two annotators' exports label pixels with classes (:data:`SEMANTIC_FORMATS`)."""
    return sum(1 for e in batch.exports.values() if e.format in SEMANTIC_FORMATS) >= 2


BACKGROUND = "background"
"""The class of binary-mask pixels outside every mask (a binary mask labels every pixel)."""


def category_codes(batch: Batch) -> list[str]:
    """Every category of the batch in a fixed order (declared first, then any an object uses, then
    :data:`BACKGROUND` when an export is binary masks)."""
    from qa.engine.compare import category_list

    names = category_list(batch)
    if BACKGROUND not in names and any(e.format == "binary_masks" for e in batch.exports.values()):
        names.append(BACKGROUND)
    return names


@dataclass(slots=True)
class _Config:
    n: int
    names: list
    tolerances: tuple
    max_pixels: int
    unlabelled: dict       # annotator (of a semantic export) -> class of pixels no object covers (-1 or background)


def semantic_config(batch: Batch, *, tolerances=(1, 2, 4), max_pixels: int | None = None) -> _Config:
    """The semantic comparison's settings for a batch (checked): class codes, tolerances, and the
    annotators whose exports label pixels with classes. Raises :class:`qa.errors.ConfigError` on a
    tolerance that is not positive."""
    from qa.errors import ConfigError

    tolerances = tuple(float(t) for t in tolerances)
    if not tolerances or any(not t > 0 for t in tolerances):
        raise ConfigError(f"tolerances must be positive pixel distances, got {tolerances}")
    names = category_codes(batch)
    background = names.index(BACKGROUND) if BACKGROUND in names else -1
    unlabelled = {name: (background if e.format == "binary_masks" else -1) for name, e in batch.exports.items()
                  if e.format in SEMANTIC_FORMATS}
    return _Config(n=len(names), names=names, tolerances=tolerances, max_pixels=max_pixels or Limits().max_pixels,
                   unlabelled=unlabelled)


def class_map(labels, unlabelled: int = -1) -> np.ndarray:
    """One annotator's class map of one image: int32 ``(height, width)`` class indices, -1 unlabelled.

    ``labels`` is the annotator's :class:`qa.engine._decoded.Decoded` labels of the image (category codes
    of :func:`category_codes`); ``unlabelled`` the class of pixels no object covers (:data:`BACKGROUND`'s
    code for binary masks, -1 for label maps).

    Label-map objects are painted in export order (one image's classes are disjoint, so the order
    only matters for overlapping binary instance masks: the later one wins); void objects are painted
    last, as -1. Panoptic segments take their category's index; pixels of id 0 or of an id without a
    segment are -1.
    """
    height, width = labels.shape
    classes = labels.categories.astype(np.int32)
    if labels.void is not None:
        classes = np.where(labels.void, -1, classes).astype(np.int32)
    if labels.panoptic:
        from qa.errors import InputError

        id_map = labels.id_map
        if id_map.shape != (height, width):
            raise InputError(f"panoptic PNG is {id_map.shape[0]}x{id_map.shape[1]}, the image "
                             f"{height}x{width}", path=labels.png)
        out = np.full((height, width), -1, dtype=np.int32)
        if len(labels.seg_ids):
            order = np.argsort(labels.seg_ids, kind="stable")
            ids = labels.seg_ids[order]
            pos = np.minimum(np.searchsorted(ids, id_map), len(ids) - 1)
            known = (ids[pos] == id_map) & (id_map != 0)
            out[known] = classes[order][pos[known]]
        return out
    out = np.full((height, width), unlabelled, dtype=np.int32)
    if not len(labels.objects):
        return out
    crops = labels.crops()
    order = [k for k in range(len(crops)) if classes[k] >= 0] + [k for k in range(len(crops)) if classes[k] < 0]
    for k in order:
        crop, (x0, y0) = crops.crop(k)
        if crop.size:
            out[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]][crop != 0] = classes[k]
    return out


# --- one image (worker side) --------------------------------------------------------------------------

_NO_POINTS = (np.empty(0, dtype=np.int32), np.empty(0, dtype=np.int32))


def _grouped_points(keys: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> dict:
    """``{key: (ys, xs)}`` from point records in row-major order; each group stays in row-major order
    (the stable sort keeps it), as :func:`qa.engine._kernels_sdf._nearest_d2_both` needs both lists."""
    order = np.argsort(keys, kind="stable")
    keys, ys, xs = keys[order], ys[order], xs[order]
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate(([0], cuts)) if len(keys) else cuts
    ends = np.concatenate((cuts, [len(keys)]))
    return {int(keys[s]): (ys[s:e], xs[s:e]) for s, e in zip(starts, ends)}


def _edge_lists(m: np.ndarray, n: int) -> tuple[dict, dict]:
    """One annotator's class map as point lists: ``{class: (ys, xs)}`` of each class's inner boundary
    and ``{c1 * n + c2: (ys, xs)}`` of each interface (pixels of ``c1`` next to ``c2``)."""
    from qa.engine import _kernels_semantic as ks

    b_class, b_y, b_x, i_class, i_other, i_y, i_x = ks._edge_points(m)
    boundary = _grouped_points(b_class.astype(np.int64), b_y, b_x)
    interface = _grouped_points(i_class.astype(np.int64) * n + i_other, i_y, i_x)
    return boundary, interface


def _present(m: np.ndarray, boundaries: dict, n: int) -> np.ndarray:
    """Which classes a map holds: those with a boundary, and the class of the first pixel (a class
    without a boundary pixel has no neighbour of another value, so it covers the whole map)."""
    present = np.zeros(n, dtype=bool)
    present[list(boundaries)] = True
    if m.size and m.flat[0] >= 0:
        present[m.flat[0]] = True
    return present


def _nearest_d2_both(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Squared distance from each point of ``a`` to the nearest of ``b``, and from each of ``b`` to the
    nearest of ``a`` (``inf`` with none), in one call (:func:`qa.engine._kernels_sdf._nearest_d2_both`)."""
    from qa.engine import _kernels_sdf as ksdf

    return ksdf._nearest_d2_both(a[0], a[1], b[0], b[1])


def _class_rows(maps: dict, present: dict, boundaries: dict, cfg: _Config) -> list:
    """Per annotator pair and class of one image: areas, intersection, union and boundary match counts.

    Areas come from one confusion count per pair; boundary matches from the exact distances between
    the two annotators' boundary points of the class.
    """
    from itertools import combinations

    from qa.engine import _kernels_semantic as ks
    from qa.engine.boundary import point_match_counts

    names = sorted(maps)
    pairs = list(combinations(names, 2))
    tol = np.ascontiguousarray(cfg.tolerances, dtype=np.float64)
    nt = len(tol)
    conf = {(a, b): ks._confusion(maps[a], maps[b], cfg.n) for a, b in pairs}
    rows = []
    for c in range(cfg.n):
        for a, b in pairs:
            if not present[a][c] and not present[b][c]:
                continue
            m = conf[(a, b)]
            area_a, area_b, inter = int(m[c].sum()), int(m[:, c].sum()), int(m[c, c])
            points_a = boundaries[a].get(c, _NO_POINTS)
            points_b = boundaries[b].get(c, _NO_POINTS)
            counts_a = point_match_counts(points_a, points_b, tol)
            counts_b = point_match_counts(points_b, points_a, tol)
            rows.append((a, b, c, area_a, area_b, inter, area_a + area_b - inter, int(counts_a[nt]),
                         int(counts_b[nt]), counts_a[:nt].tolist(), counts_b[:nt].tolist()))
    return rows


def _interface_rows(maps: dict, interfaces: dict, cfg: _Config) -> list:
    """Per annotator pair and pair of touching categories of one image: interface lengths, matches and
    displacement, from the exact distances between the two annotators' interface points."""
    from itertools import combinations

    from qa.engine import _kernels_semantic as ks

    names = sorted(maps)
    n = cfg.n
    tol = np.ascontiguousarray(cfg.tolerances, dtype=np.float64)
    nt = len(tol)
    touching = sorted({(min(k // n, k % n), max(k // n, k % n)) for a in names for k in interfaces[a]})
    rows = []
    for i, j in touching:
        c1, c2 = (i, j) if cfg.names[i] <= cfg.names[j] else (j, i)
        points = {a: interfaces[a].get(c1 * n + c2, _NO_POINTS) for a in names}
        for a, b in combinations(names, 2):
            if len(points[a][0]) == 0 and len(points[b][0]) == 0:
                continue
            d2_ab, d2_ba = _nearest_d2_both(points[a], points[b])
            out_a = ks._interface_match(*points[a], d2_ab, maps[b], c1, c2, tol)
            out_b = ks._interface_match(*points[b], d2_ba, maps[a], c1, c2, tol)
            rows.append((a, b, c1, c2, int(out_a[nt]), int(out_b[nt]), out_a[:nt].tolist(), out_b[:nt].tolist(),
                         float(out_a[nt + 1] - out_b[nt + 1]), float(out_a[nt + 2] + out_b[nt + 2]),
                         int(out_a[nt + 3] + out_b[nt + 3])))
    return rows


def semantic_labels(labels: dict, cfg: _Config) -> dict:
    """The labels of an image the semantic comparison reads: annotators whose export labels pixels with
    classes (:data:`SEMANTIC_FORMATS`), panoptic id maps that could be read."""
    return {name: d for name, d in labels.items() if name in cfg.unlabelled and d.comparable}


def semantic_image(key: str, labels: dict, cfg: _Config) -> tuple[list, list]:
    """The class rows and interface rows of one image, from two or more annotators' labels
    (:func:`semantic_labels`)."""
    maps = {name: class_map(d, cfg.unlabelled[name]) for name, d in labels.items()}
    edges = {name: _edge_lists(m, cfg.n) for name, m in maps.items()}
    present = {name: _present(maps[name], edges[name][0], cfg.n) for name in maps}
    class_rows = [(key,) + row for row in _class_rows(maps, present, {a: e[0] for a, e in edges.items()}, cfg)]
    interface_rows = [(key,) + row
                      for row in _interface_rows(maps, {a: e[1] for a, e in edges.items()}, cfg)]
    return class_rows, interface_rows


def _compare_chunk(chunk, cfg: _Config) -> tuple[list, list, list]:
    from qa.engine._decoded import grouped_objects, image_labels

    batch = chunk.load()
    codes = {c: k for k, c in enumerate(cfg.names)}
    grouped = grouped_objects(batch)
    classes, interfaces, compared = [], [], []
    for key in chunk.keys:
        labels = semantic_labels(image_labels(batch, key, codes, cfg.max_pixels, grouped), cfg)
        if len(labels) >= 2:
            c, i = semantic_image(key, labels, cfg)
            classes.extend(c)
            interfaces.extend(i)
            compared.append(sorted(labels))
    return compared, classes, interfaces


class SemanticRows:
    """The semantic comparison's reduce: every chunk's class and interface rows, in image order."""

    def __init__(self, cfg: _Config):
        self.cfg = cfg
        self.class_rows: list = []
        self.interface_rows: list = []
        self.annotators: set = set()
        self.images = 0

    def add(self, compared: list, classes: list, interfaces: list) -> None:
        self.class_rows.extend(classes)
        self.interface_rows.extend(interfaces)
        for names in compared:
            self.annotators.update(names)
        self.images += len(compared)

    def finish(self) -> "SemanticComparison":
        from qa.engine.boundary import tolerance_label

        tolerances = self.cfg.tolerances
        labels = [tolerance_label(t) for t in tolerances]
        classes = _class_frame(self.class_rows, self.cfg.names, labels)
        interfaces = _interface_frame(self.interface_rows, self.cfg.names, labels)
        settings = {"tolerances": list(tolerances), "tolerance_labels": labels, "annotators": sorted(self.annotators),
                    "images": self.images}
        return SemanticComparison(classes=classes, interfaces=interfaces, scores=_scores(classes, tolerances),
                                  settings=settings)


# --- entry point --------------------------------------------------------------------------------------

def compare_semantic(batch: Batch, *, tolerances=(1, 2, 4), workers: int | None = None, progress=None,
                     max_pixels: int | None = None, executor=None) -> SemanticComparison:
    """Compare every pair of annotators' class maps on every image they both label.

    Parameters
    ----------
    batch : Batch
        Aligned exports; only annotators whose export is a label map, binary masks or COCO panoptic
        (:data:`SEMANTIC_FORMATS`) take part.
    tolerances : sequence of float, pixels, default (1, 2, 4)
        Boundary tolerances (class boundary F, interface matches).
    workers : int, optional
        Worker processes; default one per available CPU (batches under 8 images: none). ``1`` runs
        in this process.
    executor : optional
        The run's executor (:func:`qa.engine._executors.open_executor`); when given, ``workers`` is not used.
    progress : callable, optional
        ``progress("semantic", images_done, images_total)``.
    max_pixels : int, optional
        Largest panoptic PNG decoded (default: the model's limit).

    Returns
    -------
    SemanticComparison

    Raises
    ------
    ConfigError
        On a tolerance that is not positive.
    InputError
        When a panoptic PNG can no longer be read, or its size differs from the image's.

    Notes
    -----
    Each class map is decoded once per image and reused for every annotator pair. Class IoU is
    ``|A ∩ B| / |A ∪ B|`` over the pixels both maps label; for one image and two binary masks it equals
    pycocotools' ``maskUtils.iou`` of the two masks (tested on BU-BIL). Pooled figures (the scores and
    :meth:`SemanticComparison.class_table`) add the counts of every image before dividing, as the
    Cityscapes and Pascal VOC evaluations accumulate their confusion matrix over the dataset. Boundary
    F follows the engine's boundary convention (inner 4-neighbour boundaries, the image border is not
    boundary, both empty is 1).

    References
    ----------
    M. Cordts et al. The Cityscapes Dataset for Semantic Urban Scene Understanding. CVPR 2016.
    doi:10.1109/CVPR.2016.350; ``cityscapesScripts/evaluation/evalPixelLevelSemanticLabeling.py``.
    F. Perazzi et al. A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation.
    CVPR 2016. doi:10.1109/CVPR.2016.85 (boundary F).

    Examples
    --------
    >>> result = compare_semantic(qa.load(manifest="batch_labelmap.toml"), workers=1)  # doctest: +SKIP
    >>> result.class_table()  # doctest: +SKIP
    """
    from qa.engine import _pool
    from qa.engine.chunks import chunks_of

    cfg = semantic_config(batch, tolerances=tolerances, max_pixels=max_pixels)
    keys = [key for key in batch.images
            if sum(1 for name in batch.coverage.get(key, ()) if name in cfg.unlabelled) >= 2]
    total = len(keys)
    size, workers = _pool.plan(total, workers, executor)
    if progress:
        progress("semantic", 0, total)
    rows, done = SemanticRows(cfg), 0
    for part in _pool.run_chunks(_compare_chunk, chunks_of(batch, _pool.chunks(keys, size)), cfg, workers, executor):
        rows.add(*part)
        done += len(part[0])
        if progress:
            progress("semantic", done, total)
    return rows.finish()


# --- tables -------------------------------------------------------------------------------------------

def _f(matched_a, n_a, matched_b, n_b):
    """Boundary F, vectorised, with the engine's conventions (both empty 1, one empty 0)."""
    matched_a, n_a, matched_b, n_b = (np.asarray(v, dtype=np.float64) for v in (matched_a, n_a, matched_b, n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = matched_a / n_a
        r = matched_b / n_b
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    f = np.where((n_a == 0) | (n_b == 0), 0.0, f)
    return np.where((n_a == 0) & (n_b == 0), 1.0, f)


def _class_frame(rows, names, labels):
    import pandas as pd

    columns = {"image": [], "annotator_a": [], "annotator_b": [], "category": [], "area_a": [], "area_b": [],
               "intersection": [], "union": [], "boundary_a_n": [], "boundary_b_n": []}
    matched_a = [[] for _ in labels]
    matched_b = [[] for _ in labels]
    for image, a, b, c, area_a, area_b, inter, union, n_a, n_b, m_a, m_b in rows:
        for key, value in zip(columns, (image, a, b, names[c], area_a, area_b, inter, union, n_a, n_b)):
            columns[key].append(value)
        for t in range(len(labels)):
            matched_a[t].append(m_a[t])
            matched_b[t].append(m_b[t])
    df = pd.DataFrame(columns)
    for key in ("area_a", "area_b", "intersection", "union", "boundary_a_n", "boundary_b_n"):
        df[key] = df[key].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        df.insert(8, "iou", np.where(df["union"] > 0, df["intersection"] / df["union"].where(df["union"] > 0, 1),
                                     np.nan))
    for t, label in enumerate(labels):
        df[f"boundary_a_matched_{label}"] = np.asarray(matched_a[t], dtype=np.int64)
        df[f"boundary_b_matched_{label}"] = np.asarray(matched_b[t], dtype=np.int64)
    for label in labels:
        df[f"boundary_f_{label}"] = _f(df[f"boundary_a_matched_{label}"], df["boundary_a_n"],
                                       df[f"boundary_b_matched_{label}"], df["boundary_b_n"])
    return df


def _interface_frame(rows, names, labels):
    import pandas as pd

    columns = {"image": [], "annotator_a": [], "annotator_b": [], "category_a": [], "category_b": [],
               "length_a": [], "length_b": [], "signed_sum": [], "abs_sum": [], "signed_n": []}
    matched_a = [[] for _ in labels]
    matched_b = [[] for _ in labels]
    for image, a, b, c1, c2, n_a, n_b, m_a, m_b, signed, absolute, n_signed in rows:
        for key, value in zip(columns, (image, a, b, names[c1], names[c2], n_a, n_b, signed, absolute, n_signed)):
            columns[key].append(value)
        for t in range(len(labels)):
            matched_a[t].append(m_a[t])
            matched_b[t].append(m_b[t])
    df = pd.DataFrame(columns)
    for key in ("length_a", "length_b", "signed_n"):
        df[key] = df[key].astype(np.int64)
    for key in ("signed_sum", "abs_sum"):
        df[key] = df[key].astype(np.float64)
    for t, label in enumerate(labels):
        df[f"matched_a_{label}"] = np.asarray(matched_a[t], dtype=np.int64)
        df[f"matched_b_{label}"] = np.asarray(matched_b[t], dtype=np.int64)
    total = (df["length_a"] + df["length_b"]).to_numpy(np.float64)
    for label in labels:
        df[f"boundary_f_{label}"] = _f(df[f"matched_a_{label}"], df["length_a"], df[f"matched_b_{label}"],
                                       df["length_b"])
        with np.errstate(invalid="ignore", divide="ignore"):
            df[f"disagree_{label}_share"] = 1.0 - (df[f"matched_a_{label}"] + df[f"matched_b_{label}"]) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        n_signed = df["signed_n"].to_numpy(np.float64)
        df["displacement_px_mean"] = np.where(n_signed > 0, df["signed_sum"] / n_signed, np.nan)
        df["abs_displacement_px_mean"] = np.where(n_signed > 0, df["abs_sum"] / n_signed, np.nan)
    return df


def _pooled(classes, keys, tolerances):
    """Class figures pooled over the rows of each group (counts added before dividing)."""
    import pandas as pd

    from qa.engine.boundary import tolerance_label

    labels = [tolerance_label(t) for t in tolerances]
    count_columns = ["intersection", "union", "boundary_a_n", "boundary_b_n"] + \
        [f"boundary_{s}_matched_{label}" for label in labels for s in ("a", "b")]
    if len(classes) == 0:
        return pd.DataFrame(columns=[*keys, "images", "iou", *[f"boundary_f_{label}" for label in labels]])
    grouped = classes.groupby(keys, sort=True)
    sums = grouped[count_columns].sum()
    out = pd.DataFrame(index=sums.index)
    out["images"] = grouped.size()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["iou"] = np.where(sums["union"] > 0, sums["intersection"] / sums["union"].where(sums["union"] > 0, 1),
                              np.nan)
    for label in labels:
        out[f"boundary_f_{label}"] = _f(sums[f"boundary_a_matched_{label}"], sums["boundary_a_n"],
                                        sums[f"boundary_b_matched_{label}"], sums["boundary_b_n"])
    return out.reset_index()


def _scores(classes, tolerances):
    import pandas as pd

    from qa.engine.boundary import tolerance_label

    labels = [tolerance_label(t) for t in tolerances]
    records = []
    per_category = _pooled(classes, ["category"], tolerances)
    for row in per_category.itertuples(index=False):
        d = row._asdict()
        records.append(("category", d["category"], "class_iou", d["iou"], d["images"]))
        for label in labels:
            records.append(("category", d["category"], f"class_boundary_f_{label}", d[f"boundary_f_{label}"],
                            d["images"]))
    per_pair = _pooled(classes, ["annotator_a", "annotator_b", "category"], tolerances)
    for row in per_pair.itertuples(index=False):
        d = row._asdict()
        key = f"{d['annotator_a']}|{d['annotator_b']}|{d['category']}"
        records.append(("annotator_pair_category", key, "class_iou", d["iou"], d["images"]))
        for label in labels:
            records.append(("annotator_pair_category", key, f"class_boundary_f_{label}", d[f"boundary_f_{label}"],
                            d["images"]))
    if len(per_pair):
        for (a, b), group in per_pair.groupby(["annotator_a", "annotator_b"], sort=True):
            values = group["iou"].dropna()
            records.append(("annotator_pair", f"{a}|{b}", "class_iou_mean",
                            float(values.mean()) if len(values) else math.nan, len(values)))
    if len(per_category):
        values = per_category["iou"].dropna()
        records.append(("batch", "", "class_iou_mean", float(values.mean()) if len(values) else math.nan,
                        len(values)))
    scores = pd.DataFrame.from_records(records, columns=["scope", "key", "metric", "value", "n"])
    scores["value"] = scores["value"].astype(np.float64)
    scores["n"] = scores["n"].astype(np.int64)
    return scores


# --- connected components as instances ----------------------------------------------------------------

def components_as_instances(batch: Batch, *, connectivity: int = 8) -> Batch:
    """A copy of the batch whose label-map thing classes are split into connected components.

    Label maps (and binary masks) load as one object per class and image. For instance matching, each
    object of a thing category (``isthing``; ``car``, ``person``, a binary mask's foreground) becomes one
    object per connected component; stuff classes, void regions and every other format are kept as
    they are. The inputs are not modified.

    Parameters
    ----------
    batch : Batch
    connectivity : {4, 8}, default 8
        Pixel neighbourhood of a component (8: diagonal neighbours join, as a drawn outline would).

    Returns
    -------
    Batch
        New exports for the label-map annotators; a component keeps its class's ``source`` file and has
        ``source.id`` ``"<class id>#<k>"`` (``k`` from 1, in raster order of the components' first
        pixels), ``source.section`` ``"components"`` and ``attributes["component"] = k``.

    Raises
    ------
    ConfigError
        When ``connectivity`` is not 4 or 8.

    Examples
    --------
    >>> from qa.model import Batch, Category, Export, Image, Object, Source
    >>> from qa.engine._masks import mask_to_rle
    >>> m = np.zeros((4, 6), np.uint8); m[:2, :2] = 1; m[2:, 4:] = 1
    >>> obj = Object("a", "im", "car", "rle", Source("a/im.png", None, 8, "classes"), rle=mask_to_rle(m))
    >>> export = Export("a", Path("a"), "labelmap", {"im": Image("im", "im.png", 6, 4)},
    ...                 {"car": Category("car", True)}, [obj])
    >>> batch = Batch(["a"], {"a": export}, export.images, export.categories, {"im": ("a",)})
    >>> [(o.source.id, o.area) for o in components_as_instances(batch).exports["a"].objects]
    [('8#1', 4.0), ('8#2', 4.0)]
    """
    from dataclasses import replace

    from qa.errors import ConfigError

    if connectivity not in (4, 8):
        raise ConfigError(f"connectivity must be 4 or 8, got {connectivity}")
    exports = {}
    for name, export in batch.exports.items():
        if export.format not in ("labelmap", "binary_masks"):
            exports[name] = export
            continue
        objects = []
        for obj in export.objects:
            category = batch.categories.get(obj.category) or export.categories.get(obj.category)
            if obj.kind != "rle" or obj.iscrowd or category is None or not category.isthing:
                objects.append(obj)
                continue
            objects.extend(_components(obj, connectivity))
        exports[name] = replace(export, objects=objects)
    return replace(batch, exports=exports)


def _components(obj, connectivity: int) -> list:
    from dataclasses import replace

    from pycocotools import mask as mask_utils
    from scipy import ndimage

    from qa.engine import _kernels_semantic as ks
    from qa.engine._masks import decode_crop
    from qa.model import Source

    height, width = (int(v) for v in obj.rle["size"])
    crop, (x0, y0) = decode_crop(obj.rle)
    if crop.size == 0:
        return [obj]
    structure = np.ones((3, 3), bool) if connectivity == 8 else None
    labels, _count = ndimage.label(crop, structure=structure)
    out = []
    for k, window in enumerate(ndimage.find_objects(labels), start=1):
        part = np.ascontiguousarray(labels[window] == k).view(np.uint8)
        px, py = x0 + window[1].start, y0 + window[0].start
        runs = ks._crop_runs(part, px, py, height, width)
        rle = mask_utils.frPyObjects({"counts": runs.tolist(), "size": [height, width]}, height, width)
        area = int(part.sum())
        source = Source(obj.source.file, obj.source.index, f"{obj.source.id}#{k}", "components")
        out.append(replace(obj, rle=rle, area=float(area), source=source,
                           bbox=(float(px), float(py), float(part.shape[1]), float(part.shape[0])),
                           attributes={**obj.attributes, "component": k}))
    return out


def with_instances(batch: Batch, mode: str) -> Batch:
    """The batch with label maps as ``mode`` says (:data:`INSTANCE_MODES`): ``"classes"`` returns it as
    loaded, ``"components"`` splits thing classes (:func:`components_as_instances`).

    Raises
    ------
    ConfigError
        On another mode.
    """
    from qa.errors import ConfigError

    if mode == "classes":
        return batch
    if mode == "components":
        return components_as_instances(batch)
    raise ConfigError(f"instances must be one of {', '.join(INSTANCE_MODES)}, got {mode!r}")
