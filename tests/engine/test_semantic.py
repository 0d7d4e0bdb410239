"""Semantic comparison: class IoU and boundary F from class maps, category-pair interfaces, components."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from pycocotools import mask as mask_utils
from reference import coco_decode

import qa
from qa import metrics
from qa.engine._masks import mask_to_rle
from qa.engine.semantic import class_map, compare_semantic, components_as_instances, with_instances
from qa.errors import ConfigError
from qa.model import Batch, Category, Export, Image, Object, Source

NAMES = ("car", "road", "sidewalk")


def maps_batch(maps: dict[str, np.ndarray], names=NAMES, things=("car",), void: int | None = None) -> Batch:
    """A label-map batch of one image from class-index maps (-1 unlabelled; ``void`` marks a void class)."""
    exports = {}
    h, w = next(iter(maps.values())).shape
    categories = {n: Category(n, n in things) for n in names}
    for annotator, m in maps.items():
        objects = []
        for k, name in enumerate(names):
            if (m == k).any():
                objects.append(Object(annotator, "im", name, "rle", Source(f"{annotator}/im.png", None, k, "classes"),
                                      rle=mask_to_rle(m == k)))
        if void is not None and (m == void).any():
            objects.append(Object(annotator, "im", "void", "rle", Source(f"{annotator}/im.png", None, void, "classes"),
                                  rle=mask_to_rle(m == void), iscrowd=True, attributes={"void": True}))
        exports[annotator] = Export(annotator, Path(annotator), "labelmap", {"im": Image("im", "im.png", w, h)},
                                    dict(categories), objects)
    names_sorted = sorted(maps)
    return Batch(names_sorted, exports, {"im": Image("im", "im.png", w, h)}, categories,
                 {"im": tuple(names_sorted)})


def street(kerb: int, h: int = 40, w: int = 30) -> np.ndarray:
    """Sidewalk (2) above row ``kerb``, road (1) below, a car (0) on the road."""
    m = np.full((h, w), 2, np.int32)
    m[kerb:] = 1
    m[30:36, 5:15] = 0
    return m


# --- per class --------------------------------------------------------------------------------------

def test_class_iou_and_boundary_f_equal_the_public_metrics():
    rng = np.random.default_rng(4)
    a, b = street(14), street(17)
    b[rng.random(b.shape) < 0.02] = 0  # specks of car
    result = compare_semantic(maps_batch({"alice": a, "bob": b}), tolerances=(1, 2), workers=1)
    rows = result.classes.set_index("category")
    for k, name in enumerate(NAMES):
        ma, mb = (a == k), (b == k)
        assert rows.loc[name, "intersection"] == (ma & mb).sum() and rows.loc[name, "union"] == (ma | mb).sum()
        assert rows.loc[name, "iou"] == pytest.approx(metrics.mask_iou(ma, mb))
        for t in (1, 2):
            assert rows.loc[name, f"boundary_f_{t}px"] == pytest.approx(metrics.boundary_f(ma, mb, tolerance=t))
    table = result.class_table()
    assert table["iou"].tolist() == sorted(table["iou"].tolist())  # worst first


def test_void_pixels_are_left_out_of_both_sides():
    a = street(14)
    b = a.copy()
    b[:5] = 3  # bob leaves the top rows void; alice labels them sidewalk
    result = compare_semantic(maps_batch({"alice": a, "bob": b}, void=3), workers=1)
    side = result.classes.set_index("category").loc["sidewalk"]
    assert side["area_a"] == side["area_b"] == side["intersection"] == (a[5:] == 2).sum()
    assert side["iou"] == 1.0
    assert (class_map_of(b, void=3) == np.where(b == 3, -1, b)).all()


def class_map_of(m, void=None):
    """The class map :func:`class_map` rebuilds from a label map's objects."""
    from qa.engine._decoded import grouped_objects, image_labels
    from qa.engine.semantic import category_codes

    batch = maps_batch({"alice": m, "bob": m}, void=void)
    codes = {c: k for k, c in enumerate(category_codes(batch))}
    key = next(iter(batch.images))
    return class_map(image_labels(batch, key, codes, 10**8, grouped_objects(batch))["alice"])


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_properties_symmetry_bounds_and_identity(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(3, 16)), int(rng.integers(3, 16))
    a = rng.integers(0, 3, (h, w)).astype(np.int32)
    b = rng.integers(0, 3, (h, w)).astype(np.int32)
    ab = compare_semantic(maps_batch({"alice": a, "bob": b}), workers=1)
    ba = compare_semantic(maps_batch({"alice": b, "bob": a}), workers=1)
    for column in ("iou", "boundary_f_2px"):
        x = ab.classes.set_index("category")[column]
        y = ba.classes.set_index("category")[column]
        assert np.allclose(x.sort_index(), y.sort_index(), equal_nan=True)
        assert ((x >= 0) & (x <= 1)).all()
    # the interfaces swap sides: displacements change sign, shares stay
    ia = ab.interfaces.set_index(["category_a", "category_b"]).sort_index()
    ib = ba.interfaces.set_index(["category_a", "category_b"]).sort_index()
    assert np.allclose(ia["displacement_px_mean"], -ib["displacement_px_mean"], equal_nan=True)
    assert np.allclose(ia["disagree_2px_share"], ib["disagree_2px_share"], equal_nan=True)
    same = compare_semantic(maps_batch({"alice": a, "bob": a.copy()}), workers=1)
    assert (same.classes["iou"] == 1).all() and (same.classes["boundary_f_1px"] == 1).all()
    assert (same.interfaces["disagree_1px_share"] == 0).all()
    assert (same.interfaces["displacement_px_mean"].fillna(0) == 0).all()


# --- category-pair interfaces -----------------------------------------------------------------------

def dense_interface_figures(a, b, c1, c2, tolerances):
    """One pair's interface figures the obvious way: interface masks, scipy EDTs of the whole map."""
    from scipy import ndimage

    from qa.engine.boundary import tolerance_label

    def interface(m):
        padded = np.pad(m, 1, constant_values=-99)
        near = np.zeros(m.shape, bool)
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            near |= padded[1 + dy:1 + dy + m.shape[0], 1 + dx:1 + dx + m.shape[1]] == c2
        return (m == c1) & near

    ia, ib = interface(a), interface(b)
    da = ndimage.distance_transform_edt(~ib) if ib.any() else np.full(a.shape, np.inf)
    db = ndimage.distance_transform_edt(~ia) if ia.any() else np.full(a.shape, np.inf)
    out = {"length_a": int(ia.sum()), "length_b": int(ib.sum())}
    for t in tolerances:
        out[f"matched_a_{tolerance_label(t)}"] = int((da[ia] <= t).sum())
        out[f"matched_b_{tolerance_label(t)}"] = int((db[ib] <= t).sum())
    sign_a = np.where(b[ia] == c2, 1.0, np.where(b[ia] == c1, -1.0, 0.0)) * np.isfinite(da[ia])
    sign_b = np.where(a[ib] == c2, 1.0, np.where(a[ib] == c1, -1.0, 0.0)) * np.isfinite(db[ib])
    fa, fb = np.where(sign_a != 0, da[ia], 0.0), np.where(sign_b != 0, db[ib], 0.0)
    out["signed_sum"] = float((sign_a * fa).sum() - (sign_b * fb).sum())
    out["abs_sum"] = float(fa.sum() + fb.sum())
    out["signed_n"] = int((sign_a != 0).sum() + (sign_b != 0).sum())
    return out


@pytest.mark.parametrize("seed", range(6))
def test_interfaces_equal_dense_distance_transforms(seed):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
    maps = {}
    for name in ("alice", "bob"):
        m = ndimage.median_filter(rng.integers(0, 3, (h, w)), size=5).astype(np.int32)
        m[rng.random((h, w)) < 0.02] = -1  # unlabelled specks: no sign, and boundary of their class
        maps[name] = m
    tolerances = (1, 2, 3.5)
    result = compare_semantic(maps_batch(maps), tolerances=tolerances, workers=1)
    assert len(result.interfaces) > 0
    for row in result.interfaces.to_dict("records"):
        c1, c2 = NAMES.index(row["category_a"]), NAMES.index(row["category_b"])
        expected = dense_interface_figures(maps["alice"], maps["bob"], c1, c2, tolerances)
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-9), (key, row["category_a"], row["category_b"])


def test_a_kerb_moved_3px_is_a_3px_displacement_towards_the_gaining_category():
    # bob's kerb is 3 rows lower: his sidewalk reaches 3 px into alice's road
    result = compare_semantic(maps_batch({"alice": street(14), "bob": street(17)}), tolerances=(1, 2, 4), workers=1)
    row = result.interfaces.set_index(["category_a", "category_b"]).loc[("road", "sidewalk")]
    assert row["length_a"] == row["length_b"] == 30
    assert row["displacement_px_mean"] == pytest.approx(3.0)  # + : road gains in alice's labels
    assert row["abs_displacement_px_mean"] == pytest.approx(3.0)
    assert row["disagree_2px_share"] == 1.0 and row["disagree_4px_share"] == 0.0
    assert row["boundary_f_2px"] == 0.0 and row["boundary_f_4px"] == 1.0
    car = result.interfaces.set_index(["category_a", "category_b"]).loc[("car", "road")]
    assert car["disagree_1px_share"] == 0.0


def write_palette_batch(folder: Path, kerbs: dict[str, int]) -> Path:
    """Two annotators' palette PNGs of one street (road/sidewalk/car) and a manifest with [[classes]]."""
    palette = {0: (0, 0, 0), 1: (128, 64, 128), 2: (244, 35, 232), 3: (0, 0, 142)}
    flat = [v for k in range(256) for v in palette.get(k, (0, 0, 0))]
    for name, kerb in kerbs.items():
        ids = np.full((120, 160), 2, np.uint8)  # sidewalk
        ids[:10] = 0                             # unlabelled strip (void)
        ids[kerb:] = 1                           # road
        ids[90:110, 30:70] = 3                   # a car
        image = PILImage.fromarray(ids, "P")
        image.putpalette(flat)
        (folder / name).mkdir(parents=True, exist_ok=True)
        image.save(folder / name / "frankfurt_000001.png")
    manifest = folder / "batch.toml"
    manifest.write_text("\n".join(
        ['name = "street"'] + [f'[[exports]]\nannotator = "{n}"\npath = "{n}"\n' for n in kerbs] +
        ['[[classes]]\nid = 0\nname = "unlabeled"\nvoid = true\n', '[[classes]]\nid = 1\nname = "road"\n',
         '[[classes]]\nid = 2\nname = "sidewalk"\n', '[[classes]]\nid = 3\nname = "car"\nisthing = true\n']),
        encoding="utf-8")
    return manifest


def test_palette_example_shows_the_planted_kerb_shift_as_the_top_category_pair_finding(tmp_path):
    manifest = write_palette_batch(tmp_path, {"alice": 60, "bob": 57})
    run = qa.run(manifest=manifest, pack=None, db=None, workers=1)
    assert run.semantic is not None
    top = [f for f in run.boundaries.findings() if f["kind"] == "category_pair"][0]
    assert (top["category_a"], top["category_b"]) == ("road", "sidewalk")
    # bob draws the kerb 3 px higher: sidewalk gains 3 px in alice's labels, road in bob's; with two
    # annotators both are the same finding, named for the first annotator
    assert top["annotator"] == "alice" and top["gains"] == "sidewalk" and top["gain_px"] == pytest.approx(3.0)
    assert top["disagree_share"] == 1.0
    assert top["text"] == ("road | sidewalk: 100% of the boundary disagrees beyond 2 px; sidewalk gains 3.0 px "
                           "in alice's labels (vs bob)")
    rows = run.boundaries.category_pair_annotators.set_index(["annotator", "category_a", "category_b"])
    assert rows.loc[("bob", "road", "sidewalk"), "gains"] == "road"
    assert rows.loc[("bob", "road", "sidewalk"), "signed_displacement_px_mean"] == pytest.approx(3.0)
    classes = {c["category"]: c for c in run.summary["classes"]}
    assert set(classes) == {"car", "road", "sidewalk"}  # void is no class
    assert classes["car"]["iou"] == 1.0
    assert classes["road"]["iou"] == pytest.approx((60 * 160 - 800) / (63 * 160 - 800))


# --- panoptic and label maps of one synth batch -----------------------------------------------------

@pytest.fixture(scope="module")
def synth_batch(tmp_path_factory):
    from qa.synth import synthesize

    out = tmp_path_factory.mktemp("semantic") / "synth"
    synthesize(out, images=2, size=(96, 192), annotators=2, seed=5, faults=["alice:shift=road/sidewalk,px=3"],
               formats=("coco", "coco_panoptic", "labelmap"), workers=1)
    return out


def test_panoptic_and_label_map_exports_of_one_batch_agree(synth_batch):
    lm = compare_semantic(qa.load(manifest=synth_batch / "batch_labelmap.toml"), workers=1)
    pan = compare_semantic(qa.load(manifest=synth_batch / "batch_panoptic.toml"), workers=1)
    key = ["image", "annotator_a", "annotator_b", "category"]
    a = lm.classes.sort_values(key).reset_index(drop=True)
    b = pan.classes.sort_values(key).reset_index(drop=True)
    assert a.drop(columns="image").equals(b.drop(columns="image"))
    assert len(lm.interfaces) == len(pan.interfaces)


def test_components_split_thing_classes_only(synth_batch):
    from scipy import ndimage

    batch = qa.load(manifest=synth_batch / "batch_labelmap.toml")
    counts = {name: len(e.objects) for name, e in batch.exports.items()}
    split = with_instances(batch, "components")
    assert {name: len(e.objects) for name, e in batch.exports.items()} == counts  # the batch is not modified
    assert with_instances(batch, "classes") is batch
    with pytest.raises(ConfigError, match="instances must be one of"):
        with_instances(batch, "segments")
    for name, export in split.exports.items():
        before = batch.exports[name].objects
        assert len(export.objects) > len(before)
        stuff = [o for o in export.objects if not batch.categories[o.category].isthing]
        assert [o.source.id for o in stuff] == [o.source.id for o in before if not batch.categories[o.category].isthing]
        for obj in before:
            if not batch.categories[obj.category].isthing:
                continue
            parts = [o for o in export.objects if o.category == obj.category and o.image == obj.image]
            full = coco_decode(obj.rle)
            _, count = ndimage.label(full, structure=np.ones((3, 3)))
            assert len(parts) == count
            union = np.zeros_like(full)
            for k, part in enumerate(parts, start=1):
                m = coco_decode(part.rle)
                assert not (union & m).any() and part.area == m.sum() and part.attributes["component"] == k
                union |= m
            assert (union == full).all()


def test_instances_components_matches_each_car_on_its_own():
    a = street(14)
    a[5:8, 20:25] = 0  # a second car
    b = a.copy()
    batch = maps_batch({"alice": a, "bob": b})
    split = components_as_instances(batch)
    assert [o.source.id for o in split.exports["alice"].objects if o.category == "car"] == ["0#1", "0#2"]
    from qa.engine.compare import compare_batch

    pairs = compare_batch(split, workers=1).object_pairs
    cars = pairs[pairs["category_a"] == "car"]
    assert len(cars) == 2 and (cars["status"] == "matched").all() and (cars["iou"] == 1).all()
    with pytest.raises(ConfigError):
        components_as_instances(batch, connectivity=6)


# --- BU-BIL: ten experts' binary masks -------------------------------------------------------------

def test_bu_bil_class_iou_equals_pycocotools(shared_data):
    root = shared_data / "bu_bil_dataset1" / "ExpertsAnnotations"
    people = ["Person1_Amira", "Person2_ImageJ", "Person5_Amira"]
    batch = qa.load(*[f"{p}={root / p}" for p in people])
    result = compare_semantic(batch, tolerances=(2,), workers=1)
    rows = result.classes
    assert set(rows["category"]) == {"foreground", "background"} and len(rows) == 2 * 3 * 35
    rows = rows[rows["category"] == "foreground"]

    def mask(person, image):
        files = {p.stem.casefold(): p for p in (root / person).glob("*.png")}
        grey = np.asarray(PILImage.open(files[image]).convert("L"))
        return np.asfortranarray((grey < 128).astype(np.uint8))  # foreground is black

    for row in rows.itertuples(index=False):
        a, b = mask(row.annotator_a, row.image), mask(row.annotator_b, row.image)
        expected = mask_utils.iou([mask_utils.encode(a)], [mask_utils.encode(b)], [0])[0, 0]
        assert row.iou == pytest.approx(expected, abs=1e-12), (row.image, row.annotator_a, row.annotator_b)
    pooled = result.scores.set_index(["scope", "key", "metric"])["value"]
    inter = rows["intersection"].sum()
    union = rows["union"].sum()
    assert pooled[("category", "foreground", "class_iou")] == pytest.approx(inter / union)
    assert math.isfinite(pooled[("batch", "", "class_iou_mean")])


@pytest.mark.parametrize("seed", range(10))
def test_classes_present_are_read_from_the_boundaries(seed):
    from qa.engine.semantic import _edge_lists, _present

    rng = np.random.default_rng(seed)
    h, w, n = int(rng.integers(1, 20)), int(rng.integers(1, 20)), 5
    m = rng.integers(-1, n - 1, (h, w)).astype(np.int32)  # class n - 1 never occurs
    if seed % 3 == 0:
        m[:] = seed % 4 - 1  # one class (or void) everywhere: no boundary at all
    expected = [bool((m == c).any()) for c in range(n)]
    assert _present(m, _edge_lists(m, n)[0], n).tolist() == expected


def test_image_level_iou_leaves_void_regions_out():
    """Label maps load void classes as crowd objects; the engine's image-level IoU is over the classes only."""
    from qa.engine.compare import compare_batch

    a, b = street(20), street(23)
    a[:5] = 3  # a void strip both annotators share, and one only bob marks
    b[:5] = 3
    b[5:8, :4] = 3
    batch = maps_batch({"alice": a, "bob": b}, void=3)
    image = compare_batch(batch, workers=1).image_pairs.iloc[0]
    ious = [((a == k) & (b == k)).sum() / ((a == k) | (b == k)).sum() for k in range(3)]
    assert image["image_iou_mean"] == pytest.approx(np.mean(ious), rel=1e-12)
