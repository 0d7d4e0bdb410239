"""The check context: crops, overlaps and coverage against pycocotools full masks; cross-annotator matches."""

import numpy as np
import pytest

from common import circle, make_batch, make_object, square
from reference import coco_decode
from qa.rules._context import ExportContext


def test_crops_match_pycocotools_full_masks_for_polygons():
    polys = [circle(31.3, 40.7, 17.2, n=23), square(10.4, 12.6, 30.2), circle(70.1, 60.9, 25.5, n=9)]
    batch = make_batch([make_object(p) for p in polys])
    ctx = ExportContext(batch.exports["alice"], batch)
    for k in range(len(polys)):
        full = coco_decode(ctx.rle(k))
        x0, y0, x1, y1 = ctx.mask_bbox[k]
        np.testing.assert_array_equal(ctx.crop(k), full[y0:y1, x0:x1])
        assert ctx.mask_area[k] == full.sum()


def test_overlaps_and_coverage_match_full_masks():
    rng = np.random.default_rng(7)
    polys = [circle(*rng.uniform(15, 85, 2), rng.uniform(5, 20), n=12) for _ in range(12)]
    z = rng.integers(0, 3, len(polys))
    batch = make_batch([make_object(p, z=int(zz)) for p, zz in zip(polys, z)])
    ctx = ExportContext(batch.exports["alice"], batch)
    full = [coco_decode(ctx.rle(k)).astype(bool) for k in range(ctx.n)]
    expected = {(i, j): int((full[i] & full[j]).sum()) for i in range(12) for j in range(i + 1, 12)
                if (full[i] & full[j]).any()}
    got = {(int(i), int(j)): int(n) for i, j, n in zip(ctx.overlaps.i, ctx.overlaps.j, ctx.overlaps.inter)}
    assert got == expected
    for i in range(12):
        tops = [j for j in range(12) if j != i and (z[j] > z[i] or (z[j] == z[i] and j > i))]
        union = np.zeros_like(full[i])
        for j in tops:
            union |= full[j]
        assert ctx.covered[i] == pytest.approx((union & full[i]).sum() / full[i].sum())


def test_cover_by_things_and_by_everything_match_full_masks():
    """Stuff over an object counts in :attr:`covered`, not in :attr:`covered_by_things`."""
    rng = np.random.default_rng(11)
    polys = [circle(*rng.uniform(15, 85, 2), rng.uniform(8, 25), n=12) for _ in range(14)]
    categories = ["road" if k % 3 == 0 else "car" for k in range(len(polys))]
    batch = make_batch([make_object(p, category=c) for p, c in zip(polys, categories)], stuff=("road",))
    ctx = ExportContext(batch.exports["alice"], batch)
    full = [coco_decode(ctx.rle(k)).astype(bool) for k in range(ctx.n)]
    for i in range(len(polys)):
        tops = [j for j in range(len(polys)) if j != i]  # COCO states no layer order: any overlap counts
        every, things = np.zeros_like(full[i]), np.zeros_like(full[i])
        for j in tops:
            every |= full[j]
            things |= full[j] if categories[j] == "car" else False
        assert ctx.covered[i] == pytest.approx((every & full[i]).sum() / full[i].sum())
        assert ctx.covered_by_things[i] == pytest.approx((things & full[i]).sum() / full[i].sum())


def test_many_objects_in_one_export():
    """pycocotools' area() fails on 256 RLEs or more under numpy 2; the context chunks the call."""
    objs = [make_object(square(1 + (k % 16) * 6, 1 + (k // 16) * 6, 4)) for k in range(300)]
    ctx = ExportContext(make_batch(objs, size=(100, 130)).exports["alice"])
    assert ctx.mask_area.shape == (300,) and (ctx.mask_area == 16).all()


def _strip(x0, x1):
    """A 10 px tall rectangle covering columns x0 .. x1 - 1."""
    return square(x0, 10, 10, width=x1 - x0)


def test_matches_are_the_engines_assignment_among_pairs_above_the_threshold():
    """IoU a0-b0 0.9, a0-b1 0.45, a1-b0 0.5, a1-b1 0: the best total over all pairs (0.45 + 0.5) uses a
    pair below the threshold; among the pairs at or above it, a0-b0 (0.9) wins, as in the comparison."""
    from qa.rules._context import BatchContext

    batch = make_batch({"alice": [make_object(_strip(0, 100)), make_object(_strip(0, 45))],
                        "bob": [make_object(_strip(0, 90)), make_object(_strip(55, 100))]}, size=(120, 40))
    ctx = BatchContext(batch, {n: ExportContext(batch.exports[n], batch) for n in batch.annotators})
    rows = ctx.matches(iou_threshold=0.5)
    assert rows[:, :2].astype(int).tolist() == [[0, 2]]
    assert rows[:, 2].tolist() == pytest.approx([0.9])


def test_crowd_regions_are_never_matched_by_the_rules_either():
    from qa.rules._context import BatchContext

    batch = make_batch({"alice": [make_object(_strip(0, 100), iscrowd=True)],
                        "bob": [make_object(_strip(0, 100))]}, size=(120, 40))
    ctx = BatchContext(batch, {n: ExportContext(batch.exports[n], batch) for n in batch.annotators})
    assert ctx.matches(iou_threshold=0.5).shape == (0, 3)



def test_findings_do_not_depend_on_how_many_crops_are_kept(tmp_path, monkeypatch):
    """The crop cache only saves work: with room for a single crop the findings are the same."""
    import qa
    from qa.rules import _context
    from qa.rules.check import check
    from qa.synth import synthesize

    synthesize(tmp_path, images=3, size=(128, 192), annotators=3, seed=3, workers=1, formats=("coco",),
               faults=["*:jitter", "alice:drop_occluded", "bob:zorder", "carol:rule_faults"])

    def findings():
        return [(f.code, f.image, f.annotator, f.message)
                for f in check(qa.load(manifest=tmp_path / "batch.toml"), "default")]

    kept = findings()
    monkeypatch.setattr(_context, "CROP_CACHE_BYTES", 1)
    assert kept and findings() == kept


def test_panoptic_crops_survive_dropped_id_maps(tmp_path, monkeypatch):
    """Segments read in any order from a context that keeps a single id map and a single crop."""
    import qa
    from qa.rules import _context
    from qa.synth import synthesize

    synthesize(tmp_path, images=3, size=(96, 128), annotators=1, seed=5, workers=1)
    export = next(iter(qa.load(manifest=tmp_path / "batch_panoptic.toml").exports.values()))
    roomy = ExportContext(export)
    monkeypatch.setattr(_context, "CROP_CACHE_BYTES", 1)
    monkeypatch.setattr(_context, "ID_MAP_CACHE_BYTES", 1)
    tight = ExportContext(export)
    order = np.random.default_rng(0).permutation(np.r_[np.arange(roomy.n), np.arange(roomy.n)])
    assert roomy.n > 10 and len(roomy.by_image) == 3
    for k in order:
        np.testing.assert_array_equal(tight.crop(k), roomy.crop(k))
    assert len(tight._crops._items) == 1 and len(tight._id_maps._items) == 1


def test_panoptic_geometry_from_the_id_map_equals_pycocotools_on_rles(tmp_path):
    """Areas and bboxes of segments come from one pass over the id map: the same as pycocotools on
    each segment's RLE, for an id listed twice (both copies get its pixels) and an id absent from the
    PNG (empty); two segments overlap only when listed under one id."""
    from PIL import Image as PILImage
    from pycocotools import mask as mask_utils

    ids = np.zeros((20, 30), np.int64)
    ids[2:6, 3:13] = 7
    ids[10:20, 0:30] = 300
    ids[0, 29] = 70000
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    png = tmp_path / "img.png"
    PILImage.fromarray(rgb).save(png)
    objs = [make_object(kind="segment", segment_id=sid, category="thing") for sid in (7, 300, 7, 70000, 5)]
    ctx = ExportContext(make_batch(objs, size=(30, 20), id_maps={"alice": {"img.png": png}}).exports["alice"])
    rles = [ctx.rle(k) for k in range(ctx.n)]
    assert ctx.mask_area.tolist() == [float(a) for a in mask_utils.area(rles)] == [40, 300, 40, 1, 0]
    boxes = np.rint(mask_utils.toBbox(rles)).astype(np.int64)
    np.testing.assert_array_equal(ctx.mask_bbox, np.c_[boxes[:, :2], boxes[:, :2] + boxes[:, 2:]])
    got = {(int(i), int(j)): int(n) for i, j, n in zip(ctx.overlaps.i, ctx.overlaps.j, ctx.overlaps.inter)}
    assert got == {(0, 2): 40}
    crops = ctx.object_crops(np.array([0, 1, 3]), 20, 30)
    assert crops.areas.tolist() == [40, 300, 1]


# --- many objects on one image: memory grows with the pairs that overlap -----------------------------------

_CROWDED = r"""
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
from pathlib import Path
from qa.engine._kernels_iou import _intersection_counts
from qa.model import Export, Image, Object, Source
from qa.rules._context import ExportContext

n, side = int(sys.argv[2]), 4096
rng = np.random.default_rng(11)
export = Export(annotator="a", path=Path("crowded.json"), format="coco")
export.images["a.png"] = Image(key="a.png", file_name="a.png", width=side, height=side)
xs, ys, ds = rng.uniform(0, side - 12, n), rng.uniform(0, side - 12, n), rng.uniform(3, 12, n)
for k in range(n):
    x, y, d = xs[k], ys[k], ds[k]
    export.objects.append(Object(annotator="a", image="a.png", category="car", kind="polygon",
                                 source=Source("crowded.json", k, k),
                                 polygons=(np.array([[x, y], [x + d, y], [x + d, y + d], [x, y + d]]),)))
ctx = ExportContext(export)
pairs = ctx.overlaps
got = set(zip(pairs.i.tolist(), pairs.j.tolist(), pairs.inter.tolist()))
# the same pairs, counted block by block with the all-pairs kernel (2,000 x 2,000 at a time)
crops = ctx.image_crops("a.png")
expected = set()
block = 2000
for a0 in range(0, n, block):
    for b0 in range(a0, n, block):
        sa, sb = np.arange(a0, min(a0 + block, n)), np.arange(b0, min(b0 + block, n))
        inter = _intersection_counts(crops.buf, crops.starts[sa], crops.boxes[sa], crops.buf, crops.starts[sb],
                                     crops.boxes[sb])
        for r, c in zip(*np.nonzero(inter)):
            i, j = int(sa[r]), int(sb[c])
            if i < j:
                expected.add((i, j, int(inter[r, c])))
assert got == expected, (len(got), len(expected))
assert list(zip(pairs.i.tolist(), pairs.j.tolist())) == sorted(zip(pairs.i.tolist(), pairs.j.tolist()))
print(len(got), n, np.isfinite(ctx.covered).sum())
"""


@pytest.mark.slow
def test_overlaps_of_25000_objects_on_one_image_fit_in_a_memory_limit():
    """A dense 25,000 x 25,000 overlap matrix alone takes 5 GB: under a 4 GB address-space limit the
    overlaps of one image (found by a sweep over the bboxes, counted pair by pair) fit, and are exactly
    the pairs the all-pairs kernel finds block by block."""
    import subprocess
    import sys

    limit, n = 4 * 2 ** 30, 25_000
    assert n * n * 8 > limit
    proc = subprocess.run([sys.executable, "-c", _CROWDED, str(limit), str(n)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pairs, objects, covered = map(int, proc.stdout.split())
    assert objects == n and 100 < pairs < 10_000 and covered == n
