"""COCO panoptic loader on real exports (../shared/data) and on small hand-made files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from common import write_json
from PIL import Image as PILImage

import qa
from qa.formats import detect, load
from qa.formats.coco_panoptic import read_id_map
from qa.model import Limits

SAMPLE = "panopticapi_sample/sample_data/panoptic_examples.json"
CATEGORIES = "panopticapi_sample/panoptic_coco_categories.json"
DATUMARO = "datumaro_format_fixtures/tests/assets/coco_dataset/coco_panoptic/annotations"


def _check_segment_areas(batch, doc, *, bbox=True):
    """Each segment decodes (full and crop) to exactly the area its segments_info declares."""
    export = next(iter(batch.exports.values()))
    for obj in export.objects:
        ann = doc["annotations"][int(obj.source.section.split("[")[1].split("]")[0])]
        seg = ann["segments_info"][obj.source.index]
        assert seg["id"] == obj.source.id == obj.segment_id
        full = qa.decode(obj, batch)
        crop, (x0, y0) = qa.decode(obj, batch, crop=True)
        assert int(full.sum()) == seg["area"] == obj.area
        assert int(crop.sum()) == seg["area"]
        if bbox:  # the tight bbox, as panopticapi writes it (datumaro writes width - 1, height - 1)
            assert (x0, y0, crop.shape[1], crop.shape[0]) == tuple(seg["bbox"])


@pytest.mark.shared_data
def test_panopticapi_sample(shared_data):
    path = shared_data / SAMPLE
    assert detect(path) == "coco_panoptic"
    [export] = load(path, "coco")
    assert export.format == "coco_panoptic"
    assert len(export.objects) == 50
    assert sum(o.iscrowd for o in export.objects) == 3
    assert export.findings == []
    assert set(export.id_maps) == {"000000142238.jpg", "000000439180.jpg"}
    per_image = {k: sum(o.image == k for o in export.objects) for k in export.images}
    assert per_image == {"000000142238.jpg": 18, "000000439180.jpg": 32}
    doc = json.loads(path.read_text())
    batch = qa.load(f"coco={path}")
    _check_segment_areas(batch, doc)


@pytest.mark.shared_data
def test_panopticapi_isthing_from_categories(shared_data):
    doc = json.loads((shared_data / SAMPLE).read_text())
    cats = json.loads((shared_data / CATEGORIES).read_text())
    [export] = load(shared_data / SAMPLE, "coco")
    stuff = {c["name"] for c in cats if not c["isthing"]}
    used = {o.category for o in export.objects}
    assert {c for c in used if not export.categories[c].isthing} == used & stuff
    assert len(doc["categories"]) == len(export.categories)


@pytest.mark.shared_data
def test_panoptic_id_map_against_the_png(shared_data):
    png = shared_data / "panopticapi_sample/sample_data/panoptic_examples/000000142238.png"
    ids = read_id_map(png, Limits())
    rgb = np.asarray(PILImage.open(png).convert("RGB")).astype(np.int64)
    np.testing.assert_array_equal(ids, rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2])
    assert ids.dtype == np.int32


@pytest.mark.shared_data
def test_datumaro_panoptic(shared_data):
    path = shared_data / DATUMARO / "panoptic_val.json"
    batch = qa.load(f"d={path}")
    export = batch.exports["d"]
    assert [(o.segment_id, o.category, o.iscrowd) for o in export.objects] == [(7, "a", False), (20, "b", True)]
    assert not export.categories["a"].isthing
    _check_segment_areas(batch, json.loads(path.read_text()), bbox=False)


@pytest.mark.shared_data
def test_datumaro_panoptic_png_size_differs(shared_data):
    # the fixture's a.png is 5x5 while its image is declared 10 wide, 5 high
    [export] = load(shared_data / DATUMARO / "panoptic_train.json", "d")
    [finding] = export.findings
    assert finding.code == "FMT003"
    assert "a.png is 5x5" in finding.message and "declared 10x5" in finding.message
    assert export.objects == [] and "a.jpg" in export.images


def _png(path, ids):
    ids = np.asarray(ids, dtype=np.uint32)
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(rgb, "RGB").save(path)
    return path


def test_png_dir_option_and_large_ids(tmp_path):
    ids = np.zeros((4, 6), np.int64)
    ids[:2, :3] = 70000  # needs all three channels' bits: 70000 = 112 + 17 * 256 + 1 * 65536
    ids[2:, 3:] = 5
    _png(tmp_path / "masks" / "x.png", ids)
    doc = {"images": [{"id": 1, "file_name": "x.jpg", "width": 6, "height": 4}],
           "categories": [{"id": 1, "name": "car", "isthing": 1}, {"id": 2, "name": "road", "isthing": 0}],
           "annotations": [{"image_id": 1, "file_name": "x.png", "segments_info": [
               {"id": 70000, "category_id": 1, "area": 6, "bbox": [0, 0, 3, 2], "iscrowd": 0},
               {"id": 5, "category_id": 2, "area": 6, "bbox": [3, 2, 3, 2], "iscrowd": 0}]}]}
    path = write_json(tmp_path / "pan.json", doc)
    manifest = tmp_path / "batch.toml"
    manifest.write_text('[[exports]]\nannotator = "a"\npath = "pan.json"\nformat = "coco_panoptic"\n'
                        'options = { png_dir = "masks" }\n')
    batch = qa.load(manifest=manifest)
    assert batch.exports["a"].findings == []
    _check_segment_areas(batch, doc)
    assert batch.categories["road"].isthing is False


# --- panopticapi's 2-channel PNGs ----------------------------------------------------------------------

def test_two_channel_pngs_are_read_as_category_and_instance(shared_data):
    # The sample's JSON with its 2-channel PNGs (R category id, G instance id): no JSON id is in these
    # PNGs, so this loaded 0 objects with a hundred FMT010 lines and no word of why.
    path = shared_data / SAMPLE
    png_dir = path.parent / "panoptic_examples_2ch_format"
    [two] = load(path, "two", options={"png_dir": str(png_dir)})
    [rgb] = load(path, "rgb")
    assert [f.code for f in two.findings] == ["FMT023"] and two.findings[0].severity == "info"
    assert two.findings[0].message.startswith("2 of 2 PNGs")
    assert len(two.objects) == len(rgb.objects) == 50
    # pixel for pixel, each 2-channel segment is one RGB segment of the same category
    for key in rgb.id_maps:
        ids_two = read_id_map(two.id_maps[key], Limits())
        ids_rgb = read_id_map(rgb.id_maps[key], Limits())
        cat_two = {o.segment_id: o.category for o in two.objects if o.image == key}
        cat_rgb = {o.segment_id: o.category for o in rgb.objects if o.image == key}
        pairs = set(zip(ids_two.ravel().tolist(), ids_rgb.ravel().tolist()))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # one to one
        assert all(cat_two[a] == cat_rgb[b] for a, b in pairs if a and b)
    batch = qa.load(f"rgb={path}", qa.manifest.ExportSpec("two", path, "coco_panoptic", {"png_dir": str(png_dir)}))
    assert sum(o.iscrowd for o in batch.objects("two")) == 0


def test_an_rgb_png_with_wrong_ids_is_not_taken_for_two_channels(tmp_path):
    ids = np.zeros((4, 6), np.uint32)
    ids[1:3, 1:3] = 1 + 256 * 300  # a third channel: not 2-channel
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    (tmp_path / "p").mkdir()
    PILImage.fromarray(rgb, "RGB").save(tmp_path / "p" / "p.png")
    doc = {"images": [{"id": 1, "file_name": "p.jpg", "width": 6, "height": 4}],
           "categories": [{"id": 1, "name": "car", "isthing": 1}],
           "annotations": [{"image_id": 1, "file_name": "p.png", "segments_info": [
               {"id": 7, "category_id": 1, "area": 4, "bbox": [1, 1, 2, 2], "iscrowd": 0}]}]}
    [export] = load(write_json(tmp_path / "p.json", doc), "a")
    assert sorted(f.code for f in export.findings) == ["FMT010", "FMT010"] and export.objects == []


# --- PNGs with their own segments_info list (COCONut) ---------------------------------------------------

COCONUT = "coco139_coconut_vs_coco"


def test_a_folder_of_pngs_with_segments_info_is_read(shared_data):
    folder = shared_data / COCONUT
    assert detect(folder) == "coco_panoptic"
    assert detect(folder / "coconut_relabeled_val_000000000139_segments_info.json") == "coco_panoptic"
    [export] = load(folder, "coconut")
    segments = json.loads((folder / "coconut_relabeled_val_000000000139_segments_info.json").read_text())
    assert export.findings == [] and len(export.categories) == 133  # the built-in COCO panoptic list
    assert list(export.images) == ["coconut_relabeled_val_000000000139.png"]
    assert (export.images["coconut_relabeled_val_000000000139.png"].width,
            export.images["coconut_relabeled_val_000000000139.png"].height) == (640, 426)
    assert [o.segment_id for o in export.objects] == [s["id"] for s in segments]
    assert export.objects[0].source.where == "segments_info[0] id=1"
    assert sum(o.category == "person" for o in export.objects) == sum(s["category_id"] == 1 for s in segments)


def test_builtin_categories_are_panopticapis(shared_data):
    from qa.formats.coco_panoptic import builtin_categories_path

    ours = json.loads(builtin_categories_path().read_text())
    theirs = json.loads((shared_data / CATEGORIES).read_text())
    assert [(c["id"], c["name"], c["isthing"], c["supercategory"]) for c in ours["categories"]] == \
        [(c["id"], c["name"], c["isthing"], c["supercategory"]) for c in theirs]
    assert "panopticapi" in ours["source"] and "Alexander Kirillov" in ours["licence"]


def test_coconut_against_coco_pairs_through_the_images_file(shared_data, tmp_path):
    # COCONut names its PNGs after the image (000000000139.png); the images file gives the image's name
    import shutil

    src = shared_data / COCONUT
    folder = tmp_path / "coconut"
    folder.mkdir()
    shutil.copy(src / "coconut_relabeled_val_000000000139.png", folder / "000000000139.png")
    shutil.copy(src / "coconut_relabeled_val_000000000139_segments_info.json",
                folder / "000000000139_segments_info.json")
    coco = src / "coco_val2017_partial_000000000139.json"
    manifest = tmp_path / "batch.toml"
    manifest.write_text(f'[[exports]]\nannotator = "coco"\npath = "{coco}"\n\n[[exports]]\nannotator = "coconut"\n'
                        f'path = "coconut"\noptions = {{ images_file = "{coco}" }}\n')
    run = qa.run(manifest=manifest, store=False, pack=None, workers=1, analytics=False)
    assert list(run.batch.images) == ["000000000139.jpg"] and run.batch.coverage["000000000139.jpg"] == ("coco", "coconut")
    op = run.comparison.object_pairs
    persons = op[(op["status"] == "matched") & (op["category_a"] == "person")]
    # SOURCE.txt: the two COCO persons against COCONut segments 27 and 15, mask IoU 0.889 and 0.886
    assert sorted(round(v, 3) for v in persons["iou"]) == [0.886, 0.889]


def test_categories_file_and_a_missing_png(tmp_path, shared_data):
    import shutil

    src = shared_data / COCONUT
    shutil.copy(src / "coconut_relabeled_val_000000000139.png", tmp_path / "a.png")
    shutil.copy(src / "coconut_relabeled_val_000000000139_segments_info.json", tmp_path / "a_segments_info.json")
    (tmp_path / "b_segments_info.json").write_text("[]")
    cats = write_json(tmp_path / "cats.json", [{"id": 1, "name": "person", "isthing": 1}])
    [export] = load(tmp_path, "c", format="coco_panoptic", options={"categories_file": str(cats)})
    assert list(export.categories) == ["person"] and {o.category for o in export.objects} == {"person"}
    codes = [f.code for f in export.findings]
    assert codes.count("FMT009") == 1 and codes.count("FMT004") == sum(
        s["category_id"] != 1 for s in json.loads((tmp_path / "a_segments_info.json").read_text()))
