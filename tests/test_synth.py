"""qa synth: determinism, exports that load, and every planted fault really in the exported files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import shapely
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

import qa
from common import run_cli
from reference import coco_decode
from qa.errors import ConfigError
from qa.synth import parse_faults, synthesize
from qa.synth._writers import write_png

H, W = 256, 512
ALL_FORMATS = ("coco", "coco_panoptic", "cvat", "labelmap")


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    """The default preset (every noise model and rule fault), 5 images, every format."""
    out = tmp_path_factory.mktemp("synth") / "batch"
    synthesize(out, images=5, size=(H, W), annotators=3, seed=7, formats=ALL_FORMATS, workers=1)
    return out


@pytest.fixture(scope="module")
def signal(tmp_path_factory) -> Path:
    """Only two clean signals, no jitter: bob draws 2 px outside, alice moves road|sidewalk 3 px."""
    out = tmp_path_factory.mktemp("synth") / "signal"
    synthesize(out, images=4, size=(H, W), annotators=2, seed=3, workers=1, formats=("coco", "labelmap"),
               faults=["bob:dilate=2", "alice:shift=road/sidewalk,px=3"])
    return out


def _coco(path: Path) -> dict:
    return json.loads(path.read_text())


def _objects(doc: dict) -> dict[int, dict]:
    return {a["id"]: a for a in doc["annotations"]}


def _planted(out: Path) -> dict:
    return json.loads((out / "planted.json").read_text())


def _faults(out: Path, fault: str, annotator: str | None = None) -> list[dict]:
    return [r for r in _planted(out)["faults"]
            if r["fault"] == fault and (annotator is None or r["annotator"] == annotator)]


def _poly(ann: dict):
    parts = [shapely.Polygon(np.reshape(p, (-1, 2))) for p in ann["segmentation"]]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _mask(ann: dict) -> np.ndarray:
    rles = mask_utils.frPyObjects(ann["segmentation"], H, W)
    return coco_decode(mask_utils.merge(rles)).astype(bool)


# --- determinism and loading -------------------------------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    kwargs = dict(images=3, size=(128, 256), annotators=2, seed=11, formats=ALL_FORMATS)
    synthesize(tmp_path / "a", workers=1, **kwargs)
    synthesize(tmp_path / "b", workers=2, **kwargs)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a == b
    synthesize(tmp_path / "c", workers=1, **{**kwargs, "seed": 12})
    assert _tree(tmp_path / "c")["coco/alice.json"] != a["coco/alice.json"]


def test_exports_load_with_expected_counts(batch):
    planted = _planted(batch)
    for manifest, fmt in (("batch.toml", "coco"), ("batch_panoptic.toml", "coco_panoptic")):
        loaded = qa.load(manifest=batch / manifest)
        assert loaded.annotators == ["alice", "bob", "carol"]
        assert len(loaded.images) == 5
        assert [f for f in loaded.findings if f.severity == "error"] == []
        for name in loaded.annotators:
            export = loaded.exports[name]
            assert export.format == fmt
            doc = _coco(batch / planted["files"][name]["coco"])
            if fmt == "coco":
                assert len(export.objects) == len(doc["annotations"])
                assert {o.source.id for o in export.objects} == {a["id"] for a in doc["annotations"]}
    truth = _coco(batch / "truth" / "coco.json")
    with_truth = qa.load(manifest=batch / "batch_with_truth.toml")
    assert len(with_truth.exports["truth"].objects) == len(truth["annotations"])
    # Truth: 5 stuff regions at most and about 30 things per image, sizes in all three COCO classes.
    per_image = defaultdict(int)
    sizes = set()
    for a in truth["annotations"]:
        if a["category_id"] >= 6:
            per_image[a["image_id"]] += 1
            sizes.add("small" if a["area"] < 1024 else "medium" if a["area"] < 9216 else "large")
    assert all(20 <= n <= 40 for n in per_image.values())
    assert {"small", "medium"} <= sizes


def test_full_size_scene_spans_coco_size_classes():
    from qa.synth._scene import generate_scene

    scene = generate_scene(np.random.default_rng([0, 0]), 0, 1024, 2048)
    things = [o for o in scene.objects if o.isthing]
    areas = np.array([scene.area[o.id] for o in things])
    assert 25 <= len(things) <= 40
    assert (areas < 32 ** 2).sum() >= 3 and ((areas >= 32 ** 2) & (areas < 96 ** 2)).sum() >= 3
    assert (areas >= 96 ** 2).sum() >= 2
    assert sum(o.occluded for o in things) >= 5
    assert sum(scene.visible.values()) == 1024 * 2048  # stuff tiles the image


def test_run_cli_shows_k_annotators(batch, capsys):
    code, out, err = run_cli(["run", "--manifest", batch / "batch.toml"], capsys)
    assert code == 0, err
    assert out.splitlines()[-2].startswith("3 annotators, 5 images (5 labelled by all)")
    assert out.splitlines()[-1].endswith(" in 3 exports")
    assert "0 errors" in out.splitlines()[-1]


def test_synth_cli_prints_what_it_wrote(tmp_path, capsys):
    out_dir = tmp_path / "cli"
    code, out, err = run_cli(["synth", out_dir, "--images", "2", "--size", "128x256", "--seed", "1",
                              "--annotators", "2", "--workers", "1", "--faults", "bob:dilate=1",
                              "alice:rule_faults"], capsys)
    assert code == 0, err
    assert out.startswith(f"wrote 2 images of 128x256, 2 annotators to {out_dir}")
    assert "planted.json" in out and "self_intersection" in out and "VTX006" in out
    assert (out_dir / "batch.toml").is_file() and (out_dir / "panoptic" / "alice").is_dir()
    # A second run into the same folder needs --force.
    code, out, err = run_cli(["synth", out_dir, "--images", "1", "--size", "128x256"], capsys)
    assert code == 2 and out == "" and "not empty" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli(["synth", out_dir, "--images", "1", "--size", "128x256", "--force",
                              "--workers", "1", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["images"] == 1


@pytest.mark.parametrize("spec, message", [
    ("dave:jitter=1", "unknown annotator 'dave'"),
    ("alice:wobble=1", "unknown fault 'wobble'"),
    ("alice:dilate=two", "'two' is not a number"),
    ("alice:swap=car,p=0.5", "pair must be two different categories"),
    ("alice:miss_small=100,q=1", "unknown parameter 'q'"),
    ("alice:drop_occluded=1.5", "p must lie in [0, 1]"),
    ("alice", "is not ANNOTATOR:FAULT"),
])
def test_bad_fault_specs_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_faults([spec], ["alice", "bob"])


def test_bad_arguments(tmp_path, capsys):
    code, _, err = run_cli(["synth", tmp_path / "x", "--size", "1024by2048"], capsys)
    assert code == 2 and "HEIGHTxWIDTH" in err
    code, _, err = run_cli(["synth", tmp_path / "x", "--formats", "coco,yolo"], capsys)
    assert code == 2 and "unknown format 'yolo'" in err
    code, _, err = run_cli(["synth", tmp_path / "x", "--faults", "alice:shift=road/car"], capsys)
    assert code == 2 and "two stuff categories" in err


# --- writers -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(5, 7), (6, 4, 3), (1, 1), (33, 2, 3)])
def test_png_writer_reads_back_with_pillow(tmp_path, shape):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, shape).astype(np.uint8)
    write_png(tmp_path / "x.png", array)
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode == ("L" if len(shape) == 2 else "RGB")
        np.testing.assert_array_equal(np.asarray(im), array)


def test_crop_raster_equals_the_full_image_raster():
    """Painting on bbox crops gives pycocotools' full-image mask exactly, once coordinates are quantised."""
    from qa.synth._raster import crop, quantise

    rng = np.random.default_rng(1)
    for _ in range(200):
        centre = rng.uniform(5, 120, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 12))))
        radius = rng.uniform(0.5, 30) * rng.uniform(0.6, 1.0, len(angles))
        pts = quantise(np.column_stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)]))
        # Exact ties (x.10, x.30, ... whose 5x ends in .5) are what quantise moves away from.
        assert not np.any(np.mod(np.round(pts * 100), 20) == 10)
        mask, (x0, y0) = crop([pts], 100, 130)
        full = coco_decode(mask_utils.merge(mask_utils.frPyObjects([pts.ravel().tolist()], 100, 130)))
        painted = np.zeros((100, 130), dtype=bool)
        if mask is not None:
            painted[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = mask
        np.testing.assert_array_equal(painted, full.astype(bool))


def test_panoptic_pngs_match_segments_info(batch):
    for name in ("truth", "alice", "bob", "carol"):
        json_path = batch / ("truth/panoptic.json" if name == "truth" else f"panoptic/{name}.json")
        png_dir = json_path.with_suffix("")
        doc = json.loads(json_path.read_text())
        coco = _objects(_coco(batch / ("truth/coco.json" if name == "truth" else f"coco/{name}.json")))
        for ann in doc["annotations"]:
            rgb = np.asarray(Image.open(png_dir / ann["file_name"]), dtype=np.int64)
            ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 ** 2 * rgb[..., 2]
            present, counts = np.unique(ids, return_counts=True)
            assert 0 not in present  # stuff tiles the image
            by_id = dict(zip(present.tolist(), counts.tolist()))
            assert set(by_id) == {s["id"] for s in ann["segments_info"]}
            for seg in ann["segments_info"]:
                assert seg["area"] == by_id[seg["id"]]
                rows, cols = np.nonzero(ids == seg["id"])
                assert seg["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1,
                                       rows.max() - rows.min() + 1]
                assert seg["category_id"] == coco[seg["id"]]["category_id"]


def test_labelmaps_and_cvat_agree_with_the_other_exports(batch):
    classes = json.loads((batch / "labelmap" / "classes.json").read_text())
    assert [c["name"] for c in classes["classes"]][:2] == ["road", "sidewalk"]
    pan = json.loads((batch / "panoptic" / "bob.json").read_text())
    for ann in pan["annotations"]:
        rgb = np.asarray(Image.open(batch / "panoptic" / "bob" / ann["file_name"]), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 ** 2 * rgb[..., 2]
        lut = {s["id"]: s["category_id"] for s in ann["segments_info"]}
        expected = np.vectorize(lut.get)(ids)
        labels = np.asarray(Image.open(batch / "labelmap" / "bob" / ann["file_name"]))
        np.testing.assert_array_equal(labels, expected)
    coco = _coco(batch / "coco" / "carol.json")
    root = ET.parse(batch / "cvat" / "carol.xml").getroot()
    assert root.findtext("version") == "1.1"
    images = root.findall("image")
    assert [im.get("name") for im in images] == [im["file_name"] for im in coco["images"]]
    polygons = [p for im in images for p in im.findall("polygon")]
    anns = [(a, part) for a in coco["annotations"] for part in a["segmentation"]]
    assert len(polygons) == len(anns)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    for poly, (ann, part) in zip(polygons, anns):
        assert poly.get("label") == names[ann["category_id"]]
        assert int(poly.get("z_order")) == ann["attributes"]["z_order"]
        assert poly.get("occluded") == str(int(ann["attributes"]["occluded"]))
        points = [float(v) for xy in poly.get("points").split(";") for v in xy.split(",")]
        np.testing.assert_allclose(points, part)


# --- the planted agreement signals --------------------------------------------------------------------

def _signed_offset(other: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Sum of the signed distance of ``other``'s outline from ``truth``'s, and the number of samples.

    The signed distance of a pixel centre from truth's outline (positive outside) is the EDT to the
    nearest pixel of the other side minus half a pixel. ``other``'s outline lies between its inner
    boundary pixels and the outer ones; sampling both sides equally gives the outline's offset.
    """
    pad = 12
    t = np.pad(truth, pad)
    o = np.pad(other, pad)
    sdf = np.where(t, -(ndimage.distance_transform_edt(t) - 0.5), ndimage.distance_transform_edt(~t) - 0.5)
    inner = o & ~ndimage.binary_erosion(o)
    outer = ndimage.binary_dilation(o) & ~o
    return float(sdf[inner].mean() + sdf[outer].mean()) / 2.0, 1


def test_dilation_offset_and_area_are_the_planted_value(signal):
    truth = _objects(_coco(signal / "truth" / "coco.json"))
    bob = _objects(_coco(signal / "coco" / "bob.json"))
    alice = _objects(_coco(signal / "coco" / "alice.json"))
    offsets, weights, grown, expected = [], [], 0.0, 0.0
    for oid, t_ann in truth.items():
        if t_ann["category_id"] < 6:
            continue
        assert alice[oid]["segmentation"] == t_ann["segmentation"]  # alice has no noise on things
        x, y, w, h = t_ann["bbox"]
        if x < 4 or y < 4 or x + w > W - 4 or y + h > H - 4 or t_ann["area"] < 30:
            continue  # clipped by the image border, or too small for a stable outline
        t_mask, b_mask = _mask(t_ann), _mask(bob[oid])
        offset, _ = _signed_offset(b_mask, t_mask)
        offsets.append(offset)
        weights.append(_poly(t_ann).length)
        grown += b_mask.sum() - t_mask.sum()
        expected += 2.0 * _poly(t_ann).length
    assert len(offsets) >= 40
    mean = float(np.average(offsets, weights=weights))
    assert abs(mean - 2.0) <= 0.25, mean
    assert 0.9 <= grown / expected <= 1.15
    noise = [r for r in _planted(signal)["faults"] if r["fault"] == "dilate"]
    assert noise[0]["annotator"] == "bob" and noise[0]["object_id"] is None and noise[0]["params"]["px"] == 2


def test_road_sidewalk_boundary_moves_the_planted_px(signal):
    truth = _objects(_coco(signal / "truth" / "coco.json"))
    moved, back, length = 0, 0, 0.0
    for image in _coco(signal / "truth" / "coco.json")["images"]:
        stem = Path(image["file_name"]).stem
        t = np.asarray(Image.open(signal / "truth" / "labelmap" / f"{stem}.png"))
        a = np.asarray(Image.open(signal / "labelmap" / "alice" / f"{stem}.png"))
        moved += int(((t == 2) & (a == 1)).sum())
        back += int(((t == 1) & (a == 2)).sum())
        assert ((t != a) & ~np.isin(t, (1, 2))).sum() <= 5  # nothing else changes (but a seam pixel)
        road = [_poly(x) for x in truth.values() if x["image_id"] == image["id"] and x["category_id"] == 1][0]
        sidewalk = [_poly(x) for x in truth.values() if x["image_id"] == image["id"] and x["category_id"] == 2][0]
        shared = road.boundary.intersection(sidewalk.buffer(0.01))
        # Only the part of the boundary not hidden by things and not on the image border shows.
        length += shared.length
    assert back == 0
    # Things cover part of the boundary, so the visible displacement is at most 3 px per px of boundary.
    assert 1.5 <= moved / length <= 3.2


def test_missed_small_objects_are_absent(batch):
    truth = _objects(_coco(batch / "truth" / "coco.json"))
    carol = _objects(_coco(batch / "coco" / "carol.json"))
    missed = _faults(batch, "miss_small", "carol")
    assert len(missed) >= 10
    for r in missed:
        assert r["object_id"] not in carol
        assert truth[r["object_id"]]["area"] < r["params"]["threshold_px"] == 1024
        assert r["coco_index"] is None
    lost = {r["object_id"] for r in _planted(batch)["faults"]
            if r["annotator"] == "carol" and r["fault"] in ("miss_small",)}
    assert set(truth) - set(carol) == lost
    for name in ("alice", "bob"):
        assert set(truth) <= set(_objects(_coco(batch / "coco" / f"{name}.json")))


def test_zorder_swaps_and_flag_and_label_faults(batch):
    truth = _objects(_coco(batch / "truth" / "coco.json"))
    bob = _objects(_coco(batch / "coco" / "bob.json"))
    records = _faults(batch, "zorder", "bob")
    assert records
    for r in records:
        front, back = r["object_id"], r["related_ids"][0]
        assert truth[front]["attributes"]["z_order"] > truth[back]["attributes"]["z_order"]
        assert bob[front]["attributes"]["z_order"] < bob[back]["attributes"]["z_order"]
        assert _poly(bob[front]).intersection(_poly(bob[back])).area >= 50
        assert bob[front]["attributes"]["z_order"] == truth[back]["attributes"]["z_order"]
    swapped = {(r["object_id"],) for r in records} | {(r["related_ids"][0],) for r in records}
    for oid, ann in bob.items():
        if (oid,) not in swapped:
            assert ann["attributes"]["z_order"] == truth[oid]["attributes"]["z_order"]
    alice = _objects(_coco(batch / "coco" / "alice.json"))
    dropped = {r["object_id"] for r in _faults(batch, "drop_occluded", "alice")}
    assert dropped
    for oid, ann in alice.items():
        flag, truth_flag = ann["attributes"]["occluded"], truth[oid]["attributes"]["occluded"]
        assert flag == (truth_flag and oid not in dropped)
    swaps = {r["object_id"]: r for r in _faults(batch, "swap", "alice")}
    names = {c["id"]: c["name"] for c in _coco(batch / "truth" / "coco.json")["categories"]}
    for oid, ann in alice.items():
        if oid in swaps:
            assert names[ann["category_id"]] == swaps[oid]["params"]["written"] != names[truth[oid]["category_id"]]
        else:
            assert ann["category_id"] == truth[oid]["category_id"]


# --- the planted rule faults, and nothing else --------------------------------------------------------

def _duplicates(ann) -> bool:
    return any((np.reshape(p, (-1, 2)) == np.roll(np.reshape(p, (-1, 2)), 1, axis=0)).all(axis=1).any()
               for p in ann["segmentation"])


def _outside(ann) -> bool:
    pts = np.concatenate([np.reshape(p, (-1, 2)) for p in ann["segmentation"]])
    return bool((pts < 0).any() or (pts[:, 0] > W).any() or (pts[:, 1] > H).any())


def _raster_area_bbox(ann):
    rles = mask_utils.frPyObjects(ann["segmentation"], H, W)
    rle = mask_utils.merge(rles)
    return float(mask_utils.area(rle)), [float(v) for v in mask_utils.toBbox(rle)]


def _checks(ann, objects, image_objects):
    """Which rule faults the exported object shows, each measured from the export alone."""
    found = set()
    if _duplicates(ann):
        found.add("duplicate_vertices")
    poly = _poly(ann)
    reason = shapely.is_valid_reason(poly)
    if poly.area == 0:
        found.add("zero_area")
    elif reason.startswith("Self-intersection"):
        found.add("self_intersection")
    elif 4 * np.pi * poly.area / poly.length ** 2 < 0.05:
        found.add("sliver")
    if _outside(ann):
        found.add("outside_image")
    n = sum(len(p) // 2 for p in ann["segmentation"])
    if n < 4:
        found.add("too_few_vertices")
    if n >= 20 and n / poly.length * 100 > 40:  # small truth outlines have 6 vertices on a short outline
        found.add("over_dense")
    area, bbox = _raster_area_bbox(ann)
    if ann["area"] != area or ann["bbox"] != bbox:
        found.add("bbox_area")
    return found


def test_rule_faults_are_there_and_nothing_else_is(batch):
    planted = _planted(batch)
    for name in ("truth", "alice", "bob", "carol"):
        doc = _coco(batch / ("truth/coco.json" if name == "truth" else f"coco/{name}.json"))
        objects = _objects(doc)
        records = defaultdict(set)
        for r in planted["faults"]:
            if r["annotator"] == name and r["object_id"] is not None:
                records[r["object_id"]].add(r["fault"])
                if r["coco_index"] is not None:
                    assert doc["annotations"][r["coco_index"]]["id"] == r["object_id"]
        by_image = defaultdict(list)
        for a in doc["annotations"]:
            by_image[a["image_id"]].append(a)
        for oid, ann in objects.items():
            shown = _checks(ann, objects, by_image[ann["image_id"]])
            expected = records[oid] & {"duplicate_vertices", "self_intersection", "sliver", "zero_area",
                                       "outside_image", "too_few_vertices", "over_dense", "bbox_area"}
            assert shown == expected, (name, oid, shown, expected)
        # Layer faults: equal z_order on overlapping objects, stuff above things; only where planted.
        for anns in by_image.values():
            geoms = [shapely.make_valid(_poly(a)) for a in anns]
            for i in range(len(anns)):
                for j in range(i + 1, len(anns)):
                    a, b = anns[i], anns[j]
                    if geoms[i].intersection(geoms[j]).area < 1.0:
                        continue
                    za, zb = a["attributes"]["z_order"], b["attributes"]["z_order"]
                    things = (a["category_id"] >= 6, b["category_id"] >= 6)
                    if za == zb:
                        assert "zorder_equal" in records[a["id"]] | records[b["id"]], (name, a["id"], b["id"])
                    if things == (False, True) and za > zb or things == (True, False) and zb > za:
                        stuff = a if not things[0] else b
                        assert "stuff_above_thing" in records[stuff["id"]], (name, stuff["id"])
    counts = planted["counts"]["by_annotator"]["carol"]
    for fault in ("duplicate_vertices", "self_intersection", "sliver", "zero_area", "outside_image",
                  "too_few_vertices", "over_dense", "bbox_area", "zorder_equal", "stuff_above_thing"):
        assert counts.get(fault, 0) >= 4, fault
    assert counts.get("occluded_isolated", 0) >= 1  # needs a thing 10 px from all others: rarer


def test_occluded_on_isolated_objects(batch):
    carol = _objects(_coco(batch / "coco" / "carol.json"))
    records = _faults(batch, "occluded_isolated", "carol")
    assert records
    for r in records:
        ann = carol[r["object_id"]]
        assert ann["attributes"]["occluded"] is True
        others = [_poly(a) for a in carol.values()
                  if a["image_id"] == ann["image_id"] and a["category_id"] >= 6 and a["id"] != ann["id"]]
        assert min(shapely.make_valid(_poly(ann)).distance(shapely.make_valid(g)) for g in others) > 10.0
        assert r["rule"] == "OCC001"


def test_manifest_records_are_complete(batch):
    planted = _planted(batch)
    assert set(planted["rules"]) >= {r["rule"] for r in planted["faults"] if r["rule"]}
    keys = {"fault", "annotator", "image", "object_id", "category", "rule", "also", "related_ids", "params",
            "coco_index", "shape_index"}
    for r in planted["faults"]:
        assert set(r) == keys
        if r["object_id"] is not None:
            assert r["image"].startswith("scene_") and r["category"]
    assert planted["counts"]["by_fault"]["self_intersection"] == len(_faults(batch, "self_intersection"))
    assert planted["generator"]["annotators"] == ["alice", "bob", "carol"]


def test_coco_and_cvat_exports_hold_the_same_objects(tmp_path):
    """Each annotator's COCO and CVAT exports load to the same objects, in the same order, with the same
    areas (CVAT coordinates are written to 0.01 px, so a pixel or two may differ on an outline)."""
    from qa.engine._masks import object_rle
    from pycocotools import mask as mask_utils

    out = tmp_path / "s"
    synthesize(out, images=2, size=(128, 256), annotators=2, seed=1, formats=("coco", "cvat"), workers=1)
    coco = qa.load(manifest=out / "batch.toml")
    cvat = qa.load(manifest=out / "batch_cvat.toml")
    assert coco.annotators == cvat.annotators
    multi = 0
    for name in coco.annotators:
        a, b = coco.exports[name].objects, cvat.exports[name].objects
        assert [(o.image, o.category) for o in a] == [(o.image, o.category) for o in b]
        for oa, ob in zip(a, b):
            assert len(oa.polygons) == len(ob.polygons)
            multi += len(oa.polygons) > 1
            h, w = coco.images[oa.image].height, coco.images[oa.image].width
            area_a = int(mask_utils.area(object_rle(oa, h, w)))
            area_b = int(mask_utils.area(object_rle(ob, h, w)))
            assert abs(area_a - area_b) <= max(2, 0.01 * area_a), (name, oa.source, area_a, area_b)
    assert multi > 0  # the case that used to differ: objects drawn as several polygons
