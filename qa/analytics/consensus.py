"""The consensus of three or more annotators, and each annotator scored against it.

:func:`build_consensus` works image by image on a compared batch:

1. **Clusters.** The objects of the annotators who cover the image are grouped into clusters of at most
   one object per annotator, from the pairwise one-to-one matches of the comparison
   (:func:`qa.engine.match.cluster_objects`: a greedy agglomeration, best IoU first, with average
   linkage on the match graph). Every non-crowd object lies in exactly one cluster.
2. **Quorum.** A cluster becomes a consensus object when enough of the image's annotators drew it: by
   default a strict majority of the annotators who cover the image (3 of 4, 2 of 3), or a number or a
   share of them.
3. **Consensus mask.** Inside the cluster's window (the union of its members' bboxes), a pixel vote
   (:func:`qa.engine.consensus.majority_vote`): a pixel is in the consensus when more than half of the
   annotators who cover the image mark it (annotators without an object in the cluster vote
   background), ties background by default; or STAPLE over the members
   (:func:`qa.engine.consensus.staple`). The category is the members' most frequent one.
4. **Scores.** Each annotator against each consensus object on the images it covers: mask IoU, boundary
   F at each tolerance, boundary IoU and signed offset (:func:`qa.engine.boundary.boundary_pair`, the
   annotator as ``a`` and the consensus as ``b``), sensitivity and specificity (within the cluster's
   window); *missing* when it has no object in a consensus cluster, *extra* for each of its objects in a
   cluster that did not reach the quorum.

The result holds DataFrames per cluster, per object and per annotator, the long scores rows (scope
``annotator_consensus``) and the consensus masks, which :meth:`Consensus.to_coco` writes as COCO
instances.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.errors import ConfigError, InputError
from qa.model import Batch, Limits

METHODS = ("vote", "staple")
"""Ways to make a consensus mask from a cluster."""
STATUS = ("consensus", "below_quorum", "empty")
"""Cluster outcomes: a consensus object; fewer members than the quorum; the vote left no pixel."""
OBJECT_STATUS = ("matched", "missing", "extra")
"""Per annotator and cluster: its object in a consensus cluster; no object in one; its object in a
cluster below the quorum (or whose vote was empty)."""


# --- result -------------------------------------------------------------------------------------------

class Consensus:
    """What :func:`build_consensus` produced.

    Attributes
    ----------
    clusters : pandas.DataFrame
        One row per cluster: ``image``, ``cluster`` (id in the batch), ``status`` (:data:`STATUS`),
        ``size`` (members), ``voters`` (annotators covering the image), ``quorum`` (members needed),
        ``members`` (annotator names joined by ``|``), ``category`` and ``category_agreement`` (share of
        members with that category), ``area``, ``x``, ``y``, ``w``, ``h`` (the consensus mask's pixels
        and tight bbox; 0 unless a consensus object) and ``iou_mean`` (mean IoU of the members with the
        consensus).
    objects : pandas.DataFrame
        One row per annotator and consensus cluster of an image it covers (``matched`` or ``missing``)
        and per object in a cluster without consensus (``extra``): ``image``, ``cluster``,
        ``annotator``, ``status``, ``object_index``, ``category``, ``consensus_category``,
        ``label_disagreement``, ``cluster_size``, ``voters``, ``tp``, ``fp``, ``fn`` (pixels, in the
        cluster's window), ``tn`` (in the members' union bbox), ``iou``, ``sensitivity``,
        ``specificity``, ``boundary_f_<t>`` per tolerance, ``boundary_iou``, ``signed_offset_px``,
        ``file``, ``source_index``, ``source_id``. Read like ``clusters`` when written to a folder.
    annotators : pandas.DataFrame
        One row per annotator: ``images``, ``consensus_objects``, ``matched``, ``missing``, ``extra``,
        ``label_disagreements``, ``missing_share``, ``extra_share`` and the means over its matched
        objects (``mask_iou_mean``, ``sensitivity_mean``, ``specificity_mean``,
        ``boundary_f_<t>_mean``, ``boundary_iou_mean``, ``signed_offset_px_mean``).
    scores : pandas.DataFrame
        The same figures as long rows ``scope="annotator_consensus", key=<annotator>, metric, value, n``.
    masks : dict of int to dict
        The consensus mask of each consensus cluster, as compressed COCO RLE (a new dict read from the
        parts at each access when written to a folder).
    settings : dict
        Method, quorum, ties, tolerances, IoU threshold.
    summary : dict
        Images, clusters and how many became consensus objects.
    images : list of dict
        The images the consensus was computed on (``key``, ``file_name``, ``width``, ``height``).
    categories : list of dict
        The batch's categories (``name``, ``supercategory``, ``isthing``), for the COCO export.
    owner : object or None
        What keeps the folder of the tables' parts alive (:func:`qa.parts.run_folder`), None when the
        tables are in memory.
    """

    __slots__ = ("_clusters", "_objects", "_masks", "annotators", "scores", "settings", "summary", "images",
                 "categories", "owner")

    def __init__(self, clusters, objects, annotators, scores, masks=None, settings=None, summary=None,
                 images=None, categories=None, *, owner=None):
        self._clusters = clusters    # a DataFrame, or qa.parts.Parts on disk
        self._objects = objects      # the same
        self._masks = {} if masks is None else masks  # a dict, or Parts of cluster, height, width, counts
        self.annotators = annotators
        self.scores = scores
        self.settings = {} if settings is None else settings
        self.summary = {} if summary is None else summary
        self.images = [] if images is None else images
        self.categories = [] if categories is None else categories
        self.owner = owner

    @property
    def clusters(self):
        return _read_table(self._clusters) if _on_disk(self._clusters) else self._clusters

    @clusters.setter
    def clusters(self, value):
        self._clusters = value

    @property
    def objects(self):
        return _read_table(self._objects) if _on_disk(self._objects) else self._objects

    @objects.setter
    def objects(self, value):
        self._objects = value

    @property
    def masks(self) -> dict:
        return _read_masks(self._masks) if _on_disk(self._masks) else self._masks

    @masks.setter
    def masks(self, value):
        self._masks = value

    def parts(self, table: str):
        """The :class:`qa.parts.Parts` of ``table`` (``"clusters"``, ``"objects"`` or ``"masks"``) when
        it is on disk, to read a few columns or rows of it; else None."""
        value = {"clusters": self._clusters, "objects": self._objects, "masks": self._masks}[table]
        return value if _on_disk(value) else None

    def __repr__(self) -> str:
        where = "on disk" if _on_disk(self._objects) else "in memory"
        return (f"Consensus({self.summary.get('clusters', 0)} clusters, "
                f"{self.summary.get('consensus_objects', 0)} consensus objects, tables {where})")

    def to_coco(self) -> dict:
        """The consensus objects as a COCO instances document.

        ``images`` are the images the consensus was computed on (covered by two or more annotators),
        with their file names, so the file aligns with the annotators' exports; ``categories`` are the
        batch's; each annotation has a compressed RLE ``segmentation``, ``area``, ``bbox``, ``iscrowd``
        0 and ``attributes``: ``cluster`` (the id in :attr:`clusters`), ``cluster_size``, ``voters``, ``agreement`` (``cluster_size / voters``),
        ``iou_mean``, ``category_agreement``, ``members`` and ``method``.
        """
        from qa import __version__

        image_ids = {img["key"]: k + 1 for k, img in enumerate(self.images)}
        category_ids = {c["name"]: k + 1 for k, c in enumerate(self.categories)}
        annotations = []
        masks = self.masks
        for row in self.clusters.itertuples(index=False):
            if row.status != "consensus":
                continue
            rle = masks[int(row.cluster)]
            counts = rle["counts"]
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_ids[row.image],
                "category_id": category_ids[row.category],
                "segmentation": {"size": [int(v) for v in rle["size"]],
                                 "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts},
                "area": int(row.area),
                "bbox": [float(row.x), float(row.y), float(row.w), float(row.h)],
                "iscrowd": 0,
                "attributes": {
                    "cluster": int(row.cluster), "cluster_size": int(row.size), "voters": int(row.voters),
                    "agreement": round(int(row.size) / int(row.voters), 6),
                    "iou_mean": round(float(row.iou_mean), 6),
                    "category_agreement": round(float(row.category_agreement), 6),
                    "members": row.members, "method": self.settings["method"],
                },
            })
        method = self.settings["method"]
        return {
            "info": {"description": f"consensus of {', '.join(self.summary['annotators'])} "
                                    f"({'pixel vote' if method == 'vote' else 'STAPLE'}, quorum "
                                    f"{self.settings['quorum']})",
                     "version": __version__},
            "images": [{"id": image_ids[img["key"]], "file_name": img["file_name"], "width": img["width"],
                        "height": img["height"]} for img in self.images],
            "categories": [{"id": category_ids[c["name"]], "name": c["name"],
                            "supercategory": c["supercategory"], "isthing": int(c["isthing"])}
                           for c in self.categories],
            "annotations": annotations,
        }

    def write_coco(self, path) -> Path:
        """Write :meth:`to_coco` as JSON to ``path`` (parents created); return the path.

        Raises
        ------
        InputError
            When the file cannot be written.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_coco()), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot write the consensus: {exc.strerror or exc}", path=path) from None
        return path


# --- settings -----------------------------------------------------------------------------------------

def quorum_count(quorum, voters: int) -> int:
    """Members a cluster needs to become a consensus object, on an image covered by ``voters`` annotators.

    Parameters
    ----------
    quorum : None, "majority", int or float
        None or ``"majority"``: more than half of the voters; an int ``k >= 1``: at least ``k``
        annotators; a float in (0, 1]: at least that share of the voters (rounded up).
    voters : int
        Annotators covering the image.

    Raises
    ------
    ConfigError
        On any other value.

    Examples
    --------
    >>> [quorum_count(None, n) for n in (2, 3, 4, 5)]
    [2, 2, 3, 3]
    >>> quorum_count(2, 4), quorum_count(0.5, 4), quorum_count(0.6, 4)
    (2, 2, 3)
    """
    if quorum is None or quorum == "majority":
        return voters // 2 + 1
    if isinstance(quorum, (bool, np.bool_)) or not isinstance(quorum, (int, float, np.integer, np.floating)):
        raise ConfigError(f"quorum must be 'majority', a number of annotators or a share in (0, 1], got {quorum!r}")
    if isinstance(quorum, (int, np.integer)):
        if quorum < 1:
            raise ConfigError(f"quorum must be at least 1 annotator, got {quorum}")
        return int(quorum)
    if not 0.0 < float(quorum) <= 1.0:
        raise ConfigError(f"a quorum share must lie in (0, 1], got {quorum}")
    return max(1, math.ceil(float(quorum) * voters - 1e-9))


def parse_quorum(text: str):
    """A quorum from the command line: ``majority``, an integer, or a share such as ``0.75`` or ``75%``.

    Examples
    --------
    >>> parse_quorum("majority"), parse_quorum("3"), parse_quorum("0.75"), parse_quorum("50%")
    ('majority', 3, 0.75, 0.5)
    """
    text = str(text).strip().lower()
    if text == "majority":
        return "majority"
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        if text.isdigit():
            return int(text)
        return float(text)
    except ValueError:
        raise ConfigError(f"--quorum {text!r} is not 'majority', a number of annotators or a share "
                          "(0.75 or 75%)") from None


# --- per image (in a worker) --------------------------------------------------------------------------

@dataclass(slots=True)
class _Settings:
    """What each worker needs besides its images: the consensus settings and the category names."""

    method: str
    quorum: object
    ties: str
    tolerances: tuple
    max_pixels: int
    categories: list        # the comparison's category codes: code -> name
    category_order: dict    # name -> position in the batch, for the category vote's ties


def take_crops(parts: list):
    """One :class:`qa.engine._masks.ObjectCrops` of several ``(crops, indices)`` parts: the crops
    ``indices`` of each part, one part after the other."""
    from qa.engine._masks import ObjectCrops

    shape = parts[0][0].shape if parts else (0, 0)
    boxes, areas, bufs, sizes = [], [], [], []
    for c, k in parts:
        boxes.append(c.boxes[k])
        areas.append(c.areas[k])
        sizes.append(c.starts[k + 1] - c.starts[k])
        if len(k) == len(c):  # every crop: the buffer as it is
            bufs.append(c.buf)
        else:
            bufs.extend(c.buf[c.starts[i]:c.starts[i + 1]] for i in k.tolist())
    boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int64)
    starts = np.zeros(len(boxes) + 1, np.int64)
    if sizes:
        np.cumsum(np.concatenate(sizes), out=starts[1:])
    return ObjectCrops(boxes, np.concatenate(areas) if areas else np.zeros(0, np.int64),
                       np.concatenate(bufs) if bufs else np.zeros(0, np.uint8), starts, shape)


def _members(decoded: dict):
    """The non-crowd objects of every voter of one image (their :class:`qa.engine._decoded.Decoded`
    labels, names sorted): tight crops in one ObjectCrops, their outlines, ``(annotator, position in the
    export)`` and category code of each, and their sources."""
    from qa.engine.boundary import Outlines

    parts, outlines, owners, codes, sources = [], [], [], [], {}
    for name, d in decoded.items():
        keep = np.flatnonzero(~d.crowd)
        parts.append((d.crops(), keep))
        outlines.append(d.outlines().take(keep))
        owners.extend((name, int(d.indices[k])) for k in keep.tolist())
        codes.extend(int(d.categories[k]) for k in keep.tolist())
        for k in keep.tolist():
            sources[(name, int(d.indices[k]))] = d.objects[k].source
    band = outlines[0].band_width if outlines else 2
    return take_crops(parts), Outlines.concatenate(outlines, band), owners, codes, sources


def edges_of(results: list, pair_names: list) -> list:
    """An image's matched pairs from the comparison's results of the image
    (:func:`qa.engine.compare.compare_image`): ``[(annotator_a, index_a, annotator_b, index_b, iou)]`` in
    the order of the comparison's rows."""
    from qa.engine.match import MATCHED

    out = []
    for code, res in results:
        a, b = pair_names[code]
        rows = res["rows"]
        for r in np.flatnonzero(rows["status"] == MATCHED).tolist():
            out.append((a, int(rows["index_a"][r]), b, int(rows["index_b"][r]), float(rows["iou"][r])))
    return out


def consensus_image(key: str, decoded: dict, edges: list, settings: _Settings) -> dict:
    """The consensus of one image from its voters' decoded labels (the comparable
    :class:`qa.engine._decoded.Decoded` of two or more annotators, names sorted) and the comparison's
    matched pairs of the image: ``{image, voters, clusters, rows, masks}`` with cluster ids counted from 0."""
    crops, outlines, owners, codes, sources = _members(decoded)
    voters = list(decoded)
    image = _Image(key, voters, crops, owners, [settings.categories[c] for c in codes], edges, settings,
                   outlines=outlines)
    for row in image.rows:
        index = row["object_index"]
        source = None if index is None else sources[(row["annotator"], index)]
        row["file"] = None if source is None else source.file
        row["source_index"] = None if source is None else source.index
        row["source_id"] = None if source is None or source.id is None else str(source.id)
    return {"image": key, "voters": voters, "clusters": image.clusters, "rows": image.rows, "masks": image.masks}


def _consensus_chunk(item, settings: _Settings) -> list[dict]:
    """The consensus of each image of a chunk: ``item`` is ``(chunk, {image: matched pairs})``."""
    from qa.engine._decoded import grouped_objects, image_labels
    from qa.engine.compare import comparable

    chunk, edges = item
    batch = chunk.load()
    codes = {c: k for k, c in enumerate(settings.categories)}
    grouped = grouped_objects(batch)
    out = []
    for key in chunk.keys:
        decoded = comparable(image_labels(batch, key, codes, settings.max_pixels, grouped))
        if len(decoded) >= 2:
            out.append(consensus_image(key, decoded, edges.get(key, []), settings))
    return out


def _union_box(boxes) -> tuple[int, int, int, int]:
    """The union of the non-empty boxes ``(x0, y0, x1, y1)`` (a few, as lists of ints), zeros when none."""
    keep = [b for b in boxes if b[2] > b[0] and b[3] > b[1]]
    if not keep:
        return 0, 0, 0, 0
    return (min(b[0] for b in keep), min(b[1] for b in keep), max(b[2] for b in keep), max(b[3] for b in keep))


def _category_vote(categories: list[str], order: dict[str, int]) -> tuple[str, float]:
    """The most frequent category; ties go to the one listed first in the batch."""
    counts: dict[str, int] = {}
    for c in categories:
        counts[c] = counts.get(c, 0) + 1
    best = min(counts, key=lambda c: (-counts[c], order.get(c, len(order)), c))
    return best, counts[best] / len(categories)


class _Image:
    """The consensus of one image: its clusters, masks and per-annotator rows.

    Three steps: each cluster's record (members, category vote, quorum, window); the masks of the
    clusters that reached the quorum (for the pixel vote, all of the image's in one kernel call,
    :func:`qa.engine._kernels_consensus._vote_clusters`); then, cluster by cluster in order, the rows, and
    the boundary figures of every matched member against its consensus outline in one call.
    """

    def __init__(self, key, voters, crops, owners, categories, edges, settings: _Settings, outlines=None):
        from qa.engine.match import cluster_objects

        self.key = key
        self.clusters: list[dict] = []
        self.rows: list[dict] = []
        self.masks: dict[int, dict] = {}
        code = {name: k for k, name in enumerate(voters)}
        local = {owner: k for k, owner in enumerate(owners)}
        pairs, ious = [], []
        for a, ia, b, ib, iou in edges:
            if (a, ia) in local and (b, ib) in local:
                pairs.append((local[(a, ia)], local[(b, ib)]))
                ious.append(iou)
        labels = cluster_objects([code[a] for a, _ in owners], np.asarray(pairs, np.int64).reshape(-1, 2),
                                 np.asarray(ious, np.float64))
        n_clusters = int(labels.max()) + 1 if len(labels) else 0
        # members of every cluster, in cluster order (a stable sort keeps each cluster's in position order)
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
        boxes = crops.boxes.tolist()
        plans = [self._plan(voters, boxes, owners, categories, order[bounds[c]:bounds[c + 1]], c, settings)
                 for c in range(n_clusters)]
        voted = self._vote(crops, [p for p in plans if p["vote"]], len(voters), settings)
        self._scored: list[tuple[dict, int, int]] = []  # (row, member position, consensus position)
        consensus: list = []                             # (tight box, tight mask) of each consensus object
        for plan in plans:
            self._finish(plan, voted.get(plan["cid"]), voters, owners, crops.shape, consensus)
        self._score_boundaries(crops, settings.tolerances, outlines, consensus)

    def _plan(self, voters, boxes, owners, categories, members, cid, settings: _Settings) -> dict:
        """A cluster's record, and whether its mask is voted (the quorum reached, a window not empty)."""
        n_voters = len(voters)
        names = [owners[m][0] for m in members]
        drawn = {owners[m][0]: categories[m] for m in members}
        category, cat_share = _category_vote([drawn[n] for n in names], settings.category_order)
        needed = quorum_count(settings.quorum, n_voters)
        box = _union_box([boxes[m] for m in members.tolist()])
        record = {"image": self.key, "cluster": cid, "status": "below_quorum", "size": len(members),
                  "voters": n_voters, "quorum": needed, "members": "|".join(sorted(names)),
                  "category": category, "category_agreement": cat_share, "area": 0, "x": 0, "y": 0, "w": 0,
                  "h": 0, "iou_mean": math.nan}
        self.clusters.append(record)
        vote = False
        if len(members) >= needed:
            record["status"] = "empty"
            vote = box[2] > box[0] and box[3] > box[1]
        return {"cid": cid, "members": members, "names": names, "drawn": drawn, "category": category,
                "record": record, "box": box, "vote": vote}

    @staticmethod
    def _vote(crops, plans: list, n_voters: int, settings: _Settings) -> dict:
        """``{cluster: (tight box, area, tight mask, confusion counts of each member)}`` of the clusters
        to vote on; a cluster whose vote left no pixel has area 0."""
        if not plans:
            return {}
        if settings.method == "vote":
            from qa.engine._kernels_consensus import _vote_clusters

            ptr = np.zeros(len(plans) + 1, np.int64)
            np.cumsum([len(p["members"]) for p in plans], out=ptr[1:])
            members = np.concatenate([p["members"] for p in plans]).astype(np.int64)
            windows = np.asarray([p["box"] for p in plans], dtype=np.int64).reshape(-1, 4)
            tight, area, buf, starts, counts = _vote_clusters(crops.buf, crops.starts, crops.boxes, ptr, members,
                                                              windows, int(n_voters), settings.ties == "foreground")
            out = {}
            for k, p in enumerate(plans):
                x0, y0, x1, y1 = (int(v) for v in tight[k])
                mask = buf[starts[k]:starts[k + 1]].reshape(y1 - y0, x1 - x0)
                out[p["cid"]] = ((x0, y0, x1, y1), int(area[k]), mask, counts[ptr[k]:ptr[k + 1]])
            return out
        from qa.engine.consensus import confusion_counts, staple, window_stack

        out = {}
        for p in plans:
            stack = window_stack(crops, p["members"], p["box"])
            mask = staple(stack).mask
            counts = np.asarray([confusion_counts(layer, mask) for layer in stack], dtype=np.int64)
            x0, y0 = p["box"][:2]
            if not mask.any():
                out[p["cid"]] = ((0, 0, 0, 0), 0, None, counts)
                continue
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            tx0, ty0, tx1, ty1 = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
            out[p["cid"]] = ((x0 + tx0, y0 + ty0, x0 + tx1, y0 + ty1), int(np.count_nonzero(mask)),
                             np.ascontiguousarray(mask[ty0:ty1, tx0:tx1]), counts)
        return out

    def _finish(self, plan: dict, voted, voters, owners, shape, consensus: list) -> None:
        """The cluster's rows: its members as extra, or every voter against its consensus object."""
        from qa.formats._crop_rle import crop_to_coco_rle

        cid, members, names, drawn = plan["cid"], plan["members"], plan["names"], plan["drawn"]
        category, record = plan["category"], plan["record"]
        if voted is None or voted[1] == 0:
            for m, name in zip(members, names):
                self.rows.append(self._row(cid, name, "extra", owners[m][1], drawn[name], category, record))
            return
        (x0, y0, x1, y1), area, tight, counts = voted
        height, width = shape
        record["status"] = "consensus"
        record.update(area=area, x=x0, y=y0, w=x1 - x0, h=y1 - y0)
        self.masks[cid] = crop_to_coco_rle(tight, x0, y0, height, width)
        consensus.append(((x0, y0, x1, y1), tight))
        by_name = {name: k for k, name in enumerate(names)}
        ious = []
        for name in voters:
            if name not in by_name:
                self.rows.append(self._row(cid, name, "missing", None, None, category, record))
                continue
            k = by_name[name]
            row = self._row(cid, name, "matched", owners[members[k]][1], drawn[name], category, record)
            row.update(_pixel_scores(*(int(v) for v in counts[k])))
            self._scored.append((row, int(members[k]), len(consensus) - 1))
            ious.append(row["iou"])
            self.rows.append(row)
        record["iou_mean"] = float(np.mean(ious))

    def _score_boundaries(self, crops, tolerances, members, consensus: list) -> None:
        """Every boundary figure of the matched rows, from each object's outline and each consensus
        outline (one pass over each consensus mask's tight crop), in one call for the image."""
        from qa.engine._masks import ObjectCrops
        from qa.engine.boundary import object_outlines, outline_columns

        if not self._scored:
            return
        if members is None:
            members = object_outlines(crops)
        boxes = np.asarray([b for b, _ in consensus], dtype=np.int64).reshape(-1, 4)
        sizes = np.asarray([m.size for _, m in consensus], dtype=np.int64)
        starts = np.zeros(len(consensus) + 1, np.int64)
        np.cumsum(sizes, out=starts[1:])
        buf = np.concatenate([m.reshape(-1) for _, m in consensus]).astype(np.uint8, copy=False)
        outlines = object_outlines(ObjectCrops(boxes, sizes, buf, starts, crops.shape),
                                   band_width=members.band_width)
        index_a = np.array([m for _, m, _ in self._scored], dtype=np.int64)
        index_b = np.array([c for _, _, c in self._scored], dtype=np.int64)
        # the rows read boundary F, boundary IoU and the signed offset: no surface statistics
        columns = outline_columns(members, outlines, index_a, index_b, tolerances=tolerances, surfaces=False)
        labels = [f"boundary_f_{_label(t)}" for t in tolerances]
        named = [(label, columns[label].tolist()) for label in labels]
        named += [("boundary_iou", columns["boundary_iou"].tolist()),
                  ("signed_offset_px", columns["signed_offset"].tolist())]
        for r, (row, _, _) in enumerate(self._scored):
            for name, values in named:
                row[name] = values[r]

    def _row(self, cid, name, status, index, drawn, category, record) -> dict:
        """An annotator's row for a cluster."""
        return {"image": self.key, "cluster": cid, "annotator": name, "status": status, "object_index": index,
                "category": drawn, "consensus_category": category,
                "label_disagreement": drawn is not None and status == "matched" and drawn != category,
                "cluster_size": record["size"], "voters": record["voters"]}


def _pixel_scores(tp: int, fp: int, fn: int, tn: int) -> dict:
    """One annotator's object against the consensus mask, from their confusion counts in the members'
    union bbox (which holds every pixel of either, so ``tn`` is the bbox's)."""
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "iou": tp / (tp + fp + fn),
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp) if tn + fp else math.nan}


# --- the batch ----------------------------------------------------------------------------------------

def _edges(comparison) -> dict:
    """Matched pairs of the comparison by image: ``[(annotator_a, index_a, annotator_b, index_b, iou)]``."""
    df = comparison.object_pairs
    if not len(df):
        return {}
    matched = df[df["status"] == "matched"]
    out: dict[str, list] = {}
    for image, a, ia, b, ib, iou in zip(matched["image"].astype(str), matched["annotator_a"].astype(str),
                                        matched["object_index_a"].astype(np.int64),
                                        matched["annotator_b"].astype(str),
                                        matched["object_index_b"].astype(np.int64), matched["iou"]):
        out.setdefault(image, []).append((a, int(ia), b, int(ib), float(iou)))
    return out


def build_consensus(batch: Batch, comparison=None, *, method: str = "vote", quorum=None,
                    ties: str = "background", tolerances=None, iou_threshold: float = 0.5,
                    workers: int | None = None, max_pixels: int | None = None, progress=None,
                    executor=None) -> Consensus:
    """The consensus of the annotators of a batch, and each annotator scored against it.

    Parameters
    ----------
    batch : Batch
        Aligned exports (:func:`qa.load`), usually of three or more annotators.
    comparison : qa.engine.compare.Comparison, optional
        The batch's comparison (``Run.comparison``), whose matched pairs make the clusters; computed
        with ``iou_threshold`` when not given.
    method : {"vote", "staple"}, default "vote"
        Consensus mask by pixel vote, or by STAPLE over the cluster's members.
    quorum : None, "majority", int or float, default None
        Members a cluster needs to become a consensus object (:func:`quorum_count`); default a strict
        majority of the annotators who cover the image.
    ties : {"background", "foreground"}, default "background"
        Pixel vote only: a pixel marked by exactly half of the image's annotators.
    tolerances : sequence of float, pixels, optional
        Boundary F tolerances; default the comparison's, else (1, 2, 4).
    iou_threshold : float, default 0.5
        Matching threshold when the comparison is computed here.
    workers : int, optional
        Processes for the images (and for the comparison when it is computed here); default one per
        CPU (batches of a few images run in this process).
    executor : optional
        The run's executor (:func:`qa.engine._executors.open_executor`); when given, ``workers`` is not used.
    max_pixels : int, optional
        Largest panoptic PNG decoded.
    progress : callable, optional
        ``progress("consensus", images_done, images_total)``.

    Returns
    -------
    Consensus

    Raises
    ------
    ConfigError
        On an unknown method or ties setting, or a bad quorum or tolerance.
    InputError
        When a panoptic PNG can no longer be read.

    Notes
    -----
    Only images covered by two or more annotators get a consensus. Crowd regions (``iscrowd``) are left
    out: they are never clustered, voted on or scored.

    The pixel vote counts every annotator who covers the image, so a pixel needs more than half of
    *them*, not of the cluster's members: with four annotators and a cluster of three, a pixel needs
    all three. ``ties="foreground"`` also takes pixels marked by exactly half; where every voter is a
    member this is pylidc's ``consensus(clevel=0.5)``, which divides by the nodule's annotations
    instead of the readers. STAPLE (Warfield et al. 2004) runs over the cluster's members only
    (an annotator without an object there would get sensitivity 0 and no say) in the members' union
    bbox, and keeps the pixels of posterior probability >= 0.5. A cluster that reaches the quorum but
    whose consensus has no pixel is ``empty``: its members count as extra.

    The consensus category is the members' most frequent category (ties: the category listed first in
    the batch); a matched member with another category is a label disagreement.

    Sensitivity is ``tp / (tp + fn)`` and IoU ``tp / (tp + fp + fn)`` over the whole object; specificity
    ``tn / (tn + fp)`` counts the pixels of the cluster's window, the union of the members' bboxes
    (the figure depends on that window, so compare it between annotators of one cluster rather than
    across batches). Boundary metrics come from :func:`qa.engine.boundary.boundary_pair` with the
    annotator as ``a`` and the consensus as ``b`` (a positive ``signed_offset_px`` means the annotator
    draws outside the consensus).

    References
    ----------
    S. K. Warfield, K. H. Zou, W. M. Wells, "Simultaneous truth and performance level estimation
    (STAPLE)", IEEE TMI 23(7):903-921, 2004, doi:10.1109/TMI.2004.828354. pylidc,
    ``pylidc/utils.py`` (``consensus``: the LIDC readers' masks voted at a consensus level).

    Examples
    --------
    >>> result = build_consensus(qa.load("r1=a.json", "r2=b.json", "r3=c.json"))  # doctest: +SKIP
    >>> result.annotators[["annotator", "mask_iou_mean", "missing", "extra"]]  # doctest: +SKIP
    """
    consensus_settings(batch, method=method, quorum=quorum, ties=ties)  # checked before any work
    if comparison is None:
        from qa.engine.compare import compare_batch

        comparison = compare_batch(batch, tolerances=tolerances or (1, 2, 4), iou_threshold=iou_threshold,
                                   workers=workers, max_pixels=max_pixels, executor=executor)
    if tolerances is None:
        tolerances = comparison.settings.get("tolerances") or (1, 2, 4)
    from qa.engine import _pool
    from qa.engine.chunks import chunks_of

    settings = consensus_settings(batch, method=method, quorum=quorum, ties=ties, tolerances=tolerances,
                                  max_pixels=max_pixels)
    edges = _edges(comparison)
    keys = [key for key in batch.images if len(batch.coverage.get(key, ())) >= 2]
    total = len(keys)
    size, workers = _pool.plan(total, workers, executor)
    reduced = ConsensusRows(settings.tolerances)
    if progress:
        progress("consensus", 0, total)
    items = ((chunk, {k: edges.pop(k) for k in chunk.keys if k in edges})
             for chunk in chunks_of(batch, _pool.chunks(keys, size)))
    done = 0
    for part in _pool.run_chunks(_consensus_chunk, items, settings, workers, executor):
        reduced.add(part)
        done += len(part)
        if progress:
            progress("consensus", done, total)
    if progress and done != total:
        progress("consensus", total, total)  # images whose labels could not be decoded were left out
    return reduced.finish(batch, settings, iou_threshold=comparison.settings.get("iou_threshold", iou_threshold))


def consensus_settings(batch: Batch, *, method: str = "vote", quorum=None, ties: str = "background",
                       tolerances=(1, 2, 4), max_pixels: int | None = None) -> _Settings:
    """What each worker needs for the consensus of a batch (the settings checked)."""
    from qa.engine.compare import category_list
    from qa.engine.consensus import TIES

    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if ties not in TIES:
        raise ConfigError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    quorum_count(quorum, 3)  # validates
    tolerances = tuple(float(t) for t in tolerances)
    if not tolerances or any(not t > 0 for t in tolerances):
        raise ConfigError(f"tolerances must be positive pixel distances, got {tolerances}")
    return _Settings(method=method, quorum=quorum, ties=ties, tolerances=tolerances,
                     max_pixels=max_pixels or Limits().max_pixels, categories=category_list(batch),
                     category_order={c: k for k, c in enumerate(batch.categories)})


_CLUSTER_COLUMNS = ("image", "cluster", "status", "size", "voters", "quorum", "members", "category",
                    "category_agreement", "area", "x", "y", "w", "h", "iou_mean")
_INT_COLUMNS = ("tp", "fp", "fn", "tn", "object_index", "source_index")
"""Columns of the consensus's object rows stored as ``Int64``."""


def _row_columns(labels: list[str]) -> list[str]:
    metric_cols = ["tp", "fp", "fn", "tn", "iou", "sensitivity", "specificity", *labels, "boundary_iou",
                   "signed_offset_px"]
    return ["image", "cluster", "annotator", "status", "object_index", "category", "consensus_category",
            "label_disagreement", "cluster_size", "voters", *metric_cols, "file", "source_index", "source_id"]


class _Records:
    """Records (dicts) of one table taken chunk by chunk into one array per column, so no dict per row
    stays in memory: the columns whose final type is fixed (``floats``, ``ints`` as ``Int64``, ``bools``)
    as typed arrays, the rest as object arrays whose type is inferred once at the end as
    ``DataFrame.from_records`` infers it (a key a record lacks is NaN, as there)."""

    def __init__(self, columns, *, floats=(), ints=(), bools=()):
        self.columns = list(columns)
        self.floats, self.ints, self.bools = set(floats), set(ints), set(bools)
        self.parts: dict[str, list] = {c: [] for c in self.columns}
        self.rows = 0

    def add(self, records: list[dict]) -> None:
        self.add_columns(self.columns_of(records))

    def add_columns(self, columns: dict | None) -> None:
        """Take the columns :meth:`columns_of` made (of records of this table's columns), None for none."""
        if not columns:
            return
        for c in self.columns:
            self.parts[c].append(columns[c])
        self.rows += columns["__rows__"]

    def columns_of(self, records: list[dict]) -> dict | None:
        """``records`` as this table's columns (``__rows__``: how many), to be taken by :meth:`add_columns`
        here or in another process (a task makes them, so the main process handles no dict per row)."""
        if not records:
            return None
        nan = math.nan
        out: dict = {"__rows__": len(records)}
        for c in self.columns:
            values = [r.get(c, nan) for r in records]
            if c in self.floats:
                column = np.array([nan if v is None else v for v in values], dtype=np.float64)
            elif c in self.ints:
                valid = np.array([v is not None and v == v for v in values], dtype=bool)
                column = (np.array([v if ok else 0 for v, ok in zip(values, valid.tolist())], dtype=np.int64), valid)
            elif c in self.bools:
                column = np.array(values, dtype=bool)
            else:
                column = np.empty(len(values), object)
                column[:] = values
            out[c] = column
        return out

    def frame(self):
        """The table, equal to ``DataFrame.from_records(records, columns=columns)`` with the typed columns
        cast as :meth:`ConsensusRows.finish` casts them; the records are empty again afterwards."""
        import pandas as pd

        inferred = [c for c in self.columns if c not in self.floats | self.ints | self.bools]
        joined = {c: np.concatenate(self.parts[c]) if self.parts[c] else np.empty(0, object) for c in inferred}
        plain = pd.DataFrame.from_records(list(zip(*(joined[c] for c in inferred))), columns=inferred)
        del joined
        out = {}
        for c in self.columns:
            parts = self.parts[c]
            if c in self.floats:
                out[c] = np.concatenate(parts) if parts else np.empty(0, np.float64)
            elif c in self.ints:
                values = np.concatenate([v for v, _ in parts]) if parts else np.empty(0, np.int64)
                valid = np.concatenate([m for _, m in parts]) if parts else np.empty(0, bool)
                out[c] = pd.arrays.IntegerArray(values, ~valid)
            elif c in self.bools:
                out[c] = np.concatenate(parts) if parts else np.empty(0, bool)
            else:
                out[c] = plain[c]
        self.parts = {c: [] for c in self.columns}  # taken: the records start again empty
        self.rows = 0
        return pd.DataFrame(out, index=plain.index)


def _records(tolerances) -> tuple[_Records, _Records]:
    """Empty column builders of the consensus's clusters and object rows at these tolerances."""
    labels = [f"boundary_f_{_label(t)}" for t in tolerances]
    rows = _Records(_row_columns(labels), ints=_INT_COLUMNS, bools=("label_disagreement",), floats=(
        "iou", "sensitivity", "specificity", *labels, "boundary_iou", "signed_offset_px"))
    return _Records(_CLUSTER_COLUMNS), rows


def consensus_chunk(results: list[dict], tolerances) -> dict:
    """A chunk's consensus results (:func:`consensus_image` per image, in image order) as columns, for
    :meth:`ConsensusRows.add`: the clusters and object rows as :meth:`_Records.columns_of` makes them, the
    masks, images and voters; cluster ids numbered from 0 across the chunk. A run's task makes these, so
    the main process takes a few arrays per chunk instead of a dict per row."""
    clusters_of, rows_of = _records(tolerances)
    clusters, rows, masks, images, voters = [], [], {}, [], []
    for result in results:
        first = len(clusters)
        for record in result["clusters"]:
            record["cluster"] += first
            clusters.append(record)
        for row in result["rows"]:
            row["cluster"] += first
            rows.append(row)
        masks.update((first + cid, rle) for cid, rle in result["masks"].items())
        images.append(result["image"])
        voters.append(result["voters"])
    return {"clusters": clusters_of.columns_of(clusters), "rows": rows_of.columns_of(rows), "masks": masks,
            "images": images, "voters": voters, "n_clusters": len(clusters)}


PART_ROWS = 50_000
"""Object rows per Parquet part when :class:`ConsensusRows` writes the consensus to a folder: a part is
written once this many rows have come (and the rest at the end)."""


class ConsensusRows:
    """The consensus's reduce: each image's clusters, rows and masks, taken in image order, cluster ids
    made unique in the batch; the rows and clusters kept as columns (:class:`_Records`), not dicts.

    Parameters
    ----------
    tolerances : sequence of float
        The boundary F tolerances of the rows.
    folder : str or pathlib.Path, optional
        Where to write the tables as they come: every :data:`PART_ROWS` object rows, the clusters, rows
        and masks taken so far become one Parquet part each of ``clusters/``, ``objects/`` and ``masks/``
        (:class:`qa.parts.Parts`), so the reduce and the :class:`Consensus` it makes hold none of them
        (read back on access). Without it, the tables are made in memory at the end.
    owner : object, optional
        What keeps ``folder`` alive (:func:`qa.parts.run_folder`), held by the parts and the Consensus.
    """

    def __init__(self, tolerances, *, folder=None, owner=None):
        self.tolerances = tuple(tolerances)
        self.clusters, self.rows = _records(self.tolerances)
        self.n_clusters = 0
        self.masks: dict[int, dict] = {}
        self.images: list[str] = []
        self.voters_of: dict[str, list[str]] = {}
        self.folder = None if folder is None else Path(folder)
        self.owner = owner
        self.written: dict[str, list] = {name: [] for name in _PARTS}  # each table's part files
        self.written_rows: dict[str, int] = dict.fromkeys(_PARTS, 0)

    def add(self, results) -> None:
        """Take a chunk's results: the per-image results of :func:`consensus_image` in image order, or the
        same as :func:`consensus_chunk` made them into columns (in the task, as a run's pass does)."""
        chunk = results if isinstance(results, dict) else consensus_chunk(results, self.tolerances)
        first = self.n_clusters  # the chunk's cluster ids start at 0: made unique in the batch here
        for columns in (chunk["clusters"], chunk["rows"]):
            if columns and first:
                columns["cluster"] = columns["cluster"] + first  # Python ints, as the records held
        self.masks.update((first + cid, rle) for cid, rle in chunk["masks"].items())
        self.voters_of.update(zip(chunk["images"], chunk["voters"]))
        self.images.extend(chunk["images"])
        self.clusters.add_columns(chunk["clusters"])
        self.n_clusters += chunk["n_clusters"]
        self.rows.add_columns(chunk["rows"])
        if self.folder is not None and self.rows.rows >= PART_ROWS:
            self._write()

    def _write(self) -> None:
        """The clusters, rows and masks taken since the last part, written as one part of each table."""
        import pandas as pd

        if not self.rows.rows and not self.clusters.rows and not self.masks:
            return
        masks, self.masks = self.masks, {}
        tables = {"clusters": self.clusters.frame(), "objects": _object_frame(self.rows),
                  "masks": pd.DataFrame({
                      "cluster": np.fromiter(masks, np.int64, len(masks)),
                      "height": np.fromiter((int(m["size"][0]) for m in masks.values()), np.int64, len(masks)),
                      "width": np.fromiter((int(m["size"][1]) for m in masks.values()), np.int64, len(masks)),
                      "counts": pd.Series([m["counts"] for m in masks.values()], dtype=object)})}
        del masks
        for name, frame in tables.items():
            if not len(frame):
                continue
            paths = self.written[name]
            folder = self.folder / name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"part-{len(paths):05d}.parquet"
            frame.to_parquet(path, engine="pyarrow", index=False)
            paths.append(path)
            self.written_rows[name] += len(frame)
        del tables, frame
        _release_arrow_memory()

    def _parts(self, name: str):
        from qa.parts import Parts

        return Parts(self.written[name], self.written_rows[name], owner=self.owner)

    def finish(self, batch: Batch, settings: _Settings, *, iou_threshold: float) -> Consensus:
        tolerances = settings.tolerances
        labels = [f"boundary_f_{_label(t)}" for t in tolerances]
        if self.rows.columns != _row_columns(labels):
            raise ValueError(f"consensus rows of tolerances {tolerances}, reduced for {self.rows.columns}")
        if self.folder is not None:
            self._write()
        if self.written["objects"]:  # on disk: each table read a part and the columns needed at a time
            cluster_df, objects = self._parts("clusters"), self._parts("objects")
            masks = self._parts("masks") if self.written["masks"] else {}
            paths = objects.paths

            def read(columns):
                return (_read_part(path, columns) for path in paths)

            status = cluster_df["status"]
        else:
            cluster_df = self.clusters.frame()
            objects = _object_frame(self.rows)
            masks, self.masks = self.masks, {}
            status = cluster_df["status"]

            def read(columns):
                return [objects]

        annotators, scores = _per_annotator(batch, read, self.voters_of, labels)
        if self.written["objects"]:
            _release_arrow_memory()
        quorum = settings.quorum
        result_settings = {"method": settings.method, "quorum": "majority" if quorum is None else quorum,
                           "ties": settings.ties, "tolerances": list(tolerances), "iou_threshold": iou_threshold}
        summary = {"annotators": sorted(batch.annotators), "images": len(self.images), "clusters": len(cluster_df),
                   "consensus_objects": int((status == "consensus").sum()),
                   "below_quorum": int((status == "below_quorum").sum()), "empty": int((status == "empty").sum())}
        del status
        categories = [{"name": c.name, "supercategory": c.supercategory, "isthing": c.isthing}
                      for c in batch.categories.values()]
        images = [{"key": key, "file_name": batch.images[key].file_name, "width": batch.images[key].width,
                   "height": batch.images[key].height} for key in self.images]
        return Consensus(clusters=cluster_df, objects=objects, annotators=annotators, scores=scores,
                         masks=masks, settings=result_settings, summary=summary, images=images,
                         categories=categories, owner=self.owner if self.written["objects"] else None)


_PARTS = ("clusters", "objects", "masks")
"""The consensus's tables written as parts (:class:`ConsensusRows` with a folder)."""


def _object_frame(records: _Records):
    """The object rows taken so far as a DataFrame (the records left empty)."""
    objects = records.frame()
    objects["source_id"] = objects["source_id"].astype("string")
    return objects


def _release_arrow_memory() -> None:
    """Give the memory pyarrow's pool keeps after a part is written or read back to the system (its
    default pool, mimalloc or jemalloc, holds freed memory for its own reuse, which no other allocation
    of the process can take)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _on_disk(table) -> bool:
    from qa.parts import Parts

    return isinstance(table, Parts)


def _read_part(path, columns=None):
    """One part of a consensus table."""
    from qa.parts import read_frame

    return read_frame(path, columns)


def _read_table(parts):
    """A consensus table written as parts, whole, as it is made in memory: a column that one part has
    only nulls of (read back as objects) and another strings takes the type ``from_records`` infers
    for the whole column."""
    frame = parts.read()
    for column, dtype in frame.dtypes.items():
        if dtype == object:
            frame[column] = frame[column].infer_objects()
    return frame


def _read_masks(parts) -> dict:
    """The masks written as parts, as the dict of compressed RLE made in memory."""
    out: dict[int, dict] = {}
    for path in parts.paths:
        frame = _read_part(path)
        for cluster, height, width, counts in zip(frame["cluster"].tolist(), frame["height"].tolist(),
                                                  frame["width"].tolist(), frame["counts"].tolist()):
            out[cluster] = {"size": [height, width], "counts": counts}
    return out


def _label(t: float) -> str:
    from qa.engine.boundary import tolerance_label

    return tolerance_label(t)


_MEANS = ("mask_iou_mean", "sensitivity_mean", "specificity_mean")


def _mean_columns(labels: list[str]) -> dict:
    """Each per-annotator mean and the object rows' column it is the mean of."""
    mean_cols = {"mask_iou_mean": "iou", "sensitivity_mean": "sensitivity", "specificity_mean": "specificity"}
    for label in labels:
        mean_cols[f"{label}_mean"] = label
    mean_cols["boundary_iou_mean"] = "boundary_iou"
    mean_cols["signed_offset_px_mean"] = "signed_offset_px"
    return mean_cols


def _per_annotator(batch: Batch, read, voters_of: dict, labels: list[str]):
    """The per-annotator table and its long scores rows, from the object rows: ``read(columns)`` gives
    them as DataFrames in row order that hold those columns (the whole table, or each part of it on disk
    with those columns only). The counts come from one read of ``annotator``, ``status`` and
    ``label_disagreement``, then each mean from one read of its column, taken over the values of every
    part at once, so the figures do not depend on how the rows are split and no more than one metric
    column of the matched rows is held at a time."""
    import pandas as pd

    mean_cols = _mean_columns(labels)
    names = sorted(batch.annotators)
    counted = {name: {"matched": 0, "missing": 0, "extra": 0, "label_disagreements": 0} for name in names}
    owners = []  # per part: the position in ``names`` of each matched row's annotator, -1 for other rows
    for frame in read(["annotator", "status", "label_disagreement"]):
        by_name = frame["annotator"].to_numpy()
        status = frame["status"].to_numpy()
        is_matched = status == "matched"
        owner = np.full(len(frame), -1, np.int32)
        for k, name in enumerate(names):
            mine = by_name == name
            count = counted[name]
            matched = mine & is_matched
            owner[matched] = k
            count["matched"] += int(matched.sum())
            count["missing"] += int((mine & (status == "missing")).sum())
            count["extra"] += int((mine & (status == "extra")).sum())
            count["label_disagreements"] += int(frame["label_disagreement"].to_numpy()[matched].sum())
        owners.append(owner)
        del frame
    means: dict[str, dict[str, tuple]] = {name: {} for name in names}  # name -> metric -> (mean, n)
    for metric, column in mean_cols.items():
        taken: list[list] = [[] for _ in names]
        for owner, frame in zip(owners, read([column]), strict=True):
            values = frame[column].to_numpy(dtype=np.float64)
            for k in range(len(names)):
                taken[k].append(values[owner == k])
            del frame, values
        for k, name in enumerate(names):
            values = np.concatenate(taken[k]) if taken[k] else np.zeros(0, np.float64)
            values = values[~np.isnan(values)]
            means[name][metric] = (float(values.mean()) if len(values) else math.nan, len(values))
        del taken
    table, records = [], []
    for name in names:
        count = counted[name]
        images = sum(name in v for v in voters_of.values())
        n_matched, n_missing, n_extra = count["matched"], count["missing"], count["extra"]
        n_consensus = n_matched + n_missing
        n_own = n_matched + n_extra
        entry = {"annotator": name, "images": images, "consensus_objects": n_consensus, "matched": n_matched,
                 "missing": n_missing, "extra": n_extra,
                 "label_disagreements": count["label_disagreements"],
                 "missing_share": n_missing / n_consensus if n_consensus else math.nan,
                 "extra_share": n_extra / n_own if n_own else math.nan}
        counts_n = {"images": images, "consensus_objects": images, "matched": images, "missing": images,
                    "extra": images, "label_disagreements": images, "missing_share": n_consensus,
                    "extra_share": n_own}
        for metric, (value, n) in means[name].items():
            entry[metric] = value
            counts_n[metric] = n
        table.append(entry)
        for metric, value in entry.items():
            if metric != "annotator":
                records.append(("annotator_consensus", name, metric, float(value), int(counts_n[metric])))
    annotators = pd.DataFrame(table)
    scores = pd.DataFrame.from_records(records, columns=["scope", "key", "metric", "value", "n"])
    scores["value"] = scores["value"].astype(np.float64)
    scores["n"] = scores["n"].astype(np.int64)
    return annotators, scores


# --- each annotator's consensus of the others ---------------------------------------------------------

CONSENSUS_PREFIX = "consensus~"
"""The export name of an annotator's consensus of the others: ``consensus~alice``."""


def _without(batch: Batch, name: str) -> Batch:
    """The batch without one annotator (its exports and coverage; objects are shared, not copied)."""
    others = [a for a in batch.annotators if a != name]
    return Batch(annotators=others, exports={a: batch.exports[a] for a in others}, images=batch.images,
                 categories=batch.categories,
                 coverage={k: tuple(a for a in v if a != name) for k, v in batch.coverage.items()})


def consensus_of_others(batch: Batch, comparison, *, method: str = "vote", quorum=None, workers=None,
                        max_pixels=None, progress=None, executor=None):
    """For each annotator, the consensus of the other annotators, as one more export of the batch.

    Parameters
    ----------
    batch : Batch
        Aligned exports of two or more annotators.
    comparison : qa.engine.compare.Comparison
        The batch's comparison of every pair; the matched pairs not involving the annotator make the
        clusters of its consensus (:func:`build_consensus`).
    method : {"vote", "staple"}, default "vote"
    quorum : see :func:`build_consensus`

    Returns
    -------
    extended : Batch
        The batch with one export ``consensus~<annotator>`` per annotator (format ``consensus``, RLE
        objects; ``coverage`` lists it on the images where two or more others labelled).
    reference_of : dict
        ``{annotator: "consensus~<annotator>"}`` (with two annotators, each is the other's reference).

    Notes
    -----
    Each annotator is scored against a consensus it took no part in (leave one out). A consensus of
    everyone includes the annotator's own vote: with four readers it is a quarter of every vote, and a
    strict majority (3 of 4) then needs only two others to agree with it, so each annotator scores
    higher against it than it should, the more so the fewer the annotators (with three, its vote and
    one other's make a majority). The consensus of the others is as independent of the annotator as a
    gold set would be; its price is one consensus per annotator. An image has a consensus of the others
    where two or more of them labelled it; an annotator is scored there only.
    """
    from qa.engine.compare import Comparison
    from qa.model import Export, Image, Object, Source

    exports = dict(batch.exports)
    coverage = {k: list(v) for k, v in batch.coverage.items()}
    reference_of = {}
    pairs = comparison.object_pairs
    for name in sorted(batch.annotators):
        sub = _without(batch, name)
        if len(sub.annotators) < 1:
            continue
        if len(sub.annotators) == 1:  # the consensus of one other is that annotator
            reference_of[name] = sub.annotators[0]
            continue
        keep = (pairs["annotator_a"].astype(str) != name) & (pairs["annotator_b"].astype(str) != name)
        filtered = Comparison(object_pairs=pairs[keep.to_numpy()], image_pairs=None, scores=None,
                              settings=comparison.settings)
        result = build_consensus(sub, filtered, method=method, quorum=quorum, workers=workers,
                                 max_pixels=max_pixels, progress=progress, executor=executor)
        label = f"{CONSENSUS_PREFIX}{name}"
        export = Export(annotator=label, path=Path(label), format="consensus",
                        categories=dict(batch.categories))
        for img in result.images:
            export.images[img["key"]] = Image(key=img["key"], file_name=img["file_name"], width=img["width"],
                                              height=img["height"])
        for row in result.clusters.itertuples(index=False):
            if row.status != "consensus":
                continue
            rle = result.masks[int(row.cluster)]
            export.objects.append(Object(
                annotator=label, image=row.image, category=row.category, kind="rle", rle=rle,
                source=Source(f"consensus of the others of {name}", len(export.objects), int(row.cluster)),
                bbox=(float(row.x), float(row.y), float(row.w), float(row.h)), area=float(row.area),
                attributes={"cluster_size": int(row.size), "voters": int(row.voters)}))
        exports[label] = export
        for key in export.images:
            if name in coverage.get(key, ()):
                coverage[key].append(label)
        reference_of[name] = label
    built = sorted(set(reference_of.values()) - set(batch.annotators))
    extended = Batch(annotators=list(batch.annotators) + built,
                     exports=exports, images=batch.images, categories=batch.categories,
                     coverage={k: tuple(v) for k, v in coverage.items()}, name=batch.name)
    return extended, reference_of
