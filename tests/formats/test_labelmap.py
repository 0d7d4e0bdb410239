"""Label-map folders (qa.formats.labelmap) and the BU-BIL binary masks, on real and hand-made PNGs."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

import qa
from common import run_cli
from qa.errors import ConfigError, InputError
from qa.formats import detect
from qa.formats.labelmap import parse_classes

# --- BU-BIL dataset 1: ten experts, seven crowd workers -------------------------------------------------

EXPERTS = [f"Person{p}_{tool}" for p in range(1, 6) for tool in ("Amira", "ImageJ")]


@pytest.fixture(scope="module")
def bubil(shared_data):
    """The ten expert folders (as one folder of folders) and one crowd worker, loaded once."""
    root = shared_data / "bu_bil_dataset1"
    batch = qa.load(f"experts={root / 'ExpertsAnnotations'}",
                    f"crowd={root / 'CrowdsourcedAnnotations' / 'mturk_annotation1-1'}")
    return root, batch


def _reference_rle(png: Path) -> dict:
    """The mask as the dataset defines it (foreground black: grey < 128), encoded by pycocotools."""
    grey = np.asarray(PILImage.open(png).convert("L"))
    return mask_utils.encode(np.asfortranarray((grey < 128).astype(np.uint8)))


def test_bubil_experts_are_ten_annotators_of_the_same_35_images(bubil):
    root, batch = bubil
    experts = [f"experts/{name}" for name in EXPERTS]
    assert sorted(a for a in batch.annotators if a.startswith("experts/")) == sorted(experts)
    keys = {a: set(batch.exports[a].images) for a in experts}
    assert all(len(k) == 35 for k in keys.values())
    assert len(set(map(frozenset, keys.values()))) == 1
    assert all(set(experts) <= set(batch.coverage[k]) for k in keys[experts[0]])
    # Person3_Amira spells four files "Seg_"; they pair with everyone else's "seg_" files.
    p3 = batch.exports["experts/Person3_Amira"].images
    assert sorted(im.file_name for im in p3.values() if im.file_name.startswith("Seg_")) == [
        "Seg_B18.png", "Seg_B24.png", "Seg_B25.png", "Seg_B31.png"]
    assert not [f for f in batch.findings if f.code in ("FMT005", "ALN001") and f.annotator in experts]
    # One cell per image, foreground black (sniffed from the white border, and said so).
    assert all(len(batch.objects(a)) == 35 for a in experts)
    polarity = [f for f in batch.findings if f.code == "FMT021"]
    assert len(polarity) == 11 and all("taken as black" in f.message for f in polarity)
    assert all(e.format == "binary_masks" for e in batch.exports.values())


def test_bubil_pairwise_iou_equals_pycocotools(bubil):
    root, batch = bubil
    experts = [f"experts/{name}" for name in EXPERTS]
    reference = {}
    for name in EXPERTS:
        for png in (root / "ExpertsAnnotations" / name).glob("*.png"):
            reference[(f"experts/{name}", png.stem.lower())] = _reference_rle(png)
    ious = []
    for image in sorted(batch.images):
        for a, b in itertools.combinations(experts, 2):
            (obj_a,), (obj_b,) = batch.objects(a, image), batch.objects(b, image)
            ours = mask_utils.iou([obj_a.rle], [obj_b.rle], [0])[0, 0]
            expected = mask_utils.iou([reference[(a, image)]], [reference[(b, image)]], [0])[0, 0]
            assert ours == expected, (image, a, b)
            ious.append(expected)
    assert len(ious) == 35 * 45
    # The dataset's SOURCE.txt: mean pairwise Jaccard 0.758, worst pair 0.36.
    assert np.mean(ious) == pytest.approx(0.758, abs=5e-4)
    assert min(ious) == pytest.approx(0.36, abs=5e-3)


def test_bubil_objects_match_the_pixels(bubil):
    root, batch = bubil
    obj = batch.objects("experts/Person3_Amira", "seg_b18")[0]
    png = root / "ExpertsAnnotations" / "Person3_Amira" / "Seg_B18.png"
    grey = np.asarray(PILImage.open(png).convert("L"))
    assert obj.area == float((grey < 128).sum()) == float(mask_utils.area(obj.rle))
    assert obj.source.file == str(png)
    full = qa.decode(obj, batch)
    np.testing.assert_array_equal(full, (grey < 128).astype(np.uint8))
    crop, (x0, y0) = qa.decode(obj, batch, crop=True)
    np.testing.assert_array_equal(crop, full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]])
    assert crop.sum() == full.sum()


def test_bubil_crowd_crops_are_size_mismatches_not_compared(bubil):
    root, batch = bubil
    crowd = batch.exports["crowd"]
    mismatched = [k for k, im in crowd.images.items()
                  if (im.width, im.height) != (batch.images[k].width, batch.images[k].height)]
    assert len(mismatched) >= 25  # most crowd masks are crops at other sizes
    # reported once for the export, with the sizes, never image by image
    (finding,) = [f for f in batch.findings if f.code == "ALN002"]
    assert finding.annotator == "crowd"
    assert f"crowd declares other sizes on {len(mismatched)} of {len(crowd.images)} images" in finding.message
    assert "seg_b01 900x321 (frame 1024x811)" in finding.message and "another aspect ratio" in finding.message
    for key in mismatched:
        assert "crowd" not in batch.coverage[key]
        assert len(batch.coverage[key]) == 10
    same_size = set(crowd.images) - set(mismatched)
    assert same_size and all("crowd" in batch.coverage[k] for k in same_size)


def test_bubil_qa_run_on_the_experts_folder(shared_data, capsys):
    folder = shared_data / "bu_bil_dataset1" / "ExpertsAnnotations" / "Person3_Amira"
    code, out, err = run_cli(["run", f"p3={folder}", "--format", "json"], capsys)
    assert code == 0, err
    import json

    summary = json.loads(out)
    assert summary["annotators"][0]["format"] == "binary_masks"
    assert summary["annotators"][0]["objects_per_category"] == {"foreground": 35}
    assert summary["errors"] == 0 and summary["warnings"] == 0


# --- a hand-made semantic example: road / sidewalk / car, two annotators ------------------------------

H, W = 40, 48
VOID, ROAD, SIDEWALK, CAR, BUILDING = 0, 1, 2, 3, 4
COLOURS = {VOID: (0, 0, 0), ROAD: (128, 64, 128), SIDEWALK: (244, 35, 232), CAR: (0, 0, 142),
           BUILDING: (70, 70, 70)}
CLASSES = [
    {"id": VOID, "name": "unlabeled", "void": True, "colour": list(COLOURS[VOID])},
    {"id": ROAD, "name": "road", "colour": list(COLOURS[ROAD])},
    {"id": SIDEWALK, "name": "sidewalk", "colour": list(COLOURS[SIDEWALK])},
    {"id": CAR, "name": "car", "isthing": True, "colour": list(COLOURS[CAR])},
    {"id": BUILDING, "name": "building", "colour": "#464646"},
]
MANIFEST_CLASSES = """
[[classes]]
id = 0
name = "unlabeled"
void = true
colour = [0, 0, 0]

[[classes]]
id = 1
name = "road"
colour = [128, 64, 128]

[[classes]]
id = 2
name = "sidewalk"
colour = "#f423e8"

[[classes]]
id = 3
name = "car"
isthing = true
colour = [0, 0, 142]

[[classes]]
id = 4
name = "building"
color = "#464646"
"""


def scene(kerb_row: int, car_x: int = 8) -> np.ndarray:
    """A street: void sky strip, buildings, sidewalk, road from ``kerb_row`` down, a car on the road."""
    ids = np.full((H, W), BUILDING, np.uint8)
    ids[:4] = VOID
    ids[18:kerb_row] = SIDEWALK
    ids[kerb_row:] = ROAD
    ids[30:36, car_x:car_x + 14] = CAR
    return ids


def palette_png(ids: np.ndarray, path: Path) -> Path:
    image = PILImage.fromarray(ids, "P")
    palette = [0] * 768
    for k, rgb in COLOURS.items():
        palette[3 * k:3 * k + 3] = rgb
    image.putpalette(palette)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def colour_png(ids: np.ndarray, path: Path, alpha: np.ndarray | None = None) -> Path:
    lut = np.zeros((256, 3), np.uint8)
    for k, rgb in COLOURS.items():
        lut[k] = rgb
    rgb = lut[ids]
    path.parent.mkdir(parents=True, exist_ok=True)
    if alpha is None:
        PILImage.fromarray(rgb, "RGB").save(path)
    else:
        PILImage.fromarray(np.dstack([rgb, alpha]), "RGBA").save(path)
    return path


def grey_png(values: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(values).save(path)
    return path


def write_manifest(tmp_path: Path, exports: str, classes: str = MANIFEST_CLASSES) -> Path:
    manifest = tmp_path / "batch.toml"
    manifest.write_text(classes + exports, encoding="utf-8")
    return manifest


@pytest.fixture
def street(tmp_path):
    """Two annotators' palette label maps of two images; bob's kerb is 3 px higher."""
    for name, kerb in (("alice", 26), ("bob", 23)):
        palette_png(scene(kerb), tmp_path / name / "street_01.png")
        palette_png(scene(kerb, car_x=24), tmp_path / name / "street_02.png")
    manifest = write_manifest(tmp_path, """
[[exports]]
annotator = "alice"
path = "alice"

[[exports]]
annotator = "bob"
path = "bob"
format = "labelmap"
""")
    return tmp_path, manifest


def _masks(batch, annotator, image):
    return {o.category: qa.decode(o, batch) for o in batch.objects(annotator, image)}


def test_palette_label_maps_load_one_object_per_class(street):
    _root, manifest = street
    batch = qa.load(manifest=manifest)
    assert batch.annotators == ["alice", "bob"]
    assert set(batch.images) == {"street_01", "street_02"}
    assert {e.format for e in batch.exports.values()} == {"labelmap"}
    assert set(batch.categories) == {"unlabeled", "road", "sidewalk", "car", "building"}
    assert batch.categories["car"].isthing and not batch.categories["road"].isthing
    for annotator, kerb in (("alice", 26), ("bob", 23)):
        ids = scene(kerb)
        masks = _masks(batch, annotator, "street_01")
        assert [o.category for o in batch.objects(annotator, "street_01")] == [
            "unlabeled", "road", "sidewalk", "car", "building"]
        for cid, entry in enumerate(CLASSES):
            np.testing.assert_array_equal(masks[entry["name"]], (ids == cid).astype(np.uint8))
        for obj in batch.objects(annotator, "street_01"):
            assert obj.area == float(mask_utils.area(obj.rle))
            assert obj.bbox == tuple(float(v) for v in mask_utils.toBbox(obj.rle))
    assert not [f for f in batch.findings if f.severity != "info"]


def test_void_class_is_a_crowd_object_marked_void(street):
    _root, manifest = street
    batch = qa.load(manifest=manifest)
    (void,) = [o for o in batch.objects("alice", "street_01") if o.attributes.get("void")]
    assert void.category == "unlabeled" and void.iscrowd
    assert void.area == 4 * W
    assert not batch.categories["unlabeled"].isthing
    assert sum(o.iscrowd for o in batch.objects("alice")) == 2


def test_colour_maps_decode_like_palette_maps(street, tmp_path):
    root, _manifest = street
    colour_png(scene(26), tmp_path / "carol" / "street_01.png")
    alpha = np.full((H, W), 255, np.uint8)
    alpha[:, :5] = 0  # transparent strip: unlabelled
    colour_png(scene(26), tmp_path / "carol" / "street_02.png", alpha)
    manifest = write_manifest(tmp_path, """
[[exports]]
annotator = "alice"
path = "alice"

[[exports]]
annotator = "carol"
path = "carol"
""")
    batch = qa.load(manifest=manifest)
    alice, carol = _masks(batch, "alice", "street_01"), _masks(batch, "carol", "street_01")
    assert alice.keys() == carol.keys()
    for name in alice:
        np.testing.assert_array_equal(alice[name], carol[name])
    road = next(o for o in batch.objects("carol", "street_01") if o.category == "road")
    assert road.source.id == "#804080"
    masks = _masks(batch, "carol", "street_02")
    assert not any(m[:, :5].any() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == H * (W - 5)


def test_colour_not_in_the_table_is_a_finding_and_left_unlabelled(tmp_path):
    ids = scene(26)
    path = colour_png(ids, tmp_path / "alice" / "street_01.png")
    rgb = np.asarray(PILImage.open(path)).copy()
    rgb[10:12, 0:3] = (1, 2, 3)  # a stray colour on 6 building pixels
    PILImage.fromarray(rgb).save(path)
    manifest = write_manifest(tmp_path, '[[exports]]\nannotator = "alice"\npath = "alice"\n')
    batch = qa.load(manifest=manifest)
    (f,) = [f for f in batch.findings if f.code == "FMT004"]
    assert "#010203 (6 px)" in f.message and f.value == 6.0 and f.image == "street_01"
    assert f.source.file == str(path) and f.annotator == "alice"
    building = next(o for o in batch.objects("alice") if o.category == "building")
    assert building.area == float((ids == BUILDING).sum() - 6)


def test_id_not_in_the_table_is_a_finding(tmp_path):
    ids = scene(26)
    ids[0, 0] = 9
    grey_png(ids, tmp_path / "alice" / "s.png")
    manifest = write_manifest(tmp_path, '[[exports]]\nannotator = "alice"\npath = "alice"\n')
    batch = qa.load(manifest=manifest)
    (f,) = [f for f in batch.findings if f.code == "FMT004"]
    assert f.message.startswith("class id 9 (1 px) not in the class table")
    assert len(batch.objects("alice")) == 5


def test_without_a_table_classes_are_named_by_id_and_void_ids_apply(tmp_path):
    grey_png(scene(26), tmp_path / "maps" / "s.png")
    (export,) = qa.formats.load(tmp_path / "maps", "alice", format="labelmap", options={"void_ids": [0]})
    assert [o.category for o in export.objects] == ["0", "1", "2", "3", "4"]
    assert [o.iscrowd for o in export.objects] == [True, False, False, False, False]
    assert export.objects[1].source.id == ROAD


def test_sixteen_bit_ids(tmp_path):
    ids = scene(26).astype(np.uint16)
    ids[ids == CAR] = 26000  # Cityscapes-style large ids need 16 bits
    grey_png(ids, tmp_path / "maps" / "s.png")
    (export,) = qa.formats.load(tmp_path / "maps", "a", format="labelmap", options={"bit_depth": 16})
    assert "26000" in {o.category for o in export.objects}
    assert not export.findings


@pytest.mark.parametrize("odd_depth, expected", [(16, 8), (8, 16)])
def test_bit_depth_other_than_the_exports_is_reported_and_left_out(tmp_path, odd_depth, expected):
    dtype = {8: np.uint8, 16: np.uint16}
    for k in range(2):
        grey_png(scene(26).astype(dtype[expected]), tmp_path / "maps" / f"s{k}.png")
    grey_png(scene(26).astype(dtype[odd_depth]), tmp_path / "maps" / "odd.png")
    (export,) = qa.formats.load(tmp_path / "maps", "a", format="labelmap")
    (f,) = export.findings
    assert f.code == "FMT020" and f.image == "odd" and f.annotator == "a"
    assert f.message.startswith(f"{odd_depth}-bit PNG where the export's label maps are {expected}-bit")
    assert set(export.images) == {"s0", "s1"}


def test_rgb_map_with_an_id_only_table_is_reported(tmp_path):
    colour_png(scene(26), tmp_path / "maps" / "s.png")
    (export,) = qa.formats.load(tmp_path / "maps", "a", format="labelmap",
                                options={"classes": [{"id": 1, "name": "road"}]})
    (f,) = export.findings
    assert f.code == "FMT020" and "gives ids only" in f.message
    assert not export.images


def test_sizes_that_differ_between_annotators_are_not_compared(tmp_path):
    palette_png(scene(26), tmp_path / "alice" / "s.png")
    palette_png(scene(26)[:, :40], tmp_path / "bob" / "s.png")
    batch = qa.load(f"alice={tmp_path / 'alice'}", f"bob={tmp_path / 'bob'}")
    (f,) = [f for f in batch.findings if f.code == "ALN002"]
    assert f.annotator == "bob" and "s 40x40 (frame 48x40)" in f.message
    assert batch.coverage["s"] == ("alice",)


def test_names_pair_case_insensitively_and_collisions_are_reported(tmp_path):
    palette_png(scene(26), tmp_path / "alice" / "Street_01.png")
    palette_png(scene(26), tmp_path / "bob" / "STREET_01.PNG")
    palette_png(scene(23), tmp_path / "bob" / "street_01.png")
    batch = qa.load(f"alice={tmp_path / 'alice'}", f"bob={tmp_path / 'bob'}")
    assert set(batch.images) == {"street_01"}
    assert batch.coverage["street_01"] == ("alice", "bob")
    (f,) = [f for f in batch.findings if f.code == "FMT005"]
    assert f.annotator == "bob" and "street_01.png and STREET_01.PNG name the same image" in f.message
    assert batch.exports["bob"].images["street_01"].file_name == "STREET_01.PNG"


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    outside = palette_png(scene(26), tmp_path / "elsewhere" / "secret.png")
    palette_png(scene(26), tmp_path / "alice" / "s.png")
    (tmp_path / "alice" / "t.png").symlink_to(outside)
    (export,) = qa.formats.load(tmp_path / "alice", "alice", format="labelmap")
    (f,) = export.findings
    assert f.code == "FMT007" and "t.png resolves outside" in f.message
    assert set(export.images) == {"s"}


def test_unreadable_png_is_one_line_input_error(tmp_path, capsys):
    palette_png(scene(26), tmp_path / "alice" / "a.png")
    good = palette_png(scene(26), tmp_path / "alice" / "b.png").read_bytes()
    broken = tmp_path / "alice" / "b.png"
    broken.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError) as info:
        qa.formats.load(tmp_path / "alice", "alice", format="labelmap")
    assert str(info.value).startswith(f"{broken}: cannot read image: Truncated File Read")
    corrupt = bytearray(good)
    corrupt[-20:-16] = b"\xff\xff\xff\xff"  # damage the end of the compressed data
    broken.write_bytes(bytes(corrupt))
    with pytest.raises(InputError) as info:
        qa.formats.load(tmp_path / "alice", "alice", format="labelmap")
    assert str(info.value).startswith(f"{broken}: cannot ")
    assert "\n" not in str(info.value)
    (tmp_path / "alice" / "c.png").write_bytes(b"not a png at all")
    broken.write_bytes(good)
    code, out, err = run_cli(["run", f"alice={tmp_path / 'alice'}"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"qa: error: {tmp_path / 'alice' / 'c.png'}: not a PNG file: no PNG signature and IHDR header"


def test_png_above_the_size_limit_is_refused(tmp_path):
    palette_png(scene(26), tmp_path / "alice" / "a.png")
    with pytest.raises(InputError, match="exceeds the limit of 1000 pixels; raise it with --max-pixels"):
        qa.load(f"alice={tmp_path / 'alice'}", max_pixels=1000)


def test_detection_tells_label_maps_from_binary_masks(tmp_path):
    palette_png(scene(26), tmp_path / "maps" / "a.png")
    grey_png(np.where(scene(26) == CAR, 255, 0).astype(np.uint8), tmp_path / "masks" / "a.png")
    palette_png(scene(26), tmp_path / "nested" / "ann1" / "a.png")
    assert detect(tmp_path / "maps") == "labelmap"
    assert detect(tmp_path / "masks") == "binary_masks"
    assert detect(tmp_path / "nested") == "labelmap"
    with pytest.raises(InputError, match="cannot tell the export format"):
        detect(tmp_path / "nested" / "ann1" / "a.png")
    (tmp_path / "maps" / "a.json").write_text("{}")  # PNGs next to annotation files are images
    with pytest.raises(InputError, match="cannot tell the export format"):
        detect(tmp_path / "maps")


def test_a_class_table_makes_a_black_and_white_folder_a_label_map(tmp_path):
    grey_png(np.where(scene(26) == CAR, 255, 0).astype(np.uint8), tmp_path / "masks" / "a.png")
    manifest = write_manifest(tmp_path, '[[exports]]\nannotator = "a"\npath = "masks"\n',
                              classes='[[classes]]\nid = 0\nname = "bg"\n[[classes]]\nid = 255\nname = "car"\n')
    batch = qa.load(manifest=manifest)
    assert batch.exports["a"].format == "labelmap"
    assert [o.category for o in batch.objects("a")] == ["bg", "car"]


# --- class tables and options ------------------------------------------------------------------------

@pytest.mark.parametrize("entry, message", [
    ({"name": "road"}, "needs an 'id' or a 'colour'"),
    ({"id": 1}, "needs a non-empty string 'name'"),
    ({"id": 1, "name": "road", "colour": [1, 2]}, r"is not \[r, g, b\]"),
    ({"id": 1, "name": "road", "colour": "#12345"}, r"is not \[r, g, b\]"),
    ({"id": -1, "name": "road"}, "'id' must be an integer from 0 to 65535"),
    ({"id": 1, "name": "road", "isthing": "yes"}, "'isthing' must be true or false"),
    ({"id": 1, "name": "road", "colour": [1, 2, 3], "color": [1, 2, 3]}, "not both"),
    ({"id": 1, "name": "road", "ignore": True}, "unknown key 'ignore'"),
])
def test_bad_class_entries_raise_config_error_naming_the_entry(entry, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_classes([{"id": 0, "name": "ok"}, entry], path="batch.toml")
    assert str(info.value).startswith("batch.toml: classes[1]: ")


def test_duplicate_ids_and_colours_are_refused_but_shared_names_merge():
    with pytest.raises(ConfigError, match="id 1 is given twice"):
        parse_classes([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
    with pytest.raises(ConfigError, match="colour #010203 is given twice"):
        parse_classes([{"colour": "#010203", "name": "a"}, {"colour": [1, 2, 3], "name": "b"}])
    with pytest.raises(ConfigError, match="different 'isthing'"):
        parse_classes([{"id": 1, "name": "a"}, {"id": 2, "name": "a", "isthing": True}])
    table = parse_classes([{"id": 26, "name": "vehicle"}, {"id": 27, "name": "vehicle"}])
    assert list(table.categories) == ["vehicle"]


def test_several_ids_of_one_class_make_one_object(tmp_path):
    ids = scene(26)
    ids[ids == CAR] = 5  # a second id for sidewalk
    grey_png(ids, tmp_path / "m" / "s.png")
    classes = [{"id": k, "name": "sidewalk" if k in (SIDEWALK, 5) else str(k)} for k in (0, 1, 2, 4, 5)]
    (export,) = qa.formats.load(tmp_path / "m", "a", format="labelmap", options={"classes": classes})
    (sidewalk,) = [o for o in export.objects if o.category == "sidewalk"]
    assert sidewalk.area == float(np.isin(ids, [SIDEWALK, 5]).sum())


def test_manifest_rejects_a_bad_top_level_class_table(tmp_path):
    manifest = write_manifest(tmp_path, '[[exports]]\npath = "x"\n', classes='[[classes]]\nid = 1\n')
    with pytest.raises(ConfigError) as info:
        qa.load(manifest=manifest)
    assert str(info.value) == f"{manifest}: classes[0]: a class needs a non-empty string 'name'"


def test_unknown_option_is_a_config_error(tmp_path):
    palette_png(scene(26), tmp_path / "m" / "a.png")
    with pytest.raises(ConfigError, match="unknown option 'threshold' for format labelmap"):
        qa.formats.load(tmp_path / "m", "a", format="labelmap", options={"threshold": 0.5})


def test_empty_folder_is_an_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no PNG files here"):
        qa.formats.load(tmp_path / "empty", "a", format="labelmap")
